//! Undoing an update: the new container goes, the old one gets its name,
//! networks and running state back, and the tag points at the old image
//! again. Idempotent, so a rollback interrupted by a crash can be run again.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::EndpointSettings;
use tokio::time::Instant;

use super::plan::endpoint_to_recreate;
use crate::engine::{Engine, EngineError};

use super::update::{short, Outcome, Swap, Updater};

/// How long undoing an update keeps retrying while Docker does not answer.
const UNDO_PATIENCE: Duration = Duration::from_secs(120);
/// Log lines of a failed container kept with the reason.
const LOG_LINES: usize = 20;

impl<E: Engine> Updater<E> {
    /// Undoes `swap`: the new container goes (its last log lines join the
    /// reason), the old one gets its name, its networks and its running
    /// state back, and the tag points at the old image once more. Keeps
    /// trying for a while when Docker does not answer, as during a daemon
    /// restart, and checks what the host shows before it says it is done.
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
        let target = &swap.target;
        let deadline = Instant::now() + UNDO_PATIENCE;
        let mut pause = Duration::from_millis(250);
        loop {
            let error = match self.undo(swap).await {
                Ok(()) if swap.new_id.is_none() => {
                    return Outcome::Failed(format!("{reason}; {target} keeps running"))
                }
                Ok(()) => {
                    return Outcome::RolledBack(format!(
                        "{reason}; {target} runs its previous container and image again"
                    ))
                }
                Err(error) => error,
            };
            match error {
                UndoError::Engine(EngineError::Unavailable(e))
                    if Instant::now() + pause < deadline =>
                {
                    tracing::warn!(error = %e, "rolling back failed, trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                error if swap.new_id.is_none() => {
                    // No container was touched: the site still runs.
                    return Outcome::Failed(format!(
                        "{reason}; {target} keeps running, but restoring its tag failed: {error}"
                    ));
                }
                error => {
                    return Outcome::RollbackFailed(format!(
                        "{reason}; rolling back failed too: {error}"
                    ))
                }
            }
        }
    }

    async fn undo(&self, swap: &Swap) -> Result<(), UndoError> {
        let target = &swap.target;
        if let Some(new_id) = &swap.new_id {
            match self.engine.remove_container(new_id).await {
                Ok(()) | Err(EngineError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let old = match self.engine.inspect_container(&swap.old_id).await {
            Ok(old) => old,
            Err(EngineError::NotFound(_)) => {
                return Err(UndoError::Host(format!(
                    "the old container {} is gone",
                    short(&swap.old_id)
                )))
            }
            Err(e) => return Err(e.into()),
        };
        // By the name it has, not by what was done: a rollback run again
        // after a crash renames nothing twice.
        let name = old
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/');
        if name != target {
            self.engine.rename_container(&swap.old_id, target).await?;
        }
        let attached = old
            .network_settings
            .as_ref()
            .and_then(|s| s.networks.as_ref());
        let mut missing: Vec<_> = swap
            .old_networks
            .iter()
            .filter(|(network, before)| !restored(attached, network, before, &swap.old_id))
            .collect();
        missing.sort_by_key(|(network, _)| network.as_str());
        for (network, endpoint) in missing {
            if attached.is_some_and(|a| a.contains_key(network)) {
                // On the network without its aliases (start-first takes
                // them before the stop): only joining again gives them back.
                match self.engine.disconnect_network(network, &swap.old_id).await {
                    Ok(()) | Err(EngineError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let endpoint = endpoint_to_recreate(network, endpoint, &swap.old_id);
            self.engine
                .connect_network(network, &swap.old_id, endpoint)
                .await?;
        }
        if swap.old_may_be_stopping {
            // A stop that a crash interrupted goes on inside Docker: let it
            // end, or it would take the container down after the restart.
            self.engine.stop_container(&swap.old_id, None).await?;
        }
        let running = old.state.as_ref().and_then(|s| s.running) == Some(true);
        if !running || swap.old_may_be_stopping {
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
        self.check_restored(swap).await
    }

    /// What the host shows after undoing: the target's name on the old
    /// container, running, on every network it had.
    async fn check_restored(&self, swap: &Swap) -> Result<(), UndoError> {
        let target = &swap.target;
        let named = match self.engine.inspect_container(target).await {
            Ok(named) => named,
            Err(EngineError::NotFound(_)) => {
                return Err(UndoError::Host(format!("no container is called {target}")))
            }
            Err(e) => return Err(e.into()),
        };
        if named.id.as_deref() != Some(swap.old_id.as_str()) {
            return Err(UndoError::Host(format!(
                "{target} is container {}, not the old {}",
                short(named.id.as_deref().unwrap_or("?")),
                short(&swap.old_id)
            )));
        }
        if named.state.as_ref().and_then(|s| s.running) != Some(true) {
            return Err(UndoError::Host(format!("{target} does not run")));
        }
        let attached = named
            .network_settings
            .as_ref()
            .and_then(|s| s.networks.as_ref());
        if let Some((network, _)) = swap
            .old_networks
            .iter()
            .find(|(network, before)| !restored(attached, network, before, &swap.old_id))
        {
            return Err(UndoError::Host(format!(
                "{target} is not on network {network} with its aliases again"
            )));
        }
        Ok(())
    }
}

/// Whether the container is on `network` again with every alias it had
/// `before` (Docker's own short-ID alias aside).
fn restored(
    attached: Option<&HashMap<String, EndpointSettings>>,
    network: &str,
    before: &EndpointSettings,
    id: &str,
) -> bool {
    let Some(now) = attached.and_then(|a| a.get(network)) else {
        return false;
    };
    let wanted = endpoint_to_recreate(network, before, id).aliases;
    let has = now.aliases.as_deref().unwrap_or_default();
    wanted
        .unwrap_or_default()
        .iter()
        .all(|alias| has.contains(alias))
}

/// Why undoing failed.
#[derive(Debug, thiserror::Error)]
enum UndoError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The host is not as it should be afterwards.
    #[error("{0}")]
    Host(String),
}
