//! Reconcile over the fake engine and a stub registry: what it asks the
//! registry, and what it hands on. The end-to-end tests prove it against
//! Docker and a real registry.

use std::collections::HashMap;

use super::*;
use crate::deploy::fake::{FakeContainer, FakeEngine};
use crate::registry::stub::{answer, Stub};
use crate::sources::testing::serve_on;

const OLD: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
const NEW: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const APP_1_0: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const APP_1_1: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

/// A registry where `alice/site:latest` moved to [`NEW`], and `alice/app`
/// has 1.0.0, 1.1.0 (at [`APP_1_1`]) and 2.0.0.
async fn registry() -> Stub {
    Stub::start(|_| {
        Box::new(|request, _| match request.uri.as_str() {
            "/v2/alice/site/manifests/latest" => answer(200, &[(DIGEST, NEW)], ""),
            "/v2/alice/app/tags/list?n=1000" => {
                answer(200, &[], r#"{"tags":["1.0.0","2.0.0","1.1.0"]}"#)
            }
            "/v2/alice/app/manifests/1.1.0" => answer(200, &[(DIGEST, APP_1_1)], ""),
            _ => answer(404, &[], ""),
        })
    })
    .await
}

const DIGEST: &str = "Docker-Content-Digest";

/// A reconciler of `state`, asking registries without a login, that has
/// told nothing yet.
fn reconciler<E>(state: Arc<AppState<E>>) -> Reconciler<E> {
    Reconciler {
        state,
        registry: RegistryClient::new(None),
        told: HashSet::new(),
    }
}

fn container(name: &str, image: &str, image_id: &str, labels: &[(&str, &str)]) -> FakeContainer {
    FakeContainer {
        id: format!("{name}-id"),
        name: name.into(),
        image: image.into(),
        image_id: image_id.into(),
        running: true,
        exit_code: 0,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        networks: Vec::new(),
    }
}

/// Two containers of `alice/site:latest` on [`OLD`], one of `alice/app`
/// 1.0.0 under `semver:minor`, and one of an image built on the host.
fn host(registry: &str) -> FakeEngine {
    let engine = FakeEngine::default();
    {
        let mut world = engine.lock();
        let site = format!("{registry}/alice/site:latest");
        let app = format!("{registry}/alice/app:1.0.0");
        let local = format!("{registry}/alice/local:latest");
        world.containers = vec![
            container("site-a", &site, "sha256:old", &[]),
            container("site-b", &site, "sha256:old", &[]),
            container(
                "app",
                &app,
                "sha256:app10",
                &[(POLICY_LABEL, "semver:minor")],
            ),
            container("local", &local, "sha256:local", &[]),
        ];
        for (id, tag) in [
            ("sha256:old", &site),
            ("sha256:app10", &app),
            ("sha256:local", &local),
        ] {
            world.images.insert(id.into(), vec![tag.clone()]);
        }
        world.digests.insert("sha256:old".into(), OLD.into());
        world.digests.insert("sha256:app10".into(), APP_1_0.into());
        // Pulls fail: the deployments end failed, the containers stay.
        world.fail_pull = true;
    }
    engine
}

#[tokio::test]
async fn one_request_per_image_and_each_change_handed_on_once() {
    let stub = registry().await;
    let engine = Arc::new(host(&stub.host));
    let (_, state) = serve_on(engine.clone(), crate::sources::Settings::for_tests()).await;
    let mut reconciler = reconciler(state.clone());

    reconciler.pass().await;
    let asked: Vec<String> = stub
        .seen()
        .iter()
        .map(|s| format!("{} {}", s.method, s.uri))
        .collect();
    assert_eq!(
        asked,
        [
            "GET /v2/alice/app/tags/list?n=1000",
            "HEAD /v2/alice/app/manifests/1.1.0",
            "HEAD /v2/alice/site/manifests/latest",
        ],
        "one request per image, none for the one built here"
    );
    let mut handed: Vec<(String, String, String, String)> = state
        .store
        .list(10)
        .unwrap()
        .into_iter()
        .map(|d| (d.target, d.image, d.source, d.digest.unwrap_or_default()))
        .collect();
    handed.sort();
    let image = |reference: &str| format!("{}/{reference}", stub.host);
    assert_eq!(
        handed,
        [
            (
                "app".into(),
                image("alice/app:1.1.0"),
                SOURCE.into(),
                APP_1_1.into()
            ),
            (
                "site-a".into(),
                image("alice/site:latest"),
                SOURCE.into(),
                NEW.into()
            ),
            (
                "site-b".into(),
                image("alice/site:latest"),
                SOURCE.into(),
                NEW.into()
            ),
        ]
    );
    assert_eq!(
        reconciler
            .told
            .iter()
            .filter(|t| t.starts_with("local"))
            .count(),
        1
    );

    // The deployments failed (the pulls did) and the containers run what
    // they ran: the next pass asks again, but hands nothing on again.
    let ended = finished(&state, 3).await;
    assert!(
        ended.iter().all(|d| d.state == crate::store::State::Failed),
        "{ended:?}"
    );
    reconciler.pass().await;
    assert_eq!(stub.seen().len(), 6, "the same three requests");
    assert_eq!(state.store.list(10).unwrap().len(), 3, "nothing new");

    // A container recreated on the old image is handed on again.
    engine.lock().containers[1].id = "site-b-recreated-id".into();
    reconciler.pass().await;
    assert_eq!(
        finished(&state, 5).await.len(),
        5,
        "site-a and site-b again"
    );
}

/// The `n` deployments, once all have ended.
async fn finished(state: &AppState<FakeEngine>, n: usize) -> Vec<crate::store::Deployment> {
    let wait = async {
        loop {
            let all = state.store.list(100).unwrap();
            if all.len() == n && all.iter().all(|d| d.state.is_final()) {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("{n} deployments did not end: {:?}", state.store.list(100)))
}

#[tokio::test]
async fn a_registry_that_fails_changes_nothing() {
    let stub = Stub::start(|_| Box::new(|_, _| answer(500, &[], "oops"))).await;
    let engine = Arc::new(host(&stub.host));
    let (_, state) = serve_on(engine, crate::sources::Settings::for_tests()).await;
    let mut reconciler = reconciler(state.clone());
    reconciler.pass().await;
    assert_eq!(stub.seen().len(), 2, "tags of app, manifest of site");
    assert!(state.store.list(10).unwrap().is_empty());
}

#[tokio::test]
async fn a_service_is_compared_by_the_digest_its_spec_pins() {
    let stub = registry().await;
    let site = format!("{}/alice/site:latest", stub.host);
    let engine = Arc::new(FakeEngine::with_service(
        "web",
        &site,
        OLD,
        "sha256:newid",
        NEW,
    ));
    let (_, state) = serve_on(engine.clone(), crate::sources::Settings::for_tests()).await;
    let mut reconciler = reconciler(state.clone());

    reconciler.pass().await;
    let handed: Vec<(String, String, bool)> = state
        .store
        .list(10)
        .unwrap()
        .into_iter()
        .map(|d| (d.target, d.digest.unwrap_or_default(), d.service))
        .collect();
    assert_eq!(
        handed,
        [("web".to_string(), NEW.to_string(), true)],
        "the pin (OLD) differs from the registry (NEW): handed on as a service update"
    );

    // What a service runs is the digest its spec pins, whatever it was.
    engine.lock().services[0].image = format!("{site}@{NEW}");
    let watched = reconciler.watched().await.unwrap();
    assert_eq!(watched.len(), 1);
    assert_eq!(watched[0].running, [NEW]);
}

#[tokio::test]
async fn docker_hub_images_outside_owner_are_not_asked_about() {
    let stub = registry().await;
    let engine = FakeEngine::default();
    {
        let mut world = engine.lock();
        let site = format!("{}/alice/site:latest", stub.host);
        let tool = format!("{}/bob/tool:latest", stub.host);
        world.containers = vec![
            container("site", &site, "sha256:old", &[]),
            container("tool", &tool, "sha256:tool", &[]),
        ];
        world.images.insert("sha256:old".into(), vec![site]);
        world.images.insert("sha256:tool".into(), vec![tool]);
        world.digests.insert("sha256:old".into(), OLD.into());
        world.digests.insert("sha256:tool".into(), OLD.into());
        world.fail_pull = true;
    }
    // The stub stands for Docker Hub, where OWNER is `alice`.
    let settings = crate::sources::Settings {
        dockerhub_registry: stub.host.clone(),
        ..crate::sources::Settings::for_tests()
    };
    let (_, state) = serve_on(Arc::new(engine), settings).await;
    let mut reconciler = reconciler(state.clone());

    reconciler.pass().await;
    let asked: Vec<String> = stub.seen().iter().map(|s| s.uri.clone()).collect();
    assert_eq!(
        asked,
        ["/v2/alice/site/manifests/latest"],
        "bob is not an owner"
    );
    let targets: Vec<String> = state
        .store
        .list(10)
        .unwrap()
        .into_iter()
        .map(|d| d.target)
        .collect();
    assert_eq!(targets, ["site"]);
}
