//! Who may use the status page: sessions, their cookie, and the checks a
//! form's POST must pass (CSRF token, same origin).
//!
//! A session starts when someone logs in with dockhook's token. Its id (32
//! random bytes, base64url) travels only in an `HttpOnly; SameSite=Strict`
//! cookie; the server keeps the SHA-256 of it, so the map's lookups compare
//! digests, never the secret itself. A session ends after [`IDLE`] without a
//! request, on logout, or when [`MAX_SESSIONS`] newer ones pushed it out.
//! Sessions live in memory: a restart of dockhook logs everyone out. When
//! a session ends, so do the event streams it opened.
//!
//! Every session has its own CSRF token, which every form carries in a
//! hidden field and every POST must return (compared in constant time).
//! A POST whose `Origin` (or `Sec-Fetch-Site`) shows it came from another
//! site is refused even before that.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::tokens::Role;

/// The session cookie's name.
pub const COOKIE: &str = "dockhook_session";
/// How long a session lives without a request.
pub const IDLE: Duration = Duration::from_secs(12 * 60 * 60);
/// How many sessions may be open at once; a new one pushes out the one
/// unused longest.
pub const MAX_SESSIONS: usize = 64;

/// A one-time message for the next page the session sees: what an action
/// did, or why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub ok: bool,
    pub message: String,
}

/// What a page needs of its session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The digest of the session id: the key of the session map.
    key: [u8; 32],
    /// The token every form of this session carries.
    pub csrf: String,
    /// Cancelled when the session ends, so its event streams end too.
    pub ended: CancellationToken,
    /// What the token it logged in with may do.
    pub role: Role,
}

struct Entry {
    csrf: String,
    role: Role,
    last_seen: Instant,
    flash: Option<Flash>,
    ended: CancellationToken,
}

impl Drop for Entry {
    fn drop(&mut self) {
        // However the session ends: logout, idle, pushed out.
        self.ended.cancel();
    }
}

/// The open sessions.
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Entry>>,
    idle: Duration,
    max: usize,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new(IDLE, MAX_SESSIONS)
    }
}

impl Sessions {
    pub fn new(idle: Duration, max: usize) -> Self {
        Self {
            map: Mutex::default(),
            idle,
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        // Nothing a panic could leave half-done lives in the map.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session for a login with a token of `role`; returns its
    /// id, for the cookie.
    pub fn open(&self, role: Role) -> String {
        let id = random_token();
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, entry| now.duration_since(entry.last_seen) < self.idle);
        while map.len() >= self.max {
            let oldest = map
                .iter()
                .min_by_key(|(_, entry)| entry.last_seen)
                .map(|(key, _)| *key);
            match oldest {
                Some(key) => map.remove(&key),
                None => break,
            };
        }
        map.insert(
            key_of(&id),
            Entry {
                csrf: random_token(),
                role,
                last_seen: now,
                flash: None,
                ended: CancellationToken::new(),
            },
        );
        id
    }

    /// The session the request's cookie names, if it is open; counts as a
    /// use of it.
    pub fn find(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers)?;
        let key = key_of(id);
        let now = Instant::now();
        let mut map = self.lock();
        let entry = map.get_mut(&key)?;
        if now.duration_since(entry.last_seen) >= self.idle {
            map.remove(&key);
            return None;
        }
        entry.last_seen = now;
        Some(Session {
            key,
            csrf: entry.csrf.clone(),
            ended: entry.ended.clone(),
            role: entry.role,
        })
    }

    /// Ends `session`.
    pub fn close(&self, session: &Session) {
        self.lock().remove(&session.key);
    }

    /// Leaves `flash` for the session's next page.
    pub fn set_flash(&self, session: &Session, flash: Flash) {
        if let Some(entry) = self.lock().get_mut(&session.key) {
            entry.flash = Some(flash);
        }
    }

    /// The message left for this page, once.
    pub fn take_flash(&self, session: &Session) -> Option<Flash> {
        self.lock()
            .get_mut(&session.key)
            .and_then(|entry| entry.flash.take())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Session {
    /// Whether `given` is this session's CSRF token.
    pub fn csrf_matches(&self, given: Option<&str>) -> bool {
        given.is_some_and(|given| bool::from(self.csrf.as_bytes().ct_eq(given.as_bytes())))
    }
}

fn key_of(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// 32 random bytes, base64url.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system gives random bytes");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The session id in the request's `Cookie` header.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then_some(value)
        })
}

/// The `Set-Cookie` value of a new session. `Secure` when the page is
/// served over https (see [`over_https`]), so the cookie never travels in
/// the clear there; over plain http a browser would drop a `Secure` cookie.
pub fn set_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{secure}")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// Whether the browser reached the page over https: the login form's
/// `Origin` says so (browsers send it with every POST), or a proxy that
/// ends TLS says so in `X-Forwarded-Proto`. Either can only be claimed
/// falsely to make the cookie stricter.
pub fn over_https(headers: &HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    value("origin").is_some_and(|origin| origin.starts_with("https://"))
        || value("x-forwarded-proto").is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// Whether a POST may have come from dockhook's own page: no
/// `Sec-Fetch-Site` saying another site sent it, and no `Origin`, or one
/// whose host is the host the request was sent to (`X-Forwarded-Host`
/// behind a proxy, else `Host`).
///
/// `Origin: null` passes only with `Sec-Fetch-Site: same-origin`: the page
/// is served with `Referrer-Policy: no-referrer`, under which browsers send
/// `null` for the page's own forms; `Sec-Fetch-Site` is set by the browser
/// alone (no script can forge it).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let fetch_site = value("sec-fetch-site");
    if fetch_site.is_some_and(|site| !matches!(site, "same-origin" | "none")) {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let origin = origin.to_str().unwrap_or_default();
    if origin == "null" {
        return fetch_site == Some("same-origin");
    }
    let Some(authority) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    let host = value("x-forwarded-host").or_else(|| value("host"));
    host.is_some_and(|host| host.trim().eq_ignore_ascii_case(authority))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect()
    }

    fn with_cookie(id: &str) -> HeaderMap {
        headers(&[("cookie", &format!("other=1; {COOKIE}={id}; x=y"))])
    }

    #[test]
    fn a_session_is_found_by_its_cookie_only() {
        let sessions = Sessions::default();
        let id = sessions.open(Role::Admin);
        assert_eq!(id.len(), 43, "32 bytes, base64url without padding");
        let session = sessions.find(&with_cookie(&id)).expect("open");
        assert!(sessions.find(&with_cookie("forged")).is_none());
        assert!(sessions.find(&HeaderMap::new()).is_none());
        assert!(sessions.find(&headers(&[("cookie", &id)])).is_none());
        assert!(!session.ended.is_cancelled());
        sessions.close(&session);
        assert!(sessions.find(&with_cookie(&id)).is_none(), "closed");
        assert!(session.ended.is_cancelled(), "its streams end");
    }

    #[test]
    fn sessions_expire_when_idle() {
        let sessions = Sessions::new(Duration::from_millis(50), 8);
        let id = sessions.open(Role::Admin);
        let session = sessions.find(&with_cookie(&id)).unwrap();
        std::thread::sleep(Duration::from_millis(80));
        assert!(sessions.find(&with_cookie(&id)).is_none(), "idle too long");
        assert_eq!(sessions.len(), 0, "and forgotten");
        assert!(session.ended.is_cancelled());
    }

    #[test]
    fn sessions_are_bounded_and_the_least_used_goes_first() {
        let sessions = Sessions::new(IDLE, 3);
        let first = sessions.open(Role::Admin);
        let second = sessions.open(Role::Admin);
        let pushed_out = sessions.find(&with_cookie(&second)).unwrap();
        let third = sessions.open(Role::Admin);
        // Used last, so it stays.
        assert!(sessions.find(&with_cookie(&first)).is_some());
        let fourth = sessions.open(Role::Admin);
        assert_eq!(sessions.len(), 3);
        assert!(sessions.find(&with_cookie(&second)).is_none(), "pushed out");
        assert!(pushed_out.ended.is_cancelled());
        for id in [first, third, fourth] {
            assert!(sessions.find(&with_cookie(&id)).is_some());
        }
    }

    #[test]
    fn csrf_tokens_are_per_session_and_must_match() {
        let sessions = Sessions::default();
        let a = sessions
            .find(&with_cookie(&sessions.open(Role::Admin)))
            .unwrap();
        let b = sessions
            .find(&with_cookie(&sessions.open(Role::Admin)))
            .unwrap();
        assert_ne!(a.csrf, b.csrf);
        assert!(a.csrf_matches(Some(&a.csrf)));
        assert!(!a.csrf_matches(Some(&b.csrf)));
        assert!(!a.csrf_matches(Some("")));
        assert!(!a.csrf_matches(None));
    }

    #[test]
    fn a_flash_is_shown_once() {
        let sessions = Sessions::default();
        let session = sessions
            .find(&with_cookie(&sessions.open(Role::Admin)))
            .unwrap();
        let flash = Flash {
            ok: false,
            message: "no".into(),
        };
        sessions.set_flash(&session, flash.clone());
        assert_eq!(sessions.take_flash(&session), Some(flash));
        assert_eq!(sessions.take_flash(&session), None);
    }

    #[test]
    fn the_cookie_is_http_only_same_site_strict_and_secure_over_https() {
        assert_eq!(
            set_cookie("abc", false),
            "dockhook_session=abc; HttpOnly; SameSite=Strict; Path=/"
        );
        assert!(set_cookie("abc", true).ends_with("; Secure"));
        assert!(clear_cookie().contains("Max-Age=0"));
        assert!(over_https(&headers(&[("origin", "https://dock.example")])));
        assert!(over_https(&headers(&[("x-forwarded-proto", "HTTPS")])));
        assert!(!over_https(&headers(&[("origin", "http://dock.example")])));
        assert!(!over_https(&HeaderMap::new()));
    }

    #[test]
    fn only_same_origin_posts_pass() {
        let host = ("host", "dock.example:8080");
        assert!(same_origin(&headers(&[host])), "no Origin: not a browser");
        assert!(same_origin(&headers(&[
            host,
            ("origin", "http://dock.example:8080")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "dock.example"),
            ("origin", "https://dock.example"),
        ])));
        for origin in [
            "http://evil.example",
            "http://dock.example:8081",
            "null",
            "dock.example:8080",
        ] {
            assert!(
                !same_origin(&headers(&[host, ("origin", origin)])),
                "{origin}"
            );
        }
        assert!(same_origin(&headers(&[
            host,
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "null"),
            ("sec-fetch-site", "none")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "same-site")
        ])));
        assert!(same_origin(&headers(&[
            host,
            ("sec-fetch-site", "same-origin")
        ])));
    }
}
