//! The Docker Engine: the only module that talks to Docker.
//!
//! [`Engine`] is the small set of operations an update needs, in the
//! vocabulary of the domain; [`DockerEngine`] implements it over the Engine
//! API with bollard, negotiating the API version so the same binary drives
//! Docker 20.10 (API 1.41) and current engines. Deploy logic is written
//! against the trait, so unit tests can run it on an in-memory fake; every
//! claim about real behaviour is proven by the end-to-end tests.
//!
//! On a Swarm manager the engine also lists, inspects and updates services
//! (the last block of [`Engine`]); a service is a target like a container,
//! and [`ContainerInfo::kind`] tells them apart.

use std::collections::HashMap;
use std::future::Future;

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
            Error::DockerResponseServerError {
                status_code,
                message,
            } => EngineError::Other(format!("Docker answered {status_code}: {message}")),
            unreachable @ (Error::HyperLegacyError { .. }
            | Error::IOError { .. }
            | Error::SocketNotFoundError(_)
            | Error::RequestTimeoutError) => {
                EngineError::Unavailable(format!("Docker does not answer ({unreachable})"))
            }
            other => EngineError::Other(other.to_string()),
        }
    }
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
    client: tokio::sync::OnceCell<Docker>,
}

/// Requests may take this long; a pull of a large image is the slowest.
const REQUEST_TIMEOUT_SECS: u64 = 900;

impl DockerEngine {
    /// A client for `host` (`unix:///…` or `tcp://…`); nothing is sent yet.
    pub fn new(host: &str) -> Self {
        Self {
            host: host.to_string(),
            client: tokio::sync::OnceCell::new(),
        }
    }

    /// The client, with the API version agreed with the engine.
    async fn docker(&self) -> Result<&Docker> {
        self.client.get_or_try_init(|| self.connect()).await
    }

    async fn connect(&self) -> Result<Docker> {
        let host = &self.host;
        let unreachable = |e: bollard::errors::Error| {
            EngineError::Unavailable(format!(
                "Docker does not answer at {host}: {e}. Is the engine running, and is its \
                 socket mounted (-v /var/run/docker.sock:/var/run/docker.sock)?"
            ))
        };
        let version = bollard::API_DEFAULT_VERSION;
        let docker = if host.starts_with("unix://") {
            Docker::connect_with_unix(host, REQUEST_TIMEOUT_SECS, version)
        } else {
            Docker::connect_with_http(host, REQUEST_TIMEOUT_SECS, version)
        }
        .map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        let v = docker.client_version();
        tracing::info!(api = %format!("{}.{}", v.major_version, v.minor_version), %host, "connected to Docker");
        Ok(docker)
    }

    async fn configured_image(&self, id: &str, listed: String) -> Result<String> {
        // Once a tag moves to a newer image, Docker lists the containers still
        // on the old one by image ID; their configuration keeps the name.
        if !looks_like_image_id(&listed) {
            return Ok(listed);
        }
        let inspect = self.docker().await?.inspect_container(id, None).await?;
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
        Ok(self.docker().await?.inspect_container(id, None).await?)
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
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        Ok(self
            .docker()
            .await?
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
        let output = match docker.start_exec(&exec.id, None).await? {
            StartExecResults::Attached { output, .. } => collect_output(output).await?,
            StartExecResults::Detached => String::new(),
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
