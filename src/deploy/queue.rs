//! The deploy queue: one worker per target, bursts folded into one job.
//!
//! Updates of one container never overlap: each target has at most one job
//! running and one waiting. A job submitted while another waits for the same
//! target and image is the same job (Docker Hub sends several webhooks for
//! one multi-arch push), so the caller gets the waiting deployment's id
//! back. A job submitted while one runs waits for it: the push may be newer
//! than what the running job pulled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::task::TaskTracker;

use super::update::{Job, Updater};
use crate::engine::Engine;
use crate::image_ref::ImageRef;
use crate::store::{NewDeployment, Store, StoreError};

/// Per-target bookkeeping.
#[derive(Default)]
struct Slot {
    waiting: Option<Job>,
}

/// Hands jobs to per-target workers.
pub struct Queue<E> {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    updater: Arc<Updater<E>>,
    store: Arc<Store>,
    tracker: TaskTracker,
}

impl<E> Clone for Queue<E> {
    fn clone(&self) -> Self {
        Self {
            slots: self.slots.clone(),
            updater: self.updater.clone(),
            store: self.store.clone(),
            tracker: self.tracker.clone(),
        }
    }
}

/// A request to update one container.
pub struct Request<'a> {
    pub target: &'a str,
    pub container_id: &'a str,
    pub image: &'a ImageRef,
    pub source: &'a str,
    pub pusher: Option<&'a str>,
    /// The digest the webhook named: the pulled image must have it.
    pub digest: Option<&'a str>,
    /// Why this container takes this image (its tag policy's decision).
    pub reason: &'a str,
}

impl<E: Engine> Queue<E> {
    pub fn new(updater: Arc<Updater<E>>, store: Arc<Store>) -> Self {
        Self {
            slots: Arc::default(),
            updater,
            store,
            tracker: TaskTracker::new(),
        }
    }

    /// Queues an update and returns its deployment id. An identical waiting
    /// one is reused, and so is any deployment of the same digest to the
    /// same container that did not fail: one push that arrives through
    /// several sources or deliveries deploys once.
    pub fn submit(&self, request: &Request<'_>) -> Result<i64, StoreError> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(digest) = request.digest {
            if let Some(existing) = self.store.deployment_of_digest(request.target, digest)? {
                return Ok(existing);
            }
        }
        if let Some(slot) = slots.get(request.target) {
            let same = |j: &&Job| {
                &j.image == request.image
                    && (request.digest.is_none() || j.digest.as_deref() == request.digest)
            };
            if let Some(waiting) = slot.waiting.as_ref().filter(same) {
                return Ok(waiting.deployment);
            }
        }
        let deployment = self.store.create(&NewDeployment {
            target: request.target,
            container_id: request.container_id,
            image: &request.image.to_string(),
            source: request.source,
            pusher: request.pusher,
            digest: request.digest,
            reason: Some(request.reason),
        })?;
        let job = Job {
            deployment,
            target: request.target.to_string(),
            image: request.image.clone(),
            digest: request.digest.map(str::to_string),
        };
        match slots.get_mut(request.target) {
            // A worker is busy with this target and will pick the job up; a
            // different image waiting before it is overtaken.
            Some(slot) => {
                if let Some(replaced) = slot.waiting.replace(job) {
                    let note = format!("superseded by deployment {deployment}");
                    self.store.transition(
                        replaced.deployment,
                        crate::store::State::Skipped,
                        Some(&note),
                    )?;
                }
            }
            None => {
                slots.insert(request.target.to_string(), Slot::default());
                self.spawn_worker(job);
            }
        }
        Ok(deployment)
    }

    fn spawn_worker(&self, first: Job) {
        let queue = self.clone();
        self.tracker.spawn(async move {
            let mut job = first;
            loop {
                queue.updater.run(&job).await;
                let mut slots = queue.slots.lock().unwrap_or_else(|e| e.into_inner());
                match slots
                    .get_mut(&job.target)
                    .and_then(|slot| slot.waiting.take())
                {
                    Some(next) => job = next,
                    None => {
                        slots.remove(&job.target);
                        break;
                    }
                }
            }
        });
    }

    /// Stops taking work and waits for the running and waiting jobs.
    pub async fn drain(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}
