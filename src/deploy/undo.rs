//! Undoing an update: the new container goes, the old one gets its name,
//! networks and running state back, and the tag points at the old image
//! again. Idempotent, so a rollback interrupted by a crash can be run again.

use std::time::Duration;

use tokio::time::Instant;

use crate::engine::{Engine, EngineError};

use super::update::{Outcome, Swap, Updater};

/// How long undoing an update keeps retrying while Docker does not answer.
const UNDO_PATIENCE: Duration = Duration::from_secs(120);
/// Log lines of a failed container kept with the reason.
const LOG_LINES: usize = 20;

impl<E: Engine> Updater<E> {
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
