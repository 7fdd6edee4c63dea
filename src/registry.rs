//! A small client of the registry HTTP API (the distribution spec), for what
//! reconcile asks a registry: the digest a tag points at, and a
//! repository's tags.
//!
//! - The digest comes from a `HEAD` of the manifest, with the `Accept` of
//!   `docker pull` (OCI index, Docker manifest list, OCI manifest, Docker v2
//!   manifest), so it is the digest `docker pull` records in `RepoDigests`.
//!   A `HEAD` downloads nothing and does not count against Docker Hub's
//!   pull limits.
//! - Tags come from `GET /v2/<name>/tags/list`, following `Link` pages.
//! - Authentication is the registry's own: a `401` with
//!   `WWW-Authenticate: Bearer realm=…,service=…,scope=…` sends dockhook to
//!   the token endpoint (with the login from `config.json`, if any, as basic
//!   auth), and the token is kept until it expires; a `Basic` challenge is
//!   answered with the login directly.
//! - A `429`, or a `503` with `Retry-After`, pauses every request to that
//!   registry for as long as it asks (or a doubling backoff when it does not
//!   say). A short pause is waited out; a long one fails the requests that
//!   fall in it at once, without sending them.
//!
//! Registries on loopback (`localhost`, `127.0.0.0/8`, `::1`) are spoken to
//! over plain HTTP, as the Docker engine does by default; all others over
//! HTTPS. It reads credentials and talks HTTP; it knows nothing of
//! containers, and never talks to Docker.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, LINK, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use crate::credentials::{self, Login, Lookup};
use crate::image_ref::{self, ImageRef, DOCKER_HUB};

/// What `docker pull` accepts, so the digest is the one it records.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// The header a registry names a manifest's digest in.
const DIGEST_HEADER: &str = "docker-content-digest";
/// Docker Hub's API host.
const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// A pause up to this long is waited out; a longer one fails the request.
const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// The first backoff after a `429` that does not say how long to wait;
/// it doubles with each one after, up to [`LONGEST_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const LONGEST_BACKOFF: Duration = Duration::from_secs(60 * 60);
/// Requests sent for one answer: pauses waited out and one authentication.
const ATTEMPTS: usize = 3;
/// Pages of tags followed, at most: a registry whose `Link` never ends
/// cannot keep dockhook busy for ever.
const MAX_TAG_PAGES: usize = 100;
/// Tags asked for per page.
const PAGE_SIZE: usize = 1000;
/// How long a token is taken to live when the registry does not say.
const DEFAULT_TOKEN_LIFE: Duration = Duration::from_secs(60);

/// Why a registry gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {registry} does not answer: {reason}")]
    Unreachable { registry: String, reason: String },
    #[error(
        "registry {registry} asks dockhook to slow down (429 Too Many Requests); no request \
         goes to it for another {}s",
        wait.as_secs()
    )]
    RateLimited { registry: String, wait: Duration },
    #[error(
        "registry {registry} refused access to {what} ({status}): check the login for \
         {registry} in the Docker config.json (docker_config)"
    )]
    Unauthorized {
        registry: String,
        what: String,
        status: u16,
    },
    #[error("registry {registry} has no {what}")]
    NotFound { registry: String, what: String },
    #[error("registry {registry} answered {status} for {what}")]
    Status {
        registry: String,
        what: String,
        status: u16,
    },
    #[error("registry {registry} answered {what} with nonsense: {reason}")]
    BadAnswer {
        registry: String,
        what: String,
        reason: String,
    },
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
}

/// A client of the registries images come from; see the module doc.
pub struct RegistryClient {
    http: reqwest::Client,
    /// Where `config.json` with the logins is; `None`: no logins.
    docker_config: Option<PathBuf>,
    /// Tokens by registry and scope, with when they expire.
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
    /// How each registry asked to be authenticated, once it did.
    challenges: Mutex<HashMap<String, Challenge>>,
    /// Registries that asked to slow down, until when, and how often in a row.
    pauses: Mutex<HashMap<String, Pause>>,
}

#[derive(Debug, Clone, Copy)]
struct Pause {
    until: Instant,
    strikes: u32,
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    /// The scope it names is not kept: it is that of the request that met
    /// the challenge, and each repository asks for its own.
    Bearer {
        realm: String,
        service: Option<String>,
    },
    Basic,
}

/// The token endpoint's answer; registries use either name.
#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// One request: what it is for (in errors), and what it asks.
struct Call<'a> {
    image: &'a ImageRef,
    method: Method,
    /// Path and query under the registry's base URL.
    path: String,
    accept: Option<&'a str>,
    what: String,
}

impl RegistryClient {
    /// A client reading logins from `docker_config/config.json` when set.
    pub fn new(docker_config: Option<PathBuf>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("dockhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the TLS backend is compiled in");
        Self {
            http,
            docker_config,
            tokens: Mutex::default(),
            challenges: Mutex::default(),
            pauses: Mutex::default(),
        }
    }

    /// The digest `image`'s tag points at, from a `HEAD` of its manifest.
    pub async fn digest(&self, image: &ImageRef) -> Result<String, RegistryError> {
        let call = Call {
            image,
            method: Method::HEAD,
            path: format!("/v2/{}/manifests/{}", image.repository, image.tag),
            accept: Some(MANIFEST_ACCEPT),
            what: format!("the manifest of {image}"),
        };
        let response = self.send(&call).await?;
        let header = response
            .headers()
            .get(DIGEST_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| bad(&call, "no Docker-Content-Digest header"))?;
        image_ref::validate_digest(header.trim()).map_err(|e| bad(&call, &e.to_string()))
    }

    /// Every tag of `image`'s repository, following the registry's pages.
    pub async fn tags(&self, image: &ImageRef) -> Result<Vec<String>, RegistryError> {
        let mut tags = Vec::new();
        let mut path = format!("/v2/{}/tags/list?n={PAGE_SIZE}", image.repository);
        for _ in 0..MAX_TAG_PAGES {
            let call = Call {
                image,
                method: Method::GET,
                path,
                accept: Some("application/json"),
                what: format!("the tags of {}", image.name()),
            };
            let response = self.send(&call).await?;
            let next = next_page(response.headers());
            let page: TagList = response
                .json()
                .await
                .map_err(|e| bad(&call, &format!("not a tag list: {e}")))?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(next) => path = next,
                None => return Ok(tags),
            }
        }
        Err(RegistryError::BadAnswer {
            registry: image.registry.clone(),
            what: format!("the tags of {}", image.name()),
            reason: format!("more than {MAX_TAG_PAGES} pages"),
        })
    }

    /// Sends `call` with what the registry asked for (authentication,
    /// pauses), and returns a successful answer.
    async fn send(&self, call: &Call<'_>) -> Result<reqwest::Response, RegistryError> {
        let registry = call.image.registry.as_str();
        let url = format!("{}{}", base_url(registry), call.path);
        let scope = format!("repository:{}:pull", call.image.repository);
        let mut authenticated = false;
        for _ in 0..ATTEMPTS {
            self.wait_if_paused(registry).await?;
            let mut request = self.http.request(call.method.clone(), &url);
            if let Some(accept) = call.accept {
                request = request.header(ACCEPT, accept);
            }
            if let Some(authorization) = self.authorization(registry, &scope).await? {
                request = request.header(AUTHORIZATION, authorization);
            }
            let response = request.send().await.map_err(|e| unreachable(registry, e))?;
            let status = response.status();
            if status.is_success() {
                self.pauses().remove(registry);
                return Ok(response);
            }
            if let Some(wait) = slow_down(status, response.headers()) {
                self.pause(registry, wait);
                continue;
            }
            if status == StatusCode::UNAUTHORIZED && !authenticated {
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Challenge::parse);
                if let Some(challenge) = challenge {
                    self.challenges()
                        .insert(registry.to_string(), challenge.clone());
                    self.tokens().remove(&(registry.to_string(), scope.clone()));
                    authenticated = true;
                    continue;
                }
            }
            return Err(refusal(registry, &call.what, status));
        }
        // Every attempt was asked to wait.
        let wait = self.pauses().get(registry).map(|p| p.until);
        Err(RegistryError::RateLimited {
            registry: registry.to_string(),
            wait: wait.map_or(Duration::ZERO, |u| {
                u.saturating_duration_since(Instant::now())
            }),
        })
    }

    /// The `Authorization` for `registry`, as its challenge asked: a token
    /// (fetched when none is kept), the login, or nothing.
    async fn authorization(
        &self,
        registry: &str,
        scope: &str,
    ) -> Result<Option<String>, RegistryError> {
        let challenge = self.challenges().get(registry).cloned();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.login(registry)?.map(|login| basic(&login))),
            Some(Challenge::Bearer { realm, service }) => {
                let key = (registry.to_string(), scope.to_string());
                let kept = self.tokens().get(&key).cloned();
                if let Some((token, expires)) = kept {
                    if Instant::now() < expires {
                        return Ok(Some(format!("Bearer {token}")));
                    }
                }
                let (token, life) = self
                    .token(registry, &realm, service.as_deref(), scope)
                    .await?;
                // A little early, so a token never expires in flight.
                let expires = Instant::now() + life.saturating_sub(Duration::from_secs(5));
                self.tokens().insert(key, (token.clone(), expires));
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Asks the token endpoint `realm` for a token, with the login if any.
    async fn token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Duration), RegistryError> {
        let mut url = url::Url::parse(realm).map_err(|e| RegistryError::BadAnswer {
            registry: registry.to_string(),
            what: "its authentication challenge".into(),
            reason: format!("realm {realm:?} is not a URL: {e}"),
        })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let mut request = self.http.get(url);
        if let Some(login) = self.login(registry)? {
            request = request.header(AUTHORIZATION, basic(&login));
        }
        let what = "a token".to_string();
        let response = request.send().await.map_err(|e| unreachable(registry, e))?;
        let status = response.status();
        if let Some(asked) = slow_down(status, response.headers()) {
            return Err(RegistryError::RateLimited {
                registry: registry.to_string(),
                wait: self.pause(registry, asked),
            });
        }
        if !status.is_success() {
            return Err(refusal(registry, &what, status));
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|e| RegistryError::BadAnswer {
                registry: registry.to_string(),
                what: what.clone(),
                reason: e.to_string(),
            })?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::BadAnswer {
                registry: registry.to_string(),
                what,
                reason: "the answer holds no token".into(),
            })?;
        crate::logging::redact(&token);
        let life = answer
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFE, Duration::from_secs);
        Ok((token, life))
    }

    /// The login for `registry` in `config.json`, read now, so a new
    /// `docker login` applies without a restart.
    fn login(&self, registry: &str) -> Result<Option<Login>, RegistryError> {
        let Some(dir) = &self.docker_config else {
            return Ok(None);
        };
        Ok(match credentials::lookup(dir, registry)? {
            Lookup::Found(login) => Some(login),
            Lookup::NotFound => None,
            Lookup::Unsupported(why) => {
                tracing::debug!(%registry, "{why}");
                None
            }
        })
    }

    /// Waits out a short pause of `registry`; fails at once in a long one.
    async fn wait_if_paused(&self, registry: &str) -> Result<(), RegistryError> {
        let until = self.pauses().get(registry).map(|p| p.until);
        let Some(wait) = until.map(|u| u.saturating_duration_since(Instant::now())) else {
            return Ok(());
        };
        if wait > LONGEST_WAIT {
            return Err(RegistryError::RateLimited {
                registry: registry.to_string(),
                wait,
            });
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Pauses requests to `registry` for `asked`, or for the next step of
    /// the backoff when the registry did not say; returns how long.
    fn pause(&self, registry: &str, asked: Option<Duration>) -> Duration {
        let mut pauses = self.pauses();
        let strikes = pauses.get(registry).map_or(0, |p| p.strikes) + 1;
        let wait = asked.unwrap_or_else(|| {
            FIRST_BACKOFF
                .saturating_mul(1 << (strikes - 1).min(16))
                .min(LONGEST_BACKOFF)
        });
        tracing::warn!(
            %registry,
            wait_secs = wait.as_secs(),
            "registry asks to slow down (429 Too Many Requests); no request goes to it for {}s{}",
            wait.as_secs(),
            if asked.is_some() { ", as its Retry-After says" } else { " (backoff)" }
        );
        pauses.insert(
            registry.to_string(),
            Pause {
                until: Instant::now() + wait,
                strikes,
            },
        );
        wait
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (String, Instant)>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn challenges(&self) -> std::sync::MutexGuard<'_, HashMap<String, Challenge>> {
        self.challenges.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pauses(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pause>> {
        self.pauses.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `Some(wait)` when the answer asks to slow down: a `429` (with the wait
/// it names, if any), or any answer with a `Retry-After` in seconds.
fn slow_down(status: StatusCode, headers: &HeaderMap) -> Option<Option<Duration>> {
    let asked = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::SERVICE_UNAVAILABLE && asked.is_some());
    limited.then_some(asked)
}

/// `scheme://host` of the registry's API.
fn base_url(registry: &str) -> String {
    if registry == DOCKER_HUB {
        return format!("https://{DOCKER_HUB_API}");
    }
    let host = registry
        .rsplit_once(':')
        .filter(|(_, port)| !port.contains(']'))
        .map_or(registry, |(host, _)| host);
    let loopback = host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    let scheme = if loopback { "http" } else { "https" };
    format!("{scheme}://{registry}")
}

/// The path and query of the `rel="next"` page a `Link` header names.
fn next_page(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        if !is_next {
            return None;
        }
        // Absolute or relative; only the path and query are followed, so a
        // registry cannot send dockhook's token to another host.
        let url = url::Url::parse("http://registry.invalid")
            .ok()?
            .join(target)
            .ok()?;
        let path = url.path();
        Some(match url.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_string(),
        })
    })
}

impl Challenge {
    /// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
    /// The scope is the request's own: `repository:NAME:pull`.
    fn parse(header: &str) -> Option<Self> {
        let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Self::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = challenge_params(rest);
        let get = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
        };
        Some(Self::Bearer {
            realm: get("realm")?,
            service: get("service"),
        })
    }
}

/// `key="value", key=value` pairs; commas inside quotes are kept (a scope
/// may be `repository:a:pull,push`).
fn challenge_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return params;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.push((key.trim().to_string(), value.trim().to_string()));
    }
}

fn basic(login: &Login) -> String {
    use base64::Engine as _;
    let pair = format!("{}:{}", login.username, login.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn unreachable(registry: &str, error: reqwest::Error) -> RegistryError {
    // The error's sources say why (refused, timed out, TLS); no URL, which
    // could hold a token's query.
    let error = error.without_url();
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    RegistryError::Unreachable {
        registry: registry.to_string(),
        reason,
    }
}

/// The error for an answer with `status` that is not a success.
fn refusal(registry: &str, what: &str, status: StatusCode) -> RegistryError {
    let (registry, what) = (registry.to_string(), what.to_string());
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Unauthorized {
            registry,
            what,
            status: status.as_u16(),
        },
        StatusCode::NOT_FOUND => RegistryError::NotFound { registry, what },
        _ => RegistryError::Status {
            registry,
            what,
            status: status.as_u16(),
        },
    }
}

fn bad(call: &Call<'_>, reason: &str) -> RegistryError {
    RegistryError::BadAnswer {
        registry: call.image.registry.clone(),
        what: call.what.clone(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod stub;
#[cfg(test)]
mod tests;
