//! End to end: the in-memory fake engine, which the deploy unit tests run
//! on, answers as the real Docker engine does. One sequence of renames,
//! network connects and disconnects, starts, stops and removals runs on both,
//! through the same `Engine` trait; every answer, and who holds which name
//! on which networks at the end, must be the same.

mod support;

use std::collections::BTreeSet;

use ::dockhook::deploy::fake::{FakeContainer, FakeEngine};
use ::dockhook::engine::{DockerEngine, Engine, EngineError};
use bollard::models::EndpointSettings;
use support::*;

/// An answer, as the deploy logic tells them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Ok,
    NotFound,
    Conflict,
    /// Any other refusal (Docker's 400, 403, 500).
    Refused,
}

fn answer(result: Result<(), EngineError>) -> Answer {
    match result {
        Ok(()) => Answer::Ok,
        Err(EngineError::NotFound(_)) => Answer::NotFound,
        Err(EngineError::Conflict(_)) => Answer::Conflict,
        Err(EngineError::Other(_)) => Answer::Refused,
        Err(EngineError::Unavailable(e)) => panic!("the engine does not answer: {e}"),
    }
}

/// The names the sequence uses: two containers, a name nobody holds, a
/// container that does not exist, and two networks.
struct Names {
    a: String,
    b: String,
    c: String,
    missing: String,
    n1: String,
    n2: String,
}

/// Runs the sequence on `engine`: each step and its answer, then for each
/// container name, which original container holds it and its networks.
async fn sequence(engine: &impl Engine, n: &Names) -> Vec<String> {
    let (a, b, c, missing) = (&n.a, &n.b, &n.c, &n.missing);
    let (n1, n2) = (&n.n1, &n.n2);
    let endpoint = EndpointSettings::default;
    let mut log = Vec::new();
    macro_rules! step {
        ($what:expr, $call:expr) => {
            log.push(format!("{}: {:?}", $what, answer($call.await)));
        };
    }
    step!("rename a to b's name", engine.rename_container(a, b));
    step!("rename a to its own name", engine.rename_container(a, a));
    step!(
        "rename a missing container",
        engine.rename_container(missing, c)
    );
    step!(
        "rename a missing container to b's name",
        engine.rename_container(missing, b)
    );
    step!(
        "disconnect a from a network it is not on",
        engine.disconnect_network(n2, a)
    );
    step!(
        "disconnect a missing container",
        engine.disconnect_network(n1, missing)
    );
    step!(
        "connect stopped a to its network again",
        engine.connect_network(n1, a, endpoint())
    );
    step!("start a", engine.start_container(a));
    step!("start running a", engine.start_container(a));
    step!(
        "connect running a to its network again",
        engine.connect_network(n1, a, endpoint())
    );
    step!("disconnect running a", engine.disconnect_network(n1, a));
    step!("disconnect a again", engine.disconnect_network(n1, a));
    step!(
        "connect a to another network",
        engine.connect_network(n2, a, endpoint())
    );
    step!("stop a", engine.stop_container(a, Some(1)));
    step!("stop stopped a", engine.stop_container(a, Some(1)));
    step!("rename a to a free name", engine.rename_container(a, c));
    step!("rename b to a's old name", engine.rename_container(b, a));
    step!(
        "remove a missing container",
        engine.remove_container(missing)
    );

    for name in [a, b, c] {
        let state = match engine.inspect_container(name).await {
            Ok(inspect) => {
                let networks: BTreeSet<String> = inspect
                    .network_settings
                    .and_then(|s| s.networks)
                    .map(|n| n.into_keys().collect())
                    .unwrap_or_default();
                let labels = inspect.config.and_then(|c| c.labels).unwrap_or_default();
                let origin = labels.get("origin").cloned().unwrap_or_default();
                format!("held by {origin}, on {networks:?}")
            }
            Err(e) => format!("{:?}", answer(Err(e))),
        };
        let which = if name == a {
            "a"
        } else if name == b {
            "b"
        } else {
            "c"
        };
        log.push(format!("name {which}: {state}"));
    }
    log
}

#[test]
fn the_fake_engine_answers_as_docker_does() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let prefix = unique("fakecheck");
    cleanup.containers_with_prefix(&prefix);
    let names = Names {
        a: format!("{prefix}-a"),
        b: format!("{prefix}-b"),
        c: format!("{prefix}-c"),
        missing: format!("{prefix}-missing"),
        n1: cleanup.network(&format!("{prefix}-n1")),
        n2: cleanup.network(&format!("{prefix}-n2")),
    };
    let image = cleanup.image(&format!("{prefix}:v1"));
    SiteImage::new("v1").build(&image);
    for network in [&names.n1, &names.n2] {
        docker(["network", "create", "--label", "dockhook-test=1", network]);
    }
    for (name, origin) in [(&names.a, "a"), (&names.b, "b")] {
        #[rustfmt::skip]
        docker([
            "create", "--name", name, "--label", "dockhook-test=1",
            "--label", &format!("origin={origin}"), "--network", &names.n1, &image,
        ]);
    }

    let fake = FakeEngine::default();
    for (name, origin) in [(&names.a, "a"), (&names.b, "b")] {
        fake.lock().containers.push(FakeContainer {
            id: format!("{origin}-id"),
            name: name.clone(),
            image: image.clone(),
            image_id: "sha256:v1".into(),
            running: false,
            exit_code: 0,
            labels: [("origin".to_string(), origin.to_string())].into(),
            networks: vec![names.n1.clone()],
        });
    }
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let real = DockerEngine::new(&host);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let on_docker = runtime.block_on(sequence(&real, &names));
    let on_fake = runtime.block_on(sequence(&fake, &names));
    // The sequence meets every kind of answer, so the comparison is not
    // empty-handed.
    for kind in ["Ok", "NotFound", "Conflict", "Refused"] {
        assert!(
            on_docker
                .iter()
                .any(|line| line.ends_with(&format!(": {kind}"))),
            "{on_docker:#?}"
        );
    }
    assert_eq!(on_fake, on_docker, "the fake differs from Docker");
}
