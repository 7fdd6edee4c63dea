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
    let engine = Arc::new(FakeEngine::with_container("site", IMAGE, old, new));
    engine.lock().containers[0].labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let store = Arc::new(Store::in_memory().unwrap());
    let settings = Settings {
        grace: Duration::ZERO,
        strategy: StrategySetting::Fixed(strategy),
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
        let image = ImageRef::parse(IMAGE).unwrap();
        let deployment = self
            .store
            .create(&NewDeployment {
                target: "site".into(),
                container_id: "site-id".into(),
                image: IMAGE.into(),
                source: "test".into(),
                pusher: None,
                digest: self.digest.clone(),
                reason: None,
                ..NewDeployment::default()
            })
            .unwrap();
        let job = Job {
            deployment,
            target: "site".into(),
            image,
            digest: self.digest.clone(),
        };
        within("the update", self.updater.run(&job)).await
    }

    fn calls(&self) -> Vec<String> {
        self.engine.lock().calls.clone()
    }
}

fn request(image: &ImageRef) -> Request<'_> {
    Request {
        policy: &TagPolicy::Exact,
        target: "site",
        container_id: "site-id",
        image,
        source: "test",
        pusher: None,
        digest: None,
        reason: "test",
    }
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

#[tokio::test]
async fn a_rollback_run_again_after_a_crash_renames_nothing_twice() {
    let rig = rig("sha256:old", "sha256:new");
    let id = rig
        .store
        .create(&NewDeployment {
            target: "site".into(),
            container_id: "site-id".into(),
            image: IMAGE.into(),
            source: "test".into(),
            pusher: None,
            digest: None,
            reason: None,
            ..NewDeployment::default()
        })
        .unwrap();
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
