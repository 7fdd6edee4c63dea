//! Reconcile: a source like any other, on a timer. It catches the pushes
//! whose webhook was lost (dockhook down, a proxy hiccup, a sender that gave
//! up).
//!
//! At start and every `reconcile_interval`, it asks the registry for the
//! digest of every image a watched container runs, and when the registry
//! has another digest than the one the container runs, it produces the
//! [`ImageEvent`] a webhook would have (source `reconcile`, with that
//! digest) and hands it to the same dispatch as webhooks: modes, delays,
//! approvals, quarantine, history, notifications and metrics all apply.
//!
//! - One `HEAD` of the manifest per distinct image (registry, repository
//!   and tag), however many containers run it; a `semver` or `glob` policy
//!   lists the repository's tags once, picks the tag the policy would
//!   deploy, and asks for that tag's digest ([`RegistryClient`]).
//! - Docker Hub images are asked about only when their namespace is in
//!   `OWNER`, the rule webhooks obey (`foreign_namespace`).
//! - What runs is read from Docker only: the container's image's
//!   `RepoDigests` (`running_digests`). An image built on this host has
//!   none for its repository: its containers are skipped, with one log
//!   line per image.
//! - A registry that fails (unreachable, 5xx, nonsense, rate limits) costs
//!   one warning per image per interval and changes nothing.
//! - A digest is handed on once for the same containers, remembered in the
//!   store like a webhook's delivery ID: a deployment that is rejected,
//!   rolled back or fails is not tried again at every interval (the next
//!   push, or `dockhook update`, does), and a container recreated on an
//!   older image since is.
//!
//! It never talks to Docker itself beyond reading (through the [`Engine`]),
//! and never deploys: the queue does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::deploy::update::{digests_of, short};
use crate::engine::{pinned_digest, ContainerInfo, Engine, EngineError, TargetKind};
use crate::event::ImageEvent;
use crate::image_ref::ImageRef;
use crate::registry::RegistryClient;
use crate::server::{dispatch, AppState, Dispatched};
use crate::sources;
use crate::tags::{TagPolicy, POLICY_LABEL};
use crate::targets;

/// The source name deployments record.
pub const SOURCE: &str = "reconcile";

/// How often to reconcile; zero turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(6 * 60 * 60),
        }
    }
}

/// Reconciles at once and then every interval until `stop` is cancelled.
pub async fn run<E: Engine>(
    state: Arc<AppState<E>>,
    registry: RegistryClient,
    settings: Settings,
    stop: CancellationToken,
) {
    if settings.interval.is_zero() {
        // Said by `check-config`; at start the log stays quiet about it.
        tracing::debug!("reconcile is off (reconcile_interval = 0)");
        return;
    }
    let mut reconciler = Reconciler {
        state,
        registry,
        told: HashSet::new(),
    };
    let mut timer = tokio::time::interval(settings.interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = timer.tick() => {}
        }
        // A pass is dropped half-way at shutdown: what it queued is on
        // record, and what it did not is found again at the next start.
        tokio::select! {
            () = stop.cancelled() => return,
            () = reconciler.pass() => {}
        }
    }
}

/// A watched target, as reconcile compares it: a container, whose running
/// digests come from [`running_digests`]. (A Swarm service would be one
/// too, running the `@sha256:` digest its spec pins.)
struct Watched {
    id: String,
    name: String,
    /// The image it was created from (repository and tag).
    image: ImageRef,
    policy: TagPolicy,
    /// The digests its registry served what it runs under.
    running: Vec<String>,
}

impl Watched {
    /// Whether it runs what the registry serves as `digest`.
    fn runs(&self, digest: &str) -> bool {
        self.running.iter().any(|d| d == digest)
    }
}

struct Reconciler<E> {
    state: Arc<AppState<E>>,
    registry: RegistryClient,
    /// What was already logged once (an image built here, a bad label), so
    /// it is not logged again at every interval.
    told: HashSet<String>,
}

impl<E: Engine> Reconciler<E> {
    /// One round: every distinct image asked for once, every change handed
    /// on as an event.
    async fn pass(&mut self) {
        let watched = match self.watched().await {
            Ok(watched) => watched,
            Err(e) => {
                tracing::warn!(error = %e, "reconcile: cannot list the containers; trying again at the next interval");
                return;
            }
        };
        let mut groups: BTreeMap<(String, String), Vec<Watched>> = BTreeMap::new();
        for target in watched {
            let key = (target.image.to_string(), target.policy.to_string());
            groups.entry(key).or_default().push(target);
        }
        let mut tag_lists: HashMap<String, Option<Vec<String>>> = HashMap::new();
        let mut digests: HashMap<ImageRef, Option<String>> = HashMap::new();
        // By the image to deploy: its digest, and the containers that run
        // another.
        let mut changes: BTreeMap<String, (ImageRef, String, Vec<&Watched>)> = BTreeMap::new();
        for group in groups.values() {
            let first = &group[0];
            let Some(wanted) = self.wanted(first, &mut tag_lists).await else {
                continue;
            };
            if !digests.contains_key(&wanted) {
                let digest = match self.registry.digest(&wanted).await {
                    Ok(digest) => Some(digest),
                    Err(e) => {
                        tracing::warn!(image = %wanted, "reconcile: {e}; nothing changed");
                        None
                    }
                };
                digests.insert(wanted.clone(), digest);
            }
            let Some(digest) = digests[&wanted].clone() else {
                continue;
            };
            let stale: Vec<&Watched> = group.iter().filter(|t| !t.runs(&digest)).collect();
            if stale.is_empty() {
                tracing::debug!(image = %wanted, %digest, "reconcile: up to date");
                continue;
            }
            changes
                .entry(wanted.to_string())
                .or_insert_with(|| (wanted, digest, Vec::new()))
                .2
                .extend(stale);
        }
        let (asked, changed) = (digests.len(), changes.len());
        for (image, digest, stale) in changes.into_values() {
            self.hand_on(image, digest, &stale).await;
        }
        tracing::info!(
            images = asked,
            changed,
            "reconcile: asked the registries about {asked} image(s); {changed} changed"
        );
    }

    /// The watched containers, with what they run. A container whose image
    /// has no digest from its registry, or whose policy label is not valid,
    /// is left out, and said so once.
    async fn watched(&mut self) -> Result<Vec<Watched>, EngineError> {
        let containers = self.state.inventory.running().await?;
        let mut watched = Vec::new();
        for container in targets::watched(&containers, &self.state.rules) {
            let Ok(image) = ImageRef::parse(&container.image) else {
                continue;
            };
            if let Some(namespace) = foreign_namespace(&image, &self.state.sources) {
                if self.told.insert(format!("owner {}", image.name())) {
                    tracing::info!(
                        container = %container.name,
                        image = %image,
                        "reconcile skips it: Docker Hub namespace {namespace:?} is not in OWNER, \
                         so no webhook of its pushes would be taken either"
                    );
                }
                continue;
            }
            let label = container.labels.get(POLICY_LABEL).map(String::as_str);
            let policy = match TagPolicy::parse(label) {
                Ok(policy) => policy,
                Err(why) => {
                    if self.told.insert(format!("policy {}", container.id)) {
                        tracing::warn!(container = %container.name, "reconcile skips it: {why}");
                    }
                    continue;
                }
            };
            let (image_id, running) =
                match running_digests(&*self.state.engine, container, &image).await {
                    Ok(found) => found,
                    // It went away since the list.
                    Err(EngineError::NotFound(_)) => continue,
                    Err(e) => return Err(e),
                };
            if running.is_empty() && container.kind == TargetKind::Service {
                if self.told.insert(format!("unpinned {image_id}")) {
                    tracing::info!(
                        service = %container.name,
                        image = %image,
                        "reconcile skips the service: its spec pins no digest (created with \
                         --no-resolve-image?), so there is nothing to compare; webhooks still \
                         update it"
                    );
                }
                continue;
            }
            if running.is_empty() {
                if self.told.insert(format!("local {image_id}")) {
                    tracing::info!(
                        container = %container.name,
                        image = %image,
                        "reconcile skips image {}: it has no digest from {} (built on this host, \
                         or tagged from another repository), so there is nothing to compare; \
                         webhooks still update it",
                        short(&image_id),
                        image.registry
                    );
                }
                continue;
            }
            watched.push(Watched {
                id: container.id.clone(),
                name: container.name.clone(),
                image,
                policy,
                running,
            });
        }
        Ok(watched)
    }

    /// The image `target`'s policy would deploy: its own tag, or for a
    /// `semver` or `glob` policy the tag it picks from the repository's
    /// tags (listed once per repository per pass). `None` when the tags
    /// cannot be listed (warned once per pass).
    async fn wanted(
        &self,
        target: &Watched,
        tag_lists: &mut HashMap<String, Option<Vec<String>>>,
    ) -> Option<ImageRef> {
        if target.policy == TagPolicy::Exact {
            return Some(target.image.clone());
        }
        let repository = target.image.name();
        if !tag_lists.contains_key(&repository) {
            let tags = match self.registry.tags(&target.image).await {
                Ok(tags) => Some(tags),
                Err(e) => {
                    tracing::warn!(image = %target.image, "reconcile: {e}; nothing changed");
                    None
                }
            };
            tag_lists.insert(repository.clone(), tags);
        }
        let tags = tag_lists[&repository].as_deref()?;
        let tag = target.policy.choose(&target.image.tag, tags);
        Some(ImageRef {
            tag: tag.to_string(),
            ..target.image.clone()
        })
    }

    /// Hands a change on to the dispatch, as a webhook of `image` with
    /// `digest` would be, unless it was handed on for these containers
    /// already.
    async fn hand_on(&self, image: ImageRef, digest: String, stale: &[&Watched]) {
        let mut ids: Vec<String> = stale.iter().map(|t| short(&t.id)).collect();
        ids.sort();
        ids.dedup();
        let key = format!("{image}@{digest} {}", ids.join(","));
        let names: Vec<&str> = stale.iter().map(|t| t.name.as_str()).collect();
        let store = &self.state.store;
        let seen = {
            let key = key.clone();
            store
                .call(move |store| store.delivery_seen(SOURCE, &key))
                .await
        };
        match seen {
            Ok(true) => {
                tracing::debug!(%image, %digest, containers = ?names, "reconcile: already handed on");
                return;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reconcile: the history database failed; trying again at the next interval");
                return;
            }
        }
        tracing::info!(
            %image,
            %digest,
            containers = ?names,
            "reconcile: the registry has another digest than the containers run; handing it on as a webhook would"
        );
        let event = ImageEvent {
            source: SOURCE,
            image,
            pusher: None,
            digest: Some(digest),
        };
        match dispatch(&self.state, &event).await {
            Ok(Dispatched::Queued(_)) => {}
            Ok(Dispatched::NoTarget(reason)) => {
                tracing::info!(image = %event.image, %reason, "reconcile: nothing to deploy");
            }
            Err(e) => {
                tracing::warn!(image = %event.image, error = %e, "reconcile: not handed on; trying again at the next interval");
                return;
            }
        }
        if let Err(e) = store
            .call(move |store| store.remember_delivery(SOURCE, &key).map(drop))
            .await
        {
            tracing::warn!(error = %e, "reconcile: cannot remember what was handed on");
        }
    }
}

/// The namespace of a Docker Hub image outside `OWNER`, if it is one.
/// Reconcile follows the rule webhooks obey: a push of someone else's
/// image (`postgres`, `nginx`) is never taken from Docker Hub, so reconcile
/// does not deploy one either; a container of such an image is updated
/// only when a person asks (`dockhook update`).
fn foreign_namespace<'a>(image: &'a ImageRef, sources: &sources::Settings) -> Option<&'a str> {
    if image.registry != sources.dockerhub_registry {
        return None;
    }
    let namespace = image.repository.split('/').next().unwrap_or_default();
    (!sources.owners.iter().any(|owner| owner == namespace)).then_some(namespace)
}

/// What `target` runs, by the digests its registry (the one `image` names)
/// served it under: for a container, Docker's `RepoDigests` of its image
/// (empty when the image was built on this host), with the image ID for
/// logs; for a Swarm service, the digest its spec pins, with the service's
/// ID. Only local Docker calls.
async fn running_digests<E: Engine>(
    engine: &E,
    target: &ContainerInfo,
    image: &ImageRef,
) -> Result<(String, Vec<String>), EngineError> {
    if target.kind == TargetKind::Service {
        // What the nodes run is the digest the spec pins; a service
        // created without one (`--no-resolve-image`) has nothing to compare.
        let service = engine.inspect_service(&target.id).await?;
        return Ok((
            target.id.clone(),
            pinned_digest(&service).into_iter().collect(),
        ));
    }
    let container = engine.inspect_container(&target.id).await?;
    let image_id = container.image.unwrap_or_default();
    let inspect = engine.inspect_image(&image_id).await?;
    let digests = digests_of(&inspect, image).map(str::to_string).collect();
    Ok((image_id, digests))
}

#[cfg(test)]
mod tests;
