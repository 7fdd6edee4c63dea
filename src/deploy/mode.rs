//! What a new image does to a container: its mode and its delay, from its
//! labels over dockhook's defaults.
//!
//! - `auto`: deploy it (the default);
//! - `approve`: record it `awaiting_approval` until a person approves or
//!   rejects it;
//! - `monitor`: record it `available`, never deploy it.
//!
//! A delay (`dockhook.delay=10m`) holds a push `delayed` until its digest
//! has been the newest for that long; a newer push restarts the wait.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::parse_duration;

/// Label that sets a container's mode.
pub const MODE_LABEL: &str = "dockhook.mode";
/// Label that sets a container's delay.
pub const DELAY_LABEL: &str = "dockhook.delay";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Auto,
    Approve,
    Monitor,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Approve => "approve",
            Mode::Monitor => "monitor",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Mode::Auto),
            "approve" => Ok(Mode::Approve),
            "monitor" => Ok(Mode::Monitor),
            _ => Err(format!(
                "unknown mode {text:?}: expected auto, approve or monitor"
            )),
        }
    }
}

/// A container's mode and delay: its labels, else the defaults. A label
/// that does not parse is an error, so a typo never deploys what its
/// owner meant to hold back.
pub fn for_container(
    labels: &HashMap<String, String>,
    default_mode: Mode,
    default_delay: Duration,
) -> Result<(Mode, Duration), String> {
    let mode = match labels.get(MODE_LABEL) {
        Some(text) => text
            .parse()
            .map_err(|e| format!("label {MODE_LABEL}: {e}"))?,
        None => default_mode,
    };
    let delay = match labels.get(DELAY_LABEL) {
        Some(text) => parse_duration(text).map_err(|e| format!("label {DELAY_LABEL}: {e}"))?,
        None => default_delay,
    };
    Ok((mode, delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_win_over_defaults_and_typos_are_errors() {
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let ten = Duration::from_secs(600);
        assert_eq!(
            for_container(&labels(&[]), Mode::Approve, ten),
            Ok((Mode::Approve, ten))
        );
        assert_eq!(
            for_container(
                &labels(&[(MODE_LABEL, "Monitor"), (DELAY_LABEL, "30s")]),
                Mode::Auto,
                Duration::ZERO
            ),
            Ok((Mode::Monitor, Duration::from_secs(30)))
        );
        let err = for_container(&labels(&[(MODE_LABEL, "aprove")]), Mode::Auto, ten).unwrap_err();
        assert!(
            err.contains("dockhook.mode") && err.contains("aprove"),
            "{err}"
        );
        assert!(for_container(&labels(&[(DELAY_LABEL, "soon")]), Mode::Auto, ten).is_err());
    }
}
