//! The update of one container, step by step.
//!
//! 1. **pull** while the old container still serves; a failed pull changes
//!    nothing, and an unchanged image ID ends the deployment as `skipped`;
//! 2. run the **pre-update** hook in the old container, if it has one; its
//!    failure aborts the update;
//! 3. **create** the successor under a temporary name, on every network;
//! 4. then, by [`Strategy`]:
//!    - *start-first*: **start** it beside the old one and pass its
//!      **health gate**; only then give it the network aliases, take them
//!      from the old one (which leaves and rejoins its networks without
//!      them), give the successor its name, let the old one finish what is
//!      in flight and **stop** it;
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

use bollard::models::{
    ContainerInspectResponse, ContainerState, EndpointSettings, HealthStatusEnum, ImageInspect,
};
use tokio::time::Instant;

use super::plan::plan;
use super::policy::{policy, Policy, Strategy, StrategySetting};
use crate::credentials::{self, Login, Lookup};
use crate::engine::{Engine, EngineError, ImageRemoval};
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

/// How often a starting container is looked at.
const POLL: Duration = Duration::from_millis(200);
/// How long old and new containers both answer to their aliases before the
/// old one leaves. Docker's name server gives out a joining container's
/// address some tens of milliseconds before that address carries traffic:
/// this keeps that moment apart from the old container's leaving, so that a
/// lookup never gets two addresses that answer nothing.
const SETTLE: Duration = Duration::from_millis(500);
/// How long the old container keeps serving, back on its networks without
/// its aliases, before it is stopped: for the requests in flight, and for
/// connections whose first SYN Docker's late name record sent into the gap
/// (TCP sends it again after 1 s).
const DRAIN: Duration = Duration::from_secs(2);
/// How long undoing an update keeps retrying while Docker does not answer.
const UNDO_PATIENCE: Duration = Duration::from_secs(120);
/// Log lines of a failed container kept with the reason.
const LOG_LINES: usize = 20;

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
    fn record(&self, deployment: i64, state: State, detail: Option<&str>) {
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

    /// The new container starts beside the old one, which is retired only
    /// once the new one passed its gate.
    async fn start_first(
        &self,
        job: &Job,
        swap: &mut Swap,
        old: &ContainerInspectResponse,
        policy: &Policy,
        aliases: Vec<(String, EndpointSettings)>,
    ) -> Result<(), String> {
        let new_id = swap.new_id.clone().unwrap_or_default();
        self.start_and_gate(job, &new_id, policy).await?;
        // Ready: now it may answer to the shared aliases, beside the old one.
        let had_aliases = !aliases.is_empty();
        for (network, endpoint) in aliases {
            let joined = async {
                self.engine.disconnect_network(&network, &new_id).await?;
                self.engine
                    .connect_network(&network, &new_id, endpoint)
                    .await
            };
            joined.await.map_err(|e| {
                format!("cannot give the new container its aliases on {network}: {e}")
            })?;
        }
        if had_aliases {
            tokio::time::sleep(SETTLE).await;
        }

        // The commit point: from here on the new container serves.
        self.record(job.deployment, State::Stopping, Some(&short(&swap.old_id)));
        let endpoints = old
            .network_settings
            .as_ref()
            .and_then(|s| s.networks.clone())
            .unwrap_or_default();
        let mut rejoined = false;
        for (network, endpoint) in endpoints
            .into_iter()
            .filter(|(n, _)| !matches!(n.as_str(), "bridge" | "host" | "none"))
        {
            // Docker cannot take an alias from a container, only the
            // container from the network, and its name server still gives
            // out the address for a moment after the interface is gone. So
            // the old container leaves and joins again at once without its
            // aliases: it gets its address back (the lowest free one, just
            // freed), and requests in flight, or sent to the address in that
            // moment, reach it rather than nothing (measured in
            // bench/switch-orders.sh). Stopped while off the network, it
            // would leave them hanging until the client gives up.
            if let Err(e) = self.engine.disconnect_network(&network, &swap.old_id).await {
                tracing::warn!(%network, error = %e, "cannot take the old container off a network");
                continue;
            }
            let without_aliases = EndpointSettings {
                ipam_config: endpoint.ipam_config,
                links: endpoint.links.filter(|l| !l.is_empty()),
                driver_opts: endpoint.driver_opts,
                ..Default::default()
            };
            match self
                .engine
                .connect_network(&network, &swap.old_id, without_aliases)
                .await
            {
                Ok(()) => rejoined = true,
                Err(e) => {
                    tracing::warn!(%network, error = %e, "the old container stays off a network while it stops")
                }
            }
        }
        // Names before the drain: a crash during it then finishes the
        // update on restart, rather than putting back an old container that
        // no longer has its aliases.
        self.engine
            .rename_container(&swap.old_id, &job.parked_name())
            .await
            .map_err(|e| format!("cannot rename the old container: {e}"))?;
        swap.old_parked = true;
        self.engine
            .rename_container(&new_id, &job.target)
            .await
            .map_err(|e| format!("cannot give the new container the name {}: {e}", job.target))?;
        if rejoined {
            tokio::time::sleep(DRAIN).await;
        }
        if let Err(e) = self.engine.stop_container(&swap.old_id, None).await {
            tracing::warn!(error = %e, "cannot stop the old container; it will be removed");
        }
        Ok(())
    }

    /// The old container stops, then the new one starts at once under its
    /// name and must pass its gate.
    async fn stop_first(&self, job: &Job, swap: &mut Swap, policy: &Policy) -> Result<(), String> {
        let new_id = swap.new_id.clone().unwrap_or_default();
        let target = &job.target;
        self.record(job.deployment, State::Stopping, Some(&short(&swap.old_id)));
        // Names first, while the old container still serves: the site is
        // down only from the stop to the start.
        self.engine
            .rename_container(&swap.old_id, &job.parked_name())
            .await
            .map_err(|e| format!("cannot rename {target}: {e}"))?;
        swap.old_parked = true;
        self.engine
            .rename_container(&new_id, target)
            .await
            .map_err(|e| format!("cannot give the new container the name {target}: {e}"))?;
        self.engine
            .stop_container(&swap.old_id, None)
            .await
            .map_err(|e| format!("cannot stop {target}: {e}"))?;
        self.start_and_gate(job, &new_id, policy).await
    }

    /// Starts the new container and waits for its health gate.
    async fn start_and_gate(&self, job: &Job, new_id: &str, policy: &Policy) -> Result<(), String> {
        self.record(job.deployment, State::Starting, Some(&short(new_id)));
        self.engine
            .start_container(new_id)
            .await
            .map_err(|e| format!("the new container did not start: {e}"))?;
        self.record(job.deployment, State::Verifying, None);
        self.gate(new_id, policy).await
    }

    /// Waits until the new container is healthy (when it has a healthcheck)
    /// or has kept running through the grace period (when it has not).
    pub(super) async fn gate(&self, id: &str, policy: &Policy) -> Result<(), String> {
        let inspect = self.inspect_new(id).await?;
        let has_healthcheck = inspect
            .config
            .as_ref()
            .and_then(|c| c.healthcheck.as_ref())
            .and_then(|h| h.test.as_ref())
            .is_some_and(|test| !test.is_empty() && test[0] != "NONE");
        let (wait, what) = if has_healthcheck {
            (policy.health_timeout, "become healthy")
        } else {
            (self.settings.grace, "")
        };
        let deadline = Instant::now() + wait;
        let mut inspect = inspect;
        loop {
            let state = inspect.state.clone().unwrap_or_default();
            if let Some(problem) = not_running(&state, inspect.restart_count.unwrap_or(0)) {
                return Err(problem);
            }
            let health = state.health.as_ref();
            match health.and_then(|h| h.status) {
                Some(HealthStatusEnum::HEALTHY) if has_healthcheck => return Ok(()),
                Some(HealthStatusEnum::UNHEALTHY) if has_healthcheck => {
                    let last = health
                        .and_then(|h| h.log.as_ref())
                        .and_then(|log| log.last())
                        .map(|r| {
                            format!(
                                " (last check exited {}: {})",
                                r.exit_code.unwrap_or(-1),
                                r.output.as_deref().unwrap_or("").trim()
                            )
                        })
                        .unwrap_or_default();
                    return Err(format!("the new container is unhealthy{last}"));
                }
                _ => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return if has_healthcheck {
                    Err(format!(
                        "the new container has not {what} within {}s",
                        wait.as_secs_f64()
                    ))
                } else {
                    Ok(())
                };
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
            inspect = self.inspect_new(id).await?;
        }
    }

    async fn inspect_new(&self, id: &str) -> Result<ContainerInspectResponse, String> {
        self.engine
            .inspect_container(id)
            .await
            .map_err(|e| format!("cannot inspect the new container: {e}"))
    }

    /// Runs a lifecycle hook inside a container, within the hook timeout.
    async fn hook(&self, container: &str, command: &[String]) -> Result<(), String> {
        let timeout = self.settings.hook_timeout;
        let run = self.engine.exec(container, command.to_vec());
        match tokio::time::timeout(timeout, run).await {
            Err(_) => Err(format!(
                "`{}` ran longer than {}s",
                command.join(" "),
                timeout.as_secs_f64()
            )),
            Ok(Err(e)) => Err(format!("`{}` could not run: {e}", command.join(" "))),
            Ok(Ok(outcome)) if outcome.exit_code == 0 => Ok(()),
            Ok(Ok(outcome)) => Err(format!(
                "`{}` exited with code {}: {}",
                command.join(" "),
                outcome.exit_code,
                outcome.output.trim()
            )),
        }
    }

    /// Removes the old container and, when nothing uses or names it any
    /// more, the old image; then updates the containers that depended on the
    /// old one. Failures here are reported, not fatal: the new container
    /// already serves.
    pub(super) async fn clean_up(&self, swap: &Swap) -> Vec<String> {
        let mut notes = Vec::new();
        let new_id = swap.new_id.clone().unwrap_or_default();
        notes.extend(
            self.update_dependents(&swap.target, &swap.old_id, &new_id)
                .await,
        );
        match self.engine.remove_container(&swap.old_id).await {
            Ok(()) | Err(EngineError::NotFound(_)) => {}
            Err(e) => notes.push(format!("could not remove the old container: {e}")),
        }
        let old = short(&swap.old_image_id);
        let tags: Vec<String> = match self.engine.inspect_image(&swap.old_image_id).await {
            Ok(image) => image
                .repo_tags
                .unwrap_or_default()
                .into_iter()
                .filter(|t| t != "<none>:<none>")
                .collect(),
            Err(EngineError::NotFound(_)) => return notes,
            Err(e) => vec![format!("(unknown: {e})")],
        };
        if !tags.is_empty() {
            notes.push(format!(
                "kept old image {old}: still tagged {}",
                tags.join(", ")
            ));
            return notes;
        }
        match self.engine.remove_image(&swap.old_image_id).await {
            Ok(ImageRemoval::Removed) => notes.push(format!("removed old image {old}")),
            Ok(ImageRemoval::InUse) => {
                notes.push(format!("kept old image {old}: another container uses it"))
            }
            Err(e) => notes.push(format!("could not remove old image {old}: {e}")),
        }
        notes
    }

    /// Containers sharing the old container's network stack lose it with
    /// the old container, and legacy links point at the old container by
    /// ID: such dependents are recreated, on the same image, joined or
    /// linked to the new one.
    async fn update_dependents(&self, target: &str, old_id: &str, new_id: &str) -> Vec<String> {
        let mut notes = Vec::new();
        let running = match self.engine.list_running().await {
            Ok(running) => running,
            Err(e) => return vec![format!("could not look for dependent containers: {e}")],
        };
        // Docker renames links with their container: the old one may be
        // parked by now.
        let parked = format!("{target}{PARKED_MARKER}old-");
        let is_old = |name: &str| name == target || name.starts_with(&parked);
        for container in running.iter().filter(|c| c.id != new_id && c.id != old_id) {
            let Ok(inspect) = self.engine.inspect_container(&container.id).await else {
                continue;
            };
            let host = inspect.host_config.clone().unwrap_or_default();
            let mode = host.network_mode.as_deref().unwrap_or_default();
            let shares_stack = mode.strip_prefix("container:").is_some_and(|joined| {
                is_old(joined) || (!joined.is_empty() && old_id.starts_with(joined))
            });
            let linked = host.links.iter().flatten().any(|link| {
                is_old(
                    link.trim_start_matches('/')
                        .split(':')
                        .next()
                        .unwrap_or_default(),
                )
            });
            if !shares_stack && !linked {
                continue;
            }
            let result = self
                .recreate_dependent(&inspect, new_id, |host| {
                    if shares_stack {
                        host.network_mode = Some(format!("container:{new_id}"));
                    }
                    for link in host.links.iter_mut().flatten() {
                        if let Some((other, alias)) = link.split_once(':') {
                            if is_old(other) {
                                *link = format!("{target}:{alias}");
                            }
                        }
                    }
                })
                .await;
            let name = &container.name;
            notes.push(match result {
                Ok(()) => format!("recreated dependent container {name}"),
                Err(e) => format!("could not recreate dependent container {name}: {e}"),
            });
        }
        notes
    }

    /// Recreates `dependent` on the same image, with `adjust` applied to its
    /// host configuration.
    async fn recreate_dependent(
        &self,
        dependent: &ContainerInspectResponse,
        new_id: &str,
        adjust: impl FnOnce(&mut bollard::models::HostConfig),
    ) -> Result<(), EngineError> {
        let id = dependent.id.clone().unwrap_or_default();
        let name = dependent.name.clone().unwrap_or_default();
        let name = name.trim_start_matches('/');
        let image = dependent
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let image_config = match self
            .engine
            .inspect_image(dependent.image.as_deref().unwrap_or_default())
            .await
        {
            Ok(i) => i.config,
            Err(_) => None,
        };
        let mut create = plan(dependent, image_config.as_ref(), &image);
        // Same image, not the tag: the dependent is not being updated.
        create.body.image = dependent.image.clone();
        if let Some(host) = create.body.host_config.as_mut() {
            adjust(host);
        }
        let temporary = format!("{name}{PARKED_MARKER}dep-{}", short(new_id));
        let replacement = self
            .engine
            .create_container(&temporary, create.body)
            .await?;
        self.engine.stop_container(&id, None).await?;
        self.engine.remove_container(&id).await?;
        self.engine.rename_container(&replacement, name).await?;
        self.engine.start_container(&replacement).await
    }

    /// Undoes `swap`: the new container goes (its last log lines join the
    /// reason), the old one gets its name back and runs again, and the tag
    /// points at the old image once more. Keeps trying for a while when
    /// Docker does not answer, as during a daemon restart.
    pub(super) async fn roll_back(&self, swap: &Swap, reason: String) -> Outcome {
        let mut reason = reason;
        if let Some(new_id) = &swap.new_id {
            if let Ok(logs) = self.engine.logs_tail(new_id, LOG_LINES).await {
                let logs = logs.trim();
                if !logs.is_empty() {
                    reason = format!("{reason}; its last log lines:\n{logs}\n");
                }
            }
        }
        let deadline = Instant::now() + UNDO_PATIENCE;
        let mut pause = Duration::from_millis(250);
        loop {
            match self.undo(swap).await {
                Ok(()) => {
                    let nothing_changed = swap.new_id.is_none();
                    let target = &swap.target;
                    return if nothing_changed {
                        Outcome::Failed(format!("{reason}; {target} keeps running"))
                    } else {
                        Outcome::RolledBack(format!(
                            "{reason}; {target} runs its previous container and image again"
                        ))
                    };
                }
                Err(EngineError::Other(e)) if Instant::now() + pause < deadline => {
                    tracing::warn!(error = %e, "rolling back failed, trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Outcome::Failed(format!("{reason}; rolling back also failed: {e}"))
                }
            }
        }
    }

    async fn undo(&self, swap: &Swap) -> Result<(), EngineError> {
        if let Some(new_id) = &swap.new_id {
            match self.engine.remove_container(new_id).await {
                Ok(()) | Err(EngineError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if swap.old_parked {
            self.engine
                .rename_container(&swap.old_id, &swap.target)
                .await?;
        }
        let running = self
            .engine
            .inspect_container(&swap.old_id)
            .await?
            .state
            .and_then(|s| s.running)
            == Some(true);
        if !running {
            self.engine.start_container(&swap.old_id).await?;
        }
        if let Some(image) = swap
            .retag
            .as_ref()
            .filter(|_| !swap.old_image_id.is_empty())
        {
            // The pull moved the tag to the new image; the tag goes back to
            // what runs, and the new image stays, untagged, for inspection.
            self.engine.tag_image(&swap.old_image_id, image).await?;
        }
        Ok(())
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

/// Why a container in `state` is not healthy running, if it is not.
fn not_running(state: &ContainerState, restart_count: i64) -> Option<String> {
    let exit = || {
        let mut text = format!("exited with code {}", state.exit_code.unwrap_or(-1));
        if state.oom_killed == Some(true) {
            text.push_str(" (out of memory)");
        }
        if let Some(error) = state.error.as_deref().filter(|e| !e.is_empty()) {
            text.push_str(&format!(": {error}"));
        }
        text
    };
    if state.restarting == Some(true) || restart_count > 0 {
        Some(format!("the new container keeps restarting; it {}", exit()))
    } else if state.running != Some(true) {
        Some(format!("the new container {}", exit()))
    } else {
        None
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
    fn running_container_is_fine() {
        let state = ContainerState {
            running: Some(true),
            ..Default::default()
        };
        assert_eq!(not_running(&state, 0), None);
    }

    #[test]
    fn exits_and_restarts_are_explained() {
        let exited = ContainerState {
            running: Some(false),
            exit_code: Some(3),
            error: Some("boom".into()),
            ..Default::default()
        };
        assert_eq!(
            not_running(&exited, 0).unwrap(),
            "the new container exited with code 3: boom"
        );
        let restarting = ContainerState {
            running: Some(true),
            restarting: Some(true),
            exit_code: Some(1),
            ..Default::default()
        };
        assert!(not_running(&restarting, 1)
            .unwrap()
            .contains("keeps restarting"));
        let running_again = ContainerState {
            running: Some(true),
            exit_code: Some(0),
            ..Default::default()
        };
        assert!(not_running(&running_again, 2).is_some());
    }

    #[test]
    fn short_ids() {
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
    }
}
