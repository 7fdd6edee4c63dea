//! Who may do what: dockhook's credentials, each opening only its own door.
//!
//! | credential | setting | opens |
//! |---|---|---|
//! | a hook token | derived from `token` | its own source's hook, nothing else |
//! | the API token | `api_token` | the API, the status page, `/metrics` |
//! | the read-only token | `read_token` | what the API and the page show, `/metrics`; no action |
//! | the metrics token | `metrics_token` ([`crate::metrics`]) | `/metrics` |
//!
//! Each hook URL's token is HMAC-SHA256 of the source's name under the hook
//! secret (`token`), so the token a sender holds (in Docker Hub's webhook
//! settings, say) triggers that source and nothing else, while one secret
//! is all there is to keep, back up and rotate.
//!
//! The hook secret, the API token and the read-only token can each be
//! rotated, the old one staying valid for a grace period: through the API
//! (`dockhook rotate-token`) when dockhook generated it and keeps it in its
//! data directory, or by setting the new value and the old one as
//! `*_previous` (valid for `token_grace` from start) when it is configured.
//!
//! Every comparison is in constant time and every candidate is compared,
//! so the time an answer takes says nothing of how close a guess was.

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use subtle::ConstantTimeEq;

use crate::settings::Secret;

/// The credentials that can be rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The hook secret, from which every hook URL's token is derived.
    Hook,
    /// The API token.
    Api,
    /// The read-only API token.
    Read,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Hook, Kind::Api, Kind::Read];

    /// As the API and the CLI name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Hook => "hook",
            Kind::Api => "api",
            Kind::Read => "read",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The setting that configures it.
    pub fn setting(self) -> &'static str {
        match self {
            Kind::Hook => "token",
            Kind::Api => "api_token",
            Kind::Read => "read_token",
        }
    }

    /// Its file in the data directory, when dockhook keeps it.
    fn file(self) -> &'static str {
        match self {
            Kind::Hook => "token",
            Kind::Api => "api_token",
            Kind::Read => "read_token",
        }
    }
}

/// What a bearer token may do with the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read what the API and the page show.
    Reader,
    /// Read, and act: approve, reject, update, roll back, rotate.
    Admin,
}

/// One credential as configured: its value and the one it replaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Configured {
    /// `None`: generated on first start (hook secret and API token) or
    /// absent (read-only token), and kept in the data directory.
    pub current: Option<Secret>,
    /// The value it replaces, valid for [`Settings::grace`] from start.
    pub previous: Option<Secret>,
}

/// The credential settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub hook: Configured,
    pub api: Configured,
    pub read: Configured,
    /// How long a replaced credential stays valid.
    pub grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            hook: Configured::default(),
            api: Configured::default(),
            read: Configured::default(),
            grace: DEFAULT_GRACE,
        }
    }
}

impl Settings {
    pub fn get(&self, kind: Kind) -> &Configured {
        match kind {
            Kind::Hook => &self.hook,
            Kind::Api => &self.api,
            Kind::Read => &self.read,
        }
    }
}

/// The default of `token_grace`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

/// The longest grace a rotation may give.
pub const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// A grace period: `0s`, `30m`, `24h`, `7d`; at most [`MAX_GRACE`].
pub fn parse_grace(text: &str) -> Result<Duration, String> {
    let grace = crate::settings::parse_duration(text)
        .or_else(|_| crate::settings::parse_age(text))
        .map_err(|_| "expected a duration such as 0s, 30m, 24h or 7d".to_string())?;
    if grace > MAX_GRACE {
        return Err("must be at most 30d".into());
    }
    Ok(grace)
}

/// Why credentials could not be loaded, kept or rotated.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot keep tokens in {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} does not hold a usable token ({reason}): remove it to have a new one generated"
    )]
    Stored { path: PathBuf, reason: String },
    #[error(
        "{setting} is configured, so dockhook cannot replace it: set the new value, put the \
         old one in {setting}_previous (valid for token_grace after start) and restart"
    )]
    Configured { setting: &'static str },
    #[error("grace must be at most 30d")]
    Grace,
}

/// The hook token of `source` under the hook secret `secret`: what goes
/// in that source's hook URL.
pub fn hook_token(secret: &Secret, source: &str) -> Secret {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"dockhook hook token\0");
    mac.update(source.as_bytes());
    Secret::new(hex(&mac.finalize().into_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn same(expected: &Secret, given: &[u8]) -> bool {
    bool::from(expected.expose().as_bytes().ct_eq(given))
}

/// A credential in force, with the one it replaced while that is valid.
#[derive(Clone)]
struct Key {
    current: Secret,
    previous: Option<(Secret, SystemTime)>,
    /// Set in the configuration rather than kept by dockhook.
    configured: bool,
}

impl Key {
    /// The values accepted at `now`: the current one and, in its grace,
    /// the previous one.
    fn valid(&self, now: SystemTime) -> impl Iterator<Item = &Secret> {
        let previous = self
            .previous
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(secret, _)| secret);
        std::iter::once(&self.current).chain(previous)
    }

    fn accepts(&self, given: &[u8], now: SystemTime) -> bool {
        self.valid(now)
            .fold(false, |found, secret| same(secret, given) | found)
    }
}

/// What is in force now.
struct Keys {
    hook: Key,
    /// Per source: the hook tokens derived from `hook`'s values.
    hook_tokens: Vec<(&'static str, Key)>,
    api: Key,
    read: Option<Key>,
}

impl Keys {
    fn key(&self, kind: Kind) -> Option<&Key> {
        match kind {
            Kind::Hook => Some(&self.hook),
            Kind::Api => Some(&self.api),
            Kind::Read => self.read.as_ref(),
        }
    }

    fn derive_hook_tokens(hook: &Key, sources: &[&'static str]) -> Vec<(&'static str, Key)> {
        sources
            .iter()
            .map(|&source| {
                let derived = Key {
                    current: hook_token(&hook.current, source),
                    previous: hook
                        .previous
                        .as_ref()
                        .map(|(secret, until)| (hook_token(secret, source), *until)),
                    configured: hook.configured,
                };
                (source, derived)
            })
            .collect()
    }
}

/// A rotation's outcome.
#[derive(Debug)]
pub struct Rotated {
    pub kind: Kind,
    pub token: Secret,
    /// Until when the replaced value stays valid; `None` when there was
    /// none (a first read-only token) or no grace was given.
    pub previous_until: Option<SystemTime>,
}

/// The credentials in force, shared by every request.
pub struct Tokens {
    keys: RwLock<Keys>,
    dir: PathBuf,
    sources: Vec<&'static str>,
    grace: Duration,
}

impl Tokens {
    /// The credentials `settings` configure, the rest read from (or, for
    /// the hook secret and the API token, generated into) `dir`. Also says
    /// which were generated just now, to be announced once.
    pub fn load(
        settings: &Settings,
        dir: &Path,
        sources: &[&'static str],
    ) -> Result<(Self, Vec<Kind>), TokenError> {
        Self::load_at(settings, dir, sources, SystemTime::now())
    }

    fn load_at(
        settings: &Settings,
        dir: &Path,
        sources: &[&'static str],
        now: SystemTime,
    ) -> Result<(Self, Vec<Kind>), TokenError> {
        let mut generated = Vec::new();
        let mut key = |kind: Kind| -> Result<Option<Key>, TokenError> {
            let configured = settings.get(kind);
            if let Some(current) = &configured.current {
                return Ok(Some(Key {
                    current: current.clone(),
                    previous: configured
                        .previous
                        .clone()
                        .map(|previous| (previous, now + settings.grace)),
                    configured: true,
                }));
            }
            let path = dir.join(kind.file());
            let current = match read_stored(&path)? {
                Some(current) => current,
                None if kind == Kind::Read => return Ok(None),
                None => {
                    let token = generate(dir)?;
                    write_replacing(&path, token.expose())?;
                    generated.push(kind);
                    token
                }
            };
            Ok(Some(Key {
                current,
                previous: read_previous(dir, kind, now)?,
                configured: false,
            }))
        };
        let hook = key(Kind::Hook)?.expect("generated when absent");
        let api = key(Kind::Api)?.expect("generated when absent");
        let read = key(Kind::Read)?;
        let keys = Keys {
            hook_tokens: Keys::derive_hook_tokens(&hook, sources),
            hook,
            api,
            read,
        };
        let tokens = Self {
            keys: RwLock::new(keys),
            dir: dir.to_path_buf(),
            sources: sources.to_vec(),
            grace: settings.grace,
        };
        Ok((tokens, generated))
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `given` is `source`'s hook token (or, in its grace, the one
    /// it replaced).
    pub fn hook_accepts(&self, source: &str, given: &str) -> bool {
        let keys = self.keys();
        let now = SystemTime::now();
        keys.hook_tokens
            .iter()
            .find(|(name, _)| *name == source)
            .is_some_and(|(_, key)| key.accepts(given.as_bytes(), now))
    }

    /// What the bearer token `given` may do, if anything.
    pub fn role(&self, given: &str) -> Option<Role> {
        let keys = self.keys();
        let now = SystemTime::now();
        let given = given.as_bytes();
        // Both are compared whatever the first says.
        let admin = keys.api.accepts(given, now);
        let reader = keys
            .read
            .as_ref()
            .is_some_and(|key| key.accepts(given, now));
        if admin {
            Some(Role::Admin)
        } else if reader {
            Some(Role::Reader)
        } else {
            None
        }
    }

    /// The current hook token of `source`, for its URL.
    pub fn hook_token(&self, source: &str) -> Secret {
        hook_token(&self.keys().hook.current, source)
    }

    /// The current value of `kind`, if there is one.
    pub fn current(&self, kind: Kind) -> Option<Secret> {
        self.keys().key(kind).map(|key| key.current.clone())
    }

    /// Every value in force, so the log can redact them all.
    pub fn all(&self) -> Vec<Secret> {
        let keys = self.keys();
        let now = SystemTime::now();
        let mut all: Vec<Secret> = [Some(&keys.hook), Some(&keys.api), keys.read.as_ref()]
            .into_iter()
            .flatten()
            .chain(keys.hook_tokens.iter().map(|(_, key)| key))
            .flat_map(|key| key.valid(now).cloned().collect::<Vec<_>>())
            .collect();
        all.dedup();
        all
    }

    /// Replaces `kind` with a new random value, kept in the data directory;
    /// the old one stays valid for `grace` (this instance's `token_grace`
    /// when `None`). Refused for a credential set in the configuration.
    pub fn rotate(&self, kind: Kind, grace: Option<Duration>) -> Result<Rotated, TokenError> {
        let grace = grace.unwrap_or(self.grace);
        if grace > MAX_GRACE {
            return Err(TokenError::Grace);
        }
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let old = keys.key(kind).cloned();
        if old.as_ref().is_some_and(|key| key.configured) {
            return Err(TokenError::Configured {
                setting: kind.setting(),
            });
        }
        let now = SystemTime::now();
        let token = generate(&self.dir)?;
        let previous = old
            .filter(|_| !grace.is_zero())
            .map(|old| (old.current, now + grace));
        // The old value's grace is on disk before the new value: a crash
        // in between leaves the old value current, never no valid value.
        let previous_path = previous_path(&self.dir, kind);
        match &previous {
            Some((secret, until)) => write_replacing(
                &previous_path,
                &format!("{} {}\n", secret.expose(), unix(*until)),
            )?,
            None => remove(&previous_path)?,
        }
        write_replacing(&self.dir.join(kind.file()), token.expose())?;
        let previous_until = previous.as_ref().map(|(_, until)| *until);
        let key = Key {
            current: token.clone(),
            previous,
            configured: false,
        };
        crate::logging::redact(token.expose());
        match kind {
            Kind::Hook => {
                keys.hook_tokens = Keys::derive_hook_tokens(&key, &self.sources);
                for (_, derived) in &keys.hook_tokens {
                    crate::logging::redact(derived.current.expose());
                }
                keys.hook = key;
            }
            Kind::Api => keys.api = key,
            Kind::Read => keys.read = Some(key),
        }
        tracing::warn!(
            token = kind.as_str(),
            "rotated the {} token; the old one is valid {}",
            kind.as_str(),
            match previous_until {
                Some(_) => format!("for {}", crate::settings::show_duration(grace)),
                None => "no longer".to_string(),
            }
        );
        Ok(Rotated {
            kind,
            token,
            previous_until,
        })
    }
}

/// 256 bits from the OS, in hex.
fn generate(dir: &Path) -> Result<Secret, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::DataDir {
        path: dir.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(Secret::new(hex(&bytes)))
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn previous_path(dir: &Path, kind: Kind) -> PathBuf {
    dir.join(format!("{}.previous", kind.file()))
}

/// The value of `kind` dockhook keeps in `dir`, if it made one; never
/// creates one (for `check-config`, which changes nothing).
pub fn kept(dir: &Path, kind: Kind) -> Result<Option<Secret>, TokenError> {
    read_stored(&dir.join(kind.file()))
}

/// A token kept in `path`, if the file exists.
fn read_stored(path: &Path) -> Result<Option<Secret>, TokenError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = text.trim();
            check(text).map(Some).map_err(|reason| TokenError::Stored {
                path: path.to_path_buf(),
                reason,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TokenError::DataDir {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The replaced value of `kind` kept in the data directory, while valid.
fn read_previous(
    dir: &Path,
    kind: Kind,
    now: SystemTime,
) -> Result<Option<(Secret, SystemTime)>, TokenError> {
    let path = previous_path(dir, kind);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(TokenError::DataDir { path, source }),
    };
    let stored = text.split_once(' ').and_then(|(token, until)| {
        let until = UNIX_EPOCH + Duration::from_secs(until.trim().parse().ok()?);
        Some((check(token).ok()?, until))
    });
    match stored {
        Some((_, until)) if until <= now => {
            remove(&path)?;
            Ok(None)
        }
        Some(previous) => Ok(Some(previous)),
        None => Err(TokenError::Stored {
            path,
            reason: "expected a token and a time".into(),
        }),
    }
}

/// The rules for a token, configured or kept: it goes in URLs, so URL-safe,
/// and long enough not to be guessed.
pub fn check(text: &str) -> Result<Secret, String> {
    let ok = text.len() >= 16
        && text.len() <= 256
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if ok {
        Ok(Secret::new(text))
    } else {
        Err(
            "use 16 to 256 URL-safe characters (letters, digits, - _ . ~); \
             leave it unset to have one generated"
                .into(),
        )
    }
}

/// Writes `contents` to `path`, readable by its owner only, replacing what
/// is there atomically: a reader sees the old file or the new one.
fn write_replacing(path: &Path, contents: &str) -> Result<(), TokenError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let error = |source| TokenError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(error)?;
    let temporary = path.with_extension("new");
    remove(&temporary)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(error)?;
    file.write_all(contents.as_bytes()).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)?;
    // The rename itself is durable once the directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(error)
}

fn remove(path: &Path) -> Result<(), TokenError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(TokenError::DataDir {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCES: &[&str] = &["dockerhub", "generic"];

    fn secret(text: &str) -> Secret {
        Secret::for_tests(text)
    }

    fn configured(current: &str, previous: Option<&str>) -> Configured {
        Configured {
            current: Some(secret(current)),
            previous: previous.map(secret),
        }
    }

    fn load(settings: &Settings, dir: &Path) -> (Tokens, Vec<Kind>) {
        Tokens::load(settings, dir, SOURCES).unwrap()
    }

    #[test]
    fn a_hook_token_opens_its_own_source_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            hook: configured("hook-secret-0123456789", None),
            api: configured("api-token-0123456789", None),
            ..Settings::default()
        };
        let (tokens, generated) = load(&settings, dir.path());
        assert!(generated.is_empty());
        let dockerhub = tokens.hook_token("dockerhub");
        assert_eq!(dockerhub.expose().len(), 64);
        assert!(tokens.hook_accepts("dockerhub", dockerhub.expose()));
        assert!(!tokens.hook_accepts("generic", dockerhub.expose()));
        assert_eq!(tokens.role(dockerhub.expose()), None);
        // The secret itself opens no hook and no API.
        assert!(!tokens.hook_accepts("dockerhub", "hook-secret-0123456789"));
        assert_eq!(tokens.role("hook-secret-0123456789"), None);
        assert_eq!(tokens.role("api-token-0123456789"), Some(Role::Admin));
        assert!(!tokens.hook_accepts("dockerhub", "api-token-0123456789"));
        assert!(!tokens.hook_accepts("unknown", dockerhub.expose()));
        assert_eq!(
            hook_token(&secret("hook-secret-0123456789"), "dockerhub"),
            dockerhub,
            "the URL's token depends on the secret and the source only"
        );
    }

    #[test]
    fn generated_tokens_are_private_kept_and_announced_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (first, generated) = load(&Settings::default(), dir.path());
        assert_eq!(generated, [Kind::Hook, Kind::Api]);
        assert_eq!(
            first.current(Kind::Read),
            None,
            "no read-only token unless asked for"
        );
        for file in ["token", "api_token"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let (second, generated) = load(&Settings::default(), dir.path());
        assert!(generated.is_empty());
        assert_eq!(second.current(Kind::Api), first.current(Kind::Api));
        assert_ne!(first.current(Kind::Api), first.current(Kind::Hook));
    }

    #[test]
    fn a_rotated_token_is_replaced_and_the_old_one_valid_for_its_grace() {
        let dir = tempfile::tempdir().unwrap();
        let (tokens, _) = load(&Settings::default(), dir.path());
        let old_api = tokens.current(Kind::Api).unwrap();
        let old_hook = tokens.hook_token("dockerhub");

        let rotated = tokens
            .rotate(Kind::Api, Some(Duration::from_secs(3600)))
            .unwrap();
        assert_ne!(rotated.token, old_api);
        assert_eq!(tokens.role(rotated.token.expose()), Some(Role::Admin));
        assert_eq!(
            tokens.role(old_api.expose()),
            Some(Role::Admin),
            "in its grace"
        );

        tokens.rotate(Kind::Hook, Some(Duration::ZERO)).unwrap();
        let new_hook = tokens.hook_token("dockerhub");
        assert!(tokens.hook_accepts("dockerhub", new_hook.expose()));
        assert!(
            !tokens.hook_accepts("dockerhub", old_hook.expose()),
            "no grace given"
        );

        // A restart keeps the new values and the old API token's grace.
        let (again, generated) = load(&Settings::default(), dir.path());
        assert!(generated.is_empty());
        assert_eq!(again.role(rotated.token.expose()), Some(Role::Admin));
        assert_eq!(again.role(old_api.expose()), Some(Role::Admin));
        assert!(again.hook_accepts("dockerhub", new_hook.expose()));

        // Past its grace, the old value opens nothing, and its file goes.
        let later = SystemTime::now() + Duration::from_secs(3601);
        let (expired, _) =
            Tokens::load_at(&Settings::default(), dir.path(), SOURCES, later).unwrap();
        assert_eq!(expired.role(old_api.expose()), None);
        assert!(!dir.path().join("api_token.previous").exists());
    }

    #[test]
    fn a_first_read_token_is_made_by_rotation_and_reads_only() {
        let dir = tempfile::tempdir().unwrap();
        let (tokens, _) = load(&Settings::default(), dir.path());
        let rotated = tokens.rotate(Kind::Read, None).unwrap();
        assert_eq!(rotated.previous_until, None, "nothing was replaced");
        assert_eq!(tokens.role(rotated.token.expose()), Some(Role::Reader));
        assert!(!tokens.hook_accepts("dockerhub", rotated.token.expose()));
        let (again, _) = load(&Settings::default(), dir.path());
        assert_eq!(again.role(rotated.token.expose()), Some(Role::Reader));
    }

    #[test]
    fn a_configured_token_is_not_rotated_but_its_previous_value_has_a_grace() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            api: configured("api-token-new-0123456", Some("api-token-old-0123456")),
            grace: Duration::from_secs(60),
            ..Settings::default()
        };
        let now = SystemTime::now();
        let (tokens, _) = Tokens::load_at(&settings, dir.path(), SOURCES, now).unwrap();
        assert_eq!(tokens.role("api-token-old-0123456"), Some(Role::Admin));
        let error = tokens.rotate(Kind::Api, None).unwrap_err();
        assert!(error.to_string().contains("api_token_previous"), "{error}");
        assert_eq!(
            tokens.current(Kind::Api).unwrap().expose(),
            "api-token-new-0123456"
        );
        let (late, _) = Tokens::load_at(
            &settings,
            dir.path(),
            SOURCES,
            now - Duration::from_secs(61),
        )
        .unwrap();
        assert_eq!(
            late.role("api-token-old-0123456"),
            None,
            "grace counted from start"
        );
        assert!(matches!(
            tokens.rotate(Kind::Hook, Some(MAX_GRACE + Duration::from_secs(1))),
            Err(TokenError::Grace)
        ));
    }

    #[test]
    fn a_damaged_token_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("api_token"), "short").unwrap();
        let error = Tokens::load(&Settings::default(), dir.path(), SOURCES)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("api_token") && error.contains("remove it"),
            "{error}"
        );
        std::fs::write(dir.path().join("api_token"), "x".repeat(20)).unwrap();
        std::fs::write(dir.path().join("api_token.previous"), "garbage").unwrap();
        let error = Tokens::load(&Settings::default(), dir.path(), SOURCES)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("api_token.previous"), "{error}");
    }
}
