//! The HTTP side of the client: one method per API route, the answer's
//! body kept as received (for `--json`) beside what it parses to, and
//! errors that say what to do.

use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use hyper::body::Bytes;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::sse::SseReader;
use crate::control::Target;
use crate::settings::Secret;
use crate::store::{Deployment, Step};
use crate::timing::Timings;

/// How long a request may take; the event stream has no limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The live event stream of one dockhook.
pub type Events = SseReader<BoxStream<'static, reqwest::Result<Bytes>>>;

/// Why a command could not be done.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(
        "no token to call dockhook with: set DOCKHOOK_API_TOKEN or pass --token-file FILE \
         (a dockhook without a configured token keeps the one it generated in {path}: {reason})"
    )]
    NoToken { path: String, reason: String },
    #[error("cannot reach dockhook at {url}: {reason} (is it running? pass --url if it listens elsewhere)")]
    Unreachable { url: String, reason: String },
    #[error("dockhook at {url} refused the token (401): use the API token dockhook runs with (DOCKHOOK_API_TOKEN, --token-file, or `dockhook check-config --show-token` where it runs)")]
    Unauthorized { url: String },
    /// dockhook answered with an error: no such target, nothing to roll
    /// back to, Docker down...
    #[error("{message}")]
    Refused { status: u16, message: String },
    #[error("dockhook at {url} gave an answer this client does not understand: {reason}")]
    Protocol { url: String, reason: String },
    /// Whoever read the output stopped reading (`dockhook history | head`).
    #[error("the output was closed")]
    OutputClosed,
}

/// What an answer is: its text as received, and what it parses to.
#[derive(Debug)]
pub struct Answer<T> {
    pub raw: String,
    pub value: T,
}

/// `GET /api/targets`.
#[derive(Debug, Deserialize)]
pub struct Targets {
    pub targets: Vec<Target>,
}

/// `GET /api/deployments`.
#[derive(Debug, Deserialize)]
pub struct Deployments {
    pub deployments: Vec<Deployment>,
}

/// `GET /api/deployments/{id}`: the deployment, its steps, its timings.
#[derive(Debug, Deserialize)]
pub struct Detail {
    #[serde(flatten)]
    pub deployment: Deployment,
    pub steps: Vec<Step>,
    pub timings: Timings,
}

/// The answer to an update or a rollback.
#[derive(Debug, Deserialize)]
pub struct Accepted {
    pub deployment: i64,
}

/// The answer to an approval or a rejection.
#[derive(Debug, Deserialize)]
pub struct Decided {
    pub deployment: Deployment,
}

/// How the client trusts the certificate of a dockhook on `https`.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The Web PKI's roots, for the name in the URL.
    WebPki,
    /// Exactly the leaf certificate this PEM file starts with.
    Pinned(std::path::PathBuf),
    /// The Web PKI, for `domain`, connecting to `addr`.
    Resolve {
        domain: String,
        addr: std::net::SocketAddr,
    },
}

/// A client of one dockhook.
/// The answer to a rotation.
#[derive(Debug, Deserialize)]
pub struct Rotated {
    pub value: String,
    /// Until when the replaced token is valid; `None` when nothing was
    /// replaced or no grace given.
    pub previous_valid_until: Option<String>,
    /// The new hook paths, for the hook secret.
    #[serde(default)]
    pub hooks: std::collections::BTreeMap<String, String>,
}

pub struct Client {
    base: String,
    token: Secret,
    http: reqwest::Client,
}

impl Client {
    /// A client of the dockhook at `base` (`http://host:port`), trusting
    /// the Web PKI for `https`.
    pub fn new(base: &str, token: Secret) -> Result<Self, CliError> {
        Self::with_trust(base, token, Trust::WebPki)
    }

    /// A client of the dockhook at `base` that trusts its certificate as
    /// `trust` says.
    pub fn with_trust(base: &str, token: Secret, trust: Trust) -> Result<Self, CliError> {
        let base = base.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base)
            .map_err(|e| CliError::Usage(format!("--url {base} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(CliError::Usage(format!(
                "--url {base} must be http://HOST:PORT or https://HOST"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("dockhook-cli/", env!("CARGO_PKG_VERSION")));
        let http = match trust {
            Trust::WebPki => http,
            Trust::Pinned(cert) => http.use_preconfigured_tls(
                crate::tls::pinned_client_config(&cert)
                    .map_err(|e| CliError::Usage(e.to_string()))?,
            ),
            Trust::Resolve { domain, addr } => http.resolve(&domain, addr),
        };
        let http = http
            .build()
            .map_err(|e| CliError::Usage(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self { base, token, http })
    }

    pub async fn targets(&self) -> Result<Answer<Targets>, CliError> {
        self.call(reqwest::Method::GET, "/api/targets", None).await
    }

    /// The newest `limit` deployments, of `target` only if given.
    pub async fn deployments(
        &self,
        target: Option<&str>,
        limit: u32,
    ) -> Result<Answer<Deployments>, CliError> {
        let mut url = reqwest::Url::parse(&format!("{}/api/deployments", self.base))
            .expect("the base was checked");
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string());
        if let Some(target) = target {
            url.query_pairs_mut().append_pair("target", target);
        }
        let path = &url.as_str()[self.base.len()..];
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn deployment(&self, id: i64) -> Result<Answer<Detail>, CliError> {
        self.call(
            reqwest::Method::GET,
            &format!("/api/deployments/{id}"),
            None,
        )
        .await
    }

    pub async fn update(&self, target: &str, force: bool) -> Result<Answer<Accepted>, CliError> {
        let path = format!("/api/targets/{}/update", segment(target));
        let body = serde_json::json!({ "force": force });
        self.call(reqwest::Method::POST, &path, Some(body)).await
    }

    pub async fn rollback(
        &self,
        target: &str,
        to: Option<i64>,
    ) -> Result<Answer<Accepted>, CliError> {
        let path = format!("/api/targets/{}/rollback", segment(target));
        let body = serde_json::json!({ "to": to });
        self.call(reqwest::Method::POST, &path, Some(body)).await
    }

    /// Replaces dockhook's `kind` token (`hook`, `api`, `read`); the old
    /// one stays valid for `grace` (dockhook's `token_grace` when `None`).
    pub async fn rotate(
        &self,
        kind: &str,
        grace: Option<&str>,
    ) -> Result<Answer<Rotated>, CliError> {
        let path = format!("/api/tokens/{}/rotate", segment(kind));
        let body = serde_json::json!({ "grace": grace });
        self.call(reqwest::Method::POST, &path, Some(body)).await
    }

    /// `decision`: `approve` or `reject`.
    pub async fn decide(&self, id: i64, decision: &str) -> Result<Answer<Decided>, CliError> {
        let path = format!("/api/deployments/{id}/{decision}");
        self.call(reqwest::Method::POST, &path, None).await
    }

    /// Subscribes to the event stream: once this returns, no change is
    /// missed.
    pub async fn events(&self) -> Result<Events, CliError> {
        let url = format!("{}/api/events", self.base);
        let response = self
            .http
            .get(&url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(self.error(status, &text));
        }
        Ok(SseReader::new(response.bytes_stream().boxed()))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Answer<T>, CliError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
            .timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let raw = response.text().await.map_err(|e| self.unreachable(&e))?;
        if !status.is_success() {
            return Err(self.error(status, &raw));
        }
        let value = serde_json::from_str(&raw).map_err(|e| CliError::Protocol {
            url: self.base.clone(),
            reason: format!("{e} in {}", abridged(&raw)),
        })?;
        Ok(Answer { raw, value })
    }

    fn unreachable(&self, error: &reqwest::Error) -> CliError {
        // reqwest's own message is "error sending request"; the cause says why.
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            reason = cause.to_string();
            source = cause.source();
        }
        if error.is_timeout() {
            reason = "it did not answer in time".to_string();
        }
        CliError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }

    /// The error an answer with `status` and body `text` means.
    fn error(&self, status: StatusCode, text: &str) -> CliError {
        if status == StatusCode::UNAUTHORIZED {
            return CliError::Unauthorized {
                url: self.base.clone(),
            };
        }
        #[derive(Deserialize)]
        struct ApiError {
            error: String,
        }
        match serde_json::from_str::<ApiError>(text) {
            Ok(answer) => CliError::Refused {
                status: status.as_u16(),
                message: answer.error,
            },
            // Not dockhook's JSON: something else listens there.
            Err(_) => CliError::Protocol {
                url: self.base.clone(),
                reason: format!("HTTP {status}: {}", abridged(text)),
            },
        }
    }
}

/// A container name as one path segment: names are `[a-zA-Z0-9_.-]`, but
/// a typo must not reach another route.
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The start of a long answer, for a message.
fn abridged(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None if text.is_empty() => "(empty body)".to_string(),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_one_path_segment() {
        assert_eq!(segment("my-site_1.a"), "my-site_1.a");
        assert_eq!(segment("../x y"), "..%2Fx%20y");
    }

    #[test]
    fn only_http_urls_are_taken() {
        let token = || Secret::new("t".repeat(20));
        assert!(Client::new("http://127.0.0.1:8080/", token()).is_ok());
        for bad in ["127.0.0.1:8080", "ftp://host", "http://"] {
            let error = Client::new(bad, token()).err().expect(bad);
            assert!(matches!(error, CliError::Usage(_)), "{bad}: {error}");
        }
    }
}
