//! The update of one container, step by step.
//!
//! 1. **pull** while the old container still serves; a failed pull changes
//!    nothing, and an unchanged image ID ends the deployment as `skipped`;
//! 2. run the **pre-update** hook in the old container, if it has one; its
//!    failure aborts the update;
//! 3. **create** the successor under a temporary name, on every network;
//! 4. then, by [`Strategy`]:
//!    - *start-first*: **start** it beside the old one and pass its
//!      **health gate**; only then take the old one off its networks,
//!      **stop** it and give the successor its name;
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
//! Every step is written to the store before it is taken, and container
//! names are derived from the deployment, so recovery (`recover.rs`) can
//! finish or undo a deployment that a crash interrupted.

use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerInspectResponse, ImageInspect};

use super::plan::plan;
use super::policy::{policy, Strategy, StrategySetting};
use crate::credentials::{self, Login, Lookup};
use crate::engine::{Engine, EngineError};
use crate::image_ref::ImageRef;
use crate::store::{State, Store};
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
}

impl Job {
    /// The name the successor has until it takes over.
    pub(super) fn new_name(&self) -> String {
        format!("{}{PARKED_MARKER}new-{}", self.target, self.deployment)
    }

    /// The name the old container has once it made way.
    pub(super) fn parked_name(&self) -> String {
        format!("{}{PARKED_MARKER}old-{}", self.target, self.deployment)
    }
}

/// How a deployment ended; the text says why, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded(String),
    Skipped(String),
    /// Nothing was changed on the host.
    Failed(String),
    /// The successor failed; the old container runs again.
    RolledBack(String),
}

impl Outcome {
    pub fn state(&self) -> State {
        match self {
            Outcome::Succeeded(_) => State::Succeeded,
            Outcome::Skipped(_) => State::Skipped,
            Outcome::Failed(_) => State::Failed,
            Outcome::RolledBack(_) => State::RolledBack,
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Outcome::Succeeded(s)
            | Outcome::Skipped(s)
            | Outcome::Failed(s)
            | Outcome::RolledBack(s) => s,
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
    /// is recorded, as a crash would.
    pub abort_at: Option<State>,
    /// Directory of the Docker client configuration holding registry logins.
    pub docker_config: Option<std::path::PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(5),
            health_timeout: Duration::from_secs(60),
            strategy: StrategySetting::Auto,
            hook_timeout: Duration::from_secs(60),
            abort_at: None,
            docker_config: None,
        }
    }
}

/// Runs jobs against an engine and records every step.
pub struct Updater<E> {
    pub(super) engine: Arc<E>,
    store: Arc<Store>,
    pub(super) settings: Settings,
}

/// What has been done to the host so far, to undo it.
#[derive(Debug, Clone)]
pub(super) struct Swap {
    pub(super) target: String,
    /// The tag to point at the old image again when undoing.
    pub(super) retag: Option<ImageRef>,
    pub(super) old_id: String,
    pub(super) old_image_id: String,
    pub(super) new_id: Option<String>,
    /// The old container no longer has the target's name.
    pub(super) old_parked: bool,
}

impl<E: Engine> Updater<E> {
    pub fn new(engine: Arc<E>, store: Arc<Store>, settings: Settings) -> Self {
        Self {
            engine,
            store,
            settings,
        }
    }

    /// Runs `job` to its end and records the outcome.
    pub async fn run(&self, job: &Job) -> Outcome {
        let outcome = match self.update(job).await {
            Ok(outcome) | Err(outcome) => outcome,
        };
        self.finish(job.deployment, &job.target, outcome)
    }

    pub(super) fn finish(&self, deployment: i64, target: &str, outcome: Outcome) -> Outcome {
        match &outcome {
            Outcome::Succeeded(_) | Outcome::Skipped(_) => {
                tracing::info!(deployment, %target, ?outcome, "deployment ended")
            }
            _ => tracing::warn!(deployment, %target, ?outcome, "deployment ended"),
        }
        self.record(deployment, outcome.state(), Some(outcome.detail()));
        outcome
    }

    /// Writes a step to the store; it is taken only after this returns.
    pub(super) fn record(&self, deployment: i64, state: State, detail: Option<&str>) {
        if let Err(e) = self.store.transition(deployment, state, detail) {
            tracing::error!(deployment, error = %e, "cannot record step");
        }
        if self.settings.abort_at == Some(state) && !state.is_final() {
            tracing::error!(
                deployment,
                state = state.as_str(),
                "fault injection: aborting"
            );
            std::process::abort();
        }
    }

    fn note(&self, result: Result<(), crate::store::StoreError>) {
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot record deployment detail");
        }
    }

    async fn update(&self, job: &Job) -> Result<Outcome, Outcome> {
        let target = job.target.as_str();
        self.record(job.deployment, State::Pulling, None);
        let old = match self.engine.inspect_container(target).await {
            Ok(old) => old,
            Err(EngineError::NotFound(_)) => {
                return Err(Outcome::Failed(format!(
                    "container {target} no longer exists"
                )))
            }
            Err(e) => return Err(Outcome::Failed(format!("cannot inspect {target}: {e}"))),
        };
        let old_id = old.id.clone().unwrap_or_default();
        let old_image_id = old.image.clone().unwrap_or_default();
        let configured = old
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        // The image the new container is created from: the container's own
        // spelling when the tag stays, the pushed tag when its policy moves it.
        let Some(reference) = takes(&old, &configured, &job.image) else {
            return Ok(Outcome::Skipped(format!(
                "{target} now runs {configured}, which does not take {}",
                job.image
            )));
        };
        let policy = policy(&old, self.settings.strategy, self.settings.health_timeout)
            .map_err(Outcome::Failed)?;
        self.note(self.store.set_old_image(job.deployment, &old_image_id));

        let (login, login_note) = self.login_for(&job.image)?;
        self.engine
            .pull(&job.image, login.as_ref())
            .await
            .map_err(|e| {
                Outcome::Failed(format!(
                    "{e}{login_note}; {target} keeps running its current image"
                ))
            })?;
        let pulled = self.engine.inspect_image(&reference).await.map_err(|e| {
            Outcome::Failed(format!("cannot inspect pulled image {reference}: {e}"))
        })?;
        let new_image_id = pulled.id.clone().unwrap_or_default();
        self.note(self.store.set_new_image(job.deployment, &new_image_id));
        if new_image_id == old_image_id {
            return Ok(Outcome::Skipped(format!(
                "{target} already runs the newest {reference} ({})",
                short(&new_image_id)
            )));
        }
        let same_tag = ImageRef::parse(&configured).is_ok_and(|c| c.tag == job.image.tag);
        let mut swap = Swap {
            target: target.to_string(),
            // The pull moved this tag away from what runs; undoing puts it back.
            retag: same_tag.then(|| job.image.clone()),
            old_id,
            old_image_id,
            new_id: None,
            old_parked: false,
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
            self.record(job.deployment, State::PreUpdate, Some(&command.join(" ")));
            if let Err(reason) = self.hook(&swap.old_id, command).await {
                let reason = format!("pre-update hook failed: {reason}; nothing was changed");
                return Err(self.roll_back(&swap, reason).await);
            }
        }

        self.record(job.deployment, State::Creating, None);
        let old_image = self.engine.inspect_image(&swap.old_image_id).await.ok();
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
        self.note(self.store.set_new_container(job.deployment, &new_id));
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
                self.start_first(job, &mut swap, &old, &policy, deferred_aliases)
                    .await
            }
            Strategy::StopFirst => self.stop_first(job, &mut swap, &policy).await,
        };
        if let Err(reason) = result {
            return Err(self.roll_back(&swap, reason).await);
        }

        self.record(job.deployment, State::CleaningUp, None);
        let mut notes = vec![format!(
            "{} replaced container {}",
            strategy_name(policy.strategy),
            short(&swap.old_id)
        )];
        notes.extend(self.clean_up(&swap).await);
        if let Some(command) = &policy.post_update {
            self.record(job.deployment, State::PostUpdate, Some(&command.join(" ")));
            match self.hook(&new_id, command).await {
                Ok(()) => notes.push("post-update hook succeeded".into()),
                Err(reason) => notes.push(format!("post-update hook failed: {reason}")),
            }
        }
        Ok(Outcome::Succeeded(notes.join("; ")))
    }

    /// The login for the image's registry from the Docker configuration, and
    /// a note for a failed pull when the configuration could not give one.
    fn login_for(&self, image: &ImageRef) -> Result<(Option<Login>, String), Outcome> {
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

/// The reference the successor of `old` (configured with `configured`) is
/// created from, if `old` still takes a push of `pushed`: same repository,
/// no pinned digest, and a tag policy that accepts the pushed tag. The
/// container's own spelling is kept when the tag stays.
fn takes(old: &ContainerInspectResponse, configured: &str, pushed: &ImageRef) -> Option<String> {
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
    let labels = old.config.as_ref().and_then(|c| c.labels.as_ref());
    let label = labels.and_then(|l| l.get(POLICY_LABEL)).map(String::as_str);
    TagPolicy::parse(label)
        .ok()?
        .decide(&current.tag, &pushed.tag)
        .ok()?;
    Some(pushed.to_string())
}

/// The digests the registry served `image` under, as Docker recorded them
/// (`host/repo@sha256:…`).
fn digests_of<'a>(pulled: &'a ImageInspect, image: &'a ImageRef) -> impl Iterator<Item = &'a str> {
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
pub(super) fn short(id: &str) -> String {
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
