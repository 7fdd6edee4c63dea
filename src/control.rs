//! What a person can see and do: the watched containers, and the actions
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
use crate::deploy::{self, Queue};
use crate::engine::{ContainerInfo, Engine, EngineError};
use crate::image_ref::ImageRef;
use crate::inventory::Inventory;
use crate::store::{Deployment, State, Store, StoreError};
use crate::targets::{self, TargetRules};

/// A container dockhook watches, as the API and the page show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub container_id: String,
    /// The image reference the container was created from.
    pub image: String,
    /// The image it runs.
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
            let image = self.engine.inspect_container(&container.id).await.ok();
            let image_id = image.as_ref().and_then(|c| c.image.clone());
            let digest = match &image_id {
                Some(id) => self.running_digest(id, &container.image).await,
                None => None,
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

    /// Asks for an update of container `name` now: the registry is asked
    /// for its tag, and a different image is deployed (`force`: the same
    /// one too). Bypasses the container's mode and delay: a person asked.
    pub async fn update(&self, name: &str, force: bool, actor: Actor) -> Result<i64, ControlError> {
        let _ = (name, force, actor);
        Err(ControlError::Unavailable("not built yet".into()))
    }

    /// Deploys again the image an earlier successful deployment of `name`
    /// deployed: deployment `to`, or by default the one that ran before
    /// the current deployment.
    pub async fn rollback(
        &self,
        name: &str,
        to: Option<i64>,
        actor: Actor,
    ) -> Result<i64, ControlError> {
        let _ = (name, to, actor);
        Err(ControlError::Unavailable("not built yet".into()))
    }

    /// Deploys a deployment that awaits approval.
    pub async fn approve(&self, id: i64, actor: Actor) -> Result<Deployment, ControlError> {
        let _ = (id, actor);
        Err(ControlError::Unavailable("not built yet".into()))
    }

    /// Ends a deployment that awaits approval (or waits out its delay)
    /// `rejected`; the container is not touched.
    pub async fn reject(&self, id: i64, actor: Actor) -> Result<Deployment, ControlError> {
        let _ = (id, actor, State::Rejected);
        Err(ControlError::Unavailable("not built yet".into()))
    }
}
