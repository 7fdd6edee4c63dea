//! The health gate and lifecycle hooks: whether a new container is fit to
//! serve (healthy when it has a healthcheck, still running after the grace
//! period when it has not), and running a hook inside a container within
//! its timeout.

use std::time::Duration;

use bollard::models::{ContainerInspectResponse, ContainerState, HealthStatusEnum};
use tokio::time::Instant;

use super::policy::Policy;
use crate::engine::Engine;

use super::update::Updater;

/// How often a starting container is looked at.
const POLL: Duration = Duration::from_millis(200);

impl<E: Engine> Updater<E> {
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

    pub(super) async fn inspect_new(&self, id: &str) -> Result<ContainerInspectResponse, String> {
        self.engine
            .inspect_container(id)
            .await
            .map_err(|e| format!("cannot inspect the new container: {e}"))
    }

    /// Runs a lifecycle hook inside a container, within the hook timeout.
    pub(super) async fn hook(&self, container: &str, command: &[String]) -> Result<(), String> {
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
}
