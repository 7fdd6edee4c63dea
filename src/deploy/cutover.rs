//! The cutover: how the old container makes way for the new one, by
//! strategy. Start-first starts the successor beside the old container and
//! retires the old one only once the successor passed its gate; stop-first
//! stops the old one and starts the successor at once. Both record each
//! step before taking it.

use std::time::Duration;

use bollard::models::{ContainerInspectResponse, EndpointSettings};

use super::policy::Policy;
use crate::engine::Engine;
use crate::store::State;

use super::update::{short, Job, Swap, Updater};

/// How long old and new containers both answer to their aliases before the
/// old one leaves: Docker's name server takes a moment to see the new one.
const SETTLE: Duration = Duration::from_millis(500);

impl<E: Engine> Updater<E> {
    /// The new container starts beside the old one, which is retired only
    /// once the new one passed its gate.
    pub(super) async fn start_first(
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
        let networks = old
            .network_settings
            .as_ref()
            .and_then(|s| s.networks.as_ref())
            .map(|n| n.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        for network in networks
            .iter()
            .filter(|n| !matches!(n.as_str(), "bridge" | "host" | "none"))
        {
            // Off the networks before the stop: name lookups stop returning
            // it at once, rather than after its process has exited.
            if let Err(e) = self.engine.disconnect_network(network, &swap.old_id).await {
                tracing::warn!(%network, error = %e, "cannot take the old container off a network");
            }
        }
        if let Err(e) = self.engine.stop_container(&swap.old_id, None).await {
            tracing::warn!(error = %e, "cannot stop the old container; it will be removed");
        }
        self.engine
            .rename_container(&swap.old_id, &job.parked_name())
            .await
            .map_err(|e| format!("cannot rename the old container: {e}"))?;
        swap.old_parked = true;
        self.engine
            .rename_container(&new_id, &job.target)
            .await
            .map_err(|e| format!("cannot give the new container the name {}: {e}", job.target))
    }

    /// The old container stops, then the new one starts at once under its
    /// name and must pass its gate.
    pub(super) async fn stop_first(
        &self,
        job: &Job,
        swap: &mut Swap,
        policy: &Policy,
    ) -> Result<(), String> {
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
}
