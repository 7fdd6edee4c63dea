//! How one container is updated: its strategy, its health gate and its
//! lifecycle hooks, from dockhook's settings and the container's labels.
//! Pure.

use std::str::FromStr;
use std::time::Duration;

use bollard::models::ContainerInspectResponse;

use crate::settings::parse_duration;

/// Label choosing the strategy for one container.
pub const STRATEGY_LABEL: &str = "dockhook.strategy";
/// Label overriding how long the health gate waits.
pub const HEALTH_TIMEOUT_LABEL: &str = "dockhook.health-timeout";
/// Label holding a command run in the old container before the update.
pub const PRE_UPDATE_LABEL: &str = "dockhook.pre-update";
/// Label holding a command run in the new container after the update.
pub const POST_UPDATE_LABEL: &str = "dockhook.post-update";

/// The order in which the old container makes way for the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Start the new container beside the old one; stop the old one only
    /// once the new one passed its health gate. No downtime, but both run
    /// at once, so it cannot work with published host ports.
    StartFirst,
    /// Stop the old container, then start the new one at once; everything
    /// slow (pull, create) happened before the stop.
    StopFirst,
}

/// The configured strategy: a fixed one, or chosen per container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategySetting {
    /// Start-first unless the container publishes host ports, uses the
    /// host's or another container's network, or has a fixed IP address.
    Auto,
    Fixed(Strategy),
}

impl FromStr for StrategySetting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "start-first" => Ok(Self::Fixed(Strategy::StartFirst)),
            "stop-first" => Ok(Self::Fixed(Strategy::StopFirst)),
            _ => Err(format!(
                "unknown strategy {text:?}: expected auto, start-first or stop-first"
            )),
        }
    }
}

impl std::fmt::Display for StrategySetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Fixed(Strategy::StartFirst) => "start-first",
            Self::Fixed(Strategy::StopFirst) => "stop-first",
        })
    }
}

/// How one update of one container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub strategy: Strategy,
    pub health_timeout: Duration,
    pub pre_update: Option<Vec<String>>,
    pub post_update: Option<Vec<String>>,
}

/// Resolves the policy for `container`, its labels over the defaults. A bad
/// label is an error that names it.
pub fn policy(
    container: &ContainerInspectResponse,
    strategy: StrategySetting,
    health_timeout: Duration,
) -> Result<Policy, String> {
    let labels = container.config.as_ref().and_then(|c| c.labels.as_ref());
    let label = |key: &str| {
        labels
            .and_then(|l| l.get(key))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let invalid = |key: &str, reason: String| format!("label {key} is invalid: {reason}");
    let setting = match label(STRATEGY_LABEL) {
        Some(value) => value
            .parse()
            .map_err(|reason| invalid(STRATEGY_LABEL, reason))?,
        None => strategy,
    };
    let strategy = match setting {
        StrategySetting::Fixed(strategy) => strategy,
        StrategySetting::Auto if can_run_twice(container) => Strategy::StartFirst,
        StrategySetting::Auto => Strategy::StopFirst,
    };
    let health_timeout = match label(HEALTH_TIMEOUT_LABEL) {
        Some(value) => parse_duration(value)
            .map_err(|reason| invalid(HEALTH_TIMEOUT_LABEL, reason.to_string()))?,
        None => health_timeout,
    };
    let command = |key: &str| {
        label(key)
            .map(|value| hook_command(value).map_err(|reason| invalid(key, reason)))
            .transpose()
    };
    Ok(Policy {
        strategy,
        health_timeout,
        pre_update: command(PRE_UPDATE_LABEL)?,
        post_update: command(POST_UPDATE_LABEL)?,
    })
}

/// Whether a copy of the container can run beside it: nothing it holds
/// exclusively (host ports, a fixed address, a shared network stack).
fn can_run_twice(container: &ContainerInspectResponse) -> bool {
    let host = container.host_config.as_ref();
    let publishes = host
        .and_then(|h| h.port_bindings.as_ref())
        .is_some_and(|bindings| {
            bindings
                .values()
                .any(|b| b.as_ref().is_some_and(|b| !b.is_empty()))
        });
    let mode = host
        .and_then(|h| h.network_mode.as_deref())
        .unwrap_or("default");
    let shared_stack = mode == "host" || mode.starts_with("container:");
    let fixed_address = container
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.as_ref())
        .is_some_and(|networks| {
            networks.values().any(|endpoint| {
                endpoint.ipam_config.as_ref().is_some_and(|ipam| {
                    ipam.ipv4_address.as_deref().is_some_and(|a| !a.is_empty())
                        || ipam.ipv6_address.as_deref().is_some_and(|a| !a.is_empty())
                })
            })
        });
    !(publishes || shared_stack || fixed_address)
}

/// A hook label's command: a JSON array is the argument vector as is;
/// anything else runs with `/bin/sh -c` inside the container (never on the
/// host).
fn hook_command(value: &str) -> Result<Vec<String>, String> {
    if value.starts_with('[') {
        let argv: Vec<String> =
            serde_json::from_str(value).map_err(|e| format!("not a JSON array of strings: {e}"))?;
        if argv.is_empty() || argv[0].is_empty() {
            return Err("the command is empty".into());
        }
        Ok(argv)
    } else {
        Ok(vec!["/bin/sh".into(), "-c".into(), value.into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{
        ContainerConfig, EndpointIpamConfig, EndpointSettings, HostConfig, NetworkSettings,
        PortBinding,
    };
    use std::collections::HashMap;

    fn container(labels: &[(&str, &str)], host: HostConfig) -> ContainerInspectResponse {
        ContainerInspectResponse {
            config: Some(ContainerConfig {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            }),
            host_config: Some(host),
            ..Default::default()
        }
    }

    fn auto(c: &ContainerInspectResponse) -> Strategy {
        policy(c, StrategySetting::Auto, Duration::from_secs(60))
            .unwrap()
            .strategy
    }

    #[test]
    fn auto_is_start_first_behind_a_proxy_and_stop_first_with_host_ports() {
        assert_eq!(
            auto(&container(&[], HostConfig::default())),
            Strategy::StartFirst
        );
        let published = HostConfig {
            port_bindings: Some(HashMap::from([(
                "8080/tcp".into(),
                Some(vec![PortBinding {
                    host_ip: None,
                    host_port: Some("80".into()),
                }]),
            )])),
            ..Default::default()
        };
        assert_eq!(auto(&container(&[], published)), Strategy::StopFirst);
        for mode in ["host", "container:abc"] {
            let host = HostConfig {
                network_mode: Some(mode.into()),
                ..Default::default()
            };
            assert_eq!(auto(&container(&[], host)), Strategy::StopFirst, "{mode}");
        }
        let mut fixed_ip = container(&[], HostConfig::default());
        fixed_ip.network_settings = Some(NetworkSettings {
            networks: Some(HashMap::from([(
                "front".into(),
                EndpointSettings {
                    ipam_config: Some(EndpointIpamConfig {
                        ipv4_address: Some("172.30.0.9".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )])),
            ..Default::default()
        });
        assert_eq!(auto(&fixed_ip), Strategy::StopFirst);
    }

    #[test]
    fn labels_override_settings() {
        let c = container(
            &[
                (STRATEGY_LABEL, "stop-first"),
                (HEALTH_TIMEOUT_LABEL, "90s"),
                (PRE_UPDATE_LABEL, "echo bye > /tmp/x"),
                (POST_UPDATE_LABEL, r#"["/app/warm", "--all"]"#),
            ],
            HostConfig::default(),
        );
        let p = policy(
            &c,
            StrategySetting::Fixed(Strategy::StartFirst),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(p.strategy, Strategy::StopFirst);
        assert_eq!(p.health_timeout, Duration::from_secs(90));
        assert_eq!(
            p.pre_update.unwrap(),
            ["/bin/sh", "-c", "echo bye > /tmp/x"]
        );
        assert_eq!(p.post_update.unwrap(), ["/app/warm", "--all"]);
    }

    #[test]
    fn bad_labels_are_named_in_the_error() {
        for (key, value) in [
            (STRATEGY_LABEL, "blue-green"),
            (HEALTH_TIMEOUT_LABEL, "soon"),
            (PRE_UPDATE_LABEL, "[1, 2]"),
            (POST_UPDATE_LABEL, "[]"),
        ] {
            let err = policy(
                &container(&[(key, value)], HostConfig::default()),
                StrategySetting::Auto,
                Duration::ZERO,
            )
            .unwrap_err();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn strategy_settings_parse_and_print() {
        for text in ["auto", "start-first", "stop-first"] {
            assert_eq!(text.parse::<StrategySetting>().unwrap().to_string(), text);
        }
        assert!("rolling".parse::<StrategySetting>().is_err());
    }
}
