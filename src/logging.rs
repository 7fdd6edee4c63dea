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

/// Installs the global subscriber: lines on stderr, filtered by `filter`
/// (`info`, `dockhook=debug`, …), coloured on a terminal, secrets redacted.
pub fn init(filter: &str, ansi: bool) -> Result<(), LogError> {
    let env_filter = tracing_subscriber::EnvFilter::try_new(filter).map_err(|source| LogError {
        filter: filter.to_string(),
        source,
    })?;
    tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_ansi(ansi)
        .with_writer(RedactedStderr)
        .init();
    Ok(())
}

/// From now on, `secret` never appears in the log: it is written as
/// [`REDACTED`].
pub fn redact(secret: &str) {
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_string());
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
}
