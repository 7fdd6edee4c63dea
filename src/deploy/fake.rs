//! An in-memory [`Engine`](crate::engine::Engine) for unit tests of the deploy logic: a few
//! containers and images, a registry that says what a pull brings, and
//! switches to make steps fail. It models just enough of Docker to follow an
//! update; the end-to-end tests prove the real behaviour.
//!
//! Where it models a call, it answers as Docker 20.10 does, so the deploy
//! logic meets the same refusals here as on a host. `tests/e2e_fake_engine.rs`
//! runs one sequence on both and compares:
//!
//! - rename: a missing container is not found (even if the new name is
//!   taken); a name another container holds is a conflict; a container's own
//!   name is refused (400, neither "not found" nor "conflict");
//! - disconnect: a missing container is not found; a network the container
//!   is not on is refused (500), `force` or not;
//! - connect: to a network it is already on, fine while the container is
//!   not running, refused (403) while it runs;
//! - start of a running and stop of a stopped container succeed (304).
//!
//! Networks are not checked to exist: every network a test names does.
//!
//! Swarm services are modelled by what dockhook sees of them: a spec image,
//! a version that every change bumps (an update at an older version is
//! refused, as Swarm refuses it), and an update status that moves one
//! scripted state per inspection after an update or a rollback.
//! Compiled into the library (hidden from its docs) so that the end-to-end
//! check can drive it; nothing in the product uses it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bollard::models::{
    ContainerConfig, ContainerCreateBody, ContainerInspectResponse, ContainerState,
    EndpointSettings, ImageInspect, NetworkSettings, ObjectVersion, Service, ServiceSpec,
    ServiceUpdateStatus, TaskSpec, TaskSpecContainerSpec,
};

use crate::credentials::Login;
use crate::engine::{
    unpinned, ContainerInfo, Engine, EngineError, ExecOutcome, ImageRemoval, TargetKind,
    UpdateState,
};
use crate::image_ref::ImageRef;

type Result<T> = std::result::Result<T, EngineError>;

#[derive(Debug, Clone)]
pub struct FakeContainer {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub running: bool,
    pub exit_code: i64,
    pub labels: HashMap<String, String>,
    /// The networks it is connected to, by name.
    pub networks: Vec<String>,
}

#[derive(Default)]
pub struct World {
    pub containers: Vec<FakeContainer>,
    /// Local images: ID → tags.
    pub images: HashMap<String, Vec<String>>,
    /// What pulling a reference (as `ImageRef` prints it) yields.
    pub registry: HashMap<String, String>,
    /// Image ID → the manifest digest the registry served it under.
    pub digests: HashMap<String, String>,
    pub fail_pull: bool,
    /// Listing containers and pings fail, as when Docker does not answer.
    pub fail_list: bool,
    /// Exit code of commands run with `exec`.
    pub exec_exit_code: i64,
    pub fail_start_of_new: bool,
    /// New containers exit right after starting.
    pub new_exits: bool,
    /// Starting a container that is not new fails (to fail a rollback).
    pub fail_start_of_old: bool,
    /// Creating a container panics, as a bug in dockhook would.
    pub panic_on_create: bool,
    /// Just before a create, the registry's tag is pulled to this image by
    /// someone else (a user's `docker pull`, say).
    pub tag_moves_before_create: Option<String>,
    pub next_id: u32,
    /// Every mutating call, in order.
    pub calls: Vec<String>,
    /// The engine is a Swarm manager.
    pub swarm_manager: bool,
    pub services: Vec<FakeService>,
    /// What Swarm reports after an update, one state per inspection; the
    /// last one stays.
    pub rollout: Vec<(UpdateState, String)>,
    /// The same, after a rollback was asked for.
    pub rollback: Vec<(UpdateState, String)>,
}

#[derive(Debug, Clone)]
pub struct FakeService {
    pub id: String,
    pub name: String,
    /// The spec's image, as written (pinned or not).
    pub image: String,
    /// The image of the spec before the last update, for a rollback.
    pub previous_image: Option<String>,
    pub labels: HashMap<String, String>,
    pub version: u64,
    pub force_update: u64,
    pub status: Option<(UpdateState, String)>,
    /// What the next inspections report, in order.
    pub upcoming: VecDeque<(UpdateState, String)>,
}

pub struct FakeEngine {
    pub world: Mutex<World>,
    events: tokio::sync::broadcast::Sender<()>,
}

impl Default for FakeEngine {
    fn default() -> Self {
        Self {
            world: Mutex::default(),
            events: tokio::sync::broadcast::channel(16).0,
        }
    }
}

impl FakeEngine {
    /// A host running `name` from `image` as image `old`, and a registry
    /// where that image is now `new`.
    pub fn with_container(name: &str, image: &str, old: &str, new: &str) -> Self {
        let engine = Self::default();
        {
            let mut world = engine.world.lock().unwrap();
            world.containers.push(FakeContainer {
                id: format!("{name}-id"),
                name: name.into(),
                image: image.into(),
                image_id: old.into(),
                running: true,
                exit_code: 0,
                labels: HashMap::new(),
                networks: Vec::new(),
            });
            world.images.insert(old.into(), vec![image.into()]);
            let normalised = ImageRef::parse(image).unwrap().to_string();
            world.registry.insert(normalised, new.into());
        }
        engine
    }

    /// A Swarm manager running service `name` on `image` (a tag) pinned to
    /// digest `old`, and a registry where the tag is now image `new_id`
    /// under digest `new`. Updates complete unless a test scripts otherwise.
    pub fn with_service(name: &str, image: &str, old: &str, new_id: &str, new: &str) -> Self {
        let engine = Self::default();
        {
            let mut world = engine.world.lock().unwrap();
            world.swarm_manager = true;
            world.services.push(FakeService {
                id: format!("{name}-id"),
                name: name.into(),
                image: format!("{image}@{old}"),
                previous_image: None,
                labels: HashMap::new(),
                version: 10,
                force_update: 0,
                status: None,
                upcoming: VecDeque::new(),
            });
            let normalised = ImageRef::parse(image).unwrap().to_string();
            world.registry.insert(normalised, new_id.into());
            world.digests.insert(new_id.into(), new.into());
            world.rollout = vec![
                (UpdateState::UPDATING, "update in progress".into()),
                (UpdateState::COMPLETED, "update completed".into()),
            ];
            world.rollback = vec![
                (UpdateState::ROLLBACK_STARTED, "rollback in progress".into()),
                (UpdateState::ROLLBACK_COMPLETED, "rollback completed".into()),
            ];
        }
        engine
    }

    /// The service now called `name`.
    pub fn service(&self, name: &str) -> Option<FakeService> {
        self.lock()
            .services
            .iter()
            .find(|s| s.name == name)
            .cloned()
    }

    /// Tells watchers that containers changed.
    pub fn send_event(&self) {
        let _ = self.events.send(());
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    /// The container now called `name`.
    pub fn named(&self, name: &str) -> Option<FakeContainer> {
        self.lock()
            .containers
            .iter()
            .find(|c| c.name == name)
            .cloned()
    }
}

impl World {
    fn service(&mut self, id_or_name: &str) -> Result<&mut FakeService> {
        self.services
            .iter_mut()
            .find(|s| s.id == id_or_name || s.name == id_or_name)
            .ok_or_else(|| EngineError::NotFound(format!("service {id_or_name} not found")))
    }

    fn find(&mut self, id_or_name: &str) -> Result<&mut FakeContainer> {
        self.containers
            .iter_mut()
            .find(|c| c.id == id_or_name || c.name == id_or_name)
            .ok_or_else(|| EngineError::NotFound(format!("no such container: {id_or_name}")))
    }

    fn image_id(&self, reference: &str) -> Option<String> {
        if self.images.contains_key(reference) {
            return Some(reference.to_string());
        }
        let wanted = ImageRef::parse(reference).ok()?;
        self.images.iter().find_map(|(id, tags)| {
            tags.iter()
                .any(|t| ImageRef::parse(t).is_ok_and(|t| t.same_repository_and_tag(&wanted)))
                .then(|| id.clone())
        })
    }
}

impl Engine for FakeEngine {
    async fn ping(&self) -> Result<()> {
        if self.lock().fail_list {
            return Err(EngineError::Other("Docker does not answer".into()));
        }
        Ok(())
    }

    async fn list_running(&self) -> Result<Vec<ContainerInfo>> {
        if self.lock().fail_list {
            return Err(EngineError::Other("Docker does not answer".into()));
        }
        Ok(self
            .lock()
            .containers
            .iter()
            .filter(|c| c.running)
            .map(|c| ContainerInfo {
                id: c.id.clone(),
                name: c.name.clone(),
                image: c.image.clone(),
                labels: c.labels.clone(),
                kind: TargetKind::Container,
            })
            .collect())
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInspectResponse> {
        let mut world = self.lock();
        let c = world.find(id)?;
        let network_settings = (!c.networks.is_empty()).then(|| NetworkSettings {
            networks: Some(
                c.networks
                    .iter()
                    .map(|n| (n.clone(), EndpointSettings::default()))
                    .collect(),
            ),
            ..Default::default()
        });
        Ok(ContainerInspectResponse {
            network_settings,
            id: Some(c.id.clone()),
            name: Some(format!("/{}", c.name)),
            image: Some(c.image_id.clone()),
            config: Some(ContainerConfig {
                image: Some(c.image.clone()),
                labels: Some(c.labels.clone()),
                ..Default::default()
            }),
            state: Some(ContainerState {
                running: Some(c.running),
                exit_code: Some(c.exit_code),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    async fn inspect_image(&self, reference: &str) -> Result<ImageInspect> {
        let world = self.lock();
        let id = world
            .image_id(reference)
            .ok_or_else(|| EngineError::NotFound(format!("no such image: {reference}")))?;
        let tags = world.images[&id].clone();
        let repo_digests = world.digests.get(&id).map(|digest| {
            tags.iter()
                .filter_map(|t| ImageRef::parse(t).ok())
                .map(|t| format!("{}@{digest}", t.name()))
                .collect()
        });
        Ok(ImageInspect {
            repo_tags: Some(tags),
            repo_digests,
            id: Some(id),
            ..Default::default()
        })
    }

    async fn pull(&self, image: &ImageRef, _: Option<&crate::credentials::Login>) -> Result<()> {
        let mut world = self.lock();
        world.calls.push(format!("pull {image}"));
        if world.fail_pull {
            return Err(EngineError::Other("manifest unknown".into()));
        }
        let id = world
            .registry
            .get(&image.to_string())
            .cloned()
            .ok_or_else(|| EngineError::NotFound(format!("{image} is not in the registry")))?;
        let tag = image.to_string();
        for tags in world.images.values_mut() {
            tags.retain(|t| ImageRef::parse(t).map_or(true, |t| !t.same_repository_and_tag(image)));
        }
        world.images.entry(id).or_default().push(tag);
        Ok(())
    }

    async fn create_container(&self, name: &str, body: ContainerCreateBody) -> Result<String> {
        let mut world = self.lock();
        world.calls.push(format!("create {name}"));
        if world.panic_on_create {
            world.panic_on_create = false;
            drop(world);
            panic!("a bug while creating {name}");
        }
        if world.containers.iter().any(|c| c.name == name) {
            return Err(EngineError::Conflict(format!("name {name} is in use")));
        }
        let image = body.image.unwrap_or_default();
        if let Some(moved) = world.tag_moves_before_create.take() {
            for tags in world.images.values_mut() {
                tags.retain(|t| t != &image);
            }
            world.images.entry(moved).or_default().push(image.clone());
        }
        let image_id = world
            .image_id(&image)
            .ok_or_else(|| EngineError::NotFound(format!("no such image: {image}")))?;
        world.next_id += 1;
        let id = format!("new-{}", world.next_id);
        let networks = body
            .networking_config
            .and_then(|n| n.endpoints_config)
            .map(|endpoints| endpoints.into_keys().collect())
            .unwrap_or_default();
        world.containers.push(FakeContainer {
            id: id.clone(),
            name: name.into(),
            image,
            image_id,
            running: false,
            exit_code: 0,
            labels: body.labels.unwrap_or_default(),
            networks,
        });
        Ok(id)
    }

    async fn connect_network(
        &self,
        network: &str,
        container: &str,
        _: EndpointSettings,
    ) -> Result<()> {
        let mut world = self.lock();
        world.calls.push(format!("connect {container} {network}"));
        let c = world.find(container)?;
        if c.networks.iter().any(|n| n == network) {
            // Docker updates a stopped container's endpoint, but refuses a
            // second endpoint for a running one.
            return if c.running {
                Err(EngineError::Other(format!(
                    "Docker answered 403: endpoint with name {} already exists in network {network}",
                    c.name
                )))
            } else {
                Ok(())
            };
        }
        c.networks.push(network.to_string());
        Ok(())
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let mut world = self.lock();
        world.calls.push(format!("start {id}"));
        let (fail, exits, fail_old) = (
            world.fail_start_of_new,
            world.new_exits,
            world.fail_start_of_old,
        );
        let c = world.find(id)?;
        let is_new = c.id.starts_with("new-");
        if (is_new && fail) || (!is_new && fail_old) {
            return Err(EngineError::Other("OCI runtime create failed".into()));
        }
        c.running = !(is_new && exits);
        c.exit_code = if c.running { 0 } else { 1 };
        Ok(())
    }

    async fn stop_container(&self, id: &str, _: Option<i32>) -> Result<()> {
        let mut world = self.lock();
        world.calls.push(format!("stop {id}"));
        world.find(id)?.running = false;
        Ok(())
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        let mut world = self.lock();
        world.calls.push(format!("rename {id} {new_name}"));
        let c = world.find(id)?;
        if c.name == new_name {
            return Err(EngineError::Other(
                "Docker answered 400: Renaming a container with the same name as its current name"
                    .into(),
            ));
        }
        let own_id = c.id.clone();
        if world
            .containers
            .iter()
            .any(|c| c.name == new_name && c.id != own_id)
        {
            return Err(EngineError::Conflict(format!(
                "The container name \"/{new_name}\" is already in use"
            )));
        }
        world.find(id)?.name = new_name.into();
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let mut world = self.lock();
        world.calls.push(format!("remove {id}"));
        let before = world.containers.len();
        world.containers.retain(|c| c.id != id && c.name != id);
        if world.containers.len() == before {
            return Err(EngineError::NotFound(id.into()));
        }
        Ok(())
    }

    async fn remove_image(&self, id: &str) -> Result<ImageRemoval> {
        let mut world = self.lock();
        world.calls.push(format!("rmi {id}"));
        if world.containers.iter().any(|c| c.image_id == id) {
            return Ok(ImageRemoval::InUse);
        }
        world.images.remove(id);
        Ok(ImageRemoval::Removed)
    }

    async fn tag_image(&self, id: &str, image: &ImageRef) -> Result<()> {
        let mut world = self.lock();
        world.calls.push(format!("tag {id} {image}"));
        for tags in world.images.values_mut() {
            tags.retain(|t| ImageRef::parse(t).map_or(true, |t| !t.same_repository_and_tag(image)));
        }
        world
            .images
            .entry(id.to_string())
            .or_default()
            .push(image.to_string());
        Ok(())
    }

    async fn disconnect_network(&self, network: &str, container: &str) -> Result<()> {
        let mut world = self.lock();
        world
            .calls
            .push(format!("disconnect {container} {network}"));
        let c = world.find(container)?;
        let before = c.networks.len();
        c.networks.retain(|n| n != network);
        if c.networks.len() == before {
            return Err(EngineError::Other(format!(
                "Docker answered 500: container {} is not connected to network {network}",
                c.id
            )));
        }
        Ok(())
    }

    async fn logs_tail(&self, id: &str, _: usize) -> Result<String> {
        Ok(format!("log of {id}"))
    }

    async fn exec(&self, id: &str, cmd: Vec<String>) -> Result<ExecOutcome> {
        let mut world = self.lock();
        world.calls.push(format!("exec {id} {}", cmd.join(" ")));
        Ok(ExecOutcome {
            exit_code: world.exec_exit_code,
            output: "hook output".into(),
        })
    }

    fn container_events(&self) -> impl futures_util::Stream<Item = Result<()>> + Send + '_ {
        futures_util::stream::unfold(self.events.subscribe(), |mut receiver| async move {
            receiver.recv().await.ok().map(|()| (Ok(()), receiver))
        })
    }

    async fn is_swarm_manager(&self) -> Result<bool> {
        Ok(self.lock().swarm_manager)
    }

    async fn list_services(&self) -> Result<Vec<ContainerInfo>> {
        let world = self.lock();
        if !world.swarm_manager {
            return Err(EngineError::Other(
                "Docker answered 503: This node is not a swarm manager.".into(),
            ));
        }
        Ok(world
            .services
            .iter()
            .map(|s| ContainerInfo {
                id: s.id.clone(),
                name: s.name.clone(),
                image: unpinned(&s.image).to_string(),
                labels: s.labels.clone(),
                kind: TargetKind::Service,
            })
            .collect())
    }

    async fn inspect_service(&self, id: &str) -> Result<Service> {
        let mut world = self.lock();
        let service = world.service(id)?;
        // Swarm moves on between two looks, and each move is a new version.
        if let Some(next) = service.upcoming.pop_front() {
            service.status = Some(next);
            service.version += 1;
        }
        Ok(Service {
            id: Some(service.id.clone()),
            version: Some(ObjectVersion {
                index: Some(service.version),
            }),
            spec: Some(ServiceSpec {
                name: Some(service.name.clone()),
                labels: Some(service.labels.clone()),
                task_template: Some(TaskSpec {
                    container_spec: Some(TaskSpecContainerSpec {
                        image: Some(service.image.clone()),
                        ..Default::default()
                    }),
                    force_update: Some(service.force_update),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_status: service
                .status
                .clone()
                .map(|(state, message)| ServiceUpdateStatus {
                    state: Some(state),
                    message: Some(message),
                    ..Default::default()
                }),
            ..Default::default()
        })
    }

    async fn update_service(
        &self,
        id: &str,
        version: u64,
        spec: ServiceSpec,
        login: Option<(&str, &Login)>,
        rollback: bool,
    ) -> Result<()> {
        let mut world = self.lock();
        let (rollout, rollback_script) = (world.rollout.clone(), world.rollback.clone());
        let service = world.service(id)?;
        if version != service.version {
            return Err(EngineError::Other(
                "Docker answered 500: rpc error: code = Unknown desc = update out of sequence"
                    .into(),
            ));
        }
        let call = if rollback {
            let previous = service.previous_image.take().ok_or_else(|| {
                EngineError::Other("service does not have a previous spec".into())
            })?;
            service.previous_image = Some(std::mem::replace(&mut service.image, previous));
            service.upcoming = rollback_script.into();
            format!("rollback-service {}", service.name)
        } else {
            let task = spec.task_template.unwrap_or_default();
            let image = task
                .container_spec
                .and_then(|c| c.image)
                .unwrap_or_default();
            service.previous_image = Some(std::mem::replace(&mut service.image, image));
            service.force_update = task.force_update.unwrap_or_default();
            service.labels = spec.labels.unwrap_or_default();
            service.upcoming = rollout.into();
            let login = login.map_or("none".to_string(), |(registry, l)| {
                format!("{}@{registry}", l.username)
            });
            format!(
                "update-service {} {} force={} login={login}",
                service.name, service.image, service.force_update
            )
        };
        service.status = None;
        service.version += 1;
        world.calls.push(call);
        Ok(())
    }
}
