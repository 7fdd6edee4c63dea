//! The cutover: how the old container makes way for the new one, by
//! strategy. Start-first starts the successor beside the old container and
//! retires the old one only once the successor passed its gate (the old one
//! gives up its aliases, drains for a moment, then stops); stop-first
//! stops the old one and starts the successor at once. Both record each
//! step before taking it.

use std::time::Duration;

use bollard::models::EndpointSettings;

use super::policy::Policy;
use crate::engine::{Engine, EngineError};
use crate::store::State;

use super::update::{short, Job, Swap, Updater};

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

impl<E: Engine> Updater<E> {
    /// The new container starts beside the old one, which is retired only
    /// once the new one passed its gate.
    pub(super) async fn start_first(
        &self,
        job: &Job,
        swap: &Swap,
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

        // The commit point: from here on the new container serves, and
        // recovery finishes the update rather than undoing it.
        self.record(job.deployment, State::Stopping, Some(&short(&swap.old_id)))
            .await;
        self.retire(job, swap).await
    }

    /// Retires the old container once the new one serves: its aliases go
    /// to the new one alone, it finishes what is in flight, it stops, and
    /// its name goes to the new one. Safe to run again after a crash.
    pub(super) async fn retire(&self, job: &Job, swap: &Swap) -> Result<(), String> {
        let mut networks: Vec<_> = swap
            .old_networks
            .iter()
            .filter(|(n, _)| !matches!(n.as_str(), "bridge" | "host" | "none"))
            .collect();
        networks.sort_by_key(|(network, _)| network.as_str());
        let mut rejoined = false;
        for (network, endpoint) in networks {
            // Docker cannot take an alias from a container, only the
            // container from the network, and its name server still gives
            // out the address for a moment after the interface is gone. So
            // the old container leaves and joins again at once without its
            // aliases: it gets its address back (the lowest free one, just
            // freed), and requests in flight, or sent to the address in that
            // moment, reach it rather than nothing (measured in
            // bench/switch-orders.sh). Stopped while off the network, it
            // would leave them hanging until the client gives up.
            match self.engine.disconnect_network(network, &swap.old_id).await {
                Ok(()) | Err(EngineError::NotFound(_)) => {}
                Err(e) => {
                    // Not on it any more (a run before a crash took it off).
                    tracing::debug!(%network, error = %e, "cannot take the old container off a network");
                }
            }
            let without_aliases = EndpointSettings {
                ipam_config: endpoint.ipam_config.clone(),
                links: endpoint.links.clone().filter(|l| !l.is_empty()),
                driver_opts: endpoint.driver_opts.clone(),
                ..Default::default()
            };
            match self
                .engine
                .connect_network(network, &swap.old_id, without_aliases)
                .await
            {
                Ok(()) => rejoined = true,
                Err(e) => {
                    tracing::warn!(%network, error = %e, "the old container stays off a network while it stops")
                }
            }
        }
        if rejoined {
            tokio::time::sleep(DRAIN).await;
        }
        // Waits for the stop to finish, even one a crash interrupted.
        if let Err(e) = self.engine.stop_container(&swap.old_id, None).await {
            tracing::warn!(error = %e, "cannot stop the old container; it will be removed");
        }
        self.take_name(job, swap).await
    }

    /// The old container stops, then the new one starts at once under its
    /// name and must pass its gate.
    pub(super) async fn stop_first(
        &self,
        job: &Job,
        swap: &Swap,
        policy: &Policy,
    ) -> Result<(), String> {
        let new_id = swap.new_id.clone().unwrap_or_default();
        let target = &job.target;
        self.record(job.deployment, State::Stopping, Some(&short(&swap.old_id)))
            .await;
        // Names first, while the old container still serves: the site is
        // down only from the stop to the start.
        self.take_name(job, swap).await?;
        self.engine
            .stop_container(&swap.old_id, None)
            .await
            .map_err(|e| format!("cannot stop {target}: {e}"))?;
        self.start_and_gate(job, &new_id, policy).await
    }

    /// Parks the old container under a name derived from the deployment and
    /// gives the target's name to the new one. It looks at the names the
    /// containers have, so running it again renames nothing twice.
    pub(super) async fn take_name(&self, job: &Job, swap: &Swap) -> Result<(), String> {
        let target = &job.target;
        let new_id = swap.new_id.clone().unwrap_or_default();
        if self.name_of(&swap.old_id).await?.as_deref() == Some(target.as_str()) {
            self.engine
                .rename_container(&swap.old_id, &job.parked_name())
                .await
                .map_err(|e| format!("cannot rename {target}: {e}"))?;
        }
        if self.name_of(&new_id).await?.as_deref() != Some(target.as_str()) {
            self.engine
                .rename_container(&new_id, target)
                .await
                .map_err(|e| format!("cannot give the new container the name {target}: {e}"))?;
        }
        Ok(())
    }

    /// The name container `id` has now, without Docker's `/`; `None` when
    /// the container is gone.
    pub(super) async fn name_of(&self, id: &str) -> Result<Option<String>, String> {
        match self.engine.inspect_container(id).await {
            Ok(c) => Ok(c.name.map(|n| n.trim_start_matches('/').to_string())),
            Err(EngineError::NotFound(_)) => Ok(None),
            Err(e) => Err(format!("cannot inspect container {}: {e}", short(id))),
        }
    }

    /// Starts the new container and waits for its health gate.
    async fn start_and_gate(&self, job: &Job, new_id: &str, policy: &Policy) -> Result<(), String> {
        self.record(job.deployment, State::Starting, Some(&short(new_id)))
            .await;
        self.engine
            .start_container(new_id)
            .await
            .map_err(|e| format!("the new container did not start: {e}"))?;
        self.record(job.deployment, State::Verifying, None).await;
        self.gate(new_id, policy).await
    }
}
