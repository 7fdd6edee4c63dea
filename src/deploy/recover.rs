//! Recovery: finishing or undoing the deployments a crash interrupted.
//!
//! dockhook writes each step, with what it learnt (the old container, its
//! networks, the strategy, the images), before taking it, and derives the
//! names of its temporary containers from the deployment. So at start-up it
//! can tell, from the store and from what the engine shows now, how far an
//! interrupted update got:
//!
//! - before the commit point (start-first: the new container passed its
//!   gate; stop-first: the new container has the target's name), the old
//!   container gets its name, networks and running state back;
//! - past it, the update is finished: the old container is retired and the
//!   new one must still pass its gate, or the update is undone.
//!
//! An update undone before its commit point failed through no fault of its
//! image: the push it answers (202) still deserves its update. So it is
//! queued again, once, and run from the start on the host as it is now; a
//! second interruption of the same deployment is only undone, so an update
//! that brings dockhook down cannot loop.
//!
//! It trusts no snapshot: a stop that the crash interrupted goes on inside
//! Docker, so recovery lets it end before it decides what runs, and it
//! records an end state only once the host shows it. While Docker does not
//! answer, recovery waits and tries again; it never gives up on a
//! deployment because the engine was down.

use std::time::Duration;

use super::policy::policy;
use super::update::{short, Job, Outcome, Swap, Updater};
use crate::engine::{Engine, EngineError};
use crate::store::{Deployment, State};

/// The longest pause between two attempts while Docker does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Whether an update undone before its commit point is run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Again {
    Once,
    Never,
}

/// Where an interrupted update was when recovery settled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Undone {
    /// Before its commit point: whatever it did is undone, and its image
    /// was never judged.
    BeforeCommit,
    /// Past it: finished, or undone because the new container failed.
    AfterCommit,
}

/// Why a recovery could not decide now.
enum Retry {
    /// Docker does not answer: try again later.
    Unavailable(String),
}

impl From<EngineError> for Retry {
    fn from(e: EngineError) -> Self {
        Retry::Unavailable(e.to_string())
    }
}

impl<E: Engine> Updater<E> {
    /// Finishes or undoes a deployment that was under way when dockhook
    /// stopped (`cause` says how), from what the store says and what the
    /// engine shows, and records how it ended. Leaves exactly one container
    /// under the target's name, running, and no temporary containers.
    /// Waits for Docker as long as it takes. An update undone before its
    /// commit point is run again, once (see the module docs).
    pub async fn recover(&self, deployment: &Deployment, cause: &str) -> Outcome {
        self.recover_then(deployment, cause, Again::Once).await
    }

    /// [`Updater::recover`], never running the update again: after a bug
    /// (a panic), not an interruption.
    pub async fn recover_only(&self, deployment: &Deployment, cause: &str) -> Outcome {
        self.recover_then(deployment, cause, Again::Never).await
    }

    async fn recover_then(&self, deployment: &Deployment, cause: &str, again: Again) -> Outcome {
        let Some(job) = Job::of(deployment) else {
            let outcome = Outcome::Failed(format!(
                "{cause}; its recorded image {:?} is invalid",
                deployment.image
            ));
            return self
                .finish(deployment.id, &deployment.target, outcome)
                .await;
        };
        if deployment.state == State::Queued {
            // It never started: the push it answers still deserves an update.
            return self.run(&job).await;
        }
        if deployment.service {
            // Swarm carried on with the rollout: follow it to its end.
            let outcome = self.recover_service(deployment, cause).await;
            return self
                .finish(deployment.id, &deployment.target, outcome)
                .await;
        }
        let mut pause = Duration::from_millis(500);
        let (outcome, undone) = loop {
            match self.reconcile(deployment, &job, cause).await {
                Ok(reconciled) => break reconciled,
                Err(Retry::Unavailable(e)) => {
                    tracing::warn!(
                        deployment = deployment.id,
                        error = %e,
                        "cannot recover the deployment while Docker does not answer; trying again in {pause:?}"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
            }
        };
        let undone_cleanly = matches!(outcome, Outcome::Failed(_) | Outcome::RolledBack(_));
        if again == Again::Once && undone == Undone::BeforeCommit && undone_cleanly {
            let detail = format!("{}; updating again", outcome.detail());
            let id = deployment.id;
            let requeued = self
                .store
                .call(move |store| store.requeue(id, &detail))
                .await;
            match requeued {
                Ok(true) => {
                    tracing::warn!(
                        deployment = id,
                        target = %deployment.target,
                        "undid the update a restart interrupted; updating again"
                    );
                    return self.run(&job).await;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(deployment = id, error = %e, "cannot queue the update again")
                }
            }
        }
        let outcome = match outcome {
            Outcome::Succeeded(s) => Outcome::Succeeded(format!("{s} (finished after {cause})")),
            Outcome::RolledBack(s) => Outcome::RolledBack(format!("{s} (undone after {cause})")),
            other => other,
        };
        self.finish(deployment.id, &deployment.target, outcome)
            .await
    }

    async fn reconcile(
        &self,
        deployment: &Deployment,
        job: &Job,
        cause: &str,
    ) -> Result<(Outcome, Undone), Retry> {
        self.engine.ping().await?;
        let _serialised = self.repository_lock(&job.image).await;
        let id_of = async |name: &str| match self.engine.inspect_container(name).await {
            Ok(c) => Ok(c.id),
            Err(EngineError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        };
        let named = id_of(&job.target).await?;
        let new = id_of(&job.new_name()).await?;
        let parked = id_of(&job.parked_name()).await?;
        // The first step records the old container and its image together:
        // a deployment without them never touched the host.
        let (Some(old_id), Some(_)) = (
            deployment.old_container_id.clone(),
            &deployment.old_image_id,
        ) else {
            return Ok((
                Outcome::Failed(format!("{cause}; nothing was changed")),
                Undone::BeforeCommit,
            ));
        };
        let new_id = deployment.new_container_id.clone().or(new.clone());
        let start_first = deployment.strategy.as_deref() == Some("start-first");
        let swapped = named.is_some() && named == new_id;
        let committed = swapped
            || (start_first && deployment.state == State::Stopping && new_id.is_some())
            || matches!(deployment.state, State::CleaningUp | State::PostUpdate);
        let swap = Swap {
            target: job.target.clone(),
            retag: self.retag_for(&old_id, job).await?,
            old_id: old_id.clone(),
            old_image_id: deployment.old_image_id.clone().unwrap_or_default(),
            old_networks: deployment
                .old_networks
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or_default(),
            new_id: new_id.clone(),
            new_image_id: deployment.new_image_id.clone().unwrap_or_default(),
            // Both strategies stop the old container at this step (stop-first
            // once the names are swapped).
            old_may_be_stopping: deployment.state == State::Stopping && (start_first || swapped),
        };
        if named.is_none() && parked.is_none() && new.is_none() && id_of(&old_id).await?.is_none() {
            return Ok((
                Outcome::RollbackFailed(format!("{cause}; no container {} is left", job.target)),
                Undone::AfterCommit,
            ));
        }
        let new_id = match new_id {
            Some(new_id) if committed => new_id,
            // Not committed yet: the old container takes its place again.
            _ => {
                let undone = self.roll_back(&swap, cause.to_string()).await;
                return Ok((undone, Undone::BeforeCommit));
            }
        };
        let finished = self
            .finish_cutover(deployment, job, &swap, &new_id, cause)
            .await;
        Ok((finished, Undone::AfterCommit))
    }

    /// Past the commit point: retires the old container (waiting for a stop
    /// the crash interrupted), and the new one must still pass its gate.
    async fn finish_cutover(
        &self,
        deployment: &Deployment,
        job: &Job,
        swap: &Swap,
        new_id: &str,
        cause: &str,
    ) -> Outcome {
        let new = match self.engine.inspect_container(new_id).await {
            Ok(new) => new,
            Err(e) => {
                return self
                    .roll_back(swap, format!("{cause}; the new container is gone: {e}"))
                    .await
            }
        };
        let policy = match policy(&new, self.settings.strategy, self.settings.health_timeout) {
            Ok(policy) => policy,
            Err(reason) => return self.roll_back(swap, format!("{cause}; {reason}")).await,
        };
        if let Err(reason) = self.retire(job, swap).await {
            return self.roll_back(swap, format!("{cause}; {reason}")).await;
        }
        if new.state.as_ref().and_then(|s| s.running) != Some(true) {
            if let Err(e) = self.engine.start_container(new_id).await {
                let reason = format!("{cause}; the new container did not start: {e}");
                return self.roll_back(swap, reason).await;
            }
        }
        let image_id = deployment
            .new_image_id
            .clone()
            .or(new.image.clone())
            .unwrap_or_default();
        let checked = match self.gate(new_id, &policy).await {
            Ok(()) => self.serves(&job.target, new_id, &image_id).await,
            Err(reason) => Err(reason),
        };
        if let Err(reason) = checked {
            return self.roll_back(swap, format!("{cause}; {reason}")).await;
        }
        let mut notes = vec![format!("replaced container {}", short(&swap.old_id))];
        notes.extend(self.clean_up(swap).await);
        Outcome::Succeeded(notes.join("; "))
    }

    /// The tag to point back at the old image when undoing: the pushed one,
    /// when the old container was configured with that tag.
    async fn retag_for(
        &self,
        old_id: &str,
        job: &Job,
    ) -> Result<Option<crate::image_ref::ImageRef>, EngineError> {
        let configured = match self.engine.inspect_container(old_id).await {
            Ok(old) => old.config.and_then(|c| c.image),
            Err(EngineError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let same_tag = configured
            .and_then(|image| crate::image_ref::ImageRef::parse(&image).ok())
            .is_some_and(|image| image.tag == job.image.tag);
        Ok(same_tag.then(|| job.image.clone()))
    }
}
