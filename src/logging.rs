//! The log: where it goes, what it shows, and which secrets it never shows.
//!
//! dockhook's own messages name the token only masked, and the HTTP trace
//! records a request's route (`/hooks/dockerhub/{token}`), never its URI.
//! But at debug and trace level the libraries below log what they send and
//! receive: bollard, for one, logs every Docker API body, and a container's
//! configuration can carry a secret (dockhook's own, when it inspects its
//! container). So every line also passes through a filter that replaces each
//! secret registered with [`redact`] by `[redacted]` before it is written.
//!
//! Lines are text by default, or one JSON object each with
//! `log_format = json` (for a log collector); both go through that filter,
//! and each secret is searched for as written and as JSON or Rust debug
//! output escapes it.
//!
//! This module owns the global log subscriber; nothing else installs one.

use std::io::{self, Write};
use std::sync::RwLock;

use tracing_subscriber::fmt::MakeWriter;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not searched for: they would turn common
/// words into `[redacted]`, and nothing this short is accepted as a token.
const MIN_SECRET_LEN: usize = 8;

/// The secrets the log must never show.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// The log filter is not valid.
#[derive(Debug, thiserror::Error)]
#[error("log = {filter:?} is not a valid log filter ({source}); use a level such as `info` or `dockhook=debug,info`")]
pub struct LogError {
    filter: String,
    source: tracing_subscriber::filter::ParseError,
}

/// How each line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable, coloured on a terminal.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `message`, the
    /// event's fields, `target`, and the spans it happened in.
    Json,
}

impl std::str::FromStr for Format {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected text or json"),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// Installs the global subscriber: lines on stderr in `format`, filtered
/// by `filter` (`info`, `dockhook=debug`, …), text coloured on a terminal,
/// secrets redacted.
pub fn init(filter: &str, format: Format, ansi: bool) -> Result<(), LogError> {
    let env_filter = tracing_subscriber::EnvFilter::try_new(filter).map_err(|source| LogError {
        filter: filter.to_string(),
        source,
    })?;
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(RedactedStderr);
    match format {
        Format::Text => subscriber.with_ansi(ansi).init(),
        Format::Json => subscriber.json().flatten_event(true).init(),
    }
    Ok(())
}

/// From now on, `secret` never appears in the log: it is written as
/// [`REDACTED`], also where a JSON line or a debug-formatted field escapes
/// it (a `"` or `\\` in a header value, say).
pub fn redact(secret: &str) {
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let json = serde_json::to_string(secret).expect("a string serialises");
    let debug = format!("{secret:?}");
    let forms = [secret, &json[1..json.len() - 1], &debug[1..debug.len() - 1]];
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for form in forms {
        if !secrets.iter().any(|s| s == form) {
            secrets.push(form.to_string());
        }
    }
}

/// `text` with every registered secret replaced by [`REDACTED`].
fn redacted(text: &[u8]) -> Option<Vec<u8>> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let found = secrets
        .iter()
        .any(|s| text.windows(s.len()).any(|w| w == s.as_bytes()));
    if !found {
        return None;
    }
    let mut text = String::from_utf8_lossy(text).into_owned();
    for secret in secrets.iter() {
        text = text.replace(secret.as_str(), REDACTED);
    }
    Some(text.into_bytes())
}

/// Standard error, through [`Redacting`].
struct RedactedStderr;

impl<'a> MakeWriter<'a> for RedactedStderr {
    type Writer = Redacting<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Redacting(io::stderr())
    }
}

/// A writer that redacts secrets from what passes through it. The
/// formatter writes each event whole, in one call, so a secret is never cut
/// in two across calls.
struct Redacting<W>(W);

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match redacted(buf) {
            Some(clean) => self.0.write_all(&clean)?,
            None => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_replaced_wherever_they_appear() {
        redact("0123456789abcdefTOKEN");
        redact("short");
        let mut out = Redacting(Vec::new());
        out.write_all(
            br#"{"Env":["APP_TOKEN=0123456789abcdefTOKEN"]} uri=/hooks/x/0123456789abcdefTOKEN short"#,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out.0).unwrap(),
            r#"{"Env":["APP_TOKEN=[redacted]"]} uri=/hooks/x/[redacted] short"#
        );
        let mut out = Redacting(Vec::new());
        out.write_all(b"nothing secret here\n").unwrap();
        assert_eq!(out.0, b"nothing secret here\n");
    }

    #[test]
    fn secrets_are_redacted_as_json_and_debug_output_escape_them() {
        let secret = r#"Basic "quoted\secret""#;
        redact(secret);
        let json = serde_json::json!({ "message": "header", "auth": secret }).to_string();
        let debug = format!("auth={secret:?}");
        for line in [json, debug, secret.to_string()] {
            let mut out = Redacting(Vec::new());
            out.write_all(line.as_bytes()).unwrap();
            let written = String::from_utf8(out.0).unwrap();
            assert!(!written.contains("quoted"), "{line} -> {written}");
            assert!(written.contains(REDACTED), "{written}");
        }
    }
}
