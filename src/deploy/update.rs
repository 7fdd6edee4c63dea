//! The update of one container, step by step. This file holds the flow;
//! each phase has its own file beside it (`cutover`, `gate`, `cleanup`,
//! `undo`, `recover`). A Swarm service's update, which Swarm runs, is in
//! `service`.
//!
//! 0. resolve the **container by name** when the job runs (not when the
//!    webhook came: an earlier update may have replaced it), under the
//!    repository's lock, so replicas of one image are updated one after the
//!    other and nobody moves the tag under another's create;
//! 1. **pull** while the old container still serves; a failed pull changes
//!    nothing, and an unchanged image ID ends the deployment as `skipped`;
//! 2. run the **pre-update** hook in the old container, if it has one; its
//!    failure aborts the update;
//! 3. **create** the successor under a temporary name, on every network,
//!    and check it runs exactly the image that was pulled;
//! 4. then, by [`Strategy`]:
//!    - *start-first*: **start** it beside the old one and pass its
//!      **health gate**; only then give it the network aliases, take them
//!      from the old one (which leaves and rejoins its networks without
//!      them), let the old one finish what is in flight, **stop** it and
//!      give the successor its name;
//!    - *stop-first*: **stop** the old one (its own signal and timeout),
//!      give the successor its name, **start** it and pass the gate;
//! 5. **clean up**: remove the old container, the old image when nothing
//!    uses or names it, recreate containers that share the old one's
//!    network stack, restart those linked to it, run the **post-update**
//!    hook.
//!
//! The health gate waits for Docker's `healthy` when the new container has a
//! healthcheck, and otherwise for it to keep running through the grace
//! period. Any failure before the old container is retired puts it back
//! under its name, running, points the tag back at the old image, keeps the
//! failed image for inspection, and ends the deployment `rolled_back` with
//! the reason and the new container's last log lines.
//!
//! A deployment succeeds only once the host shows the target's name on the
//! new container, running the pulled image. Every step is written to the
//! store, with what it learnt, before it is taken, and container names are
//! derived from the deployment, so recovery (`recover.rs`) can finish or
//! undo a deployment that a crash interrupted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::models::{EndpointSettings, ImageInspect};
use tokio::sync::OwnedMutexGuard;

use super::plan::plan;
use super::policy::{policy, Strategy, StrategySetting};
use crate::credentials::{self, Login, Lookup};
use crate::engine::{Engine, EngineError};
use crate::image_ref::ImageRef;
use crate::store::{Facts, State, Store};
use crate::tags::{TagPolicy, POLICY_LABEL};
use crate::targets::PARKED_MARKER;

/// One queued deployment: update container `target` to the newest `image`.
#[derive(Debug, Clone)]
pub struct Job {
    pub deployment: i64,
    /// Container name; stable across updates, unlike its ID.
    pub target: String,
    pub image: ImageRef,
    /// The digest the webhook named, if any: the registry must serve it.
    pub digest: Option<String>,
    /// Deploy even if the image is the one that runs, or in quarantine.
    pub force: bool,
    /// A rollback: deploy this image (kept on the host) instead of pulling;
    /// for a service, the pinned reference to deploy again.
    pub rollback: Option<String>,
    /// `target` is a Swarm service.
    pub service: bool,
}

impl Job {
    /// The job a recorded deployment stands for; `None` when its image
    /// reference no longer parses.
    pub fn of(deployment: &crate::store::Deployment) -> Option<Job> {
        Some(Job {
            deployment: deployment.id,
            target: deployment.target.clone(),
            image: ImageRef::parse(&deployment.image).ok()?,
            digest: deployment.digest.clone(),
            force: deployment.force,
            rollback: if deployment.kind.as_deref() == Some(KIND_ROLLBACK) {
                Some(deployment.new_image_id.clone()?)
            } else {
                None
            },
            service: deployment.service,
        })
    }

    /// Whether this job must not be folded into another in flight.
    pub fn is_fresh(&self) -> bool {
        self.force || self.rollback.is_some()
    }

    /// The name the successor has until it takes over.
    pub(super) fn new_name(&self) -> String {
        format!("{}{PARKED_MARKER}new-{}", self.target, self.deployment)
    }

    /// The name the old container has once it made way.
    pub(super) fn parked_name(&self) -> String {
        format!("{}{PARKED_MARKER}old-{}", self.target, self.deployment)
    }
}

/// [`crate::store::Deployment::kind`] of a deployment a person asked for.
pub const KIND_MANUAL: &str = "manual";
/// [`crate::store::Deployment::kind`] of a rollback to an earlier image.
pub const KIND_ROLLBACK: &str = "rollback";

/// How a deployment ended; the text says why, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded(String),
    Skipped(String),
    /// Nothing was changed on the host.
    Failed(String),
    /// The successor failed; the old container runs again.
    RolledBack(String),
    /// The successor failed and putting the old container back failed too.
    RollbackFailed(String),
}

impl Outcome {
    pub fn state(&self) -> State {
        match self {
            Outcome::Succeeded(_) => State::Succeeded,
            Outcome::Skipped(_) => State::Skipped,
            Outcome::Failed(_) => State::Failed,
            Outcome::RolledBack(_) => State::RolledBack,
            Outcome::RollbackFailed(_) => State::RollbackFailed,
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Outcome::Succeeded(s)
            | Outcome::Skipped(s)
            | Outcome::Failed(s)
            | Outcome::RolledBack(s)
            | Outcome::RollbackFailed(s) => s,
        }
    }
}

/// What the updater takes from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a container without healthcheck must keep running.
    pub grace: Duration,
    /// How long a container with a healthcheck may take to become healthy.
    pub health_timeout: Duration,
    pub strategy: StrategySetting,
    /// How long a lifecycle hook may run.
    pub hook_timeout: Duration,
    /// Fault injection for tests: abort the process right after this step
    /// is recorded, as a crash would. Only in builds with the
    /// `fault-injection` feature, which only tests turn on.
    #[cfg(feature = "fault-injection")]
    pub abort_at: Option<State>,
    /// Directory of the Docker client configuration holding registry logins.
    pub docker_config: Option<std::path::PathBuf>,
    /// What a new image does to a container without a `dockhook.mode` label.
    pub mode: super::Mode,
    /// How long a digest must be the newest before it is deployed, for a
    /// container without a `dockhook.delay` label.
    pub delay: Duration,
    /// Images of earlier successful deployments kept per container, for
    /// rollbacks.
    pub keep_images: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(5),
            health_timeout: Duration::from_secs(60),
            strategy: StrategySetting::Auto,
            hook_timeout: Duration::from_secs(60),
            #[cfg(feature = "fault-injection")]
            abort_at: None,
            docker_config: None,
            mode: super::Mode::Auto,
            delay: Duration::ZERO,
            keep_images: 1,
        }
    }
}

/// Runs jobs against an engine and records every step.
pub struct Updater<E> {
    pub(super) engine: Arc<E>,
    pub(super) store: Arc<Store>,
    pub(super) settings: Settings,
    /// One lock per repository; see [`Updater::repository_lock`].
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What has been done to the host so far, to undo it.
#[derive(Debug, Clone)]
pub(super) struct Swap {
    pub(super) target: String,
    /// The tag to point at the old image again when undoing.
    pub(super) retag: Option<ImageRef>,
    pub(super) old_id: String,
    pub(super) old_image_id: String,
    /// The old container's network endpoints before the update, to put it
    /// back on each one exactly.
    pub(super) old_networks: HashMap<String, EndpointSettings>,
    pub(super) new_id: Option<String>,
    /// The image the new container runs.
    pub(super) new_image_id: String,
    /// A crash may have interrupted a stop of the old container, which
    /// Docker carries on with: undoing lets it end before starting it.
    pub(super) old_may_be_stopping: bool,
}

impl<E: Engine> Updater<E> {
    pub fn new(engine: Arc<E>, store: Arc<Store>, settings: Settings) -> Self {
        Self {
            engine,
            store,
            settings,
            locks: Mutex::default(),
        }
    }

    /// Runs `job` to its end and records the outcome.
    pub async fn run(&self, job: &Job) -> Outcome {
        let outcome = match job.service {
            true => self.update_service(job).await,
            false => self.update(job).await,
        };
        let outcome = match outcome {
            Ok(outcome) | Err(outcome) => outcome,
        };
        self.finish(job.deployment, &job.target, outcome).await
    }

    pub(super) async fn finish(&self, deployment: i64, target: &str, outcome: Outcome) -> Outcome {
        match &outcome {
            Outcome::Succeeded(_) | Outcome::Skipped(_) => {
                tracing::info!(deployment, %target, ?outcome, "deployment ended")
            }
            Outcome::RollbackFailed(_) => tracing::error!(
                deployment,
                %target,
                ?outcome,
                "ROLLBACK FAILED: {target} needs a person; see the deployment's history"
            ),
            _ => tracing::warn!(deployment, %target, ?outcome, "deployment ended"),
        }
        self.record(deployment, outcome.state(), Some(outcome.detail()))
            .await;
        outcome
    }

    /// Writes a step to the store; it is taken only after this returns.
    pub(super) async fn record(&self, deployment: i64, state: State, detail: Option<&str>) {
        self.record_with(deployment, state, detail, Facts::default())
            .await
    }

    /// [`Updater::record`], with what the deployment learnt on the way, in
    /// the same transaction.
    pub(super) async fn record_with(
        &self,
        deployment: i64,
        state: State,
        detail: Option<&str>,
        facts: Facts,
    ) {
        let detail = detail.map(str::to_string);
        let written = self
            .store
            .call(move |store| store.step(deployment, state, detail.as_deref(), &facts))
            .await;
        if let Err(e) = written {
            tracing::error!(deployment, error = %e, "cannot record step");
        }
        #[cfg(feature = "fault-injection")]
        if self.settings.abort_at == Some(state) && !state.is_final() {
            tracing::error!(
                deployment,
                state = state.as_str(),
                "fault injection: aborting"
            );
            std::process::abort();
        }
    }

    /// The lock that serialises the deployments of one repository: replicas
    /// of one image are updated one after the other, so one's pull, retag or
    /// rollback never moves the tag under another's create.
    pub(super) async fn repository_lock(&self, image: &ImageRef) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            // Forget the locks nobody holds or waits for.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            locks.entry(image.name()).or_default().clone()
        };
        lock.lock_owned().await
    }

    async fn update(&self, job: &Job) -> Result<Outcome, Outcome> {
        let target = job.target.as_str();
        let _serialised = self.repository_lock(&job.image).await;
        // The container is resolved now, by name, not when the webhook came:
        // an earlier update may have replaced it since.
        let old = match self.engine.inspect_container(target).await {
            Ok(old) => old,
            Err(EngineError::NotFound(_)) => {
                return Err(Outcome::Failed(format!(
                    "container {target} no longer exists"
                )))
            }
            Err(e) => return Err(Outcome::Failed(format!("cannot inspect {target}: {e}"))),
        };
        if old.state.as_ref().and_then(|s| s.running) != Some(true) {
            return Ok(Outcome::Skipped(format!(
                "{target} is not running; dockhook updates running containers only"
            )));
        }
        let old_id = old.id.clone().unwrap_or_default();
        let old_image_id = old.image.clone().unwrap_or_default();
        let configured = old
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        // The image the new container is created from: the container's own
        // spelling when the tag stays, the pushed tag when its policy moves it.
        let labels = old.config.as_ref().and_then(|c| c.labels.as_ref());
        let Some(reference) = takes(labels, &configured, &job.image) else {
            return Ok(Outcome::Skipped(format!(
                "{target} now runs {configured}, which does not take {}",
                job.image
            )));
        };
        let policy = policy(&old, self.settings.strategy, self.settings.health_timeout)
            .map_err(Outcome::Failed)?;
        let old_image = self.engine.inspect_image(&old_image_id).await.ok();
        if let (Some(digest), Some(running)) = (&job.digest, &old_image) {
            if has_digest(running, &job.image, digest) {
                return Ok(Outcome::Skipped(format!("{target} already runs {digest}")));
            }
        }
        let old_networks = old
            .network_settings
            .as_ref()
            .and_then(|s| s.networks.clone())
            .unwrap_or_default();
        self.record_with(
            job.deployment,
            State::Pulling,
            None,
            Facts {
                old_container_id: Some(old_id.clone()),
                old_image_id: Some(old_image_id.clone()),
                strategy: Some(strategy_name(policy.strategy).to_string()),
                old_networks: serde_json::to_string(&old_networks).ok(),
                ..Facts::default()
            },
        )
        .await;

        match &job.rollback {
            // A rollback brings back an image kept on the host: the tag is
            // pointed at it, as a pull would.
            Some(image_id) => self
                .engine
                .tag_image(image_id, &job.image)
                .await
                .map_err(|e| {
                    Outcome::Failed(format!(
                        "cannot bring back image {} (is it still on this host?): {e}; \
                         {target} keeps running its current image",
                        short(image_id)
                    ))
                })?,
            None => {
                let (login, login_note) = self.login_for(&job.image)?;
                self.engine
                    .pull(&job.image, login.as_ref())
                    .await
                    .map_err(|e| {
                        Outcome::Failed(format!(
                            "{e}{login_note}; {target} keeps running its current image"
                        ))
                    })?;
            }
        }
        let pulled = self.engine.inspect_image(&reference).await.map_err(|e| {
            Outcome::Failed(format!("cannot inspect pulled image {reference}: {e}"))
        })?;
        let new_image_id = pulled.id.clone().unwrap_or_default();
        let same_tag = ImageRef::parse(&configured).is_ok_and(|c| c.tag == job.image.tag);
        if new_image_id == old_image_id && !job.force {
            return Ok(Outcome::Skipped(format!(
                "{target} already runs the newest {reference} ({})",
                short(&new_image_id)
            )));
        }
        if !job.is_fresh() {
            if let Some(skip) = self
                .quarantine(job, &new_image_id, &old_image_id, same_tag)
                .await
            {
                return Ok(skip);
            }
        }
        let mut swap = Swap {
            target: target.to_string(),
            // The pull moved this tag away from what runs; undoing puts it back.
            retag: same_tag.then(|| job.image.clone()),
            old_id,
            old_image_id,
            old_networks,
            new_id: None,
            new_image_id: new_image_id.clone(),
            old_may_be_stopping: false,
        };

        if let Some(digest) = &job.digest {
            if !has_digest(&pulled, &job.image, digest) {
                let reason = format!(
                    "the registry serves {} as {}, not {digest} as the webhook said \
                     (a newer push, or a forged payload); nothing was changed",
                    job.image,
                    served_digest(&pulled, &job.image).unwrap_or_else(|| "another image".into()),
                );
                return Err(self.roll_back(&swap, reason).await);
            }
        }

        if let Some(command) = &policy.pre_update {
            self.record(job.deployment, State::PreUpdate, Some(&command.join(" ")))
                .await;
            if let Err(reason) = self.hook(&swap.old_id, command).await {
                let reason = format!("pre-update hook failed: {reason}; nothing was changed");
                return Err(self.roll_back(&swap, reason).await);
            }
        }

        self.record_with(
            job.deployment,
            State::Creating,
            None,
            Facts {
                new_image_id: Some(new_image_id.clone()),
                ..Facts::default()
            },
        )
        .await;
        let mut create = plan(
            &old,
            old_image.as_ref().and_then(|i| i.config.as_ref()),
            &reference,
        );
        let deferred_aliases = match policy.strategy {
            Strategy::StartFirst => create.defer_aliases(),
            Strategy::StopFirst => Vec::new(),
        };
        let new_id = match self
            .engine
            .create_container(&job.new_name(), create.body)
            .await
        {
            Ok(id) => id,
            Err(e) => {
                let reason = format!("cannot create the new container: {e}");
                return Err(self.roll_back(&swap, reason).await);
            }
        };
        swap.new_id = Some(new_id.clone());
        let recorded = self
            .store
            .call({
                let (deployment, new_id) = (job.deployment, new_id.clone());
                move |store| store.set_new_container(deployment, &new_id)
            })
            .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, "cannot record the new container");
        }
        // The reference is resolved at create: the new container must run
        // exactly the image this deployment pulled and checked.
        if let Err(reason) = self.runs_image(&new_id, &new_image_id).await {
            return Err(self.roll_back(&swap, reason).await);
        }
        for (network, endpoint) in create.extra_networks {
            if let Err(e) = self
                .engine
                .connect_network(&network, &new_id, endpoint)
                .await
            {
                let reason = format!("cannot connect the new container to network {network}: {e}");
                return Err(self.roll_back(&swap, reason).await);
            }
        }

        let result = match policy.strategy {
            Strategy::StartFirst => {
                self.start_first(job, &swap, &policy, deferred_aliases)
                    .await
            }
            Strategy::StopFirst => self.stop_first(job, &swap, &policy).await,
        };
        let result = match result {
            Ok(()) => self.serves(target, &new_id, &new_image_id).await,
            Err(reason) => Err(reason),
        };
        if let Err(reason) = result {
            return Err(self.roll_back(&swap, reason).await);
        }

        self.record(job.deployment, State::CleaningUp, None).await;
        let mut notes = vec![format!(
            "{} replaced container {}",
            strategy_name(policy.strategy),
            short(&swap.old_id)
        )];
        notes.extend(self.clean_up(&swap).await);
        if let Some(command) = &policy.post_update {
            self.record(job.deployment, State::PostUpdate, Some(&command.join(" ")))
                .await;
            match self.hook(&new_id, command).await {
                Ok(()) => notes.push("post-update hook succeeded".into()),
                Err(reason) => notes.push(format!("post-update hook failed: {reason}")),
            }
        }
        Ok(Outcome::Succeeded(notes.join("; ")))
    }

    /// A skip when the pulled image `new_image_id` was rolled back before
    /// and no other new image came since (quarantine): the tag is pointed
    /// back at what runs, and nothing else changes.
    pub(super) async fn quarantine(
        &self,
        job: &Job,
        new_image_id: &str,
        old_image_id: &str,
        same_tag: bool,
    ) -> Option<Outcome> {
        let (target, image, id) = (job.target.clone(), new_image_id.to_string(), job.deployment);
        let found = self
            .store
            .call(move |store| store.quarantined(&target, &image, id))
            .await;
        let by = match found {
            Ok(by) => by?,
            Err(e) => {
                tracing::error!(error = %e, "cannot check the quarantine; deploying");
                return None;
            }
        };
        if same_tag {
            if let Err(e) = self.engine.tag_image(old_image_id, &job.image).await {
                tracing::warn!(error = %e, "cannot point {} back at the running image", job.image);
            }
        }
        Some(Outcome::Skipped(format!(
            "image {} was rolled back in deployment {by}: it is not deployed again until \
             another image is pushed, or someone forces it (dockhook update {} --force)",
            short(new_image_id),
            job.target
        )))
    }

    /// Whether container (or, with `service`, service) `target` runs
    /// `image` under `digest`, as far as Docker can tell.
    pub async fn runs_digest(
        &self,
        target: &str,
        service: bool,
        image: &ImageRef,
        digest: &str,
    ) -> bool {
        if service {
            let Ok(service) = self.engine.inspect_service(target).await else {
                return false;
            };
            let spec_image = service
                .spec
                .and_then(|s| s.task_template)
                .and_then(|t| t.container_spec)
                .and_then(|c| c.image);
            return spec_image
                .and_then(|i| ImageRef::parse(&i).ok())
                .is_some_and(|running| {
                    running.same_repository_and_tag(image)
                        && running.digest.as_deref() == Some(digest)
                });
        }
        let Ok(container) = self.engine.inspect_container(target).await else {
            return false;
        };
        let Some(image_id) = container.image else {
            return false;
        };
        match self.engine.inspect_image(&image_id).await {
            Ok(running) => has_digest(&running, image, digest),
            Err(_) => false,
        }
    }

    /// Whether container `id` runs image `image_id`; why not, if not.
    pub(super) async fn runs_image(&self, id: &str, image_id: &str) -> Result<(), String> {
        let inspect = self.inspect_new(id).await?;
        match inspect.image.as_deref() {
            Some(actual) if actual == image_id => Ok(()),
            actual => Err(format!(
                "the new container was created from image {}, not the pulled {} \
                 (the tag moved during the update)",
                short(actual.unwrap_or("?")),
                short(image_id)
            )),
        }
    }

    /// Whether `target` is now the new container `id`, running image
    /// `image_id`: a deployment succeeds only on what the host shows.
    pub(super) async fn serves(
        &self,
        target: &str,
        id: &str,
        image_id: &str,
    ) -> Result<(), String> {
        let named = self
            .engine
            .inspect_container(target)
            .await
            .map_err(|e| format!("cannot inspect {target} after the cutover: {e}"))?;
        let running = named.state.as_ref().and_then(|s| s.running) == Some(true);
        if named.id.as_deref() != Some(id) {
            return Err(format!(
                "after the cutover {target} is container {}, not the new {}",
                short(named.id.as_deref().unwrap_or("?")),
                short(id)
            ));
        }
        if !running {
            return Err(format!("after the cutover {target} is not running"));
        }
        self.runs_image(id, image_id).await
    }

    /// The login for the image's registry from the Docker configuration, and
    /// a note for a failed pull when the configuration could not give one.
    pub(super) fn login_for(&self, image: &ImageRef) -> Result<(Option<Login>, String), Outcome> {
        let Some(dir) = &self.settings.docker_config else {
            return Ok((None, String::new()));
        };
        match credentials::lookup(dir, &image.registry) {
            Ok(Lookup::Found(login)) => Ok((Some(login), String::new())),
            Ok(Lookup::NotFound) => Ok((None, String::new())),
            Ok(Lookup::Unsupported(why)) => {
                tracing::warn!(registry = %image.registry, "{why}");
                Ok((None, format!(" ({why})")))
            }
            Err(e) => Err(Outcome::Failed(format!("{e}; nothing was changed"))),
        }
    }
}

/// The reference the successor of a container (or service) configured with
/// `configured` and labelled `labels` is created from, if it still takes a
/// push of `pushed`: same repository, no pinned digest, and a tag policy
/// that accepts the pushed tag. Its own spelling is kept when the tag
/// stays.
pub(super) fn takes(
    labels: Option<&HashMap<String, String>>,
    configured: &str,
    pushed: &ImageRef,
) -> Option<String> {
    let current = ImageRef::parse(configured).ok()?;
    if current.digest.is_some()
        || current.registry != pushed.registry
        || current.repository != pushed.repository
    {
        return None;
    }
    if current.tag == pushed.tag {
        return Some(configured.to_string());
    }
    let label = labels.and_then(|l| l.get(POLICY_LABEL)).map(String::as_str);
    TagPolicy::parse(label)
        .ok()?
        .decide(&current.tag, &pushed.tag)
        .ok()?;
    Some(pushed.to_string())
}

/// The digests the registry served `image` under, as Docker recorded them
/// (`host/repo@sha256:…`).
pub fn digests_of<'a>(
    pulled: &'a ImageInspect,
    image: &'a ImageRef,
) -> impl Iterator<Item = &'a str> {
    pulled
        .repo_digests
        .iter()
        .flatten()
        .filter_map(move |entry| {
            let (name, digest) = entry.rsplit_once('@')?;
            let name = ImageRef::parse(name).ok()?;
            (name.registry == image.registry && name.repository == image.repository)
                .then_some(digest)
        })
}

fn has_digest(pulled: &ImageInspect, image: &ImageRef, digest: &str) -> bool {
    digests_of(pulled, image).any(|d| d == digest)
}

fn served_digest(pulled: &ImageInspect, image: &ImageRef) -> Option<String> {
    digests_of(pulled, image).next().map(str::to_string)
}

fn strategy_name(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::StartFirst => "start-first",
        Strategy::StopFirst => "stop-first",
    }
}

/// The short form Docker prints for IDs.
pub fn short(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids() {
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
    }
}
