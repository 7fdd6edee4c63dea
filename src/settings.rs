//! The values settings are made of: [`Secret`], durations and sizes.
//!
//! A leaf: it imports nothing from the crate, so every module can take its
//! settings in these types (and parse a container label with the same rules
//! as the configuration) without reaching up into [`crate::config`], which
//! assembles them.

use std::fmt;
use std::time::Duration;

/// A secret string that never appears whole in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// A secret from a literal, for tests.
    #[cfg(test)]
    pub fn for_tests(text: &str) -> Self {
        Self::new(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first four characters and the length: enough to tell two apart.
    pub fn masked(&self) -> String {
        let head: String = self.0.chars().take(4).collect();
        format!("{head}… ({} characters)", self.0.len())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// How long something is kept: `90d`, `36h`, or a bare number of days.
pub fn parse_age(text: &str) -> Result<Duration, &'static str> {
    const REASON: &str = "expected an age such as 90d or 36h";
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| REASON)?;
    let hours = match unit.trim() {
        "" | "d" => number.checked_mul(24).ok_or(REASON)?,
        "h" => number,
        _ => return Err(REASON),
    };
    if !(1..=3650 * 24).contains(&hours) {
        return Err("must be between 1h and 3650d");
    }
    Ok(Duration::from_secs(hours * 3600))
}

/// An age as [`parse_age`] reads it.
pub fn show_age(age: Duration) -> String {
    let hours = age.as_secs() / 3600;
    if hours % 24 == 0 {
        format!("{}d", hours / 24)
    } else {
        format!("{hours}h")
    }
}

/// `5s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    const REASON: &str = "expected a duration such as 5s, 500ms, 2m or 1h";
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| REASON)?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(REASON),
    };
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err("must be between 0 and 24h");
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A duration as [`parse_duration`] reads it, in its largest whole unit.
pub fn show_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// `1MiB`, `512KiB`, `2MB`, or a bare number of bytes.
pub fn parse_size(text: &str) -> Result<usize, &'static str> {
    const REASON: &str = "expected a size such as 1MiB, 512KiB or 1048576";
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number.parse().map_err(|_| REASON)?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "K" | "KiB" => 1024,
        "MB" => 1_000_000,
        "M" | "MiB" => 1024 * 1024,
        _ => return Err(REASON),
    };
    let bytes = number.checked_mul(factor).ok_or(REASON)?;
    if !(1024..=64 * 1024 * 1024).contains(&bytes) {
        return Err("must be between 1KiB and 64MiB");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("2d").is_err());
        assert_eq!(parse_size("512KiB").unwrap(), 512 * 1024);
        assert_eq!(parse_size("2MB").unwrap(), 2_000_000);
        assert!(parse_size("99999999999999999999").is_err());
    }

    #[test]
    fn secrets_never_show_whole() {
        let secret = Secret::new("0123456789abcdefSECRET");
        let shown = format!("{secret:?} {}", secret.masked());
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("0123… (22 characters)"), "{shown}");
    }
}
