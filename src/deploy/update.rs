//! The update of one container, step by step.
//!
//! Order matters for uptime and safety:
//!
//! 1. **pull** while the old container still serves; a failed pull changes
//!    nothing, and an unchanged image ID ends the deployment as `skipped`;
//! 2. **create** the successor under a temporary name, on every network, so
//!    nothing slow is left for the moment the old one is down;
//! 3. **stop** the old container with its own signal and timeout, park it
//!    under another name, and give the successor its name;
//! 4. **start** the successor and **verify** it keeps running for the grace
//!    period;
//! 5. **clean up**: remove the parked container, then the old image when
//!    nothing uses or names it any more.
//!
//! Any failure from step 3 on puts the old container back under its name,
//! running, and the deployment ends `rolled_back` with the reason.

use std::sync::Arc;
use std::time::Duration;

use bollard::models::ContainerState;
use tokio::time::Instant;

use super::plan::plan;
use crate::engine::{Engine, EngineError, ImageRemoval};
use crate::image_ref::ImageRef;
use crate::store::{State, Store};
use crate::targets::PARKED_MARKER;

/// One queued deployment: update container `target` to the newest `image`.
#[derive(Debug, Clone)]
pub struct Job {
    pub deployment: i64,
    /// Container name; stable across updates, unlike its ID.
    pub target: String,
    pub image: ImageRef,
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

/// Runs jobs against an engine and records every step.
pub struct Updater<E> {
    engine: Arc<E>,
    store: Arc<Store>,
    grace: Duration,
}

/// How often a starting container is looked at.
const POLL: Duration = Duration::from_millis(200);

/// What has been done to the host so far, to undo it.
struct Swap<'a> {
    target: &'a str,
    old_id: String,
    new_id: Option<String>,
    old_parked: bool,
}

impl<E: Engine> Updater<E> {
    pub fn new(engine: Arc<E>, store: Arc<Store>, grace: Duration) -> Self {
        Self {
            engine,
            store,
            grace,
        }
    }

    /// Runs `job` to its end and records the outcome.
    pub async fn run(&self, job: &Job) -> Outcome {
        let outcome = match self.update(job).await {
            Ok(outcome) | Err(outcome) => outcome,
        };
        match &outcome {
            Outcome::Succeeded(_) | Outcome::Skipped(_) => {
                tracing::info!(deployment = job.deployment, target = %job.target, outcome = ?outcome, "deployment ended")
            }
            _ => {
                tracing::warn!(deployment = job.deployment, target = %job.target, outcome = ?outcome, "deployment ended")
            }
        }
        self.record(job, outcome.state(), Some(outcome.detail()));
        outcome
    }

    fn record(&self, job: &Job, state: State, detail: Option<&str>) {
        if let Err(e) = self.store.transition(job.deployment, state, detail) {
            tracing::error!(deployment = job.deployment, error = %e, "cannot record step");
        }
    }

    fn note(&self, result: Result<(), crate::store::StoreError>) {
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot record deployment detail");
        }
    }

    async fn update(&self, job: &Job) -> Result<Outcome, Outcome> {
        let target = job.target.as_str();
        self.record(job, State::Pulling, None);
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
        let still_uses_image = ImageRef::parse(&configured).is_ok_and(|current| {
            current.digest.is_none() && current.same_repository_and_tag(&job.image)
        });
        if !still_uses_image {
            return Ok(Outcome::Skipped(format!(
                "{target} now runs {configured}, not {}",
                job.image
            )));
        }
        self.note(self.store.set_old_image(job.deployment, &old_image_id));

        self.engine.pull(&job.image).await.map_err(|e| {
            Outcome::Failed(format!("{e}; {target} keeps running its current image"))
        })?;
        let new_image_id = self
            .engine
            .inspect_image(&configured)
            .await
            .map_err(|e| Outcome::Failed(format!("cannot inspect pulled image {configured}: {e}")))?
            .id
            .unwrap_or_default();
        self.note(self.store.set_new_image(job.deployment, &new_image_id));
        if new_image_id == old_image_id {
            return Ok(Outcome::Skipped(format!(
                "{target} already runs the newest {configured} ({})",
                short(&new_image_id)
            )));
        }

        self.record(job, State::Creating, None);
        let old_image = self.engine.inspect_image(&old_image_id).await.ok();
        let create = plan(
            &old,
            old_image.as_ref().and_then(|i| i.config.as_ref()),
            &configured,
        );
        let mut swap = Swap {
            target,
            old_id,
            new_id: None,
            old_parked: false,
        };
        let new_name = format!("{target}{PARKED_MARKER}new-{}", job.deployment);
        let new_id = self
            .engine
            .create_container(&new_name, create.body)
            .await
            .map_err(|e| Outcome::Failed(format!("cannot create the new container: {e}")))?;
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

        self.record(job, State::Stopping, Some(&short(&swap.old_id)));
        let parked = format!("{target}{PARKED_MARKER}old-{}", job.deployment);
        if let Err(e) = self.engine.stop_container(&swap.old_id, None).await {
            return Err(self
                .roll_back(&swap, format!("cannot stop {target}: {e}"))
                .await);
        }
        if let Err(e) = self.engine.rename_container(&swap.old_id, &parked).await {
            return Err(self
                .roll_back(&swap, format!("cannot rename {target}: {e}"))
                .await);
        }
        swap.old_parked = true;
        if let Err(e) = self.engine.rename_container(&new_id, target).await {
            let reason = format!("cannot give the new container the name {target}: {e}");
            return Err(self.roll_back(&swap, reason).await);
        }

        self.record(job, State::Starting, Some(&short(&new_id)));
        if let Err(e) = self.engine.start_container(&new_id).await {
            let reason = format!("the new container did not start: {e}");
            return Err(self.roll_back(&swap, reason).await);
        }
        self.record(job, State::Verifying, None);
        if let Err(reason) = self.verify(&new_id).await {
            return Err(self.roll_back(&swap, reason).await);
        }

        self.record(job, State::CleaningUp, None);
        Ok(Outcome::Succeeded(
            self.clean_up(&swap.old_id, &old_image_id).await,
        ))
    }

    /// Waits out the grace period, failing as soon as the container stops
    /// or restarts.
    async fn verify(&self, id: &str) -> Result<(), String> {
        let deadline = Instant::now() + self.grace;
        loop {
            let inspect = self
                .engine
                .inspect_container(id)
                .await
                .map_err(|e| format!("cannot inspect the new container: {e}"))?;
            let state = inspect.state.unwrap_or_default();
            if let Some(problem) = not_running(&state, inspect.restart_count.unwrap_or(0)) {
                return Err(problem);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
        }
    }

    /// Removes the old container and, when nothing uses or names it any
    /// more, the old image. Failures here are reported, not fatal: the new
    /// container already serves.
    async fn clean_up(&self, old_id: &str, old_image_id: &str) -> String {
        let mut notes = vec![format!("replaced container {}", short(old_id))];
        if let Err(e) = self.engine.remove_container(old_id).await {
            notes.push(format!("could not remove the old container: {e}"));
        }
        let tags = match self.engine.inspect_image(old_image_id).await {
            Ok(image) => image
                .repo_tags
                .unwrap_or_default()
                .into_iter()
                .filter(|t| t != "<none>:<none>")
                .collect(),
            Err(EngineError::NotFound(_)) => return notes.join("; "),
            Err(e) => vec![format!("(unknown: {e})")],
        };
        let old = short(old_image_id);
        if !tags.is_empty() {
            notes.push(format!(
                "kept old image {old}: still tagged {}",
                tags.join(", ")
            ));
        } else {
            match self.engine.remove_image(old_image_id).await {
                Ok(ImageRemoval::Removed) => notes.push(format!("removed old image {old}")),
                Ok(ImageRemoval::InUse) => {
                    notes.push(format!("kept old image {old}: another container uses it"))
                }
                Err(e) => notes.push(format!("could not remove old image {old}: {e}")),
            }
        }
        notes.join("; ")
    }

    /// Undoes `swap`: the new container goes, the old one gets its name back
    /// and runs again.
    async fn roll_back(&self, swap: &Swap<'_>, reason: String) -> Outcome {
        let target = swap.target;
        let undo = async || -> Result<(), EngineError> {
            if let Some(new_id) = &swap.new_id {
                match self.engine.remove_container(new_id).await {
                    Ok(()) | Err(EngineError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            if swap.old_parked {
                self.engine.rename_container(&swap.old_id, target).await?;
            }
            match self.engine.start_container(&swap.old_id).await {
                // 304 from Docker: already running (the stop never happened).
                Ok(()) => Ok(()),
                Err(e) => {
                    let state = self.engine.inspect_container(&swap.old_id).await?.state;
                    if state.and_then(|s| s.running) == Some(true) {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }
            }
        };
        match undo().await {
            Ok(()) => Outcome::RolledBack(format!(
                "{reason}; {target} runs its previous container again"
            )),
            Err(e) => Outcome::Failed(format!("{reason}; rolling back also failed: {e}")),
        }
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
fn short(id: &str) -> String {
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
