//! Webhook sources: one module per registry payload format.
//!
//! A source turns a request (headers and raw body) into
//! `ImageEvent`s and decides whether the sender
//! is allowed to say them. It knows payload formats and how each sender
//! proves itself, nothing else: no Docker calls, no HTTP framework beyond
//! the header map, no state (replays are remembered by the server from the
//! delivery ID a source reports).
//!
//! Each module describes itself in a [`Source`] (its name, which is also its
//! path under `/hooks/`, how it authenticates, its help text, whether it is
//! on, its parser), and [`ALL`] lists them: the router and `check-config`
//! are made from that list. Adding a source is its file and its name in the
//! `register!` line below (and its settings, if it has any).
//!
//! Authentication comes in two parts, so that a forged request costs no
//! body read: what the headers alone prove (the server's token in the path
//! or a bearer header; a source's own secret header; a signature header
//! that is present and well formed) is checked before the body is read, and
//! what needs the body (an HMAC of it) by the source's parser.

use http::HeaderMap;

use crate::event::ImageEvent;
use crate::settings::Secret;

/// Declares each source module and lists its [`Source`] in [`ALL`], from
/// one list of names.
macro_rules! register {
    ($($module:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every source, in the order `check-config` lists them.
        pub const ALL: &[&Source] = &[$(&$module::SOURCE),*];
    };
}

register!(dockerhub, registry, github, gitea, gitlab, harbor, quay, acr, generic);

#[cfg(test)]
pub(crate) mod testing;

/// One webhook format, as the router and `check-config` see it.
#[derive(Clone, Copy)]
pub struct Source {
    /// Name in the history and the log, and the hook's path: `/hooks/{name}`.
    pub name: &'static str,
    /// What people call the sender, for `check-config`.
    pub title: &'static str,
    pub auth: Auth,
    /// How the sender proves itself, for `check-config`.
    pub help: &'static str,
    /// Whether the source is on: one whose secret is unset answers 401 to
    /// everything, so an unset secret can never mean "no check".
    pub enabled: fn(&Settings) -> bool,
    /// Turns an authenticated request into a verdict; for [`Auth::Own`], it
    /// also verifies what needs the body (a signature).
    pub parse: fn(&Request<'_>, &Settings) -> Result<Verdict, SourceError>,
}

/// How a source's requests prove they are genuine.
#[derive(Clone, Copy)]
pub enum Auth {
    /// dockhook's secret token, checked by the server: in the path
    /// (`/hooks/{name}/{token}`) and, with `bearer`, also as
    /// `Authorization: Bearer <token>` on `/hooks/{name}`.
    Token { bearer: bool },
    /// The sender's own secret header or signature, on `/hooks/{name}`.
    /// `headers` runs before the body is read: the secret must be set and
    /// the header present and well formed (or, for a plain secret header,
    /// equal to the secret).
    Own {
        headers: fn(&HeaderMap, &Settings) -> Result<(), SourceError>,
    },
}

impl Source {
    /// Where a sender reaches this source, with `token` as it should be shown.
    pub fn hook_path(&self, token: &str) -> String {
        match self.auth {
            Auth::Token { .. } => format!("/hooks/{}/{token}", self.name),
            Auth::Own { .. } => format!("/hooks/{}", self.name),
        }
    }
}

/// For sources that are always on (those behind dockhook's token).
pub fn always_on(_: &Settings) -> bool {
    true
}

/// What a source is given.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Request<'_> {
    /// A header's value as text, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(self.headers, name)
    }
}

/// A header's value as text, if present and printable.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
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
    /// The images the generic hook may name; `None`: the owners' Docker
    /// Hub namespaces.
    pub generic_images: Option<Vec<generic::ImagePattern>>,
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
            generic_images: None,
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

/// A SHA-256 signature written in hex, as GitHub and Gitea send it; `None`
/// unless it is exactly 64 hex digits.
pub fn sha256_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim().as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(bytes)
}

/// Whether `signature` is the HMAC-SHA256 of `body` under `secret`,
/// compared in constant time.
pub fn hmac_sha256_matches(secret: &Secret, body: &[u8], signature: &[u8; 32]) -> bool {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(signature).is_ok()
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
        let signature = sha256_hex(good).unwrap();
        assert!(hmac_sha256_matches(&key, body, &signature));
        assert!(!hmac_sha256_matches(&key, b"Hello, World?", &signature));
        assert!(!hmac_sha256_matches(&secret("other"), body, &signature));
        assert_eq!(sha256_hex(&good.to_uppercase()), Some(signature));
    }

    #[test]
    fn signatures_must_be_64_hex_digits() {
        let good = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        for bad in [&good[..62], &good[..63], "zz", "", &format!("{good}00")] {
            assert_eq!(sha256_hex(bad), None, "{bad:?}");
        }
        assert_eq!(sha256_hex(&format!("{}zz", &good[..62])), None);
        assert_eq!(sha256_hex(&format!("{}é", &good[..62])), None, "not ASCII");
    }

    #[test]
    fn every_source_has_its_own_name_and_path() {
        let mut names: Vec<_> = ALL.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "{names:?}");
        for source in ALL {
            assert!(
                source.name.bytes().all(|b| b.is_ascii_lowercase()),
                "{} is not a plain path segment",
                source.name
            );
            assert!(source
                .hook_path("TOKEN")
                .starts_with(&format!("/hooks/{}", source.name)));
        }
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
