//! The update step machine and the queue, run against the in-memory fake.

use std::sync::Arc;
use std::time::Duration;

use super::fake::FakeEngine;
use super::{Job, Outcome, Queue, Request, Settings, Strategy, StrategySetting, Updater};
use crate::image_ref::ImageRef;
use crate::store::{NewDeployment, State, Store};
use crate::tags::TagPolicy;

const IMAGE: &str = "127.0.0.1:5000/alice/site:latest";

/// Longer than any step here takes on the fake: a test that waits this long
/// is stuck, and fails instead of hanging.
const STUCK: Duration = Duration::from_secs(30);

/// `future`'s output, or a panic saying `what` did not end.
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STUCK, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not end within {STUCK:?}"))
}

struct Rig {
    /// The digest the webhook names, if any.
    digest: Option<String>,
    engine: Arc<FakeEngine>,
    store: Arc<Store>,
    updater: Arc<Updater<FakeEngine>>,
}

fn rig(old: &str, new: &str) -> Rig {
    rig_with(old, new, Strategy::StopFirst, &[])
}

fn rig_with(old: &str, new: &str, strategy: Strategy, labels: &[(&str, &str)]) -> Rig {
    rig_keeping(old, new, strategy, labels, 0)
}

fn rig_keeping(
    old: &str,
    new: &str,
    strategy: Strategy,
    labels: &[(&str, &str)],
    keep_images: u32,
) -> Rig {
    let engine = Arc::new(FakeEngine::with_container("site", IMAGE, old, new));
    engine.lock().containers[0].labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let store = Arc::new(Store::in_memory().unwrap());
    let settings = Settings {
        grace: Duration::ZERO,
        strategy: StrategySetting::Fixed(strategy),
        keep_images,
        ..Settings::default()
    };
    let updater = Arc::new(Updater::new(engine.clone(), store.clone(), settings));
    Rig {
        digest: None,
        engine,
        store,
        updater,
    }
}

impl Rig {
    async fn run(&self) -> Outcome {
        self.run_as(false, None).await.1
    }

    /// Runs a job recorded as a webhook's (or, with `force` or
    /// `rollback`, a person's) and returns its deployment and outcome.
    async fn run_as(&self, force: bool, rollback: Option<&str>) -> (i64, Outcome) {
        let deployment = self
            .store
            .create(&NewDeployment {
                target: "site".into(),
                container_id: "site-id".into(),
                image: IMAGE.into(),
                source: "test".into(),
                digest: self.digest.clone(),
                force,
                kind: rollback.map(|_| super::update::KIND_ROLLBACK.to_string()),
                image_id: rollback.map(str::to_string),
                ..NewDeployment::default()
            })
            .unwrap();
        let recorded = self.store.get(deployment).unwrap().unwrap().0;
        let job = Job::of(&recorded).unwrap();
        (
            deployment,
            within("the update", self.updater.run(&job)).await,
        )
    }

    /// The registry's tag now names image `id`.
    fn push(&self, id: &str) {
        let tag = ImageRef::parse(IMAGE).unwrap().to_string();
        self.engine.lock().registry.insert(tag, id.into());
    }

    fn has_image(&self, id: &str) -> bool {
        self.engine.lock().images.contains_key(id)
    }

    fn calls(&self) -> Vec<String> {
        self.engine.lock().calls.clone()
    }
}

fn request(image: &ImageRef) -> Request<'_> {
    Request::push("site", "site-id", image, "test", "test", &TagPolicy::Exact)
}

#[tokio::test]
async fn new_image_replaces_the_container_and_cleans_up() {
    let rig = rig("sha256:old", "sha256:new");
    let outcome = rig.run().await;
    assert!(
        matches!(outcome, Outcome::Succeeded(ref s) if s.contains("removed old image")),
        "{outcome:?}"
    );
    let site = rig.engine.named("site").unwrap();
    assert_eq!(site.image_id, "sha256:new");
    assert!(site.running);
    let world = rig.engine.lock();
    assert_eq!(world.containers.len(), 1, "old container removed");
    assert!(
        !world.images.contains_key("sha256:old"),
        "old image removed"
    );
    drop(world);
    // Pull and create happen before the stop.
    let calls = rig.calls();
    let position = |prefix: &str| calls.iter().position(|c| c.starts_with(prefix)).unwrap();
    assert!(position("pull") < position("create"));
    assert!(position("create") < position("stop"));
    assert!(position("stop") < position("start"));
}

#[tokio::test]
async fn start_first_starts_the_new_container_before_stopping_the_old() {
    let rig = rig_with("sha256:old", "sha256:new", Strategy::StartFirst, &[]);
    let outcome = rig.run().await;
    assert!(
        matches!(outcome, Outcome::Succeeded(ref s) if s.starts_with("start-first")),
        "{outcome:?}"
    );
    let calls = rig.calls();
    let position = |prefix: &str| calls.iter().position(|c| c.starts_with(prefix)).unwrap();
    assert!(
        position("start new") < position("stop site-id"),
        "{calls:?}"
    );
    let site = rig.engine.named("site").unwrap();
    assert_eq!((site.image_id.as_str(), site.running), ("sha256:new", true));
    assert_eq!(rig.engine.lock().containers.len(), 1);
}

#[tokio::test]
async fn start_first_failure_never_stops_the_old_container() {
    let rig = rig_with("sha256:old", "sha256:new", Strategy::StartFirst, &[]);
    rig.engine.lock().new_exits = true;
    let outcome = rig.run().await;
    assert!(
        matches!(outcome, Outcome::RolledBack(ref s) if s.contains("log of new-1")),
        "{outcome:?}"
    );
    assert!(
        !rig.calls().iter().any(|c| c.starts_with("stop")),
        "{:?}",
        rig.calls()
    );
    assert_rolled_back(&rig);
}

#[tokio::test]
async fn hooks_run_inside_the_containers() {
    let rig = rig_with(
        "sha256:old",
        "sha256:new",
        Strategy::StopFirst,
        &[
            ("dockhook.pre-update", "echo bye"),
            ("dockhook.post-update", r#"["warm","up"]"#),
        ],
    );
    let outcome = rig.run().await;
    assert!(
        matches!(outcome, Outcome::Succeeded(ref s) if s.contains("post-update hook succeeded")),
        "{outcome:?}"
    );
    let calls = rig.calls();
    assert!(
        calls.contains(&"exec site-id /bin/sh -c echo bye".to_string()),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"exec new-1 warm up".to_string()),
        "{calls:?}"
    );
    let steps: Vec<State> = rig
        .store
        .get(1)
        .unwrap()
        .unwrap()
        .1
        .iter()
        .map(|s| s.state)
        .collect();
    assert!(
        steps.contains(&State::PreUpdate) && steps.contains(&State::PostUpdate),
        "{steps:?}"
    );
}

#[tokio::test]
async fn failing_pre_update_hook_aborts_before_any_change() {
    let rig = rig_with(
        "sha256:old",
        "sha256:new",
        Strategy::StopFirst,
        &[("dockhook.pre-update", "exit 3")],
    );
    rig.engine.lock().exec_exit_code = 3;
    let outcome = rig.run().await;
    assert!(
        matches!(outcome, Outcome::Failed(ref s) if s.contains("pre-update hook failed") && s.contains("code 3")),
        "{outcome:?}"
    );
    assert!(!rig
        .calls()
        .iter()
        .any(|c| c.starts_with("create") || c.starts_with("stop")));
    let site = rig.engine.named("site").unwrap();
    assert!(site.running && site.id == "site-id");
    // The tag points at what runs again.
    assert!(rig.engine.lock().images["sha256:old"].contains(&IMAGE.to_string()));
}

#[tokio::test]
async fn unchanged_image_is_skipped_without_restart() {
    let rig = rig("sha256:same", "sha256:same");
    let outcome = rig.run().await;
    assert!(matches!(outcome, Outcome::Skipped(_)), "{outcome:?}");
    assert_eq!(rig.calls(), ["pull 127.0.0.1:5000/alice/site:latest"]);
    assert_eq!(rig.engine.named("site").unwrap().id, "site-id");
}

#[tokio::test]
async fn failed_pull_changes_nothing() {
    let rig = rig("sha256:old", "sha256:new");
    rig.engine.lock().fail_pull = true;
    let outcome = rig.run().await;
    assert!(
        matches!(outcome, Outcome::Failed(ref s) if s.contains("keeps running")),
        "{outcome:?}"
    );
    let site = rig.engine.named("site").unwrap();
    assert!(site.running && site.id == "site-id");
    let (deployment, _) = rig.store.get(1).unwrap().unwrap();
    assert_eq!(deployment.state, State::Failed);
    assert!(deployment.error.unwrap().contains("manifest unknown"));
}

#[tokio::test]
async fn start_failure_rolls_back_to_the_old_container() {
    let rig = rig("sha256:old", "sha256:new");
    rig.engine.lock().fail_start_of_new = true;
    let outcome = rig.run().await;
    assert!(
        matches!(outcome, Outcome::RolledBack(ref s) if s.contains("did not start")),
        "{outcome:?}"
    );
    assert_rolled_back(&rig);
}

#[tokio::test]
async fn exit_during_grace_rolls_back() {
    let rig = rig("sha256:old", "sha256:new");
    rig.engine.lock().new_exits = true;
    let outcome = rig.run().await;
    assert!(
        matches!(outcome, Outcome::RolledBack(ref s) if s.contains("exited with code 1")),
        "{outcome:?}"
    );
    assert_rolled_back(&rig);
    let (deployment, steps) = rig.store.get(1).unwrap().unwrap();
    assert_eq!(deployment.state, State::RolledBack);
    assert_eq!(steps.last().unwrap().state, State::RolledBack);
}

fn assert_rolled_back(rig: &Rig) {
    let world = rig.engine.lock();
    assert_eq!(
        world.containers.len(),
        1,
        "the new container is gone: {:?}",
        world.containers
    );
    let site = &world.containers[0];
    assert_eq!((site.id.as_str(), site.name.as_str()), ("site-id", "site"));
    assert!(site.running);
    assert!(
        world.images["sha256:old"].contains(&IMAGE.to_string()),
        "tag back on the old image"
    );
    assert!(
        world.images.contains_key("sha256:new"),
        "failed image kept for inspection"
    );
}

#[tokio::test]
async fn vanished_target_fails_cleanly() {
    let rig = rig("sha256:old", "sha256:new");
    rig.engine.lock().containers.clear();
    let outcome = rig.run().await;
    assert!(
        matches!(outcome, Outcome::Failed(ref s) if s.contains("no longer exists")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn burst_of_submissions_runs_one_update_then_one_check() {
    let rig = rig("sha256:old", "sha256:new");
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    let image = ImageRef::parse(IMAGE).unwrap();
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(queue.submit(&request(&image)).await.unwrap());
    }
    // The first starts at once; the other nine fold into one waiting job.
    assert_eq!(ids[0], 1);
    assert!(ids[1..].iter().all(|&id| id == 2), "{ids:?}");
    within("finishing the queue", queue.finish_all()).await;
    let creates = rig
        .calls()
        .iter()
        .filter(|c| c.starts_with("create"))
        .count();
    assert_eq!(creates, 1);
    assert_eq!(rig.store.get(1).unwrap().unwrap().0.state, State::Succeeded);
    assert_eq!(rig.store.get(2).unwrap().unwrap().0.state, State::Skipped);
    assert_eq!(rig.store.list(10).unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_depth_counts_the_running_and_the_waiting_update() {
    let rig = rig("sha256:old", "sha256:new");
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    assert_eq!(queue.depth(), 0);
    // The first update cannot get past the engine while this thread holds it.
    let (locked, release) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
    let engine = rig.engine.clone();
    let holder = std::thread::spawn(move || {
        let _world = engine.lock();
        locked.0.send(()).unwrap();
        let _ = release.1.recv();
    });
    locked.1.recv().unwrap();
    let image = ImageRef::parse(IMAGE).unwrap();
    for _ in 0..3 {
        queue.submit(&request(&image)).await.unwrap();
    }
    assert_eq!(
        queue.depth(),
        2,
        "one running, the others folded into one waiting"
    );
    release.0.send(()).unwrap();
    holder.join().unwrap();
    within("finishing the queue", queue.finish_all()).await;
    assert_eq!(queue.depth(), 0);
}

#[tokio::test]
async fn a_digest_the_registry_does_not_serve_changes_nothing() {
    let mut rig = rig("sha256:old", "sha256:new");
    rig.engine
        .lock()
        .digests
        .insert("sha256:new".into(), format!("sha256:{}", "1".repeat(64)));
    rig.digest = Some(format!("sha256:{}", "2".repeat(64)));
    let outcome = rig.run().await;
    assert!(
        matches!(outcome, Outcome::Failed(ref s) if s.contains("not sha256:2222")),
        "{outcome:?}"
    );
    assert!(!rig.calls().iter().any(|c| c.starts_with("create")));
    assert!(
        rig.engine.lock().images["sha256:old"].contains(&IMAGE.to_string()),
        "tag restored"
    );
}

#[tokio::test]
async fn the_digest_the_registry_serves_is_deployed() {
    let mut rig = rig("sha256:old", "sha256:new");
    let digest = format!("sha256:{}", "1".repeat(64));
    rig.engine
        .lock()
        .digests
        .insert("sha256:new".into(), digest.clone());
    rig.digest = Some(digest);
    let outcome = rig.run().await;
    assert!(matches!(outcome, Outcome::Succeeded(_)), "{outcome:?}");
}

#[tokio::test]
async fn one_digest_through_several_deliveries_deploys_once() {
    let rig = rig("sha256:old", "sha256:new");
    let digest = format!("sha256:{}", "1".repeat(64));
    rig.engine
        .lock()
        .digests
        .insert("sha256:new".into(), digest.clone());
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    let image = ImageRef::parse(IMAGE).unwrap();
    let with_digest = Request {
        digest: Some(&digest),
        ..request(&image)
    };
    let first = queue.submit(&with_digest).await.unwrap();
    let again = queue
        .submit(&Request {
            source: "another-source",
            ..with_digest
        })
        .await
        .unwrap();
    assert_eq!(
        again, first,
        "the same push in flight is the same deployment"
    );
    within("finishing the queue", queue.finish_all()).await;
    assert_eq!(
        rig.store.get(first).unwrap().unwrap().0.state,
        State::Succeeded
    );
    // Delivered again once it runs: nothing to do, and the history says so.
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    let late = queue
        .submit(&Request {
            source: "another-source",
            ..with_digest
        })
        .await
        .unwrap();
    within("finishing the queue", queue.finish_all()).await;
    let (late, _) = rig.store.get(late).unwrap().unwrap();
    assert_eq!(late.state, State::Skipped);
    assert!(late.error.is_none());
    let creates = rig
        .calls()
        .iter()
        .filter(|c| c.starts_with("create"))
        .count();
    assert_eq!(creates, 1, "one push deploys once");
}

#[tokio::test]
async fn a_tag_policy_moves_the_container_to_the_pushed_tag() {
    let old_ref = "127.0.0.1:5000/alice/site:1.2.3";
    let engine = Arc::new(FakeEngine::with_container(
        "site",
        old_ref,
        "sha256:old",
        "sha256:old",
    ));
    engine.lock().containers[0].labels =
        [("dockhook.policy".to_string(), "semver:minor".to_string())].into();
    engine.lock().registry.insert(
        "127.0.0.1:5000/alice/site:1.3.0".into(),
        "sha256:new".into(),
    );
    let store = Arc::new(Store::in_memory().unwrap());
    let settings = Settings {
        grace: Duration::ZERO,
        ..Settings::default()
    };
    let updater = Updater::new(engine.clone(), store.clone(), settings);
    let pushed = ImageRef::parse("127.0.0.1:5000/alice/site:1.3.0").unwrap();
    let deployment = store
        .create(&NewDeployment {
            target: "site".into(),
            container_id: "site-id".into(),
            image: pushed.to_string(),
            source: "test".into(),
            pusher: None,
            digest: None,
            reason: None,
            ..NewDeployment::default()
        })
        .unwrap();
    let job = Job {
        deployment,
        target: "site".into(),
        image: pushed,
        digest: None,
        force: false,
        rollback: None,
        service: false,
    };
    let outcome = within("the update", updater.run(&job)).await;
    assert!(matches!(outcome, Outcome::Succeeded(_)), "{outcome:?}");
    let site = engine.named("site").unwrap();
    assert_eq!(site.image, "127.0.0.1:5000/alice/site:1.3.0");
    assert_eq!(site.image_id, "sha256:new");
    // The old tag still names the old image, so it is kept.
    assert!(engine.lock().images.contains_key("sha256:old"));
}

#[tokio::test]
async fn a_rollback_that_fails_has_its_own_state() {
    let rig = rig("sha256:old", "sha256:new");
    {
        let mut world = rig.engine.lock();
        world.new_exits = true;
        world.fail_start_of_old = true;
    }
    let outcome = rig.run().await;
    assert!(
        matches!(outcome, Outcome::RollbackFailed(ref s) if s.contains("rolling back failed too")),
        "{outcome:?}"
    );
    let (deployment, _) = rig.store.get(1).unwrap().unwrap();
    assert_eq!(deployment.state, State::RollbackFailed);
    assert!(deployment.error.is_some());
}

#[tokio::test]
async fn a_panicking_worker_ends_its_deployment_and_frees_the_queue() {
    let rig = rig("sha256:old", "sha256:new");
    rig.engine.lock().panic_on_create = true;
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    let image = ImageRef::parse(IMAGE).unwrap();
    let first = queue.submit(&request(&image)).await.unwrap();
    let second = queue.submit(&request(&image)).await.unwrap();
    within("finishing the queue", queue.finish_all()).await;
    let (first, _) = rig.store.get(first).unwrap().unwrap();
    assert!(first.state.is_final(), "{first:?}");
    assert!(
        first.error.as_deref().unwrap_or_default().contains("panic"),
        "{first:?}"
    );
    let (second, _) = rig.store.get(second).unwrap().unwrap();
    assert_eq!(second.state, State::Succeeded, "{second:?}");
    let site = rig.engine.named("site").unwrap();
    assert_eq!((site.image_id.as_str(), site.running), ("sha256:new", true));
}

#[tokio::test]
async fn a_tag_moved_back_to_an_earlier_digest_deploys_again() {
    let rig = rig("sha256:a", "sha256:b");
    let digest_a = format!("sha256:{}", "a".repeat(64));
    let digest_b = format!("sha256:{}", "b".repeat(64));
    {
        let mut world = rig.engine.lock();
        world.digests.insert("sha256:a".into(), digest_a.clone());
        world.digests.insert("sha256:b".into(), digest_b.clone());
    }
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    let image = ImageRef::parse(IMAGE).unwrap();
    let push = |digest| Request {
        digest: Some(digest),
        ..request(&image)
    };
    // A -> B.
    let to_b = queue.submit(&push(&digest_b)).await.unwrap();
    within("finishing the queue", queue.finish_all()).await;
    assert_eq!(
        rig.store.get(to_b).unwrap().unwrap().0.state,
        State::Succeeded
    );
    // The registry's tag moves back to A (a rollback by re-tagging).
    {
        let mut world = rig.engine.lock();
        world.registry.insert(image.to_string(), "sha256:a".into());
        world.images.entry("sha256:a".into()).or_default();
    }
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    let to_a = queue.submit(&push(&digest_a)).await.unwrap();
    within("finishing the queue", queue.finish_all()).await;
    let (to_a, _) = rig.store.get(to_a).unwrap().unwrap();
    assert_eq!(to_a.state, State::Succeeded, "{to_a:?}");
    assert_eq!(rig.engine.named("site").unwrap().image_id, "sha256:a");
}

#[tokio::test]
async fn an_older_version_never_replaces_a_newer_one_that_waits() {
    let rig = rig("sha256:old", "sha256:new");
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    let semver = TagPolicy::parse(Some("semver:minor")).unwrap();
    let tagged = |tag: &str| ImageRef::parse(&format!("127.0.0.1:5000/alice/site:{tag}")).unwrap();
    let (running, newer, older) = (tagged("1.3.0"), tagged("1.5.0"), tagged("1.4.0"));
    let submit = |image| Request {
        policy: &semver,
        ..request(image)
    };
    // Hold the repository so the first job stays running.
    let held = rig.updater.repository_lock(&running).await;
    queue.submit(&submit(&running)).await.unwrap();
    let newer = queue.submit(&submit(&newer)).await.unwrap();
    let older = queue.submit(&submit(&older)).await.unwrap();
    let (older, steps) = rig.store.get(older).unwrap().unwrap();
    assert_eq!(older.state, State::Skipped);
    assert!(
        steps
            .last()
            .unwrap()
            .detail
            .as_deref()
            .unwrap()
            .contains("older than 1.5.0"),
        "{steps:?}"
    );
    drop(held);
    within("finishing the queue", queue.finish_all()).await;
    assert_ne!(
        rig.store.get(newer).unwrap().unwrap().0.state,
        State::Queued,
        "the newer one still ran"
    );
}

#[tokio::test]
async fn a_queued_job_records_the_container_it_finds_when_it_runs() {
    let rig = rig("sha256:old", "sha256:new");
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    let image = ImageRef::parse(IMAGE).unwrap();
    let first = queue.submit(&request(&image)).await.unwrap();
    // Queued while the first runs, with the container id of that moment.
    let second = queue.submit(&request(&image)).await.unwrap();
    within("finishing the queue", queue.finish_all()).await;
    let (first, _) = rig.store.get(first).unwrap().unwrap();
    let (second, _) = rig.store.get(second).unwrap().unwrap();
    assert_eq!(first.state, State::Succeeded);
    assert_eq!(
        second.old_container_id, first.new_container_id,
        "the second update acts on the container the first one made"
    );
}

#[tokio::test]
async fn replicas_of_one_image_are_updated_one_after_the_other() {
    let rig = rig("sha256:old", "sha256:new");
    {
        let mut world = rig.engine.lock();
        let mut replica = world.containers[0].clone();
        replica.id = "replica-id".into();
        replica.name = "replica".into();
        world.containers.push(replica);
    }
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    let image = ImageRef::parse(IMAGE).unwrap();
    let a = queue.submit(&request(&image)).await.unwrap();
    let b = queue
        .submit(&Request {
            target: "replica",
            container_id: "replica-id",
            ..request(&image)
        })
        .await
        .unwrap();
    within("finishing the queue", queue.finish_all()).await;
    for id in [a, b] {
        let (d, _) = rig.store.get(id).unwrap().unwrap();
        assert!(
            matches!(d.state, State::Succeeded | State::Skipped),
            "{d:?}"
        );
    }
    // One deployment's calls never interleave with the other's: the second
    // pulls only once the first is done.
    let calls = rig.calls();
    let last_of_first = calls
        .iter()
        .rposition(|c| c.contains("new-1") || c.contains("site-id"))
        .unwrap();
    let second_pull = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.starts_with("pull"))
        .nth(1)
        .unwrap()
        .0;
    assert!(last_of_first < second_pull, "interleaved: {calls:?}");
    for name in ["site", "replica"] {
        let c = rig.engine.named(name).unwrap();
        assert_eq!(
            (c.image_id.as_str(), c.running),
            ("sha256:new", true),
            "{name}"
        );
    }
}

/// Records a queued update of `site` to [`IMAGE`], as a webhook would; its
/// id.
fn record_update_of_site(rig: &Rig) -> i64 {
    let new = NewDeployment {
        target: "site".into(),
        container_id: "site-id".into(),
        image: IMAGE.into(),
        source: "test".into(),
        ..NewDeployment::default()
    };
    rig.store.create(&new).unwrap()
}

#[tokio::test]
async fn an_update_a_crash_cut_short_before_its_commit_point_is_carried_out_after_all() {
    let rig = rig("sha256:old", "sha256:new");
    let id = record_update_of_site(&rig);
    // Killed while pulling: nothing on the host had changed.
    rig.store
        .step(id, State::Pulling, None, &crate::store::Facts::default())
        .unwrap();
    let (deployment, _) = rig.store.get(id).unwrap().unwrap();
    let outcome = rig
        .updater
        .recover(&deployment, "dockhook stopped during step pulling")
        .await;
    assert!(matches!(outcome, Outcome::Succeeded(_)), "{outcome:?}");
    let (deployment, steps) = rig.store.get(id).unwrap().unwrap();
    assert_eq!(deployment.state, State::Succeeded);
    assert_eq!(deployment.error, None, "{deployment:?}");
    let requeued: Vec<_> = steps
        .iter()
        .filter(|s| s.state == State::Queued)
        .filter_map(|s| s.detail.as_deref())
        .collect();
    assert_eq!(
        requeued,
        ["dockhook stopped during step pulling; nothing was changed; updating again"]
    );
    let site = rig.engine.named("site").unwrap();
    assert_eq!((site.image_id.as_str(), site.running), ("sha256:new", true));

    // A second interruption of the same deployment is not run again.
    assert!(!rig.store.requeue(id, "another crash").unwrap());
}

#[tokio::test]
async fn a_rollback_run_again_after_a_crash_renames_nothing_twice() {
    let rig = rig("sha256:old", "sha256:new");
    let id = record_update_of_site(&rig);
    // Its second attempt, which is not run again once undone.
    assert!(rig.store.requeue(id, "an earlier crash").unwrap());
    let facts = crate::store::Facts {
        old_container_id: Some("site-id".into()),
        old_image_id: Some("sha256:old".into()),
        new_image_id: Some("sha256:new".into()),
        strategy: Some("stop-first".into()),
        ..Default::default()
    };
    rig.store.step(id, State::Stopping, None, &facts).unwrap();
    rig.store.set_new_container(id, "new-9").unwrap();
    // Interrupted half-way through undoing: the new container is gone, the
    // old one is still parked and stopped.
    {
        let mut world = rig.engine.lock();
        world.containers[0].name = format!("site-dockhook-old-{id}");
        world.containers[0].running = false;
    }
    let (deployment, _) = rig.store.get(id).unwrap().unwrap();
    let outcome = rig.updater.recover(&deployment, "a test crash").await;
    assert!(matches!(outcome, Outcome::RolledBack(_)), "{outcome:?}");
    let again = rig.updater.recover(&deployment, "a second crash").await;
    assert!(matches!(again, Outcome::RolledBack(_)), "{again:?}");
    let renames: Vec<_> = rig
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("rename"))
        .collect();
    assert_eq!(renames, ["rename site-id site"]);
    let site = rig.engine.named("site").unwrap();
    assert_eq!((site.id.as_str(), site.running), ("site-id", true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrent_burst_writes_no_row_per_copy() {
    let rig = rig("sha256:old", "sha256:new");
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    let image = ImageRef::parse(IMAGE).unwrap();
    let submits = (0..10).map(|_| {
        let queue = queue.clone();
        let image = image.clone();
        tokio::spawn(async move { queue.submit(&request(&image)).await.unwrap() })
    });
    let mut ids: Vec<i64> = futures_util::future::join_all(submits)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    ids.sort();
    ids.dedup();
    assert!(ids.len() <= 2, "{ids:?}");
    within("finishing the queue", queue.finish_all()).await;
    assert_eq!(
        rig.store.list(100).unwrap().len(),
        ids.len(),
        "one row per deployment, none per copy"
    );
    let creates = rig
        .calls()
        .iter()
        .filter(|c| c.starts_with("create"))
        .count();
    assert_eq!(creates, 1);
}

#[tokio::test]
async fn a_container_created_from_another_image_than_the_pulled_one_is_undone() {
    let rig = rig("sha256:old", "sha256:new");
    {
        let mut world = rig.engine.lock();
        world.images.insert("sha256:other".into(), Vec::new());
        world.tag_moves_before_create = Some("sha256:other".into());
    }
    let outcome = rig.run().await;
    assert!(
        matches!(outcome, Outcome::RolledBack(ref s) if s.contains("the tag moved")),
        "{outcome:?}"
    );
    let site = rig.engine.named("site").unwrap();
    assert_eq!((site.id.as_str(), site.running), ("site-id", true));
    assert_eq!(rig.engine.lock().containers.len(), 1);
}

#[tokio::test]
async fn the_image_before_the_last_deployment_is_kept_for_rollbacks() {
    let rig = rig_keeping("sha256:v1", "sha256:v2", Strategy::StopFirst, &[], 1);
    let outcome = rig.run().await;
    assert!(
        matches!(outcome, Outcome::Succeeded(ref s) if s.contains("kept old image v1")),
        "{outcome:?}"
    );
    assert!(rig.has_image("sha256:v1"), "kept for a rollback");
    rig.push("sha256:v3");
    let outcome = rig.run().await;
    assert!(matches!(outcome, Outcome::Succeeded(_)), "{outcome:?}");
    assert!(
        rig.has_image("sha256:v2"),
        "the newest previous image is kept"
    );
    assert!(!rig.has_image("sha256:v1"), "the older one is removed");
}

#[tokio::test]
async fn a_rollback_brings_back_the_kept_image_and_quarantines_the_one_it_leaves() {
    let rig = rig_keeping("sha256:v1", "sha256:v2", Strategy::StopFirst, &[], 1);
    assert!(matches!(rig.run().await, Outcome::Succeeded(_)));
    let (_, outcome) = rig.run_as(false, Some("sha256:v1")).await;
    assert!(matches!(outcome, Outcome::Succeeded(_)), "{outcome:?}");
    let site = rig.engine.named("site").unwrap();
    assert_eq!(site.image_id, "sha256:v1");
    assert!(site.running);
    assert!(
        rig.has_image("sha256:v2"),
        "the image rolled away from is kept"
    );
    let tags = rig.engine.lock().images["sha256:v1"].clone();
    assert!(
        tags.iter().any(|t| t == IMAGE),
        "the tag names what runs: {tags:?}"
    );

    // The webhook's redelivery of v2 does not bring it back.
    let (rolled, outcome) = rig.run_as(false, None).await;
    match &outcome {
        Outcome::Skipped(why) => assert!(why.contains("rolled back in deployment 2"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(rig.engine.named("site").unwrap().image_id, "sha256:v1");
    let tags = rig.engine.lock().images["sha256:v1"].clone();
    assert!(
        tags.iter().any(|t| t == IMAGE),
        "the tag is pointed back: {tags:?}"
    );
    assert_eq!(
        rig.store.get(rolled).unwrap().unwrap().0.state,
        State::Skipped
    );

    // Someone forces it.
    let (_, outcome) = rig.run_as(true, None).await;
    assert!(matches!(outcome, Outcome::Succeeded(_)), "{outcome:?}");
    assert_eq!(rig.engine.named("site").unwrap().image_id, "sha256:v2");
}

#[tokio::test]
async fn a_digest_rolled_back_by_the_gate_waits_for_a_new_one() {
    let rig = rig("sha256:v1", "sha256:bad");
    rig.engine.lock().new_exits = true;
    assert!(matches!(rig.run().await, Outcome::RolledBack(_)));
    rig.engine.lock().new_exits = false;
    let (_, outcome) = rig.run_as(false, None).await;
    assert!(
        matches!(outcome, Outcome::Skipped(ref why) if why.contains("rolled back in deployment 1")),
        "{outcome:?}"
    );
    // A new digest lifts it: the next push deploys, and so would bad again.
    rig.push("sha256:good");
    assert!(matches!(rig.run().await, Outcome::Succeeded(_)));
    rig.push("sha256:bad");
    let outcome = rig.run().await;
    assert!(matches!(outcome, Outcome::Succeeded(_)), "{outcome:?}");
    assert_eq!(rig.engine.named("site").unwrap().image_id, "sha256:bad");
}

#[tokio::test]
async fn force_redeploys_the_same_image() {
    let rig = rig("sha256:v1", "sha256:v1");
    assert!(matches!(rig.run().await, Outcome::Skipped(_)));
    let before = rig.engine.named("site").unwrap().id;
    let (_, outcome) = rig.run_as(true, None).await;
    assert!(matches!(outcome, Outcome::Succeeded(_)), "{outcome:?}");
    let after = rig.engine.named("site").unwrap();
    assert_ne!(after.id, before, "a new container");
    assert_eq!(after.image_id, "sha256:v1");
    assert!(
        rig.has_image("sha256:v1"),
        "the image it runs is not removed"
    );
}

/// Deployment `id` once it ended.
async fn ended(store: &Store, id: i64) -> crate::store::Deployment {
    within("the deployment", async {
        loop {
            let (d, _) = store.get(id).unwrap().unwrap();
            if d.state.is_final() {
                break d;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// The states of `id`'s steps.
fn states(store: &Store, id: i64) -> Vec<State> {
    store
        .get(id)
        .unwrap()
        .unwrap()
        .1
        .iter()
        .map(|s| s.state)
        .collect()
}

fn with_mode<'a>(request: Request<'a>, mode: super::Mode, delay: Duration) -> Request<'a> {
    Request {
        mode,
        delay,
        ..request
    }
}

#[tokio::test]
async fn approve_mode_waits_for_a_person_and_a_newer_push_supersedes() {
    let rig = rig("sha256:v1", "sha256:v2");
    rig.engine
        .lock()
        .digests
        .insert("sha256:v2".into(), "sha256:d2".into());
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    let image = ImageRef::parse(IMAGE).unwrap();
    let approve = |digest| Request {
        digest,
        ..with_mode(request(&image), super::Mode::Approve, Duration::ZERO)
    };
    let first = queue.submit(&approve(Some("sha256:d1"))).await.unwrap();
    assert_eq!(
        queue.submit(&approve(Some("sha256:d1"))).await.unwrap(),
        first,
        "a copy"
    );
    let second = queue.submit(&approve(Some("sha256:d2"))).await.unwrap();
    assert_ne!(second, first);
    assert_eq!(
        rig.store.get(first).unwrap().unwrap().0.state,
        State::Skipped
    );
    assert_eq!(
        states(&rig.store, second),
        [State::Queued, State::AwaitingApproval]
    );
    assert!(
        !rig.calls().iter().any(|c| c.starts_with("pull")),
        "nothing pulled"
    );

    // Approving the superseded one is refused; the waiting one runs.
    let none = queue
        .release(first, State::AwaitingApproval, "approved".into())
        .await
        .unwrap();
    assert!(none.is_none());
    let approved = queue
        .release(second, State::AwaitingApproval, "approved".into())
        .await
        .unwrap();
    assert!(approved.is_some());
    within("finishing the queue", queue.finish_all()).await;
    let (deployment, _) = rig.store.get(second).unwrap().unwrap();
    assert_eq!(deployment.state, State::Succeeded, "{deployment:?}");
    assert_eq!(rig.engine.named("site").unwrap().image_id, "sha256:v2");
}

#[tokio::test]
async fn monitor_mode_records_the_image_and_deploys_nothing() {
    let rig = rig("sha256:v1", "sha256:v2");
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    let image = ImageRef::parse(IMAGE).unwrap();
    let monitor = Request {
        digest: Some("sha256:d2"),
        ..with_mode(request(&image), super::Mode::Monitor, Duration::ZERO)
    };
    let id = queue.submit(&monitor).await.unwrap();
    assert_eq!(
        queue.submit(&monitor).await.unwrap(),
        id,
        "a copy is the same record"
    );
    let (deployment, _) = rig.store.get(id).unwrap().unwrap();
    assert_eq!(deployment.state, State::Available);
    assert!(deployment.finished_at.is_some());
    within("finishing the queue", queue.finish_all()).await;
    assert_eq!(rig.engine.named("site").unwrap().image_id, "sha256:v1");
    assert!(
        !rig.calls().iter().any(|c| c.starts_with("pull")),
        "nothing pulled"
    );
}

#[tokio::test]
async fn a_delay_deploys_once_the_digest_stayed_the_newest() {
    let rig = rig("sha256:v1", "sha256:v2");
    rig.engine
        .lock()
        .digests
        .insert("sha256:v2".into(), "sha256:d2".into());
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    let image = ImageRef::parse(IMAGE).unwrap();
    let delayed = |digest| Request {
        digest,
        ..with_mode(
            request(&image),
            super::Mode::Auto,
            Duration::from_millis(400),
        )
    };
    let first = queue.submit(&delayed(Some("sha256:d1"))).await.unwrap();
    let (deployment, _) = rig.store.get(first).unwrap().unwrap();
    assert_eq!(deployment.state, State::Delayed);
    let due = crate::timing::parse(deployment.due_at.as_deref().unwrap()).unwrap();
    assert!(due > crate::timing::now(), "due in the future");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A newer push restarts the wait.
    let second = queue.submit(&delayed(Some("sha256:d2"))).await.unwrap();
    assert_eq!(
        rig.store.get(first).unwrap().unwrap().0.state,
        State::Skipped
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rig.store.get(second).unwrap().unwrap().0.state,
        State::Delayed,
        "the wait restarted with the newer push"
    );
    let ended = ended(&rig.store, second).await;
    assert_eq!(ended.state, State::Succeeded, "{ended:?}");
    assert_eq!(ended.due_at, None, "no longer due");
    assert_eq!(
        states(&rig.store, second)[..3],
        [State::Queued, State::Delayed, State::Queued]
    );
}

#[tokio::test]
async fn a_delayed_deployment_is_armed_again_after_a_restart() {
    let rig = rig("sha256:v1", "sha256:v2");
    let image = ImageRef::parse(IMAGE).unwrap();
    let id = {
        let queue = Queue::new(rig.updater.clone(), rig.store.clone());
        let delayed = with_mode(
            request(&image),
            super::Mode::Auto,
            Duration::from_millis(300),
        );
        queue.submit(&delayed).await.unwrap()
        // Dropped: the process "stops" with the deployment delayed.
    };
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    queue.resume(rig.store.unfinished().unwrap());
    let ended = ended(&rig.store, id).await;
    assert_eq!(ended.state, State::Succeeded, "{ended:?}");
}
