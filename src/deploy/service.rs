//! The update of one Swarm service: Swarm runs the rolling update, dockhook
//! asks for it and follows it to its end.
//!
//! 1. **pulling**: the service is inspected by name when the job runs; its
//!    image must still take the push (same repository, a tag its policy
//!    accepts). The new digest is resolved by pulling the tag on the
//!    manager and reading the digest the registry served it under; a
//!    digest the webhook named must be that one. A service that already
//!    runs that digest is skipped (`force` redeploys it, with Swarm's
//!    `ForceUpdate`), and so is a digest in quarantine, as for containers;
//! 2. **starting**: recorded with the old and new pinned references before
//!    the update is sent. The spec is the service's own, with only the
//!    image changed to `repo:tag@sha256:…`, at the version inspected, and
//!    the registry login dockhook has for the image goes with it, so every
//!    node can pull. Parallelism, delay, order, monitor period and failure
//!    action stay the service's (its `UpdateConfig`);
//! 3. **verifying**: Swarm's `UpdateStatus` is polled until it ends.
//!    `completed` (with the spec still on the new image) is recorded as
//!    `cleaning_up`, the moment every task serves it, then `succeeded`.
//!    `paused` (Swarm's default reaction to a failed task) is never left
//!    half-way: dockhook asks Swarm for the rollback (`rollback=previous`),
//!    waits for `rollback_completed` and records `rolled_back` with Swarm's
//!    message. A rollback Swarm starts itself (`FailureAction: rollback`)
//!    is followed the same way; a rollback Swarm pauses needs a person
//!    (`rollback_failed`). An update that has not ended after
//!    [`ROLLOUT_TIMEOUT`] is rolled back too.
//!
//! Every step is written before it is taken, with what the update learnt,
//! so `Updater::recover_service` can follow an update a crash interrupted
//! from what the store says and what Swarm shows. The service's downtime
//! is Swarm's business: the history records the order (`start-first` or
//! `stop-first`) as the deployment's strategy.

use std::time::Duration;

use bollard::models::{BollardDate, Service, ServiceSpec, ServiceSpecUpdateConfigOrderEnum};
use tokio::time::Instant;

use super::update::{digests_of, takes, Job, Outcome, Updater};
use crate::engine::{has_tag, unpinned, Engine, EngineError, UpdateState};
use crate::image_ref::ImageRef;
use crate::store::{Deployment, Facts, State};

/// How long a rolling update (or its rollback) may take before dockhook
/// gives up on it: long enough for many replicas with Swarm's delays and
/// monitor periods, short enough that a stuck update ends in the history.
pub const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(3600);
/// The longest pause between two looks at a rolling update.
const MAX_POLL: Duration = Duration::from_secs(2);
const FIRST_POLL: Duration = Duration::from_millis(200);

/// What a service runs and how Swarm rolls it out, as inspected.
struct Inspected {
    id: String,
    version: u64,
    spec: ServiceSpec,
    /// The spec's image, as written (pinned or not).
    image: String,
    state: Option<UpdateState>,
    message: String,
    /// When the rollout the status tells of started: a status that
    /// started before dockhook's update is about an earlier one.
    started_at: Option<BollardDate>,
}

impl Inspected {
    fn of(service: Service) -> Result<Self, String> {
        let id = service.id.unwrap_or_default();
        let version = service.version.and_then(|v| v.index).unwrap_or_default();
        let spec = service.spec.ok_or("the service has no spec")?;
        let image = spec
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.image.clone())
            .ok_or("the service runs no container image")?;
        let (state, message, started_at) = match service.update_status {
            Some(status) => (
                status.state,
                status.message.unwrap_or_default(),
                status.started_at,
            ),
            None => (None, String::new(), None),
        };
        Ok(Self {
            id,
            version,
            spec,
            image,
            state,
            message,
            started_at,
        })
    }

    /// `start-first` or `stop-first` (Swarm's default), for the history.
    fn order(&self) -> &'static str {
        let order = self.spec.update_config.as_ref().and_then(|c| c.order);
        match order {
            Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST) => "start-first",
            _ => "stop-first",
        }
    }

    /// The spec with `image` (and, when `force`, one more `ForceUpdate`).
    fn spec_with(&self, image: &str, force: bool) -> ServiceSpec {
        let mut spec = self.spec.clone();
        let task = spec.task_template.get_or_insert_with(Default::default);
        task.container_spec
            .get_or_insert_with(Default::default)
            .image = Some(image.to_string());
        if force {
            task.force_update = Some(task.force_update.unwrap_or_default() + 1);
        }
        spec
    }
}

/// What following a rolling update found.
enum Followed {
    Completed(String),
    /// Swarm paused the update (or it ran too long): its message.
    Paused(String),
    RolledBack(String),
    RollbackPaused(String),
    /// The spec no longer names the deployed image: someone else updated
    /// the service meanwhile.
    Replaced(String),
    /// The service was removed.
    Removed,
}

impl<E: Engine> Updater<E> {
    /// Updates service `job.target` through Swarm; see the module doc.
    pub(super) async fn update_service(&self, job: &Job) -> Result<Outcome, Outcome> {
        let target = job.target.as_str();
        let service = self
            .inspect_service(target)
            .await
            .map_err(Outcome::Failed)?;
        let configured = unpinned(&service.image).to_string();
        let labels = service.spec.labels.as_ref();
        let Some(reference) = takes(labels, &configured, &job.image) else {
            return Ok(Outcome::Skipped(format!(
                "service {target} now runs {}, which does not take {}",
                service.image, job.image
            )));
        };
        let running = ImageRef::parse(&service.image).ok().and_then(|i| i.digest);
        if job.digest.is_some() && job.digest == running && !job.force {
            // The webhook named what runs: no pull needed to know.
            return Ok(Outcome::Skipped(format!(
                "service {target} already runs {}",
                running.unwrap_or_default()
            )));
        }
        self.record_with(
            job.deployment,
            State::Pulling,
            None,
            Facts {
                old_container_id: Some(service.id.clone()),
                old_image_id: Some(service.image.clone()),
                strategy: Some(service.order().to_string()),
                ..Facts::default()
            },
        )
        .await;
        let pinned = match &job.rollback {
            // A person's rollback names the pinned image an earlier
            // deployment replaced.
            Some(pinned) => pinned.clone(),
            None => {
                let digest = self.resolve(job, &reference).await?;
                pin(&reference, &job.image.tag, &digest)
            }
        };
        let new_digest = ImageRef::parse(&pinned).ok().and_then(|i| i.digest);
        if new_digest.is_some() && new_digest == running && !job.force {
            return Ok(Outcome::Skipped(format!(
                "service {target} already runs {}",
                new_digest.unwrap_or_default()
            )));
        }
        if !job.is_fresh() {
            if let Some(skip) = self.quarantine(job, &pinned, &service.image, false).await {
                return Ok(skip);
            }
        }
        self.record_with(
            job.deployment,
            State::Starting,
            Some(&format!(
                "asking Swarm to update service {target} to {pinned} ({}, as its update \
                 config says)",
                service.order()
            )),
            Facts {
                new_image_id: Some(pinned.clone()),
                ..Facts::default()
            },
        )
        .await;
        let (login, _) = self.login_for(&job.image)?;
        let login = login.as_ref().map(|l| (job.image.registry.as_str(), l));
        let spec = service.spec_with(&pinned, job.force);
        if let Err(e) = self
            .engine
            .update_service(&service.id, service.version, spec, login, false)
            .await
        {
            // An answer lost on the way may hide an update Swarm took.
            let taken = self.inspect_service(target).await;
            if !taken.is_ok_and(|now| now.image == pinned) {
                return Err(Outcome::Failed(format!(
                    "Swarm refused the update of service {target}: {e}; nothing was changed"
                )));
            }
        }
        self.record(
            job.deployment,
            State::Verifying,
            Some("Swarm accepted the update; following its rollout"),
        )
        .await;
        let earlier = service.started_at.clone();
        Ok(self
            .follow(job.deployment, target, &pinned, earlier, None)
            .await)
    }

    /// Pulls `reference` on this engine and returns the digest the
    /// registry served it under; a digest the webhook named must be it.
    async fn resolve(&self, job: &Job, reference: &str) -> Result<String, Outcome> {
        let target = &job.target;
        let image =
            ImageRef::parse(reference).map_err(|e| Outcome::Failed(format!("{reference}: {e}")))?;
        let (login, login_note) = self.login_for(&image)?;
        {
            // The pull moves the tag on this host: not under a container's
            // update of the same repository.
            let _serialised = self.repository_lock(&image).await;
            self.engine
                .pull(&image, login.as_ref())
                .await
                .map_err(|e| {
                    Outcome::Failed(format!(
                        "{e}{login_note}; service {target} keeps running its current image"
                    ))
                })?;
        }
        let pulled = self.engine.inspect_image(reference).await.map_err(|e| {
            Outcome::Failed(format!("cannot inspect pulled image {reference}: {e}"))
        })?;
        let served: Vec<&str> = digests_of(&pulled, &image).collect();
        match (&job.digest, served.first()) {
            (_, None) => Err(Outcome::Failed(format!(
                "the registry gave {reference} no digest; service {target} was not changed"
            ))),
            (Some(named), Some(_)) if !served.contains(&named.as_str()) => {
                Err(Outcome::Failed(format!(
                    "the registry serves {reference} as {}, not {named} as the webhook said \
                     (a newer push, or a forged payload); nothing was changed",
                    served.join(", ")
                )))
            }
            (Some(named), Some(_)) => Ok(named.clone()),
            (None, Some(digest)) => Ok(digest.to_string()),
        }
    }

    async fn inspect_service(&self, target: &str) -> Result<Inspected, String> {
        match self.engine.inspect_service(target).await {
            Ok(service) => Inspected::of(service).map_err(|e| format!("service {target}: {e}")),
            Err(EngineError::NotFound(_)) => Err(format!("service {target} no longer exists")),
            Err(e) => Err(format!("cannot inspect service {target}: {e}")),
        }
    }

    /// Follows the rolling update of `target` to `pinned` to its end,
    /// asking Swarm for the rollback when it pauses, and says how it ended.
    /// A status that started at `earlier` tells of an earlier rollout.
    /// `paused` is why the update failed when it is known to have failed
    /// and been rolled back already.
    async fn follow(
        &self,
        deployment: i64,
        target: &str,
        pinned: &str,
        earlier: Option<BollardDate>,
        mut paused: Option<String>,
    ) -> Outcome {
        let mut rollback_asked = paused.is_some();
        let mut deadline = Instant::now() + ROLLOUT_TIMEOUT;
        loop {
            let watched =
                self.watch_rollout(target, pinned, earlier.as_ref(), rollback_asked, deadline);
            let followed = match watched.await {
                Ok(followed) => followed,
                Err(reason) => {
                    return Outcome::RollbackFailed(format!(
                        "{reason}; the state of service {target} is unknown: see `docker service ps {target}`"
                    ))
                }
            };
            match followed {
                Followed::Completed(message) => {
                    self.record(deployment, State::CleaningUp, Some(&message))
                        .await;
                    return Outcome::Succeeded(format!(
                        "Swarm updated every task of service {target} to {pinned} ({message})"
                    ));
                }
                Followed::Paused(message) if !rollback_asked => {
                    let note =
                        format!("Swarm stopped the update: {message}; asking Swarm to roll back");
                    self.record(deployment, State::Verifying, Some(&note)).await;
                    if let Err(e) = self.ask_rollback(target).await {
                        return Outcome::RollbackFailed(format!(
                            "Swarm stopped the update of service {target} ({message}) and \
                             refused the rollback: {e}; the service needs a person"
                        ));
                    }
                    paused = Some(message);
                    rollback_asked = true;
                    deadline = Instant::now() + ROLLOUT_TIMEOUT;
                }
                Followed::Paused(message) | Followed::RollbackPaused(message) => {
                    return Outcome::RollbackFailed(format!(
                        "Swarm could not roll service {target} back: {message}; the service \
                         needs a person"
                    ))
                }
                Followed::RolledBack(message) => {
                    let why = paused.unwrap_or(message);
                    return Outcome::RolledBack(format!(
                        "the update of service {target} to {pinned} failed: {why}; Swarm \
                         rolled the service back to its previous spec"
                    ));
                }
                Followed::Removed => {
                    return Outcome::Failed(format!(
                        "service {target} was removed during the rollout of {pinned}"
                    ))
                }
                Followed::Replaced(image) => {
                    return Outcome::Failed(format!(
                        "service {target} was updated to {image} by someone else during the \
                         rollout of {pinned}; dockhook leaves it to them"
                    ))
                }
            }
        }
    }

    /// Polls Swarm's update status until it says something final about the
    /// rollout to `pinned` (or the deadline passes: then it counts as
    /// paused). Errors only when Swarm cannot be asked, for long. Once a
    /// rollback is asked for, the spec is expected to leave `pinned`.
    async fn watch_rollout(
        &self,
        target: &str,
        pinned: &str,
        earlier: Option<&BollardDate>,
        rollback_asked: bool,
        deadline: Instant,
    ) -> Result<Followed, String> {
        let mut pause = FIRST_POLL;
        let mut rolling_back = None;
        loop {
            let inspected = match self.engine.inspect_service(target).await {
                Err(EngineError::NotFound(_)) => return Ok(Followed::Removed),
                Err(e) => Err(e.to_string()),
                Ok(service) => Inspected::of(service),
            };
            match inspected {
                Ok(service) => {
                    let message = service.message.clone();
                    let stale = earlier.is_some() && service.started_at.as_ref() == earlier;
                    let state = service.state.filter(|_| !stale);
                    match state {
                        Some(UpdateState::COMPLETED) if service.image == pinned => {
                            return Ok(Followed::Completed(message))
                        }
                        Some(UpdateState::PAUSED) => return Ok(Followed::Paused(message)),
                        Some(UpdateState::ROLLBACK_COMPLETED) => {
                            return Ok(Followed::RolledBack(rolling_back.unwrap_or(message)))
                        }
                        Some(UpdateState::ROLLBACK_PAUSED) => {
                            return Ok(Followed::RollbackPaused(message))
                        }
                        // Swarm's own rollback (`FailureAction: rollback`)
                        // says why in its first message.
                        Some(UpdateState::ROLLBACK_STARTED) => {
                            rolling_back.get_or_insert(message);
                        }
                        _ if service.image != pinned
                            && !rollback_asked
                            && rolling_back.is_none() =>
                        {
                            return Ok(Followed::Replaced(service.image))
                        }
                        // Not started yet, or updating.
                        _ => {}
                    }
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(e) => {
                    tracing::warn!(service = %target, error = %e, "cannot follow the update; trying again")
                }
            }
            if Instant::now() >= deadline {
                return Ok(Followed::Paused(format!(
                    "the update did not end within {}",
                    crate::settings::show_duration(ROLLOUT_TIMEOUT)
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// Asks Swarm to roll `target` back to its previous spec, inspecting it
    /// again when its version moved in between.
    async fn ask_rollback(&self, target: &str) -> Result<(), String> {
        let mut attempts = 0;
        loop {
            let service = self.inspect_service(target).await?;
            match self
                .engine
                .update_service(&service.id, service.version, service.spec, None, true)
                .await
            {
                Ok(()) => return Ok(()),
                // Swarm bumps the version as the rollout moves: another try
                // with the version just read.
                Err(e) if attempts < 5 => {
                    tracing::warn!(service = %target, error = %e, "asking for a rollback failed; trying again");
                    attempts += 1;
                    tokio::time::sleep(FIRST_POLL).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Follows a service update a crash interrupted (`cause`) to its end,
    /// from what the store says and what Swarm shows now.
    pub(super) async fn recover_service(&self, deployment: &Deployment, cause: &str) -> Outcome {
        let target = &deployment.target;
        let Some(pinned) = deployment.new_image_id.clone() else {
            // The update was not sent before the crash.
            return Outcome::Failed(format!("{cause}; nothing was changed"));
        };
        let mut pause = Duration::from_millis(500);
        let service = loop {
            match self.engine.inspect_service(target).await {
                Ok(service) => break Inspected::of(service),
                Err(EngineError::Unavailable(e)) => {
                    tracing::warn!(deployment = deployment.id, error = %e, "cannot recover the service update while Docker does not answer; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
                Err(e) => break Err(e.to_string()),
            }
        };
        let service = match service {
            Ok(service) => service,
            Err(e) => return Outcome::Failed(format!("{cause}; service {target}: {e}")),
        };
        let ours = service.image == pinned;
        let our_rollback = deployment.old_image_id.as_deref() == Some(service.image.as_str())
            && matches!(
                service.state,
                Some(
                    UpdateState::ROLLBACK_STARTED
                        | UpdateState::ROLLBACK_PAUSED
                        | UpdateState::ROLLBACK_COMPLETED
                )
            );
        if !ours && !our_rollback {
            return if deployment.state == State::Starting || deployment.state == State::Pulling {
                Outcome::Failed(format!(
                    "{cause}; the update was not sent: nothing was changed"
                ))
            } else {
                Outcome::Failed(format!(
                    "{cause}; service {target} now runs {}, not {pinned}",
                    service.image
                ))
            };
        }
        tracing::info!(deployment = deployment.id, service = %target, "following a service update a restart interrupted");
        let outcome = self
            .follow(
                deployment.id,
                target,
                &pinned,
                None,
                our_rollback.then(|| "the update failed before the restart".to_string()),
            )
            .await;
        match outcome {
            Outcome::Succeeded(s) => Outcome::Succeeded(format!("{s} (followed after {cause})")),
            Outcome::RolledBack(s) => Outcome::RolledBack(format!("{s} (followed after {cause})")),
            other => other,
        }
    }
}

/// `reference@digest`, with the tag written out when `reference` leaves it
/// implicit: `alice/site@sha256:…` would pin the service out of the pushes
/// of its tag.
fn pin(reference: &str, tag: &str, digest: &str) -> String {
    match has_tag(reference) {
        true => format!("{reference}@{digest}"),
        false => format!("{reference}:{tag}@{digest}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::deploy::fake::FakeEngine;
    use crate::deploy::{Queue, Request, Settings};
    use crate::store::{NewDeployment, Store};
    use crate::tags::TagPolicy;

    const IMAGE: &str = "127.0.0.1:5000/alice/site:latest";
    const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    struct Rig {
        engine: Arc<FakeEngine>,
        store: Arc<Store>,
        updater: Arc<Updater<FakeEngine>>,
        _config: tempfile::TempDir,
    }

    /// A manager running service `web` on [`IMAGE`] pinned to [`OLD`], a
    /// registry serving [`NEW`] for it, and a login for that registry.
    fn rig() -> Rig {
        let engine = Arc::new(FakeEngine::with_service("web", IMAGE, OLD, "sha256:b", NEW));
        let config = tempfile::tempdir().unwrap();
        // alice:s3cret
        std::fs::write(
            config.path().join("config.json"),
            r#"{"auths": {"127.0.0.1:5000": {"auth": "YWxpY2U6czNjcmV0"}}}"#,
        )
        .unwrap();
        let store = Arc::new(Store::in_memory().unwrap());
        let settings = Settings {
            docker_config: Some(config.path().to_path_buf()),
            ..Settings::default()
        };
        let updater = Arc::new(Updater::new(engine.clone(), store.clone(), settings));
        Rig {
            engine,
            store,
            updater,
            _config: config,
        }
    }

    impl Rig {
        fn record(&self, digest: Option<&str>) -> i64 {
            self.store
                .create(&NewDeployment {
                    target: "web".into(),
                    container_id: "web-id".into(),
                    image: IMAGE.into(),
                    source: "registry".into(),
                    digest: digest.map(str::to_string),
                    service: true,
                    ..NewDeployment::default()
                })
                .unwrap()
        }

        async fn run(&self, digest: Option<&str>) -> (i64, Outcome) {
            let id = self.record(digest);
            let (deployment, _) = self.store.get(id).unwrap().unwrap();
            let job = Job::of(&deployment).unwrap();
            assert!(job.service);
            let outcome = tokio::time::timeout(Duration::from_secs(30), self.updater.run(&job))
                .await
                .expect("the service update did not end");
            (id, outcome)
        }

        fn states(&self, id: i64) -> Vec<State> {
            let (_, steps) = self.store.get(id).unwrap().unwrap();
            steps.iter().map(|s| s.state).collect()
        }

        fn calls(&self) -> Vec<String> {
            self.engine.lock().calls.clone()
        }

        /// A deployment that sent its update to [`NEW`] and was at `state`
        /// when dockhook stopped; Swarm holds the new spec, and reports
        /// `status` (or, without one, goes through its usual rollout).
        fn interrupted(&self, state: State, status: Option<(UpdateState, &str)>) -> i64 {
            let id = self.record(None);
            let facts = crate::store::Facts {
                old_container_id: Some("web-id".into()),
                old_image_id: Some(pinned(OLD)),
                new_image_id: Some(pinned(NEW)),
                ..Default::default()
            };
            self.store.step(id, state, None, &facts).unwrap();
            let mut world = self.engine.lock();
            let rollout = world.rollout.clone();
            let service = &mut world.services[0];
            service.previous_image = Some(std::mem::replace(&mut service.image, pinned(NEW)));
            match status {
                Some((state, message)) => service.status = Some((state, message.into())),
                None => service.upcoming = rollout.into(),
            }
            id
        }
    }

    fn pinned(digest: &str) -> String {
        format!("{IMAGE}@{digest}")
    }

    #[test]
    fn pins_keep_the_tag_written() {
        assert_eq!(
            pin("alice/site", "latest", NEW),
            format!("alice/site:latest@{NEW}")
        );
        assert_eq!(
            pin("127.0.0.1:5000/alice/site:v2", "v2", NEW),
            format!("127.0.0.1:5000/alice/site:v2@{NEW}")
        );
    }

    #[tokio::test]
    async fn a_service_removed_during_its_rollout_ends_the_deployment_failed() {
        let rig = Arc::new(rig());
        rig.engine.lock().rollout = vec![(UpdateState::UPDATING, "update in progress".into())];
        let running = tokio::spawn({
            let rig = rig.clone();
            async move { rig.run(None).await.1 }
        });
        let sent = async {
            while !rig.calls().iter().any(|c| c.starts_with("update-service")) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), sent)
            .await
            .expect("the update was not sent");
        rig.engine.lock().services.clear();
        let outcome = running.await.unwrap();
        assert!(
            matches!(&outcome, Outcome::Failed(s) if s.contains("was removed during the rollout")),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_completed_rollout_succeeds_on_the_pinned_digest_with_the_login() {
        let rig = rig();
        let (id, outcome) = rig.run(Some(NEW)).await;
        assert!(matches!(outcome, Outcome::Succeeded(_)), "{outcome:?}");
        assert!(outcome.detail().contains("update completed"), "{outcome:?}");
        let service = rig.engine.service("web").unwrap();
        assert_eq!(service.image, pinned(NEW));
        assert_eq!(
            rig.calls(),
            [
                format!("pull {IMAGE}"),
                format!(
                    "update-service web {} force=0 login=alice@127.0.0.1:5000",
                    pinned(NEW)
                )
            ]
        );
        assert_eq!(
            rig.states(id),
            [
                State::Queued,
                State::Pulling,
                State::Starting,
                State::Verifying,
                State::CleaningUp,
                State::Succeeded
            ]
        );
        let (deployment, _) = rig.store.get(id).unwrap().unwrap();
        assert_eq!(deployment.old_image_id, Some(pinned(OLD)));
        assert_eq!(deployment.new_image_id, Some(pinned(NEW)));
        assert_eq!(deployment.strategy.as_deref(), Some("stop-first"));
    }

    #[tokio::test]
    async fn a_paused_rollout_is_rolled_back_by_swarm_with_its_message() {
        let rig = rig();
        let failure = "update paused due to failure or early termination of task x1";
        rig.engine.lock().rollout = vec![
            (UpdateState::UPDATING, "update in progress".into()),
            (UpdateState::PAUSED, failure.into()),
        ];
        let (id, outcome) = rig.run(None).await;
        let Outcome::RolledBack(detail) = &outcome else {
            panic!("{outcome:?}");
        };
        assert!(detail.contains(failure), "{detail}");
        assert_eq!(rig.engine.service("web").unwrap().image, pinned(OLD));
        assert_eq!(rig.calls().last().unwrap(), "rollback-service web");
        let (deployment, steps) = rig.store.get(id).unwrap().unwrap();
        assert_eq!(deployment.state, State::RolledBack);
        assert!(steps.iter().any(|s| s.state == State::Verifying
            && s.detail
                .as_deref()
                .is_some_and(|d| d.contains("asking Swarm to roll back"))));
        // The image Swarm rolled back is in quarantine: the same push again
        // changes nothing.
        let (_, again) = rig.run(None).await;
        assert!(
            matches!(&again, Outcome::Skipped(s) if s.contains("rolled back in deployment")),
            "{again:?}"
        );
    }

    #[tokio::test]
    async fn a_rollback_swarm_starts_itself_is_followed_and_a_paused_one_needs_a_person() {
        let rig = rig();
        let failure = "update rolled back due to failure or early termination of task x2";
        rig.engine.lock().rollout = vec![
            (UpdateState::ROLLBACK_STARTED, failure.into()),
            (UpdateState::ROLLBACK_COMPLETED, "rollback completed".into()),
        ];
        let (_, outcome) = rig.run(None).await;
        assert!(
            matches!(&outcome, Outcome::RolledBack(s) if s.contains(failure)),
            "{outcome:?}"
        );
        assert!(!rig
            .calls()
            .iter()
            .any(|c| c.starts_with("rollback-service")));

        let rig = self::rig();
        rig.engine.lock().rollout = vec![(UpdateState::PAUSED, "task failed".into())];
        rig.engine.lock().rollback = vec![(UpdateState::ROLLBACK_PAUSED, "rollback paused".into())];
        let (_, outcome) = rig.run(None).await;
        assert!(
            matches!(&outcome, Outcome::RollbackFailed(s) if s.contains("rollback paused")),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_service_on_the_pushed_digest_or_a_wrong_digest_changes_nothing() {
        let rig = rig();
        rig.engine.lock().services[0].image = pinned(NEW);
        let (_, outcome) = rig.run(Some(NEW)).await;
        assert!(
            matches!(&outcome, Outcome::Skipped(s) if s.contains("already runs")),
            "{outcome:?}"
        );
        assert!(rig.calls().is_empty(), "not even a pull: {:?}", rig.calls());
        // Without a digest in the webhook, the pull tells.
        let (_, outcome) = rig.run(None).await;
        assert!(
            matches!(&outcome, Outcome::Skipped(s) if s.contains("already runs")),
            "{outcome:?}"
        );
        assert_eq!(rig.calls(), [format!("pull {IMAGE}")]);
        // A digest the registry does not serve for the tag (a forged or
        // stale payload) changes nothing.
        let rig = self::rig();
        let forged = format!("sha256:{}", "3".repeat(64));
        let (_, outcome) = rig.run(Some(&forged)).await;
        assert!(
            matches!(&outcome, Outcome::Failed(s) if s.contains("not sha256:3333")),
            "{outcome:?}"
        );
        assert_eq!(rig.engine.service("web").unwrap().image, pinned(OLD));
        assert!(!rig.calls().iter().any(|c| c.contains("service")));
    }

    #[tokio::test]
    async fn a_forced_update_of_the_same_digest_asks_swarm_to_restart_the_tasks() {
        let rig = rig();
        rig.engine.lock().services[0].image = pinned(NEW);
        let id = rig.record(None);
        rig.store
            .step(id, State::Queued, None, &crate::store::Facts::default())
            .unwrap();
        let (deployment, _) = rig.store.get(id).unwrap().unwrap();
        let job = Job {
            force: true,
            ..Job::of(&deployment).unwrap()
        };
        let outcome = rig.updater.run(&job).await;
        assert!(matches!(outcome, Outcome::Succeeded(_)), "{outcome:?}");
        assert!(rig.calls().last().unwrap().contains("force=1"));
    }

    #[tokio::test]
    async fn an_update_a_restart_interrupted_is_followed_to_its_end() {
        let rig = rig();
        // The update was sent and Swarm rolls it out; dockhook stopped
        // while it followed it.
        let id = rig.interrupted(State::Verifying, None);
        // A second deployment never got to send its update.
        let unsent = rig.record(None);
        rig.store
            .step(unsent, State::Pulling, None, &Default::default())
            .unwrap();

        let queue = Queue::new(rig.updater.clone(), rig.store.clone());
        queue.resume(rig.store.unfinished().unwrap());
        tokio::time::timeout(Duration::from_secs(30), queue.finish_all())
            .await
            .expect("recovery did not end");
        let (followed, _) = rig.store.get(id).unwrap().unwrap();
        assert_eq!(followed.state, State::Succeeded, "{followed:?}");
        let (_, steps) = rig.store.get(id).unwrap().unwrap();
        let last = steps
            .last()
            .and_then(|s| s.detail.clone())
            .unwrap_or_default();
        assert!(last.contains("followed after dockhook stopped"), "{last}");
        let (unsent, steps) = rig.store.get(unsent).unwrap().unwrap();
        assert_eq!(unsent.state, State::Failed);
        assert!(steps
            .last()
            .and_then(|s| s.detail.as_deref())
            .is_some_and(|d| d.contains("nothing was changed")));
        assert_eq!(rig.engine.service("web").unwrap().image, pinned(NEW));
        assert!(!rig.calls().iter().any(|c| c.contains("service")));
    }

    #[tokio::test]
    async fn an_interrupted_update_that_paused_is_rolled_back_after_a_restart() {
        let rig = rig();
        let id = rig.interrupted(
            State::Verifying,
            Some((UpdateState::PAUSED, "task x3 failed")),
        );
        let (deployment, _) = rig.store.get(id).unwrap().unwrap();
        let outcome = rig.updater.recover(&deployment, "dockhook stopped").await;
        assert!(
            matches!(&outcome, Outcome::RolledBack(s) if s.contains("task x3 failed")),
            "{outcome:?}"
        );
        assert_eq!(rig.engine.service("web").unwrap().image, pinned(OLD));
    }

    #[tokio::test]
    async fn the_queue_parks_a_service_in_approve_mode_until_it_is_approved() {
        let rig = rig();
        let queue = Queue::new(rig.updater.clone(), rig.store.clone());
        let image = ImageRef::parse(IMAGE).unwrap();
        let request = Request {
            mode: crate::deploy::Mode::Approve,
            service: true,
            digest: Some(NEW),
            ..Request::push(
                "web",
                "web-id",
                &image,
                "registry",
                "push",
                &TagPolicy::Exact,
            )
        };
        let id = queue.submit(&request).await.unwrap();
        assert_eq!(
            rig.store.get(id).unwrap().unwrap().0.state,
            State::AwaitingApproval
        );
        assert!(rig.calls().is_empty());
        queue
            .release(id, State::AwaitingApproval, "approved".into())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), queue.finish_all())
            .await
            .expect("the update did not end");
        assert_eq!(
            rig.store.get(id).unwrap().unwrap().0.state,
            State::Succeeded
        );
        assert_eq!(rig.engine.service("web").unwrap().image, pinned(NEW));
    }
}
