//! The update step machine and the queue, run against the in-memory fake.

use std::sync::Arc;
use std::time::Duration;

use super::fake::FakeEngine;
use super::{Job, Outcome, Queue, Request, Settings, Strategy, StrategySetting, Updater};
use crate::image_ref::ImageRef;
use crate::store::{NewDeployment, State, Store};

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
                target: "site",
                container_id: "site-id",
                image: IMAGE,
                source: "test",
                pusher: None,
                digest: self.digest.as_deref(),
                reason: None,
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
    let ids: Vec<i64> = (0..10)
        .map(|_| queue.submit(&request(&image)).unwrap())
        .collect();
    // The first starts at once; the other nine fold into one waiting job.
    assert_eq!(ids[0], 1);
    assert!(ids[1..].iter().all(|&id| id == 2), "{ids:?}");
    within("draining the queue", queue.drain()).await;
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
    let first = queue.submit(&with_digest).unwrap();
    within("draining the queue", queue.drain()).await;
    let queue = Queue::new(rig.updater.clone(), rig.store.clone());
    let again = queue.submit(&Request {
        source: "another-source",
        ..with_digest
    });
    assert_eq!(again.unwrap(), first, "the same push deploys once");
    assert_eq!(rig.store.list(10).unwrap().len(), 1);
    assert_eq!(
        rig.store.get(first).unwrap().unwrap().0.state,
        State::Succeeded
    );
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
            target: "site",
            container_id: "site-id",
            image: &pushed.to_string(),
            source: "test",
            pusher: None,
            digest: None,
            reason: None,
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
