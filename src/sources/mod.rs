//! Webhook sources: one module per registry payload format.
//!
//! A source turns a request (headers and raw body) into
//! `ImageEvent`s and decides whether the sender
//! is allowed to say them. It knows payload formats and how each sender
//! proves itself, nothing else: no Docker calls, no HTTP framework beyond
//! the header map, no state (replays are remembered by the server from the
//! delivery ID a source reports).
//!
//! Sources authenticated by the secret token in the URL (Docker Hub, the
//! distribution registry, Quay, ACR, generic) have it checked by the server
//! before they run; the others (GitHub, Gitea, GitLab, Harbor) check their
//! own header or signature here.

use http::HeaderMap;

use crate::event::ImageEvent;
use crate::settings::Secret;

pub mod acr;
pub mod dockerhub;
pub mod generic;
pub mod gitea;
pub mod github;
pub mod gitlab;
pub mod harbor;
pub mod quay;
pub mod registry;
#[cfg(test)]
mod testing;

/// What a source is given.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Request<'_> {
    /// A header's value as text, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What a source made of a genuine request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The images it says changed; empty when there is nothing to do.
    pub events: Vec<ImageEvent>,
    /// Why there is nothing to do (a ping, a delete, an untagged push…),
    /// for the answer and the log.
    pub ignored: Option<String>,
    /// The sender's ID for this delivery, when it gives one: a delivery seen
    /// before is a replay and is dropped.
    pub delivery: Option<String>,
}

impl Verdict {
    pub fn events(events: Vec<ImageEvent>) -> Self {
        Self {
            events,
            ..Self::default()
        }
    }

    pub fn ignored(reason: impl Into<String>) -> Self {
        Self {
            ignored: Some(reason.into()),
            ..Self::default()
        }
    }
}

/// What the sources need from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Docker Hub namespaces allowed to trigger updates.
    pub owners: Vec<String>,
    /// Registry Docker Hub events pull from.
    pub dockerhub_registry: String,
    /// Registry host for distribution notifications, instead of the one
    /// the notification names.
    pub registry_host: Option<String>,
    /// Secrets of the sources that authenticate themselves; `None` turns
    /// the source off.
    pub github_secret: Option<Secret>,
    pub github_registry: String,
    pub gitea_secret: Option<Secret>,
    /// Registry Gitea events pull from; by default the Gitea host itself.
    pub gitea_registry: Option<String>,
    pub gitlab_token: Option<Secret>,
    pub gitlab_registry: String,
    pub harbor_auth: Option<Secret>,
    pub quay_registry: String,
}

impl Settings {
    /// Settings for tests: owner `alice`, Docker Hub, every source off.
    #[cfg(test)]
    pub fn for_tests() -> Self {
        Self {
            owners: vec!["alice".into()],
            dockerhub_registry: "docker.io".into(),
            registry_host: None,
            github_secret: None,
            github_registry: "ghcr.io".into(),
            gitea_secret: None,
            gitea_registry: None,
            gitlab_token: None,
            gitlab_registry: "registry.gitlab.com".into(),
            harbor_auth: None,
            quay_registry: "quay.io".into(),
        }
    }
}

/// Why a request was refused. Each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The body is not what the source expects (400).
    #[error("{0}")]
    Malformed(String),
    /// The request does not prove it comes from the configured sender
    /// (401); the answer gives no detail.
    #[error("unauthorized")]
    Unauthorized,
    /// The sender may not trigger updates for this image (403).
    #[error("{0}")]
    Forbidden(String),
}

/// Compares a secret with what a request presented, in constant time.
pub fn secret_matches(expected: &Secret, given: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(expected.expose().as_bytes().ct_eq(given))
}

/// Whether `signature` (hex) is the HMAC-SHA256 of `body` under `secret`,
/// compared in constant time.
pub fn hmac_sha256_matches(secret: &Secret, body: &[u8], signature: &str) -> bool {
    use hmac::{Hmac, Mac};
    let Some(expected) = decode_hex(signature.trim()) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 256 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Parses `body` as JSON of type `T`, with a message naming the source.
pub fn json<'a, T: serde::Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, SourceError> {
    serde_json::from_slice(body)
        .map_err(|e| SourceError::Malformed(format!("body is not a {what} payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        crate::settings::Secret::for_tests(text)
    }

    #[test]
    fn hmac_signatures_are_checked() {
        // From GitHub's documentation of webhook signatures.
        let key = secret("It's a Secret to Everybody");
        let body = b"Hello, World!";
        let good = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(hmac_sha256_matches(&key, body, good));
        assert!(!hmac_sha256_matches(&key, b"Hello, World?", good));
        assert!(!hmac_sha256_matches(&secret("other"), body, good));
        assert!(!hmac_sha256_matches(&key, body, &good[..62]));
        assert!(!hmac_sha256_matches(&key, body, "zz"));
        assert!(!hmac_sha256_matches(&key, body, ""));
    }

    #[test]
    fn secrets_compare_whole() {
        let key = secret("s3cret-token-value");
        assert!(secret_matches(&key, b"s3cret-token-value"));
        assert!(!secret_matches(&key, b"s3cret-token-valu"));
        assert!(!secret_matches(&key, b"s3cret-token-value "));
        assert!(!secret_matches(&key, b""));
    }
}
