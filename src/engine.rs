//! The Docker Engine: the only module that talks to Docker.
//!
//! [`Engine`] is the small set of operations an update needs, in the
//! vocabulary of the domain; [`DockerEngine`] implements it over the Engine
//! API with bollard, negotiating the API version so the same binary drives
//! Docker 20.10 (API 1.41) and current engines, and Podman's compatible
//! API (whose few differences it makes up for). It reaches the engine as the
//! docker CLI does: a unix socket, `tcp://` in plain HTTP or with TLS
//! (`DOCKER_TLS_VERIFY`, certificates in `DOCKER_CERT_PATH`), or `ssh://`
//! through the system's `ssh`, directly or through a socket proxy (whose
//! refusals it reports as such, and whose refusal of an exec's connection
//! upgrade it works around). Deploy logic is written
//! against the trait, so unit tests can run it on an in-memory fake; every
//! claim about real behaviour is proven by the end-to-end tests.
//!
//! On a Swarm manager the engine also lists, inspects and updates services
//! (the last block of [`Engine`]); a service is a target like a container,
//! and [`ContainerInfo::kind`] tells them apart.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};

use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, ExecConfig, ImageInspect,
    NetworkConnectRequest, NetworkDisconnectRequest, Service, ServiceSpec,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, RenameContainerOptionsBuilder, StopContainerOptionsBuilder,
    TagImageOptionsBuilder, UpdateServiceOptionsBuilder,
};
use bollard::Docker;
use futures_util::{Stream, StreamExt, TryStreamExt};

use crate::credentials::Login;
use crate::image_ref::ImageRef;

pub mod ssh;

/// A running container or a Swarm service, as target selection needs to
/// see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// Name without Docker's leading `/`.
    pub name: String,
    /// The image reference the container was created from, as written then.
    /// For a service, its spec's image without the `@sha256:` pin that
    /// `docker service create` (and dockhook) add to a tagged reference, so
    /// that it matches pushes of its tag.
    pub image: String,
    pub labels: HashMap<String, String>,
    pub kind: TargetKind,
}

/// What a target is: a container dockhook replaces itself, or a Swarm
/// service whose rolling update Swarm runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    #[default]
    Container,
    Service,
}

/// Labels Swarm puts on the containers of its tasks: such a container is
/// replaced through its service, never directly.
pub const SWARM_SERVICE_LABEL: &str = "com.docker.swarm.service.id";
pub const SWARM_TASK_LABEL: &str = "com.docker.swarm.task.id";

/// Swarm's answer to "what is this service doing", as
/// [`Service::update_status`] says it.
pub use bollard::models::ServiceUpdateStatusStateEnum as UpdateState;

/// What removing an image did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRemoval {
    Removed,
    /// Another container, or another tag, still uses it; it was kept.
    InUse,
}

/// An Engine API call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// Docker does not answer (stopped, restarting, socket not mounted):
    /// worth trying again later.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Other(String),
}

impl From<bollard::errors::Error> for EngineError {
    fn from(error: bollard::errors::Error) -> Self {
        use bollard::errors::Error;
        match error {
            Error::DockerResponseServerError {
                status_code: 404,
                message,
            } => EngineError::NotFound(message),
            Error::DockerResponseServerError {
                status_code: 409,
                message,
            } => EngineError::Conflict(message),
            // Docker itself never answers 403 to what dockhook asks: a
            // socket proxy in front of it, or an authorization plugin,
            // refused the call.
            Error::DockerResponseServerError {
                status_code: 403,
                message,
            } => EngineError::Other(format!(
                "Docker API call refused with 403 Forbidden ({}): a socket proxy or authorization \
                 plugin in front of Docker does not allow it; allow this call there (the \
                 README's \"Socket proxy\" section lists the ones dockhook makes)",
                plain_text(&message)
            )),
            Error::DockerResponseServerError {
                status_code,
                message,
            } => EngineError::Other(format!("Docker answered {status_code}: {message}")),
            unreachable @ (Error::HyperLegacyError { .. }
            | Error::IOError { .. }
            | Error::SocketNotFoundError(_)
            | Error::RequestTimeoutError) => EngineError::Unavailable(format!(
                "Docker does not answer ({})",
                with_causes(&unreachable)
            )),
            other => EngineError::Other(other.to_string()),
        }
    }
}

/// An error body as one line of text: a proxy's HTML error page (haproxy's
/// default 403 page, say) without its tags.
fn plain_text(body: &str) -> String {
    let mut text = String::with_capacity(body.len());
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

type Result<T> = std::result::Result<T, EngineError>;

/// The operations dockhook needs from a container engine.
pub trait Engine: Send + Sync + 'static {
    /// Whether the engine answers.
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;
    /// The running containers.
    fn list_running(&self) -> impl Future<Output = Result<Vec<ContainerInfo>>> + Send;
    fn inspect_container(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<ContainerInspectResponse>> + Send;
    fn inspect_image(&self, reference: &str) -> impl Future<Output = Result<ImageInspect>> + Send;
    /// Pulls `image` (repository and tag) from its registry, with `login`
    /// when the registry needs one.
    fn pull(
        &self,
        image: &ImageRef,
        login: Option<&Login>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Creates a container and returns its ID.
    fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> impl Future<Output = Result<String>> + Send;
    fn connect_network(
        &self,
        network: &str,
        container: &str,
        endpoint: EndpointSettings,
    ) -> impl Future<Output = Result<()>> + Send;
    fn start_container(&self, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Stops with the container's own stop signal; `timeout` overrides its
    /// stop timeout, in seconds.
    fn stop_container(
        &self,
        id: &str,
        timeout: Option<i32>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn rename_container(&self, id: &str, new_name: &str)
        -> impl Future<Output = Result<()>> + Send;
    /// Removes a container, killing it first if it runs.
    fn remove_container(&self, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Removes an image unless something still uses it.
    fn remove_image(&self, id: &str) -> impl Future<Output = Result<ImageRemoval>> + Send;
    /// Points `image`'s tag at image `id` (to put a rolled-back image back).
    fn tag_image(&self, id: &str, image: &ImageRef) -> impl Future<Output = Result<()>> + Send;
    fn disconnect_network(
        &self,
        network: &str,
        container: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The last `lines` lines the container wrote to stdout and stderr.
    fn logs_tail(&self, id: &str, lines: usize) -> impl Future<Output = Result<String>> + Send;
    /// Runs `cmd` inside a running container and waits for it.
    fn exec(&self, id: &str, cmd: Vec<String>) -> impl Future<Output = Result<ExecOutcome>> + Send;
    /// One item each time a container starts, stops, goes away or is
    /// renamed, or a Swarm service is created, updated or removed; ends or
    /// fails when the connection to Docker does.
    fn container_events(&self) -> impl Stream<Item = Result<()>> + Send + '_;

    // Swarm services: only on an engine that is a Swarm manager.

    /// Whether this engine is a Swarm manager, and so can list and update
    /// services.
    fn is_swarm_manager(&self) -> impl Future<Output = Result<bool>> + Send;
    /// The services, as targets (see [`ContainerInfo::image`]).
    fn list_services(&self) -> impl Future<Output = Result<Vec<ContainerInfo>>> + Send;
    /// A service by ID or name, with its spec, version and update status.
    fn inspect_service(&self, id: &str) -> impl Future<Output = Result<Service>> + Send;
    /// Replaces service `id`'s spec (at `version`, as inspected), passing
    /// `login` for `registry` so that every node can pull. With `rollback`,
    /// asks Swarm to return to the previous spec instead.
    fn update_service(
        &self,
        id: &str,
        version: u64,
        spec: ServiceSpec,
        login: Option<(&str, &Login)>,
        rollback: bool,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// What a command run in a container did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    pub exit_code: i64,
    /// Its stdout and stderr, interleaved, possibly cut short.
    pub output: String,
}

/// [`Engine`] over the Docker Engine API.
///
/// The API version is negotiated on first contact, not at start-up, so
/// dockhook can start before the engine does (at boot, say): until the
/// engine answers, calls fail and `/healthz` says so.
pub struct DockerEngine {
    host: String,
    /// For `tcp://` with TLS: the files the connection is made with.
    tls: Option<TlsFiles>,
    client: tokio::sync::OnceCell<Client>,
}

/// The certificates of a TLS connection to the engine, as the docker CLI
/// finds them in DOCKER_CERT_PATH under `--tlsverify`.
#[derive(Debug, Clone)]
struct TlsFiles {
    dir: PathBuf,
    /// The CA that signed the engine's certificate.
    ca: PathBuf,
    /// dockhook's client certificate, and its key.
    cert: PathBuf,
    key: PathBuf,
}

/// The TLS settings cannot work; found before any contact with the engine.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "TLS to the Docker engine is on (DOCKER_TLS_VERIFY) but {} is missing: put the \
         engine's CA certificate (ca.pem), the client certificate (cert.pem) and its key \
         (key.pem) in {}, or point DOCKER_CERT_PATH at the directory that holds them",
        path.display(), dir.display()
    )]
    Missing { path: PathBuf, dir: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no PEM {what}: {problem}", path.display())]
    NotPem {
        path: PathBuf,
        what: &'static str,
        problem: String,
    },
    #[error(
        "TLS to the Docker engine is on (DOCKER_TLS_VERIFY) but DOCKER_HOST is {host}: \
         TLS needs tcp://HOST:PORT (or unset DOCKER_TLS_VERIFY)"
    )]
    NotTcp { host: String },
}

impl TlsFiles {
    /// The three files in `dir`, each checked to hold what it should, so
    /// that a wrong file is reported by name now rather than as a failed
    /// handshake later.
    fn load(dir: &Path) -> std::result::Result<TlsFiles, TlsError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let files = TlsFiles {
            dir: dir.to_path_buf(),
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        let pem = |path: &Path, what: &'static str, problem: String| TlsError::NotPem {
            path: path.to_path_buf(),
            what,
            problem,
        };
        for (path, what) in [(&files.ca, "certificate"), (&files.cert, "certificate")] {
            let text = files.read(path)?;
            let certs: std::result::Result<Vec<_>, _> =
                CertificateDer::pem_slice_iter(&text).collect();
            match certs {
                Ok(certs) if !certs.is_empty() => {}
                Ok(_) => return Err(pem(path, what, "none found".into())),
                Err(e) => return Err(pem(path, what, e.to_string())),
            }
        }
        let text = files.read(&files.key)?;
        PrivateKeyDer::from_pem_slice(&text)
            .map_err(|e| pem(&files.key, "private key", e.to_string()))?;
        Ok(files)
    }

    fn read(&self, path: &Path) -> std::result::Result<Vec<u8>, TlsError> {
        std::fs::read(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => TlsError::Missing {
                path: path.to_path_buf(),
                dir: self.dir.clone(),
            },
            _ => TlsError::Unreadable {
                path: path.to_path_buf(),
                source,
            },
        })
    }
}

/// A connection to the engine, with what it said it is.
struct Client {
    docker: Docker,
    product: Product,
}

/// Which engine serves the Docker API. The API is the same; a few of its
/// answers are not, and what dockhook reads back it must send back in the
/// form that engine accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Product {
    Docker,
    /// `podman system service`, which names itself in the version
    /// endpoint's components.
    Podman,
}

impl Product {
    fn of(version: &bollard::models::SystemVersion) -> Product {
        let mut components = version.components.iter().flatten();
        if components.any(|c| c.name == "Podman Engine") {
            Product::Podman
        } else {
            Product::Docker
        }
    }

    fn name(self) -> &'static str {
        match self {
            Product::Docker => "Docker",
            Product::Podman => "Podman",
        }
    }
}

/// Requests may take this long; a pull of a large image is the slowest.
const REQUEST_TIMEOUT_SECS: u64 = 900;

impl DockerEngine {
    /// A client for `host`: `unix:///…`, `tcp://…` (plain HTTP) or
    /// `ssh://[user@]host[:port]`; nothing is sent yet.
    pub fn new(host: &str) -> Self {
        Self {
            host: host.to_string(),
            tls: None,
            client: tokio::sync::OnceCell::new(),
        }
    }

    /// A client for `tcp://…` over TLS, with `ca.pem`, `cert.pem` and
    /// `key.pem` from `cert_dir`, as `docker --tlsverify` makes it: the
    /// engine must present a certificate signed by that CA (or one the
    /// system trusts) for the host name or address in `host`, and gets the
    /// client certificate. The files are checked now; nothing is sent yet.
    pub fn with_tls(host: &str, cert_dir: &Path) -> std::result::Result<Self, TlsError> {
        if !host.starts_with("tcp://") {
            return Err(TlsError::NotTcp {
                host: host.to_string(),
            });
        }
        Ok(Self {
            tls: Some(TlsFiles::load(cert_dir)?),
            ..Self::new(host)
        })
    }

    /// The client, with the API version agreed with the engine.
    async fn docker(&self) -> Result<&Docker> {
        Ok(&self.client().await?.docker)
    }

    async fn client(&self) -> Result<&Client> {
        self.client.get_or_try_init(|| self.connect()).await
    }

    async fn connect(&self) -> Result<Client> {
        let host = &self.host;
        let unreachable = |e: bollard::errors::Error| {
            EngineError::Unavailable(format!(
                "Docker does not answer at {host}: {}. {}",
                with_causes(&e),
                self.what_to_check(&e)
            ))
        };
        let version = bollard::API_DEFAULT_VERSION;
        let timeout = REQUEST_TIMEOUT_SECS;
        let docker = match &self.tls {
            Some(tls) => {
                Docker::connect_with_ssl(host, &tls.key, &tls.cert, &tls.ca, timeout, version)
            }
            None if host.starts_with("unix://") => {
                Docker::connect_with_unix(host, timeout, version)
            }
            None if host.starts_with("ssh://") => ssh::connect(host, timeout, version)
                .map_err(|err| bollard::errors::Error::IOError { err }),
            None => Docker::connect_with_http(host, timeout, version),
        }
        .map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        let version = docker.version().await.map_err(unreachable)?;
        let product = Product::of(&version);
        let v = docker.client_version();
        tracing::info!(
            api = %format!("{}.{}", v.major_version, v.minor_version),
            version = version.version.as_deref().unwrap_or("unknown"),
            %host,
            "connected to {}", product.name()
        );
        Ok(Client { docker, product })
    }

    /// What the user can check when the engine does not answer, by transport.
    fn what_to_check(&self, error: &bollard::errors::Error) -> String {
        let causes = with_causes(error);
        match &self.tls {
            Some(tls) if causes.contains("invalid peer certificate") => format!(
                "The engine's certificate is not signed by the CA in {} or not issued for \
                 this host name or address: use the CA that signed the engine's --tlscert, and \
                 the name or address the certificate names in DOCKER_HOST",
                tls.ca.display()
            ),
            Some(tls) if causes.contains("alert") => format!(
                "The engine refused the client certificate {} (with key {}): it must be \
                 signed by the CA the engine trusts (its --tlscacert)",
                tls.cert.display(),
                tls.key.display()
            ),
            Some(tls) => format!(
                "Is the engine listening there with --tlsverify, and does {} hold its CA \
                 (ca.pem) and a client certificate it trusts (cert.pem, key.pem)?",
                tls.dir.display()
            ),
            None if self.host.starts_with("ssh://") => "Can `ssh` reach the host with the \
                 keys and configuration of the user dockhook runs as (try `ssh HOST docker \
                 system dial-stdio`), and does the remote user have the docker CLI and access \
                 to the engine?"
                .to_string(),
            None if self.host.starts_with("unix://") => "Is the engine running, and is its \
                 socket mounted (-v /var/run/docker.sock:/var/run/docker.sock)?"
                .to_string(),
            None => "Is the engine listening there? If it wants TLS, set DOCKER_TLS_VERIFY=1 \
                 and DOCKER_CERT_PATH."
                .to_string(),
        }
    }

    async fn configured_image(&self, id: &str, listed: String) -> Result<String> {
        // Once a tag moves to a newer image, Docker lists the containers still
        // on the old one by image ID; their configuration keeps the name.
        if !looks_like_image_id(&listed) {
            return Ok(listed);
        }
        let inspect = self.inspect_container(id).await?;
        Ok(inspect.config.and_then(|c| c.image).unwrap_or(listed))
    }
}

/// The X-Registry-Auth Docker takes for `registry`.
fn credentials(registry: &str, login: &Login) -> DockerCredentials {
    DockerCredentials {
        username: Some(login.username.clone()),
        password: Some(login.password.clone()),
        serveraddress: Some(registry.to_string()),
        ..Default::default()
    }
}

/// A listed service as a target; `None` for one without a container image
/// (a plugin service, say).
fn service_target(service: Service) -> Option<ContainerInfo> {
    let spec = service.spec?;
    let image = spec.task_template?.container_spec?.image?;
    Some(ContainerInfo {
        id: service.id?,
        name: spec.name.unwrap_or_default(),
        image: unpinned(&image).to_string(),
        labels: spec.labels.unwrap_or_default(),
        kind: TargetKind::Service,
    })
}

/// The digest a service's spec pins its image to, if it pins one.
pub fn pinned_digest(service: &Service) -> Option<String> {
    let image = service
        .spec
        .as_ref()?
        .task_template
        .as_ref()?
        .container_spec
        .as_ref()?
        .image
        .as_deref()?;
    ImageRef::parse(image).ok()?.digest
}

/// `image` without the digest pinned behind its tag (`repo:tag@sha256:…` →
/// `repo:tag`). A reference with a digest and no tag keeps it: it pins.
pub fn unpinned(image: &str) -> &str {
    match image.split_once('@') {
        Some((named, _)) if has_tag(named) => named,
        _ => image,
    }
}

/// Whether a reference without digest names a tag (a `:` after the last
/// `/`, which is not a registry's port).
pub fn has_tag(named: &str) -> bool {
    let last = named.rsplit('/').next().unwrap_or(named);
    last.contains(':')
}

fn looks_like_image_id(image: &str) -> bool {
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    (hex.len() == 12 || hex.len() == 64) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Engine for DockerEngine {
    async fn ping(&self) -> Result<()> {
        self.docker()
            .await?
            .ping()
            .await
            .map(drop)
            .map_err(Into::into)
    }

    async fn list_running(&self) -> Result<Vec<ContainerInfo>> {
        let options = ListContainersOptionsBuilder::default().all(false).build();
        let summaries = self.docker().await?.list_containers(Some(options)).await?;
        let mut containers = Vec::with_capacity(summaries.len());
        for summary in summaries {
            let (Some(id), Some(image)) = (summary.id, summary.image) else {
                continue;
            };
            let name = summary
                .names
                .and_then(|names| names.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default();
            let image = match self.configured_image(&id, image).await {
                Ok(image) => image,
                // It went away between the list and the inspect.
                Err(EngineError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            containers.push(ContainerInfo {
                id,
                name,
                image,
                labels: summary.labels.unwrap_or_default(),
                kind: TargetKind::Container,
            });
        }
        Ok(containers)
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInspectResponse> {
        let client = self.client().await?;
        let deadline = tokio::time::Instant::now() + PODMAN_CLEANUP_WAIT;
        loop {
            match client.docker.inspect_container(id, None).await {
                // Podman reports `stopped` from a container's exit until it
                // has cleaned up after it (a fraction of a second), a state
                // the Docker API does not have; then it says `exited`.
                Err(e)
                    if client.product == Product::Podman
                        && is_podman_stopped(&e)
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(PODMAN_CLEANUP_POLL).await;
                }
                other => return Ok(other?),
            }
        }
    }

    async fn inspect_image(&self, reference: &str) -> Result<ImageInspect> {
        Ok(self.docker().await?.inspect_image(reference).await?)
    }

    async fn pull(&self, image: &ImageRef, login: Option<&Login>) -> Result<()> {
        let options = CreateImageOptionsBuilder::default()
            .from_image(&image.name())
            .tag(&image.tag)
            .build();
        let credentials = login.map(|login| credentials(&image.registry, login));
        self.docker()
            .await?
            .create_image(Some(options), None, credentials)
            .try_for_each(|_| async { Ok(()) })
            .await
            .map_err(|e| {
                EngineError::Other(format!("pulling {image} failed: {}", EngineError::from(e)))
            })
    }

    async fn create_container(&self, name: &str, body: ContainerCreateBody) -> Result<String> {
        let client = self.client().await?;
        let body = match client.product {
            Product::Docker => body,
            Product::Podman => for_podman(body),
        };
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        Ok(client
            .docker
            .create_container(Some(options), body)
            .await?
            .id)
    }

    async fn connect_network(
        &self,
        network: &str,
        container: &str,
        endpoint: EndpointSettings,
    ) -> Result<()> {
        let request = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(endpoint),
        };
        Ok(self
            .docker()
            .await?
            .connect_network(network, request)
            .await?)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        Ok(self.docker().await?.start_container(id, None).await?)
    }

    async fn stop_container(&self, id: &str, timeout: Option<i32>) -> Result<()> {
        let mut options = StopContainerOptionsBuilder::default();
        if let Some(timeout) = timeout {
            options = options.t(timeout);
        }
        match self
            .docker()
            .await?
            .stop_container(id, Some(options.build()))
            .await
        {
            // 304: it was not running, which is what we wanted.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            other => Ok(other?),
        }
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        let options = RenameContainerOptionsBuilder::default()
            .name(new_name)
            .build();
        Ok(self.docker().await?.rename_container(id, options).await?)
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        Ok(self
            .docker()
            .await?
            .remove_container(id, Some(options))
            .await?)
    }

    async fn remove_image(&self, id: &str) -> Result<ImageRemoval> {
        let options = RemoveImageOptionsBuilder::default()
            .force(false)
            .noprune(false)
            .build();
        match self
            .docker()
            .await?
            .remove_image(id, Some(options), None)
            .await
        {
            Ok(_) => Ok(ImageRemoval::Removed),
            Err(e) => match EngineError::from(e) {
                EngineError::Conflict(_) => Ok(ImageRemoval::InUse),
                other => Err(other),
            },
        }
    }

    async fn tag_image(&self, id: &str, image: &ImageRef) -> Result<()> {
        let options = TagImageOptionsBuilder::default()
            .repo(&image.name())
            .tag(&image.tag)
            .build();
        Ok(self.docker().await?.tag_image(id, Some(options)).await?)
    }

    async fn disconnect_network(&self, network: &str, container: &str) -> Result<()> {
        let request = NetworkDisconnectRequest {
            container: container.to_string(),
            force: Some(true),
        };
        Ok(self
            .docker()
            .await?
            .disconnect_network(network, request)
            .await?)
    }

    async fn logs_tail(&self, id: &str, lines: usize) -> Result<String> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        collect_output(self.docker().await?.logs(id, Some(options))).await
    }

    fn container_events(&self) -> impl Stream<Item = Result<()>> + Send + '_ {
        // Filters of different keys combine with AND: a container's
        // `create` or `update` comes too, and costs one list more.
        let filters = HashMap::from([
            ("type", vec!["container", "service"]),
            (
                "event",
                vec![
                    "start", "die", "destroy", "rename", "create", "update", "remove",
                ],
            ),
        ]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        futures_util::stream::once(self.docker()).flat_map(move |docker| match docker {
            Ok(docker) => docker
                .events(Some(options.clone()))
                .map(|event| event.map(drop).map_err(EngineError::from))
                .boxed(),
            Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
        })
    }

    async fn exec(&self, id: &str, cmd: Vec<String>) -> Result<ExecOutcome> {
        let docker = self.docker().await?;
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd),
            ..Default::default()
        };
        let exec = docker.create_exec(id, config).await?;
        let output = match docker.start_exec(&exec.id, None).await {
            Ok(StartExecResults::Attached { output, .. }) => collect_output(output).await?,
            Ok(StartExecResults::Detached) => String::new(),
            // Docker starts the command all the same, maybe a moment after
            // it answered: its exit code is there once it has run (the
            // caller's hook timeout bounds the wait).
            Err(e) if is_refused_upgrade(&e) => {
                loop {
                    let inspect = docker.inspect_exec(&exec.id).await?;
                    if inspect.running != Some(true) && inspect.exit_code.is_some() {
                        break;
                    }
                    tokio::time::sleep(EXEC_POLL).await;
                }
                UPGRADE_REFUSED_OUTPUT.to_string()
            }
            Err(e) => return Err(e.into()),
        };
        let inspect = docker.inspect_exec(&exec.id).await?;
        Ok(ExecOutcome {
            exit_code: inspect.exit_code.unwrap_or(-1),
            output,
        })
    }

    async fn is_swarm_manager(&self) -> Result<bool> {
        let info = self.docker().await?.info().await?;
        Ok(info
            .swarm
            .and_then(|swarm| swarm.control_available)
            .unwrap_or(false))
    }

    async fn list_services(&self) -> Result<Vec<ContainerInfo>> {
        let services = self.docker().await?.list_services(None).await?;
        Ok(services.into_iter().filter_map(service_target).collect())
    }

    async fn inspect_service(&self, id: &str) -> Result<Service> {
        Ok(self.docker().await?.inspect_service(id, None).await?)
    }

    async fn update_service(
        &self,
        id: &str,
        version: u64,
        spec: ServiceSpec,
        login: Option<(&str, &Login)>,
        rollback: bool,
    ) -> Result<()> {
        let version = i32::try_from(version).map_err(|_| {
            EngineError::Other(format!(
                "service {id} is at version {version}, beyond what the Docker client can send"
            ))
        })?;
        let mut options = UpdateServiceOptionsBuilder::default().version(version);
        if rollback {
            options = options.rollback("previous");
        }
        let credentials = login.map(|(registry, login)| credentials(registry, login));
        let answer = self
            .docker()
            .await?
            .update_service(id, spec, options.build(), credentials)
            .await?;
        for warning in answer.warnings.into_iter().flatten() {
            tracing::warn!(service = %id, %warning, "Swarm warns about the update");
        }
        Ok(())
    }
}

/// How long an inspect waits for Podman to clean up after a container that
/// exited, and how often it asks.
const PODMAN_CLEANUP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
const PODMAN_CLEANUP_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether Docker's answer to an exec start was not the connection upgrade
/// bollard asked for (`101`) but a plain `200`: what a proxy that does not
/// pass on the upgrade of a request with a body gets (haproxy 2.4 to 3.0,
/// Debian 12's included; haproxy issue 2684).
fn is_refused_upgrade(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::HyperResponseError { err }
            if err.is_user() && err.to_string().contains("upgrade")
    )
}

/// How often an exec whose output could not be read is asked whether it
/// has ended.
const EXEC_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// An exec's output when the connection to Docker could not be upgraded.
const UPGRADE_REFUSED_OUTPUT: &str = "(output not available: a proxy between dockhook and \
    Docker did not pass on the connection upgrade that carries it)";

fn is_podman_stopped(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::JsonDataError { message, .. } if message.contains("`stopped`")
    )
}

/// A create body as Podman accepts it, from one written in what its inspect
/// reported. Podman (4.x at least) reports ulimits by their kernel names
/// (`RLIMIT_NOFILE`) but parses only the short ones (`nofile`) at create, so
/// every container it ran was refused a successor (containers/podman#18077,
/// #22151). Docker itself never reports the long form.
fn for_podman(mut body: ContainerCreateBody) -> ContainerCreateBody {
    let ulimits = body.host_config.as_mut().and_then(|h| h.ulimits.as_mut());
    for ulimit in ulimits.into_iter().flatten() {
        if let Some(name) = &mut ulimit.name {
            if let Some(short) = name.strip_prefix("RLIMIT_") {
                *name = short.to_ascii_lowercase();
            }
        }
    }
    body
}

/// An error with the errors that caused it, `: `-separated: a failed TLS
/// handshake shows only as "client error (Connect)" without them.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = e.source();
    }
    text
}

/// How much of a command's or a log's output is kept for the history.
const OUTPUT_LIMIT: usize = 4096;

/// Collects a Docker output stream as text, keeping its end when it is long.
async fn collect_output(
    stream: impl futures_util::Stream<Item = std::result::Result<LogOutput, bollard::errors::Error>>,
) -> Result<String> {
    let chunks: Vec<LogOutput> = stream.try_collect().await?;
    let mut text = String::new();
    for chunk in chunks {
        text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    if text.len() > OUTPUT_LIMIT {
        let mut cut = text.len() - OUTPUT_LIMIT;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text = format!("…{}", &text[cut..]);
    }
    Ok(text)
}

/// The ID of the container this process runs in, if it runs in one: the
/// engine bind-mounts `/etc/hosts` and friends from
/// `…/containers/<id>/`, which shows in the mount table whatever the
/// cgroup version.
pub fn own_container_id() -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    container_id_from_mountinfo(&mounts)
}

fn container_id_from_mountinfo(mounts: &str) -> Option<String> {
    mounts.lines().find_map(|line| {
        let (_, rest) = line.split_once("/containers/")?;
        let id = rest.split('/').next()?;
        (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(message: &str) -> String {
        EngineError::from(bollard::errors::Error::DockerResponseServerError {
            status_code: 403,
            message: message.to_string(),
        })
        .to_string()
    }

    #[test]
    fn a_refusal_names_the_proxy_and_keeps_its_words() {
        let error = forbidden("the socket proxy does not allow POST /v1.47/containers/create");
        assert!(
            error.starts_with(
                "Docker API call refused with 403 Forbidden (the socket proxy does not allow \
                 POST /v1.47/containers/create): a socket proxy"
            ),
            "{error}"
        );
        assert!(error.contains("allow this call there"), "{error}");
    }

    #[test]
    fn a_refusal_as_an_html_page_is_told_as_text() {
        // haproxy's default 403 page, as docker-socket-proxy sends it.
        let page = "<html><body><h1>403 Forbidden</h1>\nRequest forbidden by \
                    administrative rules.\n</body></html>\n";
        let error = forbidden(page);
        assert!(
            error.contains(
                "(403 Forbidden Request forbidden by administrative rules.): a socket proxy"
            ),
            "{error}"
        );
        assert!(!error.contains('<'), "{error}");
    }

    #[test]
    fn unpins_tagged_references_only() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            unpinned(&format!("127.0.0.1:5000/alice/site:latest@{digest}")),
            "127.0.0.1:5000/alice/site:latest"
        );
        let bare = format!("127.0.0.1:5000/alice/site@{digest}");
        assert_eq!(unpinned(&bare), bare);
        assert_eq!(unpinned("alice/site:v1"), "alice/site:v1");
    }

    #[test]
    fn recognises_image_ids() {
        assert!(looks_like_image_id(&format!("sha256:{}", "ab".repeat(32))));
        assert!(looks_like_image_id("0123456789ab"));
        assert!(!looks_like_image_id("alice/site:latest"));
        assert!(!looks_like_image_id("127.0.0.1:5000/site"));
    }

    #[test]
    fn recognises_podman_by_its_version_components() {
        let component = |name: &str| bollard::models::SystemVersionComponents {
            name: name.into(),
            version: "4.3.1".into(),
            details: None,
        };
        let version = |names: &[&str]| bollard::models::SystemVersion {
            components: Some(names.iter().map(|n| component(n)).collect()),
            ..Default::default()
        };
        assert_eq!(
            Product::of(&version(&["Podman Engine", "Conmon"])),
            Product::Podman
        );
        assert_eq!(
            Product::of(&version(&["Engine", "containerd"])),
            Product::Docker
        );
        assert_eq!(
            Product::of(&bollard::models::SystemVersion::default()),
            Product::Docker
        );
    }

    #[test]
    fn podman_gets_ulimits_by_their_short_names() {
        use bollard::models::{HostConfig, ResourcesUlimits};
        let ulimit = |name: &str| ResourcesUlimits {
            name: Some(name.into()),
            soft: Some(20000),
            hard: Some(20000),
        };
        let body = ContainerCreateBody {
            host_config: Some(HostConfig {
                ulimits: Some(vec![ulimit("RLIMIT_NOFILE"), ulimit("nproc")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let body = for_podman(body);
        let ulimits = body.host_config.unwrap().ulimits.unwrap();
        assert_eq!(ulimits, vec![ulimit("nofile"), ulimit("nproc")]);
        // Nothing else to translate: the body passes untouched.
        assert_eq!(
            for_podman(ContainerCreateBody::default()),
            ContainerCreateBody::default()
        );
    }

    #[test]
    fn tls_files_are_checked_before_any_contact() {
        let with_tls = |host: &str, dir: &Path| DockerEngine::with_tls(host, dir).err().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let missing = with_tls("tcp://127.0.0.1:2376", dir.path());
        assert!(
            matches!(&missing, TlsError::Missing { path, .. } if path.ends_with("ca.pem")),
            "{missing}"
        );
        for file in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(dir.path().join(file), "not a certificate\n").unwrap();
        }
        let garbage = with_tls("tcp://127.0.0.1:2376", dir.path());
        assert!(
            garbage
                .to_string()
                .contains("ca.pem holds no PEM certificate"),
            "{garbage}"
        );
        let socket = with_tls("unix:///var/run/docker.sock", dir.path());
        assert!(matches!(socket, TlsError::NotTcp { .. }), "{socket}");
    }

    #[test]
    fn finds_own_container_id_in_mountinfo() {
        let id = "3f1c".repeat(16);
        let mounts = format!(
            "583 560 0:52 / / rw,relatime - overlay overlay rw\n\
             601 583 254:1 /var/lib/docker/containers/{id}/hosts /etc/hosts rw - ext4 /dev/vda rw\n"
        );
        assert_eq!(container_id_from_mountinfo(&mounts), Some(id));
        assert_eq!(
            container_id_from_mountinfo("1 0 0:1 / / rw - ext4 /dev/vda rw\n"),
            None
        );
    }
}
