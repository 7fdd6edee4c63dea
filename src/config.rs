//! Configuration: one typed [`Config`], from an optional TOML file, then the
//! environment (which wins), then validation.
//!
//! This is the only module that reads the environment. Every key has the same
//! name in both places: `grace = "5s"` in the file is `DOCKHOOK_GRACE=5s` in
//! the environment (`owner` is also read from plain `OWNER`, as the tool
//! dockhook replaces used it). Unknown file keys are errors, so a typo cannot
//! silently turn a setting off.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::deploy::{Settings, StrategySetting};
use crate::image_ref::ImageRef;
use crate::retention::Settings as RetentionSettings;
use crate::sources::Settings as SourceSettings;
use crate::store::State;

/// Every setting, with its default and what it means, in the order
/// `check-config` prints them.
const KEYS: &[(&str, &str)] = &[
    ("listen", "address and port the HTTP server binds"),
    (
        "token",
        "secret in the webhook URL and the API bearer token",
    ),
    (
        "owner",
        "comma-separated namespaces allowed to trigger updates",
    ),
    ("dockerhub_registry", "registry Docker Hub events pull from"),
    (
        "registry_host",
        "registry host for distribution notifications (default: as the registry names itself)",
    ),
    (
        "github_secret",
        "GitHub webhook secret; enables /hooks/github",
    ),
    (
        "github_registry",
        "registry GitHub package events pull from",
    ),
    (
        "gitea_secret",
        "Gitea or Forgejo webhook secret; enables /hooks/gitea",
    ),
    (
        "gitea_registry",
        "registry Gitea package events pull from (default: the Gitea host)",
    ),
    (
        "gitlab_token",
        "GitLab webhook secret token; enables /hooks/gitlab",
    ),
    ("gitlab_registry", "registry GitLab events pull from"),
    (
        "harbor_auth",
        "Harbor webhook Authorization header value; enables /hooks/harbor",
    ),
    ("quay_registry", "registry Quay events pull from"),
    (
        "label_enable",
        "only update containers labelled dockhook.enable=true",
    ),
    (
        "grace",
        "how long a new container without healthcheck must keep running",
    ),
    (
        "health_timeout",
        "how long a new container with a healthcheck may take to become healthy",
    ),
    ("strategy", "auto, start-first or stop-first"),
    (
        "hook_timeout",
        "how long a pre-update or post-update hook may run",
    ),
    (
        "data_dir",
        "directory for the history database and the token",
    ),
    ("max_body", "largest accepted webhook body"),
    (
        "history_retention",
        "finished deployments older than this are pruned from the history",
    ),
    (
        "history_keep",
        "deployments of each container kept however old",
    ),
    (
        "replay_window",
        "how long delivery IDs are remembered to drop replays",
    ),
    (
        "failed_image_retention",
        "how long a failed update's image is kept for inspection",
    ),
    ("docker_host", "Docker Engine API endpoint"),
    (
        "docker_config",
        "directory of the Docker config.json with registry logins",
    ),
    ("public_url", "base URL the registry reaches dockhook at"),
    ("log", "log filter (tracing syntax)"),
    (
        "fault_abort_at",
        "testing only: abort right after recording this deployment step",
    ),
];

/// The resolved settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    /// `None`: generate one on first start and keep it in `data_dir`.
    pub token: Option<Secret>,
    /// What the webhook sources need: owners (never empty), registries,
    /// the secrets that turn sources on.
    pub sources: SourceSettings,
    pub label_enable: bool,
    pub grace: Duration,
    pub health_timeout: Duration,
    pub strategy: StrategySetting,
    pub hook_timeout: Duration,
    pub data_dir: PathBuf,
    pub max_body: usize,
    /// How long the history, delivery IDs and failed images are kept.
    pub retention: RetentionSettings,
    pub docker_host: String,
    /// Where `config.json` with registry logins is; `None`: no logins.
    pub docker_config: Option<PathBuf>,
    pub public_url: Option<String>,
    pub log: String,
    /// Fault injection for crash-safety tests; see [`Settings::abort_at`].
    pub fault_abort_at: Option<State>,
}

/// A secret string that never appears whole in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret from a literal, for tests.
    #[cfg(test)]
    pub fn for_tests(text: &str) -> Self {
        Self(text.to_string())
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

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, value) in self.entries() {
            map.entry(&key, &value);
        }
        map.finish()
    }
}

/// An optional setting for display.
fn shown(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "(unset)".into())
}

/// An optional secret for display: masked, or why it matters that it is unset.
fn masked(secret: &Option<Secret>) -> String {
    secret
        .as_ref()
        .map_or_else(|| "(unset: source off)".into(), Secret::masked)
}

/// What is wrong with the configuration, and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("config file {path}: unknown key `{key}`; known keys: {known}")]
    UnknownKey {
        path: PathBuf,
        key: String,
        known: String,
    },
    #[error(
        "config file {path}: key `{key}` must be a string, number, boolean or list of strings"
    )]
    BadType { path: PathBuf, key: String },
    #[error("OWNER is empty: set OWNER (or DOCKHOOK_OWNER, or `owner` in the config file) to the comma-separated Docker Hub namespaces whose pushes may update this host")]
    NoOwner,
    #[error("{key} = {value:?} is invalid: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where a value came from, before validation.
type Raw = BTreeMap<&'static str, String>;

impl Config {
    /// Loads the configuration the way `dockhook` does: the file named by
    /// `path` (or by `DOCKHOOK_CONFIG`), then the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(path, |key| std::env::var(key).ok())
    }

    /// [`Config::load`] with an explicit environment, for tests.
    pub fn load_with(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let path = path.map(Path::to_path_buf).or_else(|| {
            env("DOCKHOOK_CONFIG")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        });
        let mut raw = match &path {
            Some(path) => read_file(path)?,
            None => Raw::new(),
        };
        if let Some(owner) = env("OWNER") {
            raw.insert("owner", owner);
        }
        for (key, _) in KEYS {
            if let Some(value) = env(&format!("DOCKHOOK_{}", key.to_ascii_uppercase())) {
                raw.insert(key, value);
            }
        }
        if !raw.contains_key("docker_host") {
            if let Some(host) = env("DOCKER_HOST").filter(|h| !h.is_empty()) {
                raw.insert("docker_host", host);
            }
        }
        if !raw.contains_key("docker_config") {
            // As the docker CLI finds it: $DOCKER_CONFIG, else ~/.docker.
            let dir = env("DOCKER_CONFIG").filter(|d| !d.is_empty()).or_else(|| {
                env("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| format!("{h}/.docker"))
            });
            if let Some(dir) = dir {
                raw.insert("docker_config", dir);
            }
        }
        if !raw.contains_key("log") {
            if let Some(filter) = env("RUST_LOG").filter(|f| !f.is_empty()) {
                raw.insert("log", filter);
            }
        }
        Self::from_raw(&raw)
    }

    fn from_raw(raw: &Raw) -> Result<Self, ConfigError> {
        let get = |key: &str| raw.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let invalid = |key: &str, value: &str, reason: &str| ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };

        let listen = get("listen").unwrap_or("0.0.0.0:8080");
        let listen = listen
            .parse()
            .map_err(|_| invalid("listen", listen, "expected IP:PORT such as 0.0.0.0:8080"))?;

        let token = get("token").map(validate_token).transpose()?;

        let owners = parse_owners(get("owner").unwrap_or(""))?;

        let registry = |key: &str, text: &str| {
            ImageRef::from_parts(text, "probe", None)
                .map(|image| image.registry)
                .map_err(|e| invalid(key, text, &e.to_string()))
        };
        let optional_registry = |key: &str| get(key).map(|text| registry(key, text)).transpose();
        let dockerhub_registry = registry(
            "dockerhub_registry",
            get("dockerhub_registry").unwrap_or("docker.io"),
        )?;
        let registry_host = optional_registry("registry_host")?;
        let github_registry = registry(
            "github_registry",
            get("github_registry").unwrap_or("ghcr.io"),
        )?;
        let gitea_registry = optional_registry("gitea_registry")?;
        let gitlab_registry = registry(
            "gitlab_registry",
            get("gitlab_registry").unwrap_or("registry.gitlab.com"),
        )?;
        let quay_registry = registry("quay_registry", get("quay_registry").unwrap_or("quay.io"))?;
        let secret = |key: &str| {
            get(key)
                .map(|text| {
                    if text.len() > 1024 {
                        Err(invalid(key, "…", "longer than 1024 characters"))
                    } else {
                        Ok(Secret(text.to_string()))
                    }
                })
                .transpose()
        };
        let github_secret = secret("github_secret")?;
        let gitea_secret = secret("gitea_secret")?;
        let gitlab_token = secret("gitlab_token")?;
        let harbor_auth = secret("harbor_auth")?;

        let label_enable = match get("label_enable").map(str::to_ascii_lowercase).as_deref() {
            None | Some("false" | "0" | "no" | "off") => false,
            Some("true" | "1" | "yes" | "on") => true,
            Some(other) => return Err(invalid("label_enable", other, "expected true or false")),
        };

        let duration = |key: &str, default: &str| {
            let text = get(key).unwrap_or(default);
            parse_duration(text).map_err(|reason| invalid(key, text, reason))
        };
        let grace = duration("grace", "5s")?;
        let health_timeout = duration("health_timeout", "60s")?;
        let hook_timeout = duration("hook_timeout", "60s")?;
        let strategy = get("strategy").unwrap_or("auto");
        let strategy = strategy
            .parse()
            .map_err(|reason: String| invalid("strategy", strategy, &reason))?;
        let fault_abort_at = get("fault_abort_at")
            .map(|step| {
                State::parse(step).filter(|s| !s.is_final()).ok_or_else(|| {
                    invalid(
                        "fault_abort_at",
                        step,
                        "expected a deployment step such as creating",
                    )
                })
            })
            .transpose()?;

        let data_dir = PathBuf::from(get("data_dir").unwrap_or("/var/lib/dockhook"));

        let max_body = get("max_body").unwrap_or("1MiB");
        let max_body =
            parse_size(max_body).map_err(|reason| invalid("max_body", max_body, reason))?;

        let age = |key: &str, default: &str| {
            let text = get(key).unwrap_or(default);
            parse_age(text).map_err(|reason| invalid(key, text, reason))
        };
        let keep = get("history_keep").unwrap_or("20");
        let retention = RetentionSettings {
            history: age("history_retention", "90d")?,
            keep_per_target: keep.parse().map_err(|_| {
                invalid(
                    "history_keep",
                    keep,
                    "expected a number of deployments such as 20",
                )
            })?,
            replay_window: age("replay_window", "7d")?,
            failed_images: age("failed_image_retention", "7d")?,
        };
        if retention.failed_images > retention.history {
            return Err(invalid(
                "failed_image_retention",
                get("failed_image_retention").unwrap_or("7d"),
                "must not be longer than history_retention: the history says which images failed",
            ));
        }

        let docker_host = get("docker_host")
            .unwrap_or("unix:///var/run/docker.sock")
            .to_string();
        if !["unix://", "tcp://", "http://"]
            .iter()
            .any(|scheme| docker_host.starts_with(scheme))
        {
            return Err(invalid(
                "docker_host",
                &docker_host,
                "expected unix:///path/to/docker.sock or tcp://HOST:PORT",
            ));
        }

        let docker_config = get("docker_config").map(PathBuf::from);

        let public_url = get("public_url").map(|url| url.trim_end_matches('/').to_string());
        if let Some(url) = &public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    "public_url",
                    url,
                    "expected an http:// or https:// URL",
                ));
            }
        }

        Ok(Self {
            listen,
            token,
            sources: SourceSettings {
                owners,
                dockerhub_registry,
                registry_host,
                github_secret,
                github_registry,
                gitea_secret,
                gitea_registry,
                gitlab_token,
                gitlab_registry,
                harbor_auth,
                quay_registry,
            },
            label_enable,
            grace,
            health_timeout,
            strategy,
            hook_timeout,
            data_dir,
            max_body,
            retention,
            docker_host,
            docker_config,
            public_url,
            log: get("log").unwrap_or("info").to_string(),
            fault_abort_at,
        })
    }

    /// Returns the configured token, or the one kept in `data_dir`, creating
    /// it (256 bits from the OS RNG) on first start. The flag tells whether it
    /// was just generated.
    pub fn resolve_token(&self) -> Result<(Secret, bool), ConfigError> {
        if let Some(token) = &self.token {
            return Ok((token.clone(), false));
        }
        let path = self.token_path();
        let data_dir_error = |source| ConfigError::DataDir {
            path: self.data_dir.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(stored) => return Ok((validate_token(stored.trim())?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(data_dir_error(e)),
        }
        std::fs::create_dir_all(&self.data_dir).map_err(data_dir_error)?;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| data_dir_error(std::io::Error::other(e.to_string())))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&path, &token).map_err(data_dir_error)?;
        Ok((Secret(token), true))
    }

    /// What the updater needs.
    pub fn update_settings(&self) -> Settings {
        Settings {
            grace: self.grace,
            health_timeout: self.health_timeout,
            strategy: self.strategy,
            hook_timeout: self.hook_timeout,
            abort_at: self.fault_abort_at,
            docker_config: self.docker_config.clone(),
        }
    }

    /// The token kept across restarts when none is configured.
    pub fn token_path(&self) -> PathBuf {
        self.data_dir.join("token")
    }

    /// The SQLite history database.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("dockhook.db")
    }

    /// Base URL for printed hook URLs: `public_url`, or one made from `listen`.
    pub fn base_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| {
            let host = if self.listen.ip().is_unspecified() {
                "YOUR-HOST".to_string()
            } else {
                self.listen.ip().to_string()
            };
            format!("http://{host}:{}", self.listen.port())
        })
    }

    /// Every setting as `(key, display value)`, secrets masked.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        KEYS.iter()
            .map(|(key, _)| {
                let value = match *key {
                    "listen" => self.listen.to_string(),
                    "token" => match &self.token {
                        Some(token) => token.masked(),
                        None => format!("(generated, kept in {})", self.token_path().display()),
                    },
                    "owner" => self.sources.owners.join(","),
                    "dockerhub_registry" => self.sources.dockerhub_registry.clone(),
                    "registry_host" => shown(&self.sources.registry_host),
                    "github_secret" => masked(&self.sources.github_secret),
                    "github_registry" => self.sources.github_registry.clone(),
                    "gitea_secret" => masked(&self.sources.gitea_secret),
                    "gitea_registry" => shown(&self.sources.gitea_registry),
                    "gitlab_token" => masked(&self.sources.gitlab_token),
                    "gitlab_registry" => self.sources.gitlab_registry.clone(),
                    "harbor_auth" => masked(&self.sources.harbor_auth),
                    "quay_registry" => self.sources.quay_registry.clone(),
                    "label_enable" => self.label_enable.to_string(),
                    "grace" => format!("{}s", self.grace.as_secs_f64()),
                    "health_timeout" => format!("{}s", self.health_timeout.as_secs_f64()),
                    "strategy" => self.strategy.to_string(),
                    "hook_timeout" => format!("{}s", self.hook_timeout.as_secs_f64()),
                    "data_dir" => self.data_dir.display().to_string(),
                    "max_body" => format!("{} bytes", self.max_body),
                    "history_retention" => show_age(self.retention.history),
                    "history_keep" => self.retention.keep_per_target.to_string(),
                    "replay_window" => show_age(self.retention.replay_window),
                    "failed_image_retention" => show_age(self.retention.failed_images),
                    "docker_host" => self.docker_host.clone(),
                    "docker_config" => self
                        .docker_config
                        .as_ref()
                        .map_or("(unset: no registry logins)".into(), |d| {
                            d.join("config.json").display().to_string()
                        }),
                    "public_url" => shown(&self.public_url),
                    "log" => self.log.clone(),
                    "fault_abort_at" => self
                        .fault_abort_at
                        .map_or("(unset)", |s| s.as_str())
                        .to_string(),
                    _ => unreachable!("every key in KEYS has a display"),
                };
                (*key, value)
            })
            .collect()
    }
}

fn read_file(path: &Path) -> Result<Raw, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Toml {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
    let mut raw = Raw::new();
    for (key, value) in table {
        let Some(&(known, _)) = KEYS.iter().find(|(k, _)| *k == key) else {
            return Err(ConfigError::UnknownKey {
                path: path.to_path_buf(),
                key,
                known: KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", "),
            });
        };
        let bad_type = || ConfigError::BadType {
            path: path.to_path_buf(),
            key: known.to_string(),
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|item| item.as_str().map(str::to_string).ok_or_else(bad_type))
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            _ => return Err(bad_type()),
        };
        raw.insert(known, value);
    }
    Ok(raw)
}

fn validate_token(token: &str) -> Result<Secret, ConfigError> {
    let ok = token.len() >= 16
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if ok {
        Ok(Secret(token.to_string()))
    } else {
        Err(ConfigError::Invalid {
            key: "token".into(),
            value: Secret(token.to_string()).masked(),
            reason: "use 16 to 256 URL-safe characters (letters, digits, - _ . ~); \
                     leave it unset to have one generated"
                .into(),
        })
    }
}

fn parse_owners(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut owners = Vec::new();
    for owner in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let owner = owner.to_ascii_lowercase();
        // A namespace is one repository path component.
        if ImageRef::from_parts("docker.io", &format!("{owner}/x"), None).is_err()
            || owner.contains('/')
        {
            return Err(ConfigError::Invalid {
                key: "owner".into(),
                value: owner,
                reason: "a namespace is lowercase letters, digits and single separators".into(),
            });
        }
        if !owners.contains(&owner) {
            owners.push(owner);
        }
    }
    if owners.is_empty() {
        return Err(ConfigError::NoOwner);
    }
    Ok(owners)
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
fn show_age(age: Duration) -> String {
    let hours = age.as_secs() / 3600;
    if hours % 24 == 0 {
        format!("{}d", hours / 24)
    } else {
        format!("{hours}h")
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(file: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dockhook.toml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with(file.map(|_| path.as_path()), |k| env.get(k).cloned())
    }

    #[test]
    fn defaults_need_only_an_owner() {
        let config = load(None, &[("OWNER", "alice")]).unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(config.sources.owners, vec!["alice"]);
        assert_eq!(config.sources.dockerhub_registry, "docker.io");
        assert_eq!(config.grace, Duration::from_secs(5));
        assert_eq!(config.max_body, 1024 * 1024);
        assert!(!config.label_enable);
        assert_eq!(config.token, None);
        assert_eq!(config.docker_host, "unix:///var/run/docker.sock");
        assert_eq!(config.strategy, StrategySetting::Auto);
        assert_eq!(config.health_timeout, Duration::from_secs(60));
        assert_eq!(config.fault_abort_at, None);
        assert_eq!(config.retention, RetentionSettings::default());
        let day = Duration::from_secs(86_400);
        assert_eq!(config.retention.history, 90 * day);
        assert_eq!(config.retention.keep_per_target, 20);
        assert_eq!(config.retention.replay_window, 7 * day);
        assert_eq!(config.retention.failed_images, 7 * day);
    }

    #[test]
    fn retention_is_set_in_days_or_hours() {
        let config = load(
            Some("owner = \"a\"\nhistory_retention = \"30d\"\nhistory_keep = 5\n"),
            &[("DOCKHOOK_FAILED_IMAGE_RETENTION", "36h")],
        )
        .unwrap();
        assert_eq!(config.retention.history, Duration::from_secs(30 * 86_400));
        assert_eq!(config.retention.keep_per_target, 5);
        assert_eq!(
            config.retention.failed_images,
            Duration::from_secs(36 * 3600)
        );
        let shown: Vec<_> = config.entries();
        assert!(
            shown.contains(&("history_retention", "30d".into())),
            "{shown:?}"
        );
        assert!(shown.contains(&("failed_image_retention", "36h".into())));
        assert_eq!(parse_age("2").unwrap(), Duration::from_secs(2 * 86_400));
    }

    #[test]
    fn empty_owner_is_refused_with_advice() {
        for env in [&[][..], &[("OWNER", "")], &[("OWNER", " , ")]] {
            let err = load(None, env).unwrap_err();
            assert!(matches!(err, ConfigError::NoOwner));
            assert!(err.to_string().contains("set OWNER"));
        }
    }

    #[test]
    fn owners_are_split_trimmed_lowercased_and_deduplicated() {
        let config = load(None, &[("OWNER", " Alice, bob ,alice")]).unwrap();
        assert_eq!(config.sources.owners, vec!["alice", "bob"]);
        assert!(load(None, &[("OWNER", "alice/site")]).is_err());
        assert!(load(None, &[("OWNER", "al ice")]).is_err());
    }

    #[test]
    fn file_then_env_and_env_wins() {
        let file = r#"
            owner = ["alice", "bob"]
            grace = "2s"
            label_enable = true
            max_body = 4096
            dockerhub_registry = "127.0.0.1:5000"
        "#;
        let config = load(Some(file), &[("DOCKHOOK_GRACE", "750ms")]).unwrap();
        assert_eq!(config.sources.owners, vec!["alice", "bob"]);
        assert_eq!(config.grace, Duration::from_millis(750));
        assert!(config.label_enable);
        assert_eq!(config.max_body, 4096);
        assert_eq!(config.sources.dockerhub_registry, "127.0.0.1:5000");
        let config = load(
            Some(file),
            &[("DOCKHOOK_OWNER", "carol"), ("OWNER", "dave")],
        )
        .unwrap();
        assert_eq!(
            config.sources.owners,
            vec!["carol"],
            "DOCKHOOK_OWNER wins over OWNER"
        );
    }

    #[test]
    fn config_file_from_env_var() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "owner = \"alice\"\n").unwrap();
        let path_text = path.display().to_string();
        let config = Config::load_with(None, |k| {
            (k == "DOCKHOOK_CONFIG").then(|| path_text.clone())
        })
        .unwrap();
        assert_eq!(config.sources.owners, vec!["alice"]);
    }

    #[test]
    fn file_errors_name_the_file_and_the_key() {
        let err = load(Some("owner = \"a\"\ngrase = \"1s\"\n"), &[]).unwrap_err();
        assert!(err.to_string().contains("unknown key `grase`"), "{err}");
        let err = load(Some("owner = "), &[]).unwrap_err();
        assert!(err.to_string().contains("not valid TOML"), "{err}");
        let err = load(Some("owner = { a = 1 }"), &[]).unwrap_err();
        assert!(err.to_string().contains("must be a string"), "{err}");
        let err = Config::load_with(Some(Path::new("/nonexistent/x.toml")), |_| None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.toml"), "{err}");
    }

    #[test]
    fn bad_values_say_what_is_expected() {
        for (key, value, needle) in [
            ("DOCKHOOK_LISTEN", "8080", "IP:PORT"),
            ("DOCKHOOK_GRACE", "soon", "duration"),
            ("DOCKHOOK_MAX_BODY", "1GiB", "size"),
            ("DOCKHOOK_MAX_BODY", "10", "between"),
            ("DOCKHOOK_LABEL_ENABLE", "maybe", "true or false"),
            ("DOCKHOOK_TOKEN", "short", "16 to 256"),
            ("DOCKHOOK_TOKEN", "has/slash/in/it/xxxxxxxx", "URL-safe"),
            ("DOCKHOOK_DOCKERHUB_REGISTRY", "bad host", "registry"),
            ("DOCKHOOK_DOCKER_HOST", "/var/run/docker.sock", "unix://"),
            ("DOCKHOOK_PUBLIC_URL", "example.com", "http"),
            ("DOCKHOOK_STRATEGY", "rolling", "start-first"),
            ("DOCKHOOK_HEALTH_TIMEOUT", "1y", "duration"),
            ("DOCKHOOK_FAULT_ABORT_AT", "succeeded", "deployment step"),
            ("DOCKHOOK_HISTORY_RETENTION", "3 weeks", "90d"),
            ("DOCKHOOK_REPLAY_WINDOW", "0d", "between 1h"),
            ("DOCKHOOK_HISTORY_KEEP", "-1", "number of deployments"),
            (
                "DOCKHOOK_FAILED_IMAGE_RETENTION",
                "100d",
                "history_retention",
            ),
        ] {
            let err = load(None, &[("OWNER", "alice"), (key, value)]).unwrap_err();
            assert!(err.to_string().contains(needle), "{key}={value}: {err}");
        }
    }

    #[test]
    fn token_is_masked_everywhere() {
        let token = "0123456789abcdefSECRET";
        let config = load(None, &[("OWNER", "a"), ("DOCKHOOK_TOKEN", token)]).unwrap();
        let shown = format!("{config:?} {:?}", config.entries());
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("0123…"), "{shown}");
    }

    #[test]
    fn generated_token_is_kept_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data_text = data.display().to_string();
        let config = Config::load_with(None, |k| match k {
            "OWNER" => Some("alice".into()),
            "DOCKHOOK_DATA_DIR" => Some(data_text.clone()),
            _ => None,
        })
        .unwrap();
        let (first, created) = config.resolve_token().unwrap();
        assert!(created);
        assert_eq!(first.expose().len(), 64);
        assert!(first.expose().bytes().all(|b| b.is_ascii_hexdigit()));
        let mode = std::fs::metadata(config.token_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, created) = config.resolve_token().unwrap();
        assert!(!created);
        assert_eq!(first, second);
    }

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
}
