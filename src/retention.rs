//! Retention: the history and the host do not grow without bound.
//!
//! A background task, started and stopped with the server, sweeps at start
//! and then every hour:
//!
//! - the history forgets finished deployments (and their steps) older than
//!   `history_retention`, keeping the newest `history_keep` of each target;
//!   a deployment under way is never pruned;
//! - delivery IDs are forgotten after `replay_window`;
//! - notification messages every URL has had (or that were given up) are
//!   forgotten a day after they were made;
//! - the image a failed or rolled-back deployment pulled, kept untagged for
//!   inspection, is removed after `failed_image_retention`, unless a
//!   container uses it, a tag names it, or another deployment ran it.
//!
//! It decides nothing about deployments: it reads and prunes the store and
//! removes images through the [`Engine`], which refuses images in use.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineError, ImageRemoval};
use crate::store::{Pruned, Store, StoreError};

/// How long things are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Finished deployments older than this are forgotten…
    pub history: Duration,
    /// …except the newest this many of each target.
    pub keep_per_target: u32,
    /// Delivery IDs are remembered this long: longer than any sender
    /// retries or lets a delivery be redelivered (GitHub: 3 days).
    pub replay_window: Duration,
    /// The image of a failed or rolled-back deployment is removed this long
    /// after it ended.
    pub failed_images: Duration,
}

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl Default for Settings {
    fn default() -> Self {
        Self {
            history: 90 * DAY,
            keep_per_target: 20,
            replay_window: 7 * DAY,
            failed_images: 7 * DAY,
        }
    }
}

/// How long a notification that no delivery waits for any more is kept.
const NOTIFICATIONS_KEPT: Duration = DAY;

/// How often the sweep runs after the first one, at start.
const EVERY: Duration = Duration::from_secs(60 * 60);

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    pub pruned: Pruned,
    /// Image IDs removed.
    pub removed: Vec<String>,
}

/// Sweeps now and every hour until `stop` is cancelled.
pub async fn run<E: Engine>(
    store: Arc<Store>,
    engine: Arc<E>,
    settings: Settings,
    stop: CancellationToken,
) {
    let mut sweeper = Sweeper::new(store, engine, settings);
    loop {
        if let Err(e) = sweeper.sweep().await {
            tracing::warn!(error = %e, "retention sweep failed; trying again in an hour");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// Runs sweeps, remembering across them which images are gone.
pub struct Sweeper<E> {
    store: Arc<Store>,
    engine: Arc<E>,
    settings: Settings,
    /// Images removed or found gone: not asked about again.
    gone: HashSet<String>,
}

impl<E: Engine> Sweeper<E> {
    pub fn new(store: Arc<Store>, engine: Arc<E>, settings: Settings) -> Self {
        Self {
            store,
            engine,
            settings,
            gone: HashSet::new(),
        }
    }

    /// Prunes the history and removes the failed images that are due.
    pub async fn sweep(&mut self) -> Result<Swept, StoreError> {
        let s = self.settings;
        // SQL runs on a blocking thread, never on the async ones.
        let pruned = self
            .store
            .call(move |store| store.prune(s.history, s.keep_per_target, s.replay_window))
            .await?;
        if pruned != Pruned::default() {
            tracing::info!(
                deployments = pruned.deployments,
                steps = pruned.steps,
                deliveries = pruned.deliveries,
                "pruned the history"
            );
        }
        let notifications = self
            .store
            .call(|store| store.prune_notifications(NOTIFICATIONS_KEPT))
            .await?;
        if notifications > 0 {
            tracing::info!(notifications, "pruned delivered notifications");
        }
        // A deployment under way may be pulling one of these images again;
        // the next sweep will see it finished.
        if !self
            .store
            .call(|store| store.unfinished())
            .await?
            .is_empty()
        {
            return Ok(Swept {
                pruned,
                removed: Vec::new(),
            });
        }
        let due = self
            .store
            .call(move |store| store.failed_images(s.failed_images))
            .await?;
        // Only what may still be due is worth remembering.
        self.gone.retain(|id| due.contains(id));
        let mut removed = Vec::new();
        for image in &due {
            if self.gone.contains(image) {
                continue;
            }
            match self.remove(image).await {
                Ok(true) => {
                    tracing::info!(%image, "removed the image of a failed deployment");
                    removed.push(image.clone());
                    self.gone.insert(image.clone());
                }
                Ok(false) => {}
                Err(EngineError::NotFound(_)) => {
                    self.gone.insert(image.clone());
                }
                Err(e) => {
                    // Docker does not answer, most likely: the next sweep
                    // tries again.
                    tracing::warn!(%image, error = %e, "cannot remove the image of a failed deployment");
                    break;
                }
            }
        }
        Ok(Swept { pruned, removed })
    }

    /// Removes `image` unless a tag names it (someone pulled or tagged it
    /// since) or a container uses it; whether it was removed.
    async fn remove(&self, image: &str) -> Result<bool, EngineError> {
        let tags = self.engine.inspect_image(image).await?.repo_tags;
        if tags.is_some_and(|t| t.iter().any(|t| t != "<none>:<none>")) {
            tracing::debug!(%image, "keeping a failed deployment's image: it is tagged");
            return Ok(false);
        }
        match self.engine.remove_image(image).await? {
            ImageRemoval::Removed => Ok(true),
            ImageRemoval::InUse => {
                tracing::debug!(%image, "keeping a failed deployment's image: in use");
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::fake::{FakeContainer, FakeEngine};
    use crate::store::{Facts, NewDeployment, State};

    /// A deployment of `target` that ended in `state` `days` ago, having
    /// pulled image `new`.
    fn failed(store: &Store, state: State, days: u32, new: &str) -> i64 {
        let id = store
            .create(&NewDeployment {
                target: "site".into(),
                container_id: "c0ffee".into(),
                image: "docker.io/alice/site:latest".into(),
                source: "dockerhub".into(),
                pusher: None,
                digest: None,
                reason: None,
                ..NewDeployment::default()
            })
            .unwrap();
        let facts = Facts {
            old_image_id: Some("sha256:v1".into()),
            new_image_id: Some(new.into()),
            ..Facts::default()
        };
        store.step(id, state, Some("unhealthy"), &facts).unwrap();
        store.backdate(id, days).unwrap();
        id
    }

    fn world() -> (Arc<Store>, Arc<FakeEngine>) {
        let store = Arc::new(Store::in_memory().unwrap());
        let engine = FakeEngine::default();
        {
            let mut world = engine.lock();
            for id in [
                "sha256:bad",
                "sha256:used",
                "sha256:tagged",
                "sha256:recent",
            ] {
                world.images.insert(id.into(), Vec::new());
            }
            world
                .images
                .insert("sha256:tagged".into(), vec!["alice/debug:keep".into()]);
            world.containers.push(FakeContainer {
                id: "debugging".into(),
                name: "debugging".into(),
                image: "sha256:used".into(),
                image_id: "sha256:used".into(),
                running: false,
                exit_code: 1,
                labels: Default::default(),
                networks: Vec::new(),
            });
        }
        for image in ["sha256:bad", "sha256:used", "sha256:tagged", "sha256:gone"] {
            failed(&store, State::RolledBack, 8, image);
        }
        failed(&store, State::RolledBack, 1, "sha256:recent");
        (store, Arc::new(engine))
    }

    fn removals(engine: &FakeEngine) -> Vec<String> {
        let world = engine.lock();
        let calls = world.calls.iter().filter(|c| c.starts_with("rmi "));
        calls.cloned().collect()
    }

    #[tokio::test]
    async fn old_failed_images_go_unless_used_or_tagged() {
        let (store, engine) = world();
        let mut sweeper = Sweeper::new(store, engine.clone(), Settings::default());
        let swept = sweeper.sweep().await.unwrap();
        assert_eq!(swept.removed, ["sha256:bad"]);
        {
            let world = engine.lock();
            assert!(!world.images.contains_key("sha256:bad"));
            for kept in ["sha256:used", "sha256:tagged", "sha256:recent"] {
                assert!(world.images.contains_key(kept), "{kept}");
            }
        }
        assert_eq!(
            removals(&engine),
            ["rmi sha256:bad", "rmi sha256:used"],
            "a tagged image is not even tried"
        );

        // Removed and gone images are not asked about again; the one in
        // use is, since its container may have gone.
        let swept = sweeper.sweep().await.unwrap();
        assert!(swept.removed.is_empty());
        assert_eq!(
            removals(&engine),
            ["rmi sha256:bad", "rmi sha256:used", "rmi sha256:used"]
        );
    }

    #[tokio::test]
    async fn no_image_goes_while_a_deployment_is_under_way() {
        let (store, engine) = world();
        let running = failed(&store, State::Pulling, 0, "sha256:other");
        let mut sweeper = Sweeper::new(store.clone(), engine.clone(), Settings::default());
        assert!(sweeper.sweep().await.unwrap().removed.is_empty());
        assert!(removals(&engine).is_empty());

        store.transition(running, State::Succeeded, None).unwrap();
        let swept = sweeper.sweep().await.unwrap();
        assert_eq!(swept.removed, ["sha256:bad"]);
    }

    #[tokio::test]
    async fn the_history_is_pruned_by_the_settings() {
        let (store, engine) = world();
        let settings = Settings {
            history: 2 * DAY,
            keep_per_target: 1,
            ..Settings::default()
        };
        let swept = Sweeper::new(store.clone(), engine, settings)
            .sweep()
            .await
            .unwrap();
        assert_eq!(swept.pruned.deployments, 4, "{swept:?}");
        assert_eq!(store.list(100).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_task_stops_when_told() {
        let (store, engine) = world();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            store,
            engine.clone(),
            Settings::default(),
            stop.clone(),
        ));
        stop.cancel();
        task.await.unwrap();
    }
}
