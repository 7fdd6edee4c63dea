//! Recovery: finishing or undoing the deployments a crash interrupted.
//!
//! dockhook writes each step before taking it and derives the names of its
//! temporary containers from the deployment, so at start-up it can tell,
//! from the store and from what the engine shows, how far an interrupted
//! update got: before the new container took the name, the old one gets it
//! back; after, the new one must still pass its health gate. Either way
//! exactly one container keeps the name, running, and no temporary one is
//! left.

use super::policy::policy;
use super::update::{short, Job, Outcome, Swap, Updater};
use crate::engine::{Engine, EngineError};
use crate::image_ref::ImageRef;
use crate::store::{Deployment, State};

impl<E: Engine> Updater<E> {
    /// Finishes or undoes a deployment that was under way when dockhook
    /// stopped, from what the store says and what the engine shows, and
    /// records how it ended. Leaves exactly one container under the target's
    /// name, running, and no temporary containers.
    pub async fn recover(&self, deployment: &Deployment) -> Outcome {
        if deployment.state == State::Queued {
            // It never started: the push it answers still deserves an update.
            if let Ok(image) = ImageRef::parse(&deployment.image) {
                let job = Job {
                    deployment: deployment.id,
                    target: deployment.target.clone(),
                    image,
                    digest: deployment.digest.clone(),
                };
                return self.run(&job).await;
            }
        }
        let outcome = self.reconcile(deployment).await;
        let outcome = match outcome {
            Outcome::Succeeded(s) => {
                Outcome::Succeeded(format!("{s} (finished after dockhook restarted)"))
            }
            Outcome::RolledBack(s) => {
                Outcome::RolledBack(format!("{s} (undone after dockhook restarted)"))
            }
            other => other,
        };
        self.finish(deployment.id, &deployment.target, outcome)
    }

    async fn reconcile(&self, deployment: &Deployment) -> Outcome {
        let image = match ImageRef::parse(&deployment.image) {
            Ok(image) => image,
            Err(e) => return Outcome::Failed(format!("recorded image is invalid: {e}")),
        };
        let job = Job {
            deployment: deployment.id,
            target: deployment.target.clone(),
            image,
            digest: deployment.digest.clone(),
        };
        let find = async |name: &str| match self.engine.inspect_container(name).await {
            Ok(c) => Ok(c.id),
            Err(EngineError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        };
        let (named, new, parked) = match (
            find(&job.target).await,
            find(&job.new_name()).await,
            find(&job.parked_name()).await,
        ) {
            (Ok(named), Ok(new), Ok(parked)) => (named, new, parked),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                return Outcome::Failed(format!("cannot look at {}: {e}", job.target))
            }
        };
        let old_id = deployment.old_container_id.clone().unwrap_or_default();
        let new_id = deployment.new_container_id.clone().or(new.clone());
        let old_configured = match self.engine.inspect_container(&old_id).await {
            Ok(old) => old.config.and_then(|c| c.image),
            Err(_) => None,
        };
        let same_tag = old_configured
            .and_then(|image| ImageRef::parse(&image).ok())
            .is_some_and(|image| image.tag == job.image.tag);
        let swap = Swap {
            target: job.target.clone(),
            retag: same_tag.then(|| job.image.clone()),
            old_id: old_id.clone(),
            old_image_id: deployment.old_image_id.clone().unwrap_or_default(),
            new_id: new_id.clone(),
            old_parked: parked.is_some(),
        };
        let interrupted = format!("dockhook stopped during step {}", deployment.state.as_str());
        let swapped = named.is_some() && named == new_id;
        if !swapped {
            if named.is_none() && parked.is_none() && new.is_none() {
                return Outcome::Failed(format!(
                    "{interrupted}; no container {} is left",
                    job.target
                ));
            }
            // Not committed yet: the old container takes its place again.
            return self.roll_back(&swap, interrupted).await;
        }
        // The new container has the name: it must still pass its gate.
        let policy = match self
            .engine
            .inspect_container(new_id.as_deref().unwrap_or_default())
            .await
        {
            Ok(inspect) => policy(
                &inspect,
                self.settings.strategy,
                self.settings.health_timeout,
            ),
            Err(e) => Err(e.to_string()),
        };
        let policy = match policy {
            Ok(policy) => policy,
            Err(reason) => {
                return self
                    .roll_back(&swap, format!("{interrupted}; {reason}"))
                    .await
            }
        };
        let id = new_id.unwrap_or_default();
        // Stop-first may have been stopped between the renames and the stop.
        if let Err(e) = self.engine.stop_container(&old_id, None).await {
            tracing::debug!(error = %e, "old container not stopped during recovery");
        }
        let _ = self.engine.start_container(&id).await;
        if let Err(reason) = self.gate(&id, &policy).await {
            return self
                .roll_back(&swap, format!("{interrupted}; {reason}"))
                .await;
        }
        let mut notes = vec![format!("replaced container {}", short(&old_id))];
        notes.extend(self.clean_up(&swap).await);
        Outcome::Succeeded(notes.join("; "))
    }
}
