//! Notifications: who hears about a deployment, and how.
//!
//! `DOCKHOOK_NOTIFY` lists service URLs in shoutrrr's formats (the ones
//! watchtower users already have), separated by spaces. Each URL becomes an
//! [`Endpoint`]: its service (one module per URL scheme, listed once in the
//! `register!` line below), which events it wants (`?events=…`), its key in
//! the outbox, and how it is shown (secrets masked).
//!
//! The deploy path never waits on a send. A step into a state people are
//! told about (succeeded, rolled back, failed, awaiting approval, available)
//! writes an outbox row in the step's own SQLite transaction
//! ([`crate::store::Store::step`]); so does the Docker watcher ([`docker`])
//! when the engine has been unreachable for a while, and when it answers
//! again. The [`outbox`] worker groups those rows into messages (the
//! deployments of one push to many containers in one), renders them
//! ([`message`]), and delivers each to every URL that wants it, with
//! retries and backoff, each delivery on its own task: a slow or dead
//! service delays nobody. A restart resends what was not delivered.
//!
//! Nothing here reaches back into the deploy path; nothing here logs a URL
//! unmasked (every secret part is also registered with
//! [`crate::logging::redact`]).

pub mod docker;
pub mod http;
pub mod message;
pub mod outbox;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use url::Url;

pub use http::Http;
pub use message::{Kind, Message, Notice};

/// Declares each service module and lists its [`ServiceKind`] in
/// [`SERVICES`], from one list of names.
macro_rules! register {
    ($($module:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every notification service, in the order the README lists them.
        pub const SERVICES: &[&ServiceKind] = &[$(&$module::KIND),*];
    };
}

register!(
    slack, discord, teams, mattermost, googlechat, telegram, matrix, ntfy, gotify, pushover, smtp,
    generic,
);

/// One notification service, as the registry lists it.
pub struct ServiceKind {
    /// Its name in the log and in metrics.
    pub name: &'static str,
    /// The URL schemes it takes.
    pub schemes: &'static [&'static str],
    /// Reads a URL (dockhook's own `events` parameter removed) into a
    /// service, or says what is wrong with it, never quoting a secret.
    pub parse: fn(&Url) -> Result<Parsed, String>,
}

/// A service URL, read.
pub struct Parsed {
    pub service: Box<dyn Service>,
    /// The URL's secret parts (tokens, passwords, keys), as they appear in
    /// it: masked wherever the URL is shown, redacted from the log.
    pub secrets: Vec<String>,
}

/// Sends messages to one service URL.
pub trait Service: Send + Sync {
    /// Sends `message`; an error says what went wrong without a secret.
    fn send<'a>(
        &'a self,
        http: &'a Http,
        message: &'a Message,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// One configured service URL.
#[derive(Clone)]
pub struct Endpoint {
    /// The service's name (`slack`, `smtp`, …).
    pub service: &'static str,
    /// Stable key of the URL in the outbox (a hash: the outbox never holds
    /// a URL).
    pub key: String,
    /// The URL with its secrets replaced by `***`.
    pub masked: String,
    /// The events it wants; `None`: all of them.
    pub events: Option<Vec<Kind>>,
    /// The URL's secret parts.
    pub secrets: Vec<String>,
    sender: Arc<dyn Service>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked)
    }
}

impl Endpoint {
    /// Whether this URL wants to hear about `kind`. Test messages go to
    /// every URL.
    pub fn wants(&self, kind: Kind) -> bool {
        kind == Kind::Test
            || self
                .events
                .as_ref()
                .is_none_or(|events| events.contains(&kind))
    }

    /// `notice` as this URL sees it: only the events it wants, if any.
    pub fn filter(&self, notice: &Notice) -> Option<Notice> {
        notice.only(|kind| self.wants(kind))
    }

    /// Sends `message` (already filtered) to this URL.
    pub async fn send(&self, http: &Http, message: &Message) -> Result<(), String> {
        self.sender.send(http, message).await
    }
}

/// The notification settings: the configured service URLs.
#[derive(Clone, Default, Debug)]
pub struct Settings {
    pub endpoints: Vec<Endpoint>,
}

/// How long a send may take before it counts as failed.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

impl Settings {
    /// Reads a space-separated list of service URLs.
    pub fn parse(text: &str) -> Result<Self, String> {
        let endpoints = text
            .split_whitespace()
            .enumerate()
            .map(|(i, url)| endpoint(i + 1, url))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { endpoints })
    }

    /// The URLs, secrets masked, for `check-config`.
    pub fn shown(&self) -> String {
        if self.endpoints.is_empty() {
            return "(unset: no notifications)".into();
        }
        self.endpoints
            .iter()
            .map(|e| e.masked.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Every secret of every URL, for the log's redaction.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.endpoints
            .iter()
            .flat_map(|e| e.secrets.iter().map(String::as_str))
    }
}

/// The dockhook parameter that says which events a URL wants.
const EVENTS_PARAM: &str = "events";

/// Reads the `n`th URL of the list.
fn endpoint(n: usize, text: &str) -> Result<Endpoint, String> {
    let scheme = text
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase())
        .ok_or_else(|| format!("URL {n} is not a service URL; expected SERVICE://…"))?;
    let known = || {
        SERVICES
            .iter()
            .flat_map(|s| s.schemes.iter().copied())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let kind = SERVICES
        .iter()
        .find(|s| s.schemes.contains(&scheme.as_str()))
        .ok_or_else(|| format!("URL {n}: unknown service `{scheme}`; known: {}", known()))?;
    let what = format!("URL {n} ({scheme}://…)");
    let mut url = Url::parse(text).map_err(|e| format!("{what} is not a valid URL: {e}"))?;
    let mut events = None;
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter_map(|(key, value)| {
            if key.eq_ignore_ascii_case(EVENTS_PARAM) {
                events = Some(value.into_owned());
                None
            } else {
                Some((key.into_owned(), value.into_owned()))
            }
        })
        .collect();
    if events.is_some() {
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(&kept);
        }
    }
    let events = events
        .map(|list| Kind::parse_list(&list))
        .transpose()
        .map_err(|e| format!("{what}: {e}"))?;
    let parsed = (kind.parse)(&url).map_err(|e| format!("{what}: {e}"))?;
    let secrets: Vec<String> = parsed
        .secrets
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    Ok(Endpoint {
        service: kind.name,
        key: hex(&Sha256::digest(text.as_bytes()))[..16].to_string(),
        masked: mask(text, &secrets),
        events,
        secrets,
        sender: Arc::from(parsed.service),
    })
}

/// `text` with every secret (as written, or percent-decoded) replaced by
/// `***`, longest first so a secret inside another is not half-shown.
pub(crate) fn mask(text: &str, secrets: &[String]) -> String {
    let mut secrets: Vec<&String> = secrets.iter().collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut masked = text.to_string();
    for secret in secrets {
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        for form in [secret.as_str(), encoded.as_str()] {
            if !form.is_empty() {
                masked = masked.replace(form, "***");
            }
        }
    }
    masked
}

/// Lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Helpers the service modules share to read their URLs.
pub(crate) mod url_parts {
    use std::collections::HashMap;

    use url::Url;

    /// A percent-encoded URL part, decoded.
    pub fn decode(text: &str) -> String {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    }

    /// The user name, decoded.
    pub fn user(url: &Url) -> String {
        decode(url.username())
    }

    /// The password, decoded; empty when there is none.
    pub fn password(url: &Url) -> String {
        url.password().map(decode).unwrap_or_default()
    }

    /// The host as written (with its port, if any); empty when none.
    pub fn host(url: &Url) -> String {
        let host = url.host_str().unwrap_or_default();
        match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }

    /// The path's non-empty segments, decoded.
    pub fn segments(url: &Url) -> Vec<String> {
        url.path()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(decode)
            .collect()
    }

    /// The query parameters by lowercase key (shoutrrr's keys are not case
    /// sensitive); the last of a repeated key wins.
    pub fn query(url: &Url) -> HashMap<String, String> {
        url.query_pairs()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
            .collect()
    }

    /// A yes/no parameter.
    pub fn yes(query: &HashMap<String, String>, key: &str, default: bool) -> Result<bool, String> {
        match query.get(key).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "yes" | "true" | "1" | "on") => Ok(true),
            Some(v) if matches!(v.as_str(), "no" | "false" | "0" | "off") => Ok(false),
            Some(_) => Err(format!("`{key}` must be yes or no")),
        }
    }

    /// A comma-separated list parameter.
    pub fn list(query: &HashMap<String, String>, keys: &[&str]) -> Vec<String> {
        keys.iter()
            .find_map(|k| query.get(*k))
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first of `keys` that is set.
    pub fn first(query: &HashMap<String, String>, keys: &[&str]) -> Option<String> {
        keys.iter()
            .find_map(|k| query.get(*k))
            .filter(|v| !v.is_empty())
            .cloned()
    }
}

#[cfg(test)]
mod tests;
