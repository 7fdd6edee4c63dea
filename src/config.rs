//! Configuration: one typed [`Config`], from an optional TOML file, then the
//! environment (which wins), then validation.
//!
//! This is the only module that reads the environment, and the only one that
//! knows every setting. It owns no settings type of its own beyond the
//! wiring ([`Config`]): each module that uses settings owns their type
//! ([`sources::Settings`], [`deploy::Settings`]), built from the values in
//! [`crate::settings`]; this module reads the file and the environment and
//! assembles them. Nothing below it imports it.
//!
//! Every setting is defined once, in [`SETTINGS`]: its file key, its
//! environment variables, the container label that overrides it, its
//! default, what it means, whether it is secret, and how its text becomes
//! the field of the type that uses it. Loading, `dockhook check-config` and
//! the README's configuration table (`dockhook config-table`; a test keeps
//! the README equal to it) all come from that table. A key has the same name
//! in both places: `grace = "5s"` in the file is `DOCKHOOK_GRACE=5s` in the
//! environment. Unknown file keys are errors, so a typo cannot silently turn
//! a setting off.
//!
//! ## Adding a setting
//!
//! 1. Add the field to the settings type of the module that uses it.
//! 2. Add one [`Setting`] to [`SETTINGS`]: key, environment names, default,
//!    help, `apply` (text to field) and `show` (field to text).
//! 3. Run `UPDATE_README=1 cargo test --lib readme` to rewrite the README's
//!    table (without it, that test fails until the README matches).
//!
//! The file key, the environment variables, `check-config` and the README
//! follow from the entry; nothing else changes.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::deploy::{
    self,
    policy::{HEALTH_TIMEOUT_LABEL, STRATEGY_LABEL},
};
use crate::image_ref::ImageRef;
use crate::notify;
use crate::retention::Settings as RetentionSettings;
use crate::settings::{parse_age, parse_duration, parse_size, show_age, show_duration, Secret};
use crate::sources;
use crate::tokens::Kind;

/// The resolved settings: each module's settings type, and the wiring's.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The hook secret, the API and read-only tokens, and the values they
    /// replace.
    pub tokens: crate::tokens::Settings,
    /// What the webhook sources need: owners (never empty), registries,
    /// the secrets that turn sources on.
    pub sources: sources::Settings,
    /// What the updater needs: strategy, health gate, hooks, logins.
    pub update: deploy::Settings,
    // The rest is handed out by the wiring (`app`) as it starts the parts.
    pub label_enable: bool,
    pub data_dir: PathBuf,
    pub max_body: usize,
    /// How long the history, delivery IDs and failed images are kept.
    pub retention: RetentionSettings,
    pub docker_host: String,
    /// TLS to a `tcp://` engine, with the certificates in
    /// [`Config::docker_tls_dir`].
    pub docker_tls_verify: bool,
    pub docker_cert_path: Option<PathBuf>,
    pub public_url: Option<String>,
    /// HTTPS on the listener: certificate files or ACME; plain HTTP when
    /// none is set.
    pub tls: crate::tls::Settings,
    pub log: String,
    pub log_format: crate::logging::Format,
    /// Who may read `/metrics`.
    pub metrics: crate::metrics::Settings,
    /// How long shutdown waits for the deployment under way.
    pub shutdown_timeout: Duration,
    /// The notification service URLs.
    pub notify: notify::Settings,
    /// How often the registries are asked what changed.
    pub reconcile: crate::reconcile::Settings,
    /// Who a client is (trusted proxies).
    pub abuse: crate::abuse::Settings,
}

/// What `dockhook status` and the other client commands read from the
/// configuration: where the server listens and how to prove who they are.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub listen: SocketAddr,
    /// The configured API token (`DOCKHOOK_API_TOKEN`), if any.
    pub api_token: Option<Secret>,
    /// Where the server keeps the API token it generated when none is set.
    pub api_token_path: PathBuf,
    /// Whether, and with which certificate, the server speaks TLS.
    pub tls: crate::tls::Mode,
}

/// One setting, everything about it in one place.
pub struct Setting {
    /// Its key in the TOML file and in `check-config`.
    pub key: &'static str,
    /// Environment variables that set it over the file, strongest first;
    /// the first one set wins, even empty. `DOCKHOOK_` and the key in
    /// capitals comes first; an older name people know (`OWNER`) last, and
    /// messages name that one.
    pub env: &'static [&'static str],
    /// Other tools' variables, read only when neither `env` nor the file
    /// sets it, and only when not empty (`DOCKER_HOST`, `RUST_LOG`).
    pub env_fallback: &'static [&'static str],
    /// The container label that overrides it for one container.
    pub label: Option<&'static str>,
    pub default: DefaultValue,
    /// What it means, in Markdown, for the README.
    pub help: &'static str,
    /// Masked in `check-config` and in error messages.
    pub secret: bool,
    /// Parses the text (trimmed, never empty) into its field.
    apply: fn(&mut Config, &str) -> Result<(), Problem>,
    /// The value in force, for `check-config`; secrets masked.
    show: fn(&Config) -> String,
}

/// What a setting is when nothing sets it.
#[derive(Debug, Clone, Copy)]
pub enum DefaultValue {
    /// This text, parsed like a given value: the README's default is the
    /// one in force.
    Text(&'static str),
    /// Nothing: loading fails, saying what to set.
    Required,
    /// Unset; the text says, for the README, what that means.
    Unset(&'static str),
    /// This directory under `$HOME`, as other tools find theirs; unset
    /// without a home.
    Home(&'static str),
}

/// Why a setting's text was refused.
#[derive(Debug)]
enum Problem {
    /// The text says what was expected.
    Invalid(String),
    /// It has no value after all (`OWNER=" , "`).
    Empty,
}

impl From<&str> for Problem {
    fn from(reason: &str) -> Self {
        Self::Invalid(reason.to_string())
    }
}

/// For values any text is (a path, a log filter).
impl From<std::convert::Infallible> for Problem {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl From<String> for Problem {
    fn from(reason: String) -> Self {
        Self::Invalid(reason)
    }
}

/// Every setting, in the order `check-config` and the README list them.
pub static SETTINGS: &[Setting] = &[
    Setting {
        key: "owner",
        env: &["DOCKHOOK_OWNER", "OWNER"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Required,
        help: "the comma-separated Docker Hub namespaces whose pushes may update this host",
        secret: false,
        apply: |c, text| set(&mut c.sources.owners, owners(text)),
        show: |c| c.sources.owners.join(","),
    },
    Setting {
        key: "token",
        env: &["DOCKHOOK_TOKEN"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("generated"),
        help: "the hook secret: each hook URL's token is derived from it, one per source, and \
               opens that source's hook and nothing else; when unset, 256 random bits are \
               generated once and kept in `DATA_DIR/token`; never logged \
               (`dockhook check-config --show-token` prints the hook URLs)",
        secret: true,
        apply: |c, text| set(&mut c.tokens.hook.current, token(text).map(Some)),
        show: |c| show_token(c, Kind::Hook),
    },
    Setting {
        key: "api_token",
        env: &["DOCKHOOK_API_TOKEN"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("generated"),
        help: "the API's bearer token, also the status page's login and the CLI's token; \
               when unset, generated once and kept in `DATA_DIR/api_token`",
        secret: true,
        apply: |c, text| set(&mut c.tokens.api.current, token(text).map(Some)),
        show: |c| show_token(c, Kind::Api),
    },
    Setting {
        key: "read_token",
        env: &["DOCKHOOK_READ_TOKEN"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("none, or the one `dockhook rotate-token read` made"),
        help: "a read-only bearer token for dashboards: it reads the API, `/metrics` and the \
               status page, and can change nothing",
        secret: true,
        apply: |c, text| set(&mut c.tokens.read.current, token(text).map(Some)),
        show: |c| show_token(c, Kind::Read),
    },
    Setting {
        key: "token_previous",
        env: &["DOCKHOOK_TOKEN_PREVIOUS"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("none"),
        help: "the hook secret `token` replaces, whose hook URLs stay valid for `token_grace` \
               after start",
        secret: true,
        apply: |c, text| set(&mut c.tokens.hook.previous, token(text).map(Some)),
        show: |c| previous(&c.tokens.hook.previous),
    },
    Setting {
        key: "api_token_previous",
        env: &["DOCKHOOK_API_TOKEN_PREVIOUS"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("none"),
        help: "the API token `api_token` replaces, valid for `token_grace` after start",
        secret: true,
        apply: |c, text| set(&mut c.tokens.api.previous, token(text).map(Some)),
        show: |c| previous(&c.tokens.api.previous),
    },
    Setting {
        key: "read_token_previous",
        env: &["DOCKHOOK_READ_TOKEN_PREVIOUS"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("none"),
        help: "the read-only token `read_token` replaces, valid for `token_grace` after start",
        secret: true,
        apply: |c, text| set(&mut c.tokens.read.previous, token(text).map(Some)),
        show: |c| previous(&c.tokens.read.previous),
    },
    Setting {
        key: "token_grace",
        env: &["DOCKHOOK_TOKEN_GRACE"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("24h"),
        help: "how long a replaced token stays valid: a `*_previous` one from start, a rotated \
               one from its rotation (`dockhook rotate-token` may give another); at most 30d",
        secret: false,
        apply: |c, text| set(&mut c.tokens.grace, crate::tokens::parse_grace(text)),
        show: |c| match c.tokens.grace.as_secs() {
            secs if secs > 0 && secs % 86_400 == 0 => show_age(c.tokens.grace),
            _ => show_duration(c.tokens.grace),
        },
    },
    Setting {
        key: "listen",
        env: &["DOCKHOOK_LISTEN"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("0.0.0.0:8080"),
        help: "address and port the server binds",
        secret: false,
        apply: |c, text| {
            let listen = text.parse();
            set(
                &mut c.listen,
                listen.map_err(|_| "expected IP:PORT such as 0.0.0.0:8080"),
            )
        },
        show: |c| c.listen.to_string(),
    },
    Setting {
        key: "trusted_proxies",
        env: &["DOCKHOOK_TRUSTED_PROXIES"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("none: `X-Forwarded-For` is ignored"),
        help: "reverse proxies in front of dockhook (comma-separated IPs or CIDR networks): \
               only from these is `X-Forwarded-For` believed, read from the right, to find \
               the client address that the failed-authentication limit counts",
        secret: false,
        apply: |c, text| {
            set(
                &mut c.abuse.trusted_proxies,
                crate::abuse::TrustedProxies::parse(text),
            )
        },
        show: |c| c.abuse.trusted_proxies.to_string(),
    },
    Setting {
        key: "public_url",
        env: &["DOCKHOOK_PUBLIC_URL"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("—"),
        help: "base URL the registries reach dockhook at, for the printed hook URLs",
        secret: false,
        apply: |c, text| set(&mut c.public_url, url(text).map(Some)),
        show: |c| shown(&c.public_url),
    },
    Setting {
        key: "tls_cert",
        env: &["DOCKHOOK_TLS_CERT"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("plain HTTP"),
        help: "PEM certificate chain (leaf first) to serve HTTPS with, instead of plain HTTP; \
               with `tls_key`. Reloaded within seconds when the file changes (a renewal); a \
               pair that does not load leaves the old one serving",
        secret: false,
        apply: |c, text| set(&mut c.tls.cert, text.parse().map(Some)),
        show: |c| shown_path(&c.tls.cert),
    },
    Setting {
        key: "tls_key",
        env: &["DOCKHOOK_TLS_KEY"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("—"),
        help: "PEM private key of `tls_cert`",
        secret: false,
        apply: |c, text| set(&mut c.tls.key, text.parse().map(Some)),
        show: |c| shown_path(&c.tls.key),
    },
    Setting {
        key: "acme_domain",
        env: &["DOCKHOOK_ACME_DOMAIN"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("no ACME"),
        help: "comma-separated domain names to obtain a certificate for over ACME (TLS-ALPN-01 \
               on the listener, which must be reachable on port 443 at those names), cached in \
               `DATA_DIR/acme` and renewed before it expires; with `acme_email`; not with \
               `tls_cert`",
        secret: false,
        apply: |c, text| {
            let domains = crate::tls::parse_domains(text).and_then(|domains| match domains {
                domains if domains.is_empty() => Err("expected a domain name".to_string()),
                domains => Ok(domains),
            });
            set(&mut c.tls.acme_domains, domains)
        },
        show: |c| match &c.tls.acme_domains[..] {
            [] => "(unset)".into(),
            domains => domains.join(","),
        },
    },
    Setting {
        key: "acme_email",
        env: &["DOCKHOOK_ACME_EMAIL"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("—"),
        help: "contact address for the ACME account (expiry warnings)",
        secret: false,
        apply: |c, text| set(&mut c.tls.acme_email, email(text).map(Some)),
        show: |c| shown(&c.tls.acme_email),
    },
    Setting {
        key: "acme_directory",
        env: &["DOCKHOOK_ACME_DIRECTORY"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text(crate::tls::LETS_ENCRYPT),
        help: "the ACME server's directory URL (Let's Encrypt staging: \
               `https://acme-staging-v02.api.letsencrypt.org/directory`)",
        secret: false,
        apply: |c, text| set(&mut c.tls.acme_directory, https_url(text)),
        show: |c| c.tls.acme_directory.clone(),
    },
    Setting {
        key: "acme_ca",
        env: &["DOCKHOOK_ACME_CA"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("the Web PKI's roots only"),
        help: "PEM CA certificate to trust for `acme_directory` besides the Web PKI's (a \
               private ACME server)",
        secret: false,
        apply: |c, text| set(&mut c.tls.acme_ca, text.parse().map(Some)),
        show: |c| shown_path(&c.tls.acme_ca),
    },
    Setting {
        key: "dockerhub_registry",
        env: &["DOCKHOOK_DOCKERHUB_REGISTRY"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("docker.io"),
        help: "registry that Docker Hub events pull from (a local mirror, or a test registry)",
        secret: false,
        apply: |c, text| set(&mut c.sources.dockerhub_registry, registry(text)),
        show: |c| c.sources.dockerhub_registry.clone(),
    },
    Setting {
        key: "registry_host",
        env: &["DOCKHOOK_REGISTRY_HOST"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("the host the notification names"),
        help: "registry host that distribution notifications pull from",
        secret: false,
        apply: |c, text| set(&mut c.sources.registry_host, registry(text).map(Some)),
        show: |c| shown(&c.sources.registry_host),
    },
    Setting {
        key: "github_secret",
        env: &["DOCKHOOK_GITHUB_SECRET"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("— (source off)"),
        help: "GitHub webhook secret; turns `/hooks/github` on",
        secret: true,
        apply: |c, text| set(&mut c.sources.github_secret, secret(text).map(Some)),
        show: |c| masked(&c.sources.github_secret),
    },
    Setting {
        key: "github_registry",
        env: &["DOCKHOOK_GITHUB_REGISTRY"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("ghcr.io"),
        help: "registry that GitHub package events pull from",
        secret: false,
        apply: |c, text| set(&mut c.sources.github_registry, registry(text)),
        show: |c| c.sources.github_registry.clone(),
    },
    Setting {
        key: "gitea_secret",
        env: &["DOCKHOOK_GITEA_SECRET"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("— (source off)"),
        help: "Gitea or Forgejo webhook secret; turns `/hooks/gitea` on",
        secret: true,
        apply: |c, text| set(&mut c.sources.gitea_secret, secret(text).map(Some)),
        show: |c| masked(&c.sources.gitea_secret),
    },
    Setting {
        key: "gitea_registry",
        env: &["DOCKHOOK_GITEA_REGISTRY"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("the Gitea host"),
        help: "registry that Gitea package events pull from",
        secret: false,
        apply: |c, text| set(&mut c.sources.gitea_registry, registry(text).map(Some)),
        show: |c| shown(&c.sources.gitea_registry),
    },
    Setting {
        key: "gitlab_token",
        env: &["DOCKHOOK_GITLAB_TOKEN"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("— (source off)"),
        help: "the `X-Gitlab-Token` GitLab sends; turns `/hooks/gitlab` on",
        secret: true,
        apply: |c, text| set(&mut c.sources.gitlab_token, secret(text).map(Some)),
        show: |c| masked(&c.sources.gitlab_token),
    },
    Setting {
        key: "gitlab_registry",
        env: &["DOCKHOOK_GITLAB_REGISTRY"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("registry.gitlab.com"),
        help: "registry that GitLab events pull from",
        secret: false,
        apply: |c, text| set(&mut c.sources.gitlab_registry, registry(text)),
        show: |c| c.sources.gitlab_registry.clone(),
    },
    Setting {
        key: "harbor_auth",
        env: &["DOCKHOOK_HARBOR_AUTH"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("— (source off)"),
        help: "the `Authorization` header Harbor sends; turns `/hooks/harbor` on",
        secret: true,
        apply: |c, text| set(&mut c.sources.harbor_auth, secret(text).map(Some)),
        show: |c| masked(&c.sources.harbor_auth),
    },
    Setting {
        key: "quay_registry",
        env: &["DOCKHOOK_QUAY_REGISTRY"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("quay.io"),
        help: "registry that Quay events pull from",
        secret: false,
        apply: |c, text| set(&mut c.sources.quay_registry, registry(text)),
        show: |c| c.sources.quay_registry.clone(),
    },
    Setting {
        key: "generic_images",
        env: &["DOCKHOOK_GENERIC_IMAGES"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("the owners' Docker Hub namespaces (`owner/*`)"),
        help: "comma-separated image patterns the generic hook may name (`registry.example.com/team/*`, \
               `alice/*`; `*` matches any characters); any other image is refused, so the \
               generic hook's token cannot deploy an image outside them",
        secret: false,
        apply: |c, text| set(&mut c.sources.generic_images, image_patterns(text).map(Some)),
        show: |c| match &c.sources.generic_images {
            Some(patterns) => patterns.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            None => c
                .sources
                .owners
                .iter()
                .map(|owner| format!("{}/{owner}/*", c.sources.dockerhub_registry))
                .collect::<Vec<_>>()
                .join(","),
        },
    },
    Setting {
        key: "label_enable",
        env: &["DOCKHOOK_LABEL_ENABLE"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("false"),
        help: "only update containers labelled `dockhook.enable=true`",
        secret: false,
        apply: |c, text| set(&mut c.label_enable, boolean(text)),
        show: |c| c.label_enable.to_string(),
    },
    Setting {
        key: "strategy",
        env: &["DOCKHOOK_STRATEGY"],
        env_fallback: &[],
        label: Some(STRATEGY_LABEL),
        default: DefaultValue::Text("auto"),
        help: "`auto`, `start-first` or `stop-first`",
        secret: false,
        apply: |c, text| set(&mut c.update.strategy, text.parse()),
        show: |c| c.update.strategy.to_string(),
    },
    Setting {
        key: "mode",
        env: &["DOCKHOOK_MODE"],
        env_fallback: &[],
        label: Some(crate::deploy::mode::MODE_LABEL),
        default: DefaultValue::Text("auto"),
        help: "what a new image does: `auto` deploys it, `approve` waits for a person to approve it, `monitor` only records it as available",
        secret: false,
        apply: |c, text| set(&mut c.update.mode, text.parse()),
        show: |c| c.update.mode.to_string(),
    },
    Setting {
        key: "delay",
        env: &["DOCKHOOK_DELAY"],
        env_fallback: &[],
        label: Some(crate::deploy::mode::DELAY_LABEL),
        default: DefaultValue::Text("0s"),
        help: "deploy a digest only once it has been the newest for this long (`10m`); a newer push restarts the wait",
        secret: false,
        apply: |c, text| set(&mut c.update.delay, parse_duration(text)),
        show: |c| seconds(c.update.delay),
    },
    Setting {
        key: "reconcile_interval",
        env: &["DOCKHOOK_RECONCILE_INTERVAL"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("6h"),
        help: "at start and this often, ask the registries for the digest of every watched image and deploy a change as a webhook would, for pushes whose webhook was lost; `0` turns it off (see [Reconcile](#reconcile))",
        secret: false,
        apply: |c, text| set(&mut c.reconcile.interval, parse_duration(text)),
        show: |c| match c.reconcile.interval {
            Duration::ZERO => "0s (off)".to_string(),
            interval => crate::settings::show_duration(interval),
        },
    },
    Setting {
        key: "keep_images",
        env: &["DOCKHOOK_KEEP_IMAGES"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("1"),
        help: "images of earlier successful deployments kept per container, so a rollback needs no pull; older ones are removed",
        secret: false,
        apply: |c, text| {
            let keep = text
                .parse()
                .map_err(|_| "expected a number of images such as 1");
            set(&mut c.update.keep_images, keep)
        },
        show: |c| c.update.keep_images.to_string(),
    },
    Setting {
        key: "grace",
        env: &["DOCKHOOK_GRACE"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("5s"),
        help: "how long a new container without healthcheck must keep running",
        secret: false,
        apply: |c, text| set(&mut c.update.grace, parse_duration(text)),
        show: |c| seconds(c.update.grace),
    },
    Setting {
        key: "health_timeout",
        env: &["DOCKHOOK_HEALTH_TIMEOUT"],
        env_fallback: &[],
        label: Some(HEALTH_TIMEOUT_LABEL),
        default: DefaultValue::Text("60s"),
        help: "how long a new container with a healthcheck may take to become healthy",
        secret: false,
        apply: |c, text| set(&mut c.update.health_timeout, parse_duration(text)),
        show: |c| seconds(c.update.health_timeout),
    },
    Setting {
        key: "hook_timeout",
        env: &["DOCKHOOK_HOOK_TIMEOUT"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("60s"),
        help: "how long a pre- or post-update hook may run",
        secret: false,
        apply: |c, text| set(&mut c.update.hook_timeout, parse_duration(text)),
        show: |c| seconds(c.update.hook_timeout),
    },
    Setting {
        key: "shutdown_timeout",
        env: &["DOCKHOOK_SHUTDOWN_TIMEOUT"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("60s"),
        help: "how long shutdown waits for the update under way; what is left is finished or undone at the next start (give `docker stop` at least this long)",
        secret: false,
        apply: |c, text| set(&mut c.shutdown_timeout, parse_duration(text)),
        show: |c| seconds(c.shutdown_timeout),
    },
    Setting {
        key: "notify",
        env: &["DOCKHOOK_NOTIFY"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("— (no notifications)"),
        help: "space-separated notification service URLs in shoutrrr's formats (`slack://…`, \
               `discord://…`, `smtp://…`, `generic+https://…`; see [Notifications](#notifications)); \
               `?events=failed,rolled_back` picks what a URL hears about",
        secret: true,
        apply: |c, text| set(&mut c.notify, notify::Settings::parse(text)),
        show: |c| c.notify.shown(),
    },
    Setting {
        key: "data_dir",
        env: &["DOCKHOOK_DATA_DIR"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("/var/lib/dockhook"),
        help: "history database and generated tokens (`/data` in the image)",
        secret: false,
        apply: |c, text| set(&mut c.data_dir, text.parse()),
        show: |c| c.data_dir.display().to_string(),
    },
    Setting {
        key: "max_body",
        env: &["DOCKHOOK_MAX_BODY"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("1MiB"),
        help: "largest webhook body accepted",
        secret: false,
        apply: |c, text| set(&mut c.max_body, parse_size(text)),
        show: |c| format!("{} bytes", c.max_body),
    },
    Setting {
        key: "history_retention",
        env: &["DOCKHOOK_HISTORY_RETENTION"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("90d"),
        help: "finished deployments older than this are pruned from the history (`90d`, `36h`)",
        secret: false,
        apply: |c, text| set(&mut c.retention.history, parse_age(text)),
        show: |c| show_age(c.retention.history),
    },
    Setting {
        key: "history_keep",
        env: &["DOCKHOOK_HISTORY_KEEP"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("20"),
        help: "deployments of each container kept however old",
        secret: false,
        apply: |c, text| {
            let keep = text
                .parse()
                .map_err(|_| "expected a number of deployments such as 20");
            set(&mut c.retention.keep_per_target, keep)
        },
        show: |c| c.retention.keep_per_target.to_string(),
    },
    Setting {
        key: "replay_window",
        env: &["DOCKHOOK_REPLAY_WINDOW"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("7d"),
        help: "how long handled delivery IDs are remembered, to drop replays",
        secret: false,
        apply: |c, text| set(&mut c.retention.replay_window, parse_age(text)),
        show: |c| show_age(c.retention.replay_window),
    },
    Setting {
        key: "failed_image_retention",
        env: &["DOCKHOOK_FAILED_IMAGE_RETENTION"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("7d"),
        help: "how long a failed update's image is kept for inspection; at most `history_retention`",
        secret: false,
        apply: |c, text| set(&mut c.retention.failed_images, parse_age(text)),
        show: |c| show_age(c.retention.failed_images),
    },
    Setting {
        key: "docker_host",
        env: &["DOCKHOOK_DOCKER_HOST"],
        env_fallback: &["DOCKER_HOST"],
        label: None,
        default: DefaultValue::Text("unix:///var/run/docker.sock"),
        help: "Docker Engine API endpoint",
        secret: false,
        apply: |c, text| set(&mut c.docker_host, docker_host(text)),
        show: |c| c.docker_host.clone(),
    },
    Setting {
        key: "docker_tls_verify",
        env: &["DOCKHOOK_DOCKER_TLS_VERIFY"],
        env_fallback: &["DOCKER_TLS_VERIFY"],
        label: None,
        default: DefaultValue::Text("false"),
        help: "talk to a `tcp://` `docker_host` over TLS, verifying the engine's certificate against `ca.pem` and presenting `cert.pem` and `key.pem`, all from `docker_cert_path`, as `docker --tlsverify` does",
        secret: false,
        apply: |c, text| set(&mut c.docker_tls_verify, boolean(text)),
        show: |c| c.docker_tls_verify.to_string(),
    },
    Setting {
        key: "docker_cert_path",
        env: &["DOCKHOOK_DOCKER_CERT_PATH"],
        env_fallback: &["DOCKER_CERT_PATH"],
        label: None,
        default: DefaultValue::Unset("the `docker_config` directory, as for the docker CLI"),
        help: "directory of `ca.pem`, `cert.pem` and `key.pem` for `docker_tls_verify`",
        secret: false,
        apply: |c, text| set(&mut c.docker_cert_path, text.parse().map(Some)),
        show: |c| {
            c.docker_tls_dir()
                .map_or("(unset)".into(), |dir| dir.display().to_string())
        },
    },
    Setting {
        key: "docker_config",
        env: &["DOCKHOOK_DOCKER_CONFIG"],
        env_fallback: &["DOCKER_CONFIG"],
        label: None,
        default: DefaultValue::Home(".docker"),
        help: "directory of the `config.json` with registry logins",
        secret: false,
        apply: |c, text| set(&mut c.update.docker_config, text.parse().map(Some)),
        show: |c| {
            c.update
                .docker_config
                .as_ref()
                .map_or("(unset: no registry logins)".into(), |dir| {
                    dir.join("config.json").display().to_string()
                })
        },
    },
    Setting {
        key: "log",
        env: &["DOCKHOOK_LOG"],
        env_fallback: &["RUST_LOG"],
        label: None,
        default: DefaultValue::Text("info"),
        help: "log filter (`tracing` syntax: `debug`, `info,dockhook=debug`)",
        secret: false,
        apply: |c, text| set(&mut c.log, text.parse()),
        show: |c| c.log.clone(),
    },
    Setting {
        key: "log_format",
        env: &["DOCKHOOK_LOG_FORMAT"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("text"),
        help: "`text` (a line per event) or `json` (one JSON object per line)",
        secret: false,
        apply: |c, text| set(&mut c.log_format, text.parse()),
        show: |c| c.log_format.to_string(),
    },
    Setting {
        key: "metrics_token",
        env: &["DOCKHOOK_METRICS_TOKEN"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Unset("—"),
        help: "a bearer token that reads `/metrics` and nothing else (the API and read-only tokens read it too); 16 to 256 URL-safe characters",
        secret: true,
        apply: |c, text| set(&mut c.metrics.token, token(text).map(Some)),
        show: |c| {
            c.metrics
                .token
                .as_ref()
                .map_or_else(|| "(unset)".into(), Secret::masked)
        },
    },
    Setting {
        key: "metrics_public",
        env: &["DOCKHOOK_METRICS_PUBLIC"],
        env_fallback: &[],
        label: None,
        default: DefaultValue::Text("false"),
        help: "serve `/metrics` to anyone, without a token",
        secret: false,
        apply: |c, text| set(&mut c.metrics.public, boolean(text)),
        show: |c| c.metrics.public.to_string(),
    },
];

/// Settings only test builds honour (the `fault-injection` feature, which
/// `cargo test` turns on): left out of the README, and refused with a
/// reason by other builds rather than silently ignored.
pub static TEST_ONLY: &[Setting] = &[Setting {
    key: "fault_abort_at",
    env: &["DOCKHOOK_FAULT_ABORT_AT"],
    env_fallback: &[],
    label: None,
    default: DefaultValue::Unset("—"),
    help: "abort the process right after recording this deployment step (`creating`, \
           `verifying`, …), as a crash would",
    secret: false,
    apply: fault::apply,
    show: fault::show,
}];

#[cfg(feature = "fault-injection")]
mod fault {
    use super::{Config, Problem};
    use crate::store::State;

    pub(super) fn apply(config: &mut Config, text: &str) -> Result<(), Problem> {
        let step = State::parse(text)
            .filter(|s| !s.is_final())
            .ok_or("expected a deployment step such as creating")?;
        config.update.abort_at = Some(step);
        Ok(())
    }

    pub(super) fn show(config: &Config) -> String {
        config
            .update
            .abort_at
            .map_or("(unset)", |s| s.as_str())
            .to_string()
    }
}

#[cfg(not(feature = "fault-injection"))]
mod fault {
    use super::{Config, Problem};

    pub(super) fn apply(_: &mut Config, _: &str) -> Result<(), Problem> {
        Err(
            "only test builds have fault injection (the fault-injection feature, which \
             `cargo test` turns on), not this one: unset it"
                .into(),
        )
    }

    pub(super) fn show(_: &Config) -> String {
        "(not in this build)".into()
    }
}

/// Every setting this build reads.
fn all_settings() -> impl Iterator<Item = &'static Setting> {
    SETTINGS.iter().chain(TEST_ONLY)
}

/// Every setting this build honours, for `check-config`.
fn honoured_settings() -> impl Iterator<Item = &'static Setting> {
    let test_only: &[Setting] = if cfg!(feature = "fault-injection") {
        TEST_ONLY
    } else {
        &[]
    };
    SETTINGS.iter().chain(test_only)
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
    /// A required setting has no value.
    #[error("{name} is empty: set {name} ({others}or `{key}` in the config file) to {help}")]
    Missing {
        /// The environment variable people know it by.
        name: &'static str,
        /// The other variables, as `or DOCKHOOK_X, `.
        others: String,
        key: &'static str,
        help: &'static str,
    },
    /// `key` is the name the value was given under: an environment
    /// variable, or the file key.
    #[error("{key} = {value:?} is invalid: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::SettingsError),
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ConfigError {
    fn missing(setting: &'static Setting) -> Self {
        let (name, others) = match setting.env.split_last() {
            Some((name, others)) => (*name, others),
            None => (setting.key, &[][..]),
        };
        Self::Missing {
            name,
            others: others.iter().map(|other| format!("or {other}, ")).collect(),
            key: setting.key,
            help: setting.help,
        }
    }
}

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
        let config = Self::assemble(path, env, |_| true)?;
        if config.metrics.public && config.metrics.token.is_some() {
            return Err(ConfigError::Invalid {
                key: "metrics_public".into(),
                value: "true".into(),
                reason: "metrics_token is set too, and would guard nothing: unset one of them"
                    .into(),
            });
        }
        config.tokens_are_distinct()?;
        let retention = &config.retention;
        if retention.failed_images > retention.history {
            return Err(ConfigError::Invalid {
                key: "failed_image_retention".into(),
                value: show_age(retention.failed_images),
                reason: "must not be longer than history_retention: the history says which \
                         images failed"
                    .into(),
            });
        }
        config.tls.mode()?;
        if config.docker_tls_verify {
            if !config.docker_host.starts_with("tcp://") {
                return Err(ConfigError::Invalid {
                    key: "docker_tls_verify".into(),
                    value: "true".into(),
                    reason: format!(
                        "TLS needs a tcp://HOST:PORT docker_host, not {}: set DOCKER_HOST \
                         to the engine's TLS address, or unset DOCKER_TLS_VERIFY",
                        config.docker_host
                    ),
                });
            }
            if config.docker_tls_dir().is_none() {
                return Err(ConfigError::Invalid {
                    key: "docker_tls_verify".into(),
                    value: "true".into(),
                    reason: "there is no HOME to find ~/.docker/ca.pem, cert.pem and key.pem \
                             in: set DOCKER_CERT_PATH to their directory"
                        .into(),
                });
            }
        }
        Ok(config)
    }

    /// What the command-line client needs, from the same file and
    /// environment as the server's, reading only the settings it uses: a
    /// client needs no OWNER.
    pub fn load_client(path: Option<&Path>) -> Result<ClientSettings, ConfigError> {
        Self::load_client_with(path, |key| std::env::var(key).ok())
    }

    /// [`Config::load_client`] with an explicit environment, for tests.
    pub fn load_client_with(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ClientSettings, ConfigError> {
        let config = Self::assemble(path, env, |setting| {
            ["listen", "api_token", "data_dir"].contains(&setting.key) || is_tls_setting(setting)
        })?;
        Ok(ClientSettings {
            listen: config.listen,
            api_token_path: config.token_path(Kind::Api),
            tls: config.tls.mode()?,
            api_token: config.tokens.api.current,
        })
    }

    /// The file, then the environment, over [`Config::blank`], for the
    /// settings `wanted` selects; the others stay blank.
    fn assemble(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        wanted: impl Fn(&Setting) -> bool,
    ) -> Result<Self, ConfigError> {
        let path = path.map(Path::to_path_buf).or_else(|| {
            env("DOCKHOOK_CONFIG")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        });
        let mut file = match &path {
            Some(path) => read_file(path)?,
            None => BTreeMap::new(),
        };
        let present = |name: &'static str| env(name).map(|value| (name, value));
        let mut config = Self::blank();
        for setting in all_settings().filter(|setting| wanted(setting)) {
            // Which name it was given under, for the error message.
            let given = setting
                .env
                .iter()
                .find_map(|name| present(name))
                .or_else(|| file.remove(setting.key).map(|value| (setting.key, value)))
                .or_else(|| {
                    setting
                        .env_fallback
                        .iter()
                        .find_map(|name| present(name).filter(|(_, v)| !v.trim().is_empty()))
                })
                .map(|(name, value)| (name, value.trim().to_string()))
                .filter(|(_, value)| !value.is_empty());
            let (name, text) = match (given, setting.default) {
                (Some(given), _) => given,
                (None, DefaultValue::Text(text)) => (setting.key, text.to_string()),
                (None, DefaultValue::Required) => return Err(ConfigError::missing(setting)),
                (None, DefaultValue::Unset(_)) => continue,
                (None, DefaultValue::Home(dir)) => match env("HOME").filter(|h| !h.is_empty()) {
                    Some(home) => (setting.key, format!("{home}/{dir}")),
                    None => continue,
                },
            };
            (setting.apply)(&mut config, &text).map_err(|problem| match problem {
                Problem::Empty => ConfigError::missing(setting),
                Problem::Invalid(reason) => ConfigError::Invalid {
                    key: name.to_string(),
                    value: if setting.secret {
                        Secret::new(text).masked()
                    } else {
                        text
                    },
                    reason,
                },
            })?;
        }
        Ok(config)
    }

    /// What every setting is overwritten on: each one with a default
    /// applies it, a required one fails without a value.
    fn blank() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            tokens: crate::tokens::Settings::default(),
            sources: sources::Settings::default(),
            update: deploy::Settings::default(),
            label_enable: false,
            data_dir: PathBuf::new(),
            max_body: 0,
            docker_host: String::new(),
            docker_tls_verify: false,
            docker_cert_path: None,
            public_url: None,
            tls: crate::tls::Settings::default(),
            log: String::new(),
            log_format: crate::logging::Format::Text,
            metrics: crate::metrics::Settings::default(),
            shutdown_timeout: Duration::ZERO,
            retention: RetentionSettings::default(),
            notify: notify::Settings::default(),
            reconcile: crate::reconcile::Settings::default(),
            abuse: crate::abuse::Settings::default(),
        }
    }

    /// Each configured token opens its own door only: two settings with
    /// one value would open both to whoever holds it.
    fn tokens_are_distinct(&self) -> Result<(), ConfigError> {
        let tokens = &self.tokens;
        let named = [
            ("token", &tokens.hook.current),
            ("api_token", &tokens.api.current),
            ("read_token", &tokens.read.current),
            ("metrics_token", &self.metrics.token),
            ("token_previous", &tokens.hook.previous),
            ("api_token_previous", &tokens.api.previous),
            ("read_token_previous", &tokens.read.previous),
        ];
        for (i, (key, value)) in named.iter().enumerate() {
            let Some(value) = value else { continue };
            if let Some((other, _)) = named[..i].iter().find(|(_, v)| v.as_ref() == Some(value)) {
                return Err(ConfigError::Invalid {
                    key: (*key).into(),
                    value: value.masked(),
                    reason: format!("it is {other} too: give each token its own value"),
                });
            }
        }
        Ok(())
    }

    /// What the updater needs.
    pub fn update_settings(&self) -> deploy::Settings {
        self.update.clone()
    }

    /// Where dockhook keeps `kind` when it is not configured.
    pub fn token_path(&self, kind: Kind) -> PathBuf {
        self.data_dir.join(kind.setting())
    }

    /// The directory of `ca.pem`, `cert.pem` and `key.pem` for TLS to the
    /// engine: `docker_cert_path`, else the docker client's configuration
    /// directory, as the docker CLI looks.
    pub fn docker_tls_dir(&self) -> Option<PathBuf> {
        self.docker_cert_path
            .clone()
            .or_else(|| self.update.docker_config.clone())
    }

    /// The SQLite history database.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("dockhook.db")
    }

    /// Base URL for printed hook URLs: `public_url`, or one made from `listen`.
    ///
    /// Over ACME the certificate's first name, on port 443 where the ACME
    /// server checked it; otherwise `https` when TLS is on.
    pub fn base_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| {
            if let Some(domain) = self.tls.acme_domains.first() {
                return format!("https://{domain}");
            }
            let scheme = if self.tls.cert.is_some() {
                "https"
            } else {
                "http"
            };
            let host = if self.listen.ip().is_unspecified() {
                "YOUR-HOST".to_string()
            } else {
                self.listen.ip().to_string()
            };
            format!("{scheme}://{host}:{}", self.listen.port())
        })
    }

    /// Where the ACME account and certificates are kept.
    pub fn acme_cache_dir(&self) -> PathBuf {
        self.data_dir.join("acme")
    }

    /// Every setting this build honours as `(key, value in force)`, secrets
    /// masked, in table order.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        honoured_settings()
            .map(|setting| (setting.key, (setting.show)(self)))
            .collect()
    }
}

/// The README's configuration table, in Markdown: one row per setting of
/// [`SETTINGS`]. `dockhook config-table` prints it.
pub fn markdown_table() -> String {
    let code = |text: &str| format!("`{text}`");
    let mut table =
        String::from("| key (file) | environment | default | meaning |\n|---|---|---|---|\n");
    for setting in SETTINGS {
        let mut env = setting
            .env
            .iter()
            .map(|name| code(name))
            .collect::<Vec<_>>()
            .join(" or ");
        for name in setting.env_fallback {
            let absent = code(setting.key);
            env.push_str(&format!("; {} when the file has no {absent}", code(name)));
        }
        let default = match setting.default {
            DefaultValue::Text(text) => code(text),
            DefaultValue::Required => "**required**".into(),
            DefaultValue::Unset(text) => text.into(),
            DefaultValue::Home(dir) => code(&format!("~/{dir}")),
        };
        let mut help = setting.help.to_string();
        if let Some(label) = setting.label {
            help.push_str(&format!("; label {} sets it per container", code(label)));
        }
        if setting.secret {
            help.push_str(" (masked in `check-config`)");
        }
        table.push_str(&format!(
            "| {} | {env} | {default} | {help} |\n",
            code(setting.key)
        ));
    }
    table
}

/// Stores a parsed value in its field.
fn set<T, E: Into<Problem>>(field: &mut T, value: Result<T, E>) -> Result<(), Problem> {
    *field = value.map_err(Into::into)?;
    Ok(())
}

/// An optional setting for display.
fn shown(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "(unset)".into())
}

/// An optional path for display.
fn shown_path(value: &Option<PathBuf>) -> String {
    value
        .as_ref()
        .map_or_else(|| "(unset)".into(), |path| path.display().to_string())
}

/// The settings the client needs to know how the server speaks TLS.
fn is_tls_setting(setting: &Setting) -> bool {
    setting.key.starts_with("tls_") || setting.key.starts_with("acme_")
}

/// An address to write to; the ACME server checks it further.
fn email(text: &str) -> Result<String, &'static str> {
    match text.split_once('@') {
        Some((user, domain)) if !user.is_empty() && domain.contains('.') && !text.contains(' ') => {
            Ok(text.to_string())
        }
        _ => Err("expected an email address such as admin@example.com"),
    }
}

/// An `https://` URL.
fn https_url(text: &str) -> Result<String, &'static str> {
    match url::Url::parse(text) {
        Ok(url) if url.scheme() == "https" && url.host().is_some() => Ok(text.to_string()),
        _ => Err("expected an https:// URL"),
    }
}

/// An optional secret for display: masked, or why it matters that it is unset.
/// A replaced token, masked.
fn previous(secret: &Option<Secret>) -> String {
    secret
        .as_ref()
        .map_or_else(|| "(none)".into(), Secret::masked)
}

/// A configured token masked, or where dockhook keeps it.
fn show_token(config: &Config, kind: Kind) -> String {
    match &config.tokens.get(kind).current {
        Some(token) => token.masked(),
        None if kind == Kind::Read => format!(
            "(none, unless {} exists)",
            config.data_dir.join(kind.setting()).display()
        ),
        None => format!(
            "(generated, kept in {})",
            config.data_dir.join(kind.setting()).display()
        ),
    }
}

fn masked(secret: &Option<Secret>) -> String {
    secret
        .as_ref()
        .map_or_else(|| "(unset: source off)".into(), Secret::masked)
}

/// A duration for display, in seconds.
fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

fn boolean(text: &str) -> Result<bool, &'static str> {
    match text.to_ascii_lowercase().as_str() {
        "false" | "0" | "no" | "off" => Ok(false),
        "true" | "1" | "yes" | "on" => Ok(true),
        _ => Err("expected true or false"),
    }
}

/// A base URL, without the trailing slash paths are appended to.
fn url(text: &str) -> Result<String, &'static str> {
    if !(text.starts_with("http://") || text.starts_with("https://")) {
        return Err("expected an http:// or https:// URL");
    }
    Ok(text.trim_end_matches('/').to_string())
}

fn docker_host(text: &str) -> Result<String, &'static str> {
    const EXPECTED: &str =
        "expected unix:///path/to/docker.sock, tcp://HOST:PORT or ssh://[USER@]HOST[:PORT]";
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(EXPECTED);
    };
    match scheme {
        "unix" | "tcp" | "http" if !rest.is_empty() => Ok(text.to_string()),
        // The docker CLI takes no path after the host (it would name a
        // socket on the remote host, which `docker system dial-stdio`
        // ignores).
        "ssh" => match crate::engine::ssh::Destination::parse(text) {
            Some(_) => Ok(text.to_string()),
            None => Err("expected ssh://[USER@]HOST[:PORT], with no path"),
        },
        _ => Err(EXPECTED),
    }
}

/// A registry host, normalised as image references name it.
fn registry(text: &str) -> Result<String, String> {
    ImageRef::from_parts(text, "probe", None)
        .map(|image| image.registry)
        .map_err(|e| e.to_string())
}

/// A source's secret: any text a header can carry, within reason.
fn secret(text: &str) -> Result<Secret, &'static str> {
    if text.len() > 1024 {
        return Err("longer than 1024 characters");
    }
    Ok(Secret::new(text))
}

/// The token goes in URLs: URL-safe, and long enough not to be guessed.
fn token(text: &str) -> Result<Secret, String> {
    crate::tokens::check(text)
}

fn image_patterns(list: &str) -> Result<Vec<sources::generic::ImagePattern>, Problem> {
    let patterns = list
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(sources::generic::ImagePattern::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if patterns.is_empty() {
        return Err(Problem::Empty);
    }
    Ok(patterns)
}

fn owners(list: &str) -> Result<Vec<String>, Problem> {
    let mut owners = Vec::new();
    for owner in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let owner = owner.to_ascii_lowercase();
        // A namespace is one repository path component.
        if ImageRef::from_parts("docker.io", &format!("{owner}/x"), None).is_err()
            || owner.contains('/')
        {
            return Err(format!(
                "{owner:?}: a namespace is lowercase letters, digits and single separators"
            )
            .into());
        }
        if !owners.contains(&owner) {
            owners.push(owner);
        }
    }
    if owners.is_empty() {
        return Err(Problem::Empty);
    }
    Ok(owners)
}

/// The file's settings as text, by key; a list becomes comma-separated.
fn read_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
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
    let mut raw = BTreeMap::new();
    for (key, value) in table {
        if !all_settings().any(|setting| setting.key == key) {
            return Err(ConfigError::UnknownKey {
                path: path.to_path_buf(),
                key,
                known: SETTINGS
                    .iter()
                    .map(|setting| setting.key)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let bad_type = || ConfigError::BadType {
            path: path.to_path_buf(),
            key: key.clone(),
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
        raw.insert(key, value);
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::StrategySetting;
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
        assert_eq!(config.sources.github_registry, "ghcr.io");
        assert_eq!(config.sources.gitea_registry, None);
        assert_eq!(config.update.grace, Duration::from_secs(5));
        assert_eq!(config.max_body, 1024 * 1024);
        assert!(!config.label_enable);
        assert_eq!(config.tokens, crate::tokens::Settings::default());
        assert_eq!(config.docker_host, "unix:///var/run/docker.sock");
        assert_eq!(config.update.strategy, StrategySetting::Auto);
        assert_eq!(config.update.health_timeout, Duration::from_secs(60));
        assert_eq!(config.update.hook_timeout, Duration::from_secs(60));
        assert_eq!(config.update.docker_config, None, "no HOME, no logins");
        assert_eq!(config.data_dir, Path::new("/var/lib/dockhook"));
        assert_eq!(config.log, "info");
        #[cfg(feature = "fault-injection")]
        assert_eq!(config.update.abort_at, None);
    }

    #[test]
    fn empty_owner_is_refused_with_advice() {
        for env in [&[][..], &[("OWNER", "")], &[("OWNER", " , ")]] {
            let err = load(None, env).unwrap_err();
            assert!(
                matches!(err, ConfigError::Missing { key: "owner", .. }),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                "OWNER is empty: set OWNER (or DOCKHOOK_OWNER, or `owner` in the config file) \
                 to the comma-separated Docker Hub namespaces whose pushes may update this host"
            );
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
        assert_eq!(config.update.grace, Duration::from_millis(750));
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
    fn other_tools_variables_count_only_under_the_file() {
        let config = load(
            None,
            &[
                ("OWNER", "a"),
                ("DOCKER_HOST", "tcp://127.0.0.1:2375"),
                ("RUST_LOG", "debug"),
                ("DOCKER_CONFIG", "/etc/docker-logins"),
                ("HOME", "/home/a"),
            ],
        )
        .unwrap();
        assert_eq!(config.docker_host, "tcp://127.0.0.1:2375");
        assert_eq!(config.log, "debug");
        assert_eq!(
            config.update.docker_config.as_deref(),
            Some(Path::new("/etc/docker-logins"))
        );

        let file = "owner = \"a\"\ndocker_host = \"unix:///run/docker.sock\"\nlog = \"warn\"\n";
        let env = [
            ("DOCKER_HOST", "tcp://127.0.0.1:2375"),
            ("RUST_LOG", "debug"),
        ];
        let config = load(Some(file), &env).unwrap();
        assert_eq!(
            config.docker_host, "unix:///run/docker.sock",
            "the file wins"
        );
        assert_eq!(config.log, "warn");
        let config = load(
            Some(file),
            &[("DOCKHOOK_LOG", "trace"), ("RUST_LOG", "debug")],
        )
        .unwrap();
        assert_eq!(config.log, "trace", "DOCKHOOK_LOG wins over the file");

        let config = load(None, &[("OWNER", "a"), ("HOME", "/home/a")]).unwrap();
        assert_eq!(
            config.update.docker_config.as_deref(),
            Some(Path::new("/home/a/.docker")),
            "as the docker CLI finds it"
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
    fn retention_is_set_in_days_or_hours() {
        let config = load(None, &[("OWNER", "a")]).unwrap();
        assert_eq!(config.retention, RetentionSettings::default());
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
        let shown = config.entries();
        assert!(
            shown.contains(&("history_retention", "30d".into())),
            "{shown:?}"
        );
        assert!(shown.contains(&("failed_image_retention", "36h".into())));
        for (key, value, needle) in [
            ("DOCKHOOK_HISTORY_RETENTION", "3 weeks", "90d"),
            ("DOCKHOOK_REPLAY_WINDOW", "0d", "between 1h"),
            ("DOCKHOOK_HISTORY_KEEP", "-1", "number of deployments"),
            (
                "DOCKHOOK_FAILED_IMAGE_RETENTION",
                "100d",
                "history_retention",
            ),
        ] {
            let err = load(None, &[("OWNER", "a"), (key, value)]).unwrap_err();
            assert!(err.to_string().contains(needle), "{key}={value}: {err}");
        }
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
            ("DOCKHOOK_TRUSTED_PROXIES", "10.0.0.1, proxy", "IP address"),
            ("DOCKHOOK_TRUSTED_PROXIES", "10.0.0.0/33", "network"),
            (
                "DOCKHOOK_FAULT_ABORT_AT",
                "succeeded",
                if cfg!(feature = "fault-injection") {
                    "deployment step"
                } else {
                    "no fault injection"
                },
            ),
        ] {
            let err = load(None, &[("OWNER", "alice"), (key, value)]).unwrap_err();
            assert!(err.to_string().contains(needle), "{key}={value}: {err}");
        }
    }

    #[test]
    fn tls_is_files_or_acme_never_both_and_never_half() {
        let plain = load(None, &[("OWNER", "a")]).unwrap();
        assert_eq!(plain.tls.mode().unwrap(), crate::tls::Mode::Plain);
        assert!(plain.base_url().starts_with("http://"));
        let files = load(
            None,
            &[
                ("OWNER", "a"),
                ("DOCKHOOK_LISTEN", "10.0.0.1:8443"),
                ("DOCKHOOK_TLS_CERT", "/etc/tls/chain.pem"),
                ("DOCKHOOK_TLS_KEY", "/etc/tls/key.pem"),
            ],
        )
        .unwrap();
        assert_eq!(
            files.tls.mode().unwrap(),
            crate::tls::Mode::Files {
                cert: "/etc/tls/chain.pem".into(),
                key: "/etc/tls/key.pem".into()
            }
        );
        assert_eq!(files.base_url(), "https://10.0.0.1:8443");
        let acme = load(
            None,
            &[
                ("OWNER", "a"),
                (
                    "DOCKHOOK_ACME_DOMAIN",
                    "Hooks.Example.com, hooks2.example.com",
                ),
                ("DOCKHOOK_ACME_EMAIL", "ops@example.com"),
            ],
        )
        .unwrap();
        assert_eq!(
            acme.tls.mode().unwrap(),
            crate::tls::Mode::Acme {
                domains: vec!["hooks.example.com".into(), "hooks2.example.com".into()],
                email: "ops@example.com".into(),
                directory: crate::tls::LETS_ENCRYPT.into(),
                ca: None,
            }
        );
        assert_eq!(acme.base_url(), "https://hooks.example.com");

        let cert = ("DOCKHOOK_TLS_CERT", "/c.pem");
        let key = ("DOCKHOOK_TLS_KEY", "/k.pem");
        let domain = ("DOCKHOOK_ACME_DOMAIN", "hooks.example.com");
        let email = ("DOCKHOOK_ACME_EMAIL", "ops@example.com");
        let ca = ("DOCKHOOK_ACME_CA", "/ca.pem");
        for (env, needle) in [
            (&[cert][..], "DOCKHOOK_TLS_KEY is not"),
            (&[key], "DOCKHOOK_TLS_CERT is not"),
            (&[cert, key, domain, email], "not both"),
            (&[domain], "DOCKHOOK_ACME_EMAIL is not"),
            (&[email], "DOCKHOOK_ACME_DOMAIN is not"),
            (&[ca], "ACME is not on"),
            (&[domain, ("DOCKHOOK_ACME_EMAIL", "ops")], "email address"),
            (
                &[("DOCKHOOK_ACME_DOMAIN", "*.example.com"), email],
                "wildcard",
            ),
            (
                &[("DOCKHOOK_ACME_DOMAIN", "https://x.example.com"), email],
                "DNS name",
            ),
            (&[("DOCKHOOK_ACME_DOMAIN", "10.0.0.1"), email], "DNS name"),
            (
                &[
                    domain,
                    email,
                    ("DOCKHOOK_ACME_DIRECTORY", "http://acme.local/dir"),
                ],
                "https://",
            ),
        ] {
            let env = [&[("OWNER", "a")][..], env].concat();
            let err = load(None, &env).unwrap_err();
            assert!(err.to_string().contains(needle), "{env:?}: {err}");
        }
        // The client needs no OWNER, but does need to know about TLS.
        let client = Config::load_client_with(None, |name| {
            [cert, key]
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        assert!(matches!(client.tls, crate::tls::Mode::Files { .. }));
    }

    #[test]
    fn errors_name_where_the_value_came_from() {
        let err = load(None, &[("OWNER", "a"), ("DOCKHOOK_GRACE", "soon")]).unwrap_err();
        assert!(
            err.to_string().starts_with("DOCKHOOK_GRACE = \"soon\""),
            "{err}"
        );
        let err = load(Some("owner = \"a\"\ngrace = \"soon\"\n"), &[]).unwrap_err();
        assert!(err.to_string().starts_with("grace = \"soon\""), "{err}");
        let err = load(None, &[("OWNER", "a"), ("DOCKER_HOST", "ftp://x")]).unwrap_err();
        assert!(err.to_string().starts_with("DOCKER_HOST = "), "{err}");
    }

    #[test]
    fn docker_host_takes_what_the_docker_cli_takes() {
        for host in [
            "unix:///var/run/docker.sock",
            "tcp://10.0.0.5:2376",
            "ssh://deploy@build.example.com",
            "ssh://deploy@build.example.com:2222",
            "ssh://build",
        ] {
            let config = load(None, &[("OWNER", "a"), ("DOCKER_HOST", host)]).unwrap();
            assert_eq!(config.docker_host, host);
        }
        for host in [
            "/var/run/docker.sock",
            "ssh://",
            "ssh://deploy@host/var/run/docker.sock",
            "tcp://",
            "npipe:////./pipe/docker_engine",
        ] {
            let err = load(None, &[("OWNER", "a"), ("DOCKER_HOST", host)]).unwrap_err();
            assert!(err.to_string().contains("expected"), "{host}: {err}");
        }
    }

    #[test]
    fn tls_settings_follow_the_docker_cli() {
        let home = [("OWNER", "a"), ("HOME", "/home/deploy")];
        let config = load(None, &home).unwrap();
        assert!(!config.docker_tls_verify);
        // The certificates are looked for where the client configuration is.
        let dir = Some(PathBuf::from("/home/deploy/.docker"));
        assert_eq!(config.docker_tls_dir(), dir);
        let env = [("DOCKER_CONFIG", "/etc/docker-client"), home[0], home[1]];
        let config = load(None, &env).unwrap();
        assert_eq!(config.docker_tls_dir(), Some("/etc/docker-client".into()));
        let tls = [
            ("OWNER", "a"),
            ("DOCKER_HOST", "tcp://10.0.0.5:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", "/etc/dockhook/certs"),
        ];
        let config = load(None, &tls).unwrap();
        assert!(config.docker_tls_verify);
        assert_eq!(config.docker_tls_dir(), Some("/etc/dockhook/certs".into()));

        // TLS over a socket, or with nowhere to find the files, is refused.
        let err = load(None, &[("OWNER", "a"), ("DOCKER_TLS_VERIFY", "1")]).unwrap_err();
        assert!(err.to_string().contains("TLS needs a tcp://"), "{err}");
        let err = load(None, &tls[..3]).unwrap_err();
        assert!(err.to_string().contains("DOCKER_CERT_PATH"), "{err}");
    }

    #[test]
    fn metrics_and_log_format_settings() {
        let config = load(None, &[("OWNER", "a")]).unwrap();
        assert!(!config.metrics.public && config.metrics.token.is_none());
        assert_eq!(config.log_format, crate::logging::Format::Text);
        let config = load(
            None,
            &[
                ("OWNER", "a"),
                ("DOCKHOOK_LOG_FORMAT", "JSON"),
                ("DOCKHOOK_METRICS_TOKEN", "metrics-token-0123456"),
            ],
        )
        .unwrap();
        assert_eq!(config.log_format, crate::logging::Format::Json);
        assert_eq!(
            config.metrics.token.as_ref().map(Secret::expose),
            Some("metrics-token-0123456")
        );
        for (env, needle) in [
            (
                vec![("DOCKHOOK_LOG_FORMAT", "yaml")],
                "DOCKHOOK_LOG_FORMAT = \"yaml\" is invalid: expected text or json",
            ),
            (
                vec![("DOCKHOOK_METRICS_TOKEN", "short")],
                "DOCKHOOK_METRICS_TOKEN",
            ),
            (
                vec![("DOCKHOOK_METRICS_PUBLIC", "maybe")],
                "expected true or false",
            ),
            (
                vec![
                    ("DOCKHOOK_METRICS_PUBLIC", "true"),
                    ("DOCKHOOK_METRICS_TOKEN", "metrics-token-0123456"),
                ],
                "metrics_token is set too",
            ),
        ] {
            let mut env = env;
            env.push(("OWNER", "a"));
            let err = load(None, &env).unwrap_err().to_string();
            assert!(err.contains(needle), "{env:?}: {err}");
            assert!(!err.contains("0123456"), "{err}");
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
    fn every_secret_is_masked_in_check_config_and_errors() {
        // Notification URLs are masked their own way (below).
        let secrets: Vec<_> = SETTINGS
            .iter()
            .filter(|s| s.secret && s.key != "notify")
            .collect();
        assert_eq!(
            secrets.len(),
            11,
            "the hook secret, API, read-only and metrics tokens, the three replaced ones, \
             and the four source secrets"
        );
        for setting in secrets {
            let name = setting.env[0];
            let config = load(None, &[("OWNER", "a"), (name, "abcdPLUGHPLUGHPLUGH")]).unwrap();
            let shown = format!("{:?}", config.entries());
            assert!(!shown.contains("PLUGH"), "{name}: {shown}");
            assert!(shown.contains("abcd…"), "{name}: {shown}");
            let long = format!("abcd{}", "PLUGH".repeat(250));
            let err = load(None, &[("OWNER", "a"), (name, &long)]).unwrap_err();
            assert!(!err.to_string().contains("PLUGH"), "{name}: {err}");
        }
    }

    #[test]
    fn notification_urls_are_masked_in_check_config_and_errors() {
        let urls = "discord://PLUGHPLUGHPLUGH@123456 \
                    generic+https://hooks.example.com/x?secret=XYZZYXYZZY&events=failed";
        let config = load(None, &[("OWNER", "a"), ("DOCKHOOK_NOTIFY", urls)]).unwrap();
        assert_eq!(config.notify.endpoints.len(), 2);
        let shown = format!("{config:?} {:?}", config.entries());
        assert!(
            !shown.contains("PLUGH") && !shown.contains("XYZZY"),
            "{shown}"
        );
        assert!(shown.contains("discord://***@123456"), "{shown}");
        assert!(shown.contains("secret=***&events=failed"), "{shown}");
        let bad = "discord://PLUGHPLUGHPLUGH@";
        let err = load(None, &[("OWNER", "a"), ("DOCKHOOK_NOTIFY", bad)]).unwrap_err();
        let err = err.to_string();
        assert!(!err.contains("PLUGH"), "{err}");
        assert!(
            err.starts_with("DOCKHOOK_NOTIFY = ") && err.contains("URL 1"),
            "{err}"
        );
        let config = load(None, &[("OWNER", "a")]).unwrap();
        assert!(config.notify.endpoints.is_empty());
    }

    #[test]
    fn each_token_has_its_own_value_and_a_bounded_grace() {
        let config = load(
            None,
            &[
                ("OWNER", "a"),
                ("DOCKHOOK_TOKEN", "hook-secret-0123456789"),
                ("DOCKHOOK_API_TOKEN", "api-token-0123456789"),
                ("DOCKHOOK_API_TOKEN_PREVIOUS", "api-token-old-0123456"),
                ("DOCKHOOK_TOKEN_GRACE", "2h"),
            ],
        )
        .unwrap();
        let tokens = &config.tokens;
        assert_eq!(
            tokens.api.current.as_ref().unwrap().expose(),
            "api-token-0123456789"
        );
        assert_eq!(
            tokens.api.previous.as_ref().unwrap().expose(),
            "api-token-old-0123456"
        );
        assert_eq!(tokens.grace, Duration::from_secs(7200));

        let error = load(
            None,
            &[
                ("OWNER", "a"),
                ("DOCKHOOK_TOKEN", "same-value-0123456789"),
                ("DOCKHOOK_READ_TOKEN", "same-value-0123456789"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("read_token") && error.contains("it is token too"),
            "{error}"
        );
        assert!(!error.contains("same-value-0123456789"), "masked: {error}");

        let error = load(None, &[("OWNER", "a"), ("DOCKHOOK_TOKEN_GRACE", "31d")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("at most 30d"), "{error}");
    }

    #[cfg(feature = "fault-injection")]
    #[test]
    fn fault_injection_is_a_test_only_setting() {
        let config = load(
            None,
            &[("OWNER", "a"), ("DOCKHOOK_FAULT_ABORT_AT", "creating")],
        )
        .unwrap();
        assert_eq!(config.update.abort_at, Some(crate::store::State::Creating));
        assert!(config
            .entries()
            .contains(&("fault_abort_at", "creating".into())));
        assert!(!markdown_table().contains("fault_abort_at"));
    }

    #[test]
    fn every_setting_has_one_file_key_and_a_dockhook_variable() {
        let mut keys: Vec<_> = all_settings().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), all_settings().count(), "keys are unique");
        for setting in all_settings() {
            assert_eq!(
                setting.env.first().copied(),
                Some(format!("DOCKHOOK_{}", setting.key.to_ascii_uppercase()).as_str()),
                "`{}` = DOCKHOOK_{{KEY}} in the environment",
                setting.key
            );
            assert!(
                !setting.help.contains(['|', '\n']),
                "`{}`: the help is one table cell",
                setting.key
            );
        }
    }

    const TABLE_START: &str =
        "<!-- settings table: generated from src/config.rs by `dockhook config-table` -->\n";
    const TABLE_END: &str = "<!-- end of the settings table -->";

    /// The README's table is [`markdown_table`]: it cannot drift from the
    /// settings. `UPDATE_README=1` rewrites it.
    #[test]
    fn readme_configuration_table_is_generated() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let start = readme
            .find(TABLE_START)
            .expect("README has the start marker")
            + TABLE_START.len();
        let end = start
            + readme[start..]
                .find(TABLE_END)
                .expect("README has the end marker");
        let expected = markdown_table();
        if readme[start..end] == expected {
            return;
        }
        if std::env::var_os("UPDATE_README").is_some() {
            let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        panic!(
            "README.md's configuration table is not the one the settings in src/config.rs \
             make. Regenerate it with\n\n    UPDATE_README=1 cargo test --lib readme\n\n\
             (or paste `cargo run -q -- config-table` between the markers).\n\n\
             README has:\n{}\nsettings make:\n{expected}",
            &readme[start..end]
        );
    }
}
