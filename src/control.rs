//! What a person can see and do: the watched containers and Swarm
//! services, and the actions
//! the API, the CLI (through the API) and the status page share: update
//! now, roll back, approve, reject.
//!
//! Every action goes through the deploy queue, under the same health gate
//! and strategy as a webhook's update, and is recorded in the history with
//! who asked (`source`: `api` or `page`).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::deploy::mode::{self, Mode};
use crate::deploy::update::{KIND_MANUAL, KIND_ROLLBACK};
use crate::deploy::{self, Queue, Request};
use crate::engine::{ContainerInfo, Engine, EngineError, TargetKind};
use crate::image_ref::ImageRef;
use crate::inventory::Inventory;
use crate::store::{Deployment, Facts, State, Store, StoreError};
use crate::tags::TagPolicy;
use crate::targets::{self, TargetRules};

/// A container or Swarm service dockhook watches, as the API and the page
/// show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    /// The container's ID, or the service's.
    pub container_id: String,
    #[serde(default)]
    pub kind: TargetKind,
    /// The image reference the container was created from (for a service,
    /// its spec's, without the pinned digest).
    pub image: String,
    /// The image it runs (`None` for a service: each node has its own).
    pub image_id: Option<String>,
    /// The registry digest of what it runs, when Docker knows it.
    pub digest: Option<String>,
    pub mode: Mode,
    /// Seconds a digest must be the newest before it is deployed.
    pub delay_seconds: u64,
    /// Why the labels could not be read, if they could not (the container
    /// then takes no update until they are fixed).
    pub label_error: Option<String>,
    /// Its newest deployment.
    pub last_deployment: Option<Deployment>,
    /// Deployments waiting for a person or a time.
    pub pending: Vec<Deployment>,
}

/// Why an action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    NotFound(String),
    /// The action does not fit the current state.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// Docker did not answer.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<EngineError> for ControlError {
    fn from(error: EngineError) -> Self {
        ControlError::Unavailable(format!("the Docker engine does not answer: {error}"))
    }
}

/// Who asked for an action, for the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Api,
    Page,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Api => "api",
            Actor::Page => "page",
        }
    }
}

/// The actions, over the parts they need.
pub struct Control<E> {
    pub engine: Arc<E>,
    pub inventory: Arc<Inventory<E>>,
    pub store: Arc<Store>,
    pub queue: Queue<E>,
    pub rules: TargetRules,
    /// Mode and delay for containers without labels.
    pub default_mode: Mode,
    pub default_delay: Duration,
}

impl<E: Engine> Control<E> {
    /// The running containers dockhook may update, by name.
    pub async fn targets(&self) -> Result<Vec<Target>, ControlError> {
        let containers = self.inventory.running().await?;
        let mut watched: Vec<&ContainerInfo> = targets::watched(&containers, &self.rules);
        watched.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<String> = watched.iter().map(|c| c.name.clone()).collect();
        let history = self
            .store
            .call(move |store| store.latest_by_target(&names))
            .await?;
        let mut out = Vec::with_capacity(watched.len());
        for container in watched {
            let (image_id, digest) = match container.kind {
                TargetKind::Container => {
                    let image = self.engine.inspect_container(&container.id).await.ok();
                    let image_id = image.and_then(|c| c.image);
                    let digest = match &image_id {
                        Some(id) => self.running_digest(id, &container.image).await,
                        None => None,
                    };
                    (image_id, digest)
                }
                TargetKind::Service => (None, self.pinned_digest(&container.id).await),
            };
            let (mode, delay, label_error) =
                match mode::for_container(&container.labels, self.default_mode, self.default_delay)
                {
                    Ok((mode, delay)) => (mode, delay, None),
                    Err(e) => (self.default_mode, self.default_delay, Some(e)),
                };
            let (last_deployment, pending) =
                history.get(&container.name).cloned().unwrap_or_default();
            out.push(Target {
                name: container.name.clone(),
                container_id: container.id.clone(),
                kind: container.kind,
                image: container.image.clone(),
                image_id,
                digest,
                mode,
                delay_seconds: delay.as_secs(),
                label_error,
                last_deployment,
                pending,
            });
        }
        Ok(out)
    }

    /// The digest the registry gave the image `image_id` under the
    /// repository of `reference`.
    async fn running_digest(&self, image_id: &str, reference: &str) -> Option<String> {
        let reference = ImageRef::parse(reference).ok()?;
        let image = self.engine.inspect_image(image_id).await.ok()?;
        let digest = deploy::update::digests_of(&image, &reference)
            .next()
            .map(str::to_string);
        digest
    }

    /// The digest a service's spec pins its image to.
    async fn pinned_digest(&self, id: &str) -> Option<String> {
        let service = self.engine.inspect_service(id).await.ok()?;
        crate::engine::pinned_digest(&service)
    }

    /// The watched container named `name`, and its image reference.
    async fn watched(&self, name: &str) -> Result<(ContainerInfo, ImageRef), ControlError> {
        let containers = self.inventory.running().await?;
        let container = targets::watched(&containers, &self.rules)
            .into_iter()
            .find(|c| c.name == name)
            .cloned()
            .ok_or_else(|| {
                ControlError::NotFound(format!(
                    "no running container named {name:?} that dockhook watches"
                ))
            })?;
        let image = ImageRef::parse(&container.image)
            .map_err(|e| ControlError::Invalid(format!("{}: {e}", container.image)))?;
        Ok((container, image))
    }

    /// Asks for an update of container `name` now: the registry is asked
    /// for its tag, and a different image is deployed (`force`: the same
    /// one too, or one in quarantine). Bypasses the container's mode and
    /// delay: a person asked.
    pub async fn update(&self, name: &str, force: bool, actor: Actor) -> Result<i64, ControlError> {
        let (container, image) = self.watched(name).await?;
        let reason = match force {
            true => format!("forced update asked through the {}", actor.as_str()),
            false => format!("update asked through the {}", actor.as_str()),
        };
        let asked = Request::push(
            &container.name,
            &container.id,
            &image,
            actor.as_str(),
            &reason,
            &TagPolicy::Exact,
        );
        self.ask(Request {
            kind: Some(KIND_MANUAL),
            force,
            service: container.kind == TargetKind::Service,
            ..asked
        })
        .await
    }

    /// Deploys again the image an earlier successful deployment of `name`
    /// deployed: deployment `to`, or by default the image that ran before
    /// the current one. The image must still be on the host
    /// (`keep_images`); the update takes the same health gate and strategy
    /// as any other, and the image it leaves is in quarantine.
    pub async fn rollback(
        &self,
        name: &str,
        to: Option<i64>,
        actor: Actor,
    ) -> Result<i64, ControlError> {
        let (container, image) = self.watched(name).await?;
        let (image_id, from) = match to {
            Some(id) => {
                let found = self.store.call(move |store| store.get(id)).await?;
                let Some((deployment, _)) = found else {
                    return Err(ControlError::NotFound(format!("no deployment {id}")));
                };
                if deployment.target != name || deployment.state != State::Succeeded {
                    return Err(ControlError::Conflict(format!(
                        "deployment {id} is a {} deployment of {}, not a successful one of {name}",
                        deployment.state.as_str(),
                        deployment.target
                    )));
                }
                let image_id = deployment.new_image_id.clone().ok_or_else(|| {
                    ControlError::Conflict(format!("deployment {id} recorded no image"))
                })?;
                (image_id, Some(id))
            }
            None => {
                let target = name.to_string();
                let last = self
                    .store
                    .call(move |store| store.last_succeeded(&target))
                    .await?;
                let Some(last) = last else {
                    return Err(ControlError::Conflict(format!(
                        "{name} has no successful deployment to roll back"
                    )));
                };
                let image_id = last.old_image_id.clone().ok_or_else(|| {
                    ControlError::Conflict(format!("deployment {} recorded no old image", last.id))
                })?;
                (image_id, None)
            }
        };
        // A service's nodes pull the pinned image themselves.
        let local = container.kind == TargetKind::Container;
        if let Err(e) = self.inspect_kept(local, &image_id).await {
            return Err(match e {
                EngineError::NotFound(_) => ControlError::Conflict(format!(
                    "image {} is no longer on this host (keep_images keeps the newest \
                     images per container)",
                    deploy::update::short(&image_id)
                )),
                e => e.into(),
            });
        }
        let reason = match from {
            Some(id) => format!(
                "rollback to deployment {id} asked through the {}",
                actor.as_str()
            ),
            None => format!(
                "rollback to the image before the last deployment, asked through the {}",
                actor.as_str()
            ),
        };
        let asked = Request::push(
            &container.name,
            &container.id,
            &image,
            actor.as_str(),
            &reason,
            &TagPolicy::Exact,
        );
        self.ask(Request {
            kind: Some(KIND_ROLLBACK),
            rollback: Some((&image_id, from)),
            service: !local,
            ..asked
        })
        .await
    }

    /// Checks that a container's image to roll back to is still on the host.
    async fn inspect_kept(&self, local: bool, image_id: &str) -> Result<(), EngineError> {
        match local {
            true => self.engine.inspect_image(image_id).await.map(drop),
            false => Ok(()),
        }
    }

    /// Hands a person's request to the queue (no mode, no delay: they
    /// asked).
    async fn ask(&self, request: Request<'_>) -> Result<i64, ControlError> {
        Ok(self.queue.submit(&request).await?)
    }

    /// Deploys a deployment that awaits approval.
    pub async fn approve(&self, id: i64, actor: Actor) -> Result<Deployment, ControlError> {
        self.exists(id).await?;
        let note = format!("approved through the {}", actor.as_str());
        match self
            .queue
            .release(id, State::AwaitingApproval, note)
            .await?
        {
            Some(deployment) => Ok(deployment),
            None => Err(self.not_waiting(id, "awaiting approval").await),
        }
    }

    /// Ends a deployment that awaits approval (or waits out its delay)
    /// `rejected`; the container is not touched.
    pub async fn reject(&self, id: i64, actor: Actor) -> Result<Deployment, ControlError> {
        self.exists(id).await?;
        let note = format!(
            "rejected through the {}; the container was not touched",
            actor.as_str()
        );
        let rejected = self
            .store
            .call(move |store| {
                store.step_if(
                    id,
                    &[State::AwaitingApproval, State::Delayed],
                    State::Rejected,
                    Some(&note),
                    &Facts::default(),
                )
            })
            .await?;
        if !rejected {
            return Err(self.not_waiting(id, "awaiting approval or delayed").await);
        }
        self.exists(id).await
    }

    async fn exists(&self, id: i64) -> Result<Deployment, ControlError> {
        match self.store.call(move |store| store.get(id)).await? {
            Some((deployment, _)) => Ok(deployment),
            None => Err(ControlError::NotFound(format!("no deployment {id}"))),
        }
    }

    async fn not_waiting(&self, id: i64, expected: &str) -> ControlError {
        match self.exists(id).await {
            Ok(d) => ControlError::Conflict(format!(
                "deployment {id} is {}, not {expected}",
                d.state.as_str()
            )),
            Err(e) => e,
        }
    }
}
