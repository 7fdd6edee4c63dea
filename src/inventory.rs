//! The running containers, and the Swarm services when the engine is a
//! manager, kept in memory and current through Docker's event stream, so
//! answering a webhook costs no Docker call.
//!
//! A watcher task subscribes to container events (start, die, destroy,
//! rename) and service events (create, update, remove: Swarm sends them on
//! managers only) and lists the running containers and the services again
//! after each burst of them. Whether the engine is a manager is asked at
//! each listing, so an engine that joins or leaves a swarm is followed.
//! While the stream is down (Docker restarting, say) or a change is being
//! applied, readers list the containers themselves: a webhook never sees a
//! list older than the last event Docker sent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::engine::{ContainerInfo, Engine, EngineError};

/// The running containers and the services, as last seen.
pub struct Inventory<E> {
    engine: Arc<E>,
    snapshot: RwLock<Arc<Vec<ContainerInfo>>>,
    /// The event stream is connected and the snapshot followed it.
    watching: AtomicBool,
    /// Events received, and events the snapshot already reflects.
    events_seen: AtomicU64,
    events_applied: AtomicU64,
}

/// How long the watcher waits before subscribing again after an error.
const RETRY: Duration = Duration::from_secs(2);

impl<E: Engine> Inventory<E> {
    pub fn new(engine: Arc<E>) -> Self {
        Self {
            engine,
            snapshot: RwLock::default(),
            watching: AtomicBool::new(false),
            events_seen: AtomicU64::new(0),
            events_applied: AtomicU64::new(0),
        }
    }

    /// The running containers: the snapshot when it is current, otherwise a
    /// fresh list from Docker.
    pub async fn running(&self) -> Result<Arc<Vec<ContainerInfo>>, EngineError> {
        match self.current() {
            Some(snapshot) => Ok(snapshot),
            None => self.refresh().await,
        }
    }

    /// The snapshot, if it is current: no Docker call, ever.
    pub fn current(&self) -> Option<Arc<Vec<ContainerInfo>>> {
        let current = self.watching.load(Ordering::Acquire)
            && self.events_applied.load(Ordering::Acquire)
                == self.events_seen.load(Ordering::Acquire);
        current.then(|| {
            self.snapshot
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        })
    }

    /// Lists the running containers and the services, and keeps the list.
    async fn refresh(&self) -> Result<Arc<Vec<ContainerInfo>>, EngineError> {
        let seen = self.events_seen.load(Ordering::Acquire);
        let mut list = self.engine.list_running().await?;
        if self.engine.is_swarm_manager().await? {
            list.extend(self.engine.list_services().await?);
        }
        let list = Arc::new(list);
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = list.clone();
        self.events_applied.fetch_max(seen, Ordering::AcqRel);
        Ok(list)
    }

    /// Follows Docker's container events until `stop` is cancelled.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let events = self.engine.container_events();
            tokio::pin!(events);
            // Subscribe first, then list: nothing can slip in between.
            let listed = tokio::select! {
                () = stop.cancelled() => return,
                listed = self.refresh() => listed,
            };
            if listed.is_ok() {
                self.watching.store(true, Ordering::Release);
                loop {
                    let event = tokio::select! {
                        () = stop.cancelled() => return,
                        event = events.next() => event,
                    };
                    match event {
                        Some(Ok(())) => {
                            self.events_seen.fetch_add(1, Ordering::AcqRel);
                            if let Err(e) = self.refresh().await {
                                tracing::warn!(error = %e, "cannot list containers after an event");
                                break;
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "Docker event stream failed");
                            break;
                        }
                        None => break,
                    }
                }
            }
            self.watching.store(false, Ordering::Release);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::fake::FakeEngine;

    /// Yields until `condition` holds; panics, naming `what`, if it does
    /// not within ten seconds.
    async fn until(what: &str, condition: impl Fn() -> bool) {
        let wait = async {
            while !condition() {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("{what}: not within 10 s"));
    }

    #[tokio::test]
    async fn without_a_watcher_every_read_asks_docker() {
        let engine = Arc::new(FakeEngine::with_container(
            "site",
            "alice/site",
            "sha256:a",
            "sha256:b",
        ));
        let inventory = Inventory::new(engine.clone());
        assert_eq!(inventory.running().await.unwrap().len(), 1);
        engine.lock().containers.clear();
        assert!(inventory.running().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn services_are_listed_on_a_swarm_manager_only() {
        let engine = Arc::new(FakeEngine::with_service(
            "web",
            "alice/site:latest",
            "sha256:old",
            "sha256:b",
            "sha256:new",
        ));
        let inventory = Inventory::new(engine.clone());
        let listed = inventory.running().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].kind, crate::engine::TargetKind::Service);
        assert_eq!(listed[0].image, "alice/site:latest");
        engine.lock().swarm_manager = false;
        assert!(inventory.running().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_watched_snapshot_follows_events() {
        let engine = Arc::new(FakeEngine::with_container(
            "site",
            "alice/site",
            "sha256:a",
            "sha256:b",
        ));
        let inventory = Arc::new(Inventory::new(engine.clone()));
        let stop = CancellationToken::new();
        let watcher = tokio::spawn(inventory.clone().watch(stop.clone()));
        until("the watcher starts", || {
            inventory.watching.load(Ordering::Acquire)
        })
        .await;
        assert_eq!(inventory.running().await.unwrap().len(), 1);
        // Without an event the snapshot stands, even if Docker changed.
        engine.lock().containers.clear();
        assert_eq!(inventory.running().await.unwrap().len(), 1);
        engine.send_event();
        until("the event is applied", || {
            inventory.events_applied.load(Ordering::Acquire) > 0
        })
        .await;
        assert!(inventory.running().await.unwrap().is_empty());
        stop.cancel();
        watcher.await.unwrap();
    }
}
