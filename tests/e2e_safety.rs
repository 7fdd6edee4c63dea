//! End to end: updates that never lose the service. The health gate,
//! start-first without a failed request, crash recovery at every step and
//! after a real `kill -9`, containers that depend on the target, and
//! lifecycle hooks.

mod support;

use std::time::Duration;

use support::scenario::{
    api, assert_one_running, assert_steps_in_order, containers_named, queued_again, run_site,
    steps, wait_deployment, Site,
};
use support::*;

fn page(port: u16) -> Option<String> {
    http_get(&format!("http://127.0.0.1:{port}/")).map(|body| body.trim().to_string())
}

/// The ID of the image the tag names on this host now.
fn tagged(image: &str) -> String {
    image_id(image)
}

#[test]
fn healthy_new_version_passes_the_health_gate() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _) = Site::new(&mut cleanup, "healthy");
    let name = run_site(&mut cleanup, &site, &site.name, &[]);
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2").healthcheck());
    let dockhook = Dockhook::start(&site.registry.host(), &[("DOCKHOOK_GRACE", "0s")]);

    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    let container = container_inspect(&name);
    assert_eq!(
        container["State"]["Health"]["Status"], "healthy",
        "the gate waited for healthy"
    );
    assert_eq!(container["Image"], v2.as_str());
}

#[test]
fn unhealthy_new_version_is_rolled_back_with_its_health_log() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "unhealthy");
    let port = free_port();
    let name = run_site(
        &mut cleanup,
        &site,
        &site.name,
        &["-p", &format!("127.0.0.1:{port}:8080")],
    );
    let before = container_inspect(&name)["Id"].clone();
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2").unhealthy());
    let dockhook = Dockhook::start(&site.registry.host(), &[]);

    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(deployment["state"], "rolled_back", "{deployment}");
    let error = deployment["error"].as_str().unwrap();
    assert!(
        error.contains("unhealthy") && error.contains("database unreachable"),
        "{error}"
    );
    assert_eq!(container_inspect(&name)["Id"], before);
    assert_one_running(&name, &v1);
    assert_eq!(page(port).as_deref(), Some("v1"));
    assert_eq!(
        tagged(&site.image("latest")),
        v1,
        "the tag points at the old image again"
    );
    assert!(
        support::scenario::image_exists(&v2),
        "the failed image is kept for inspection"
    );
}

#[test]
fn health_timeout_label_bounds_the_wait() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "slowhealth");
    // The container's own healthcheck first runs after 30 s: far beyond the
    // 2 s its label allows.
    let name = run_site(
        &mut cleanup,
        &site,
        &site.name,
        &[
            "--health-cmd",
            "true",
            "--health-interval",
            "30s",
            "--label",
            "dockhook.health-timeout=2s",
        ],
    );
    site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let dockhook = Dockhook::start(&site.registry.host(), &[]);

    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(deployment["state"], "rolled_back", "{deployment}");
    let error = deployment["error"].as_str().unwrap();
    assert!(error.contains("not become healthy within 2s"), "{error}");
    assert_one_running(&name, &v1);
}

/// A container on `network` that asks `http://ALIAS:8080/` every 50 ms, a
/// fresh name lookup each time, as a reverse proxy would, and prints the
/// page or FAIL (no answer within 3 s: longer than TCP takes to send a lost
/// SYN again, as a proxy's connect timeout is).
fn start_probe(cleanup: &mut Cleanup, image: &str, network: &str, alias: &str) -> String {
    let probe = cleanup.container(&unique("probe"));
    let script = format!(
        "while true; do r=$(timeout 3 wget -q -O- http://{alias}:8080/ 2>/dev/null) || r=FAIL; \
         echo \"$r\"; sleep 0.05; done"
    );
    #[rustfmt::skip]
    docker([
        "run", "-d", "--name", &probe, "--label", "dockhook-test=1", "--network", network,
        "--entrypoint", "sh", image, "-c", &script,
    ]);
    probe
}

fn probe_lines(probe: &str) -> Vec<String> {
    docker_stdout(["logs", probe])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Start-first: the new container answers to the alias beside the old one
/// before the old one leaves the network, so the site never goes away.
///
/// Docker's name server still gives out the old container's address a
/// moment after it has left the network; the old container rejoins at once
/// without its aliases and serves a little longer, so a connection sent
/// there in that moment is answered once TCP sends its SYN again, and the
/// probe sees no failed request (see "Behind a reverse proxy" in the README).
#[test]
fn start_first_update_keeps_the_site_up() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "nodowntime");
    let network = cleanup.network(&format!("{}-net", site.name));
    docker(["network", "create", "--label", "dockhook-test=1", &network]);
    let name = run_site(
        &mut cleanup,
        &site,
        &site.name,
        &["--network", &network, "--network-alias", "web"],
    );
    let probe = start_probe(&mut cleanup, &v1, &network, "web");
    assert!(wait_until(Duration::from_secs(10), || probe_lines(&probe)
        .iter()
        .any(|l| l == "v1")));
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let old_id = container_inspect(&name)["Id"].as_str().unwrap().to_string();
    let since = docker_stdout(["system", "info", "--format", "{{.SystemTime}}"]);

    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    let id = deployment["id"].as_i64().unwrap();
    let (_, last) = steps(&dockhook, id).pop().unwrap();
    assert!(last.starts_with("start-first"), "{last}");
    assert!(wait_until(Duration::from_secs(10), || {
        probe_lines(&probe).iter().rev().take(5).all(|l| l == "v2")
    }));
    let lines = probe_lines(&probe);
    let failures = lines.iter().filter(|l| *l == "FAIL").count();
    assert_eq!(failures, 0, "the probe saw failed requests: {lines:?}");
    assert!(
        lines.len() > 20,
        "the probe ran through the update: {lines:?}"
    );
    // The new container started and passed its gate before the old one
    // was stopped.
    assert_steps_in_order(&dockhook, id, &["starting", "verifying", "stopping"]);
    // The old container left the network and came back before it stopped.
    let old_events = old_container_events(&since, &network, &old_id);
    let at = |action: &str| old_events.iter().position(|e| e == action);
    let left = at("disconnect").expect("the old container left the network");
    let back = old_events[left..].iter().position(|e| e == "connect");
    assert!(
        back.is_some_and(|back| left + back < at("die").unwrap_or(usize::MAX)),
        "{old_events:?}"
    );
    assert_one_running(&name, &v2);
    let aliases =
        &container_inspect(&name)["NetworkSettings"]["Networks"][network.as_str()]["Aliases"];
    assert!(
        aliases.as_array().unwrap().iter().any(|a| a == "web"),
        "{aliases}"
    );
}

/// What happened to container `id` since `since`, in order: its own events
/// (`start`, `die`, ...) and its connects and disconnects on `network`.
fn old_container_events(since: &str, network: &str, id: &str) -> Vec<String> {
    let until = docker_stdout(["system", "info", "--format", "{{.SystemTime}}"]);
    // A network event names the container in its attributes.
    let format =
        r#"{{.TimeNano}} {{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "container"}}"#;
    let of_container = format!("container={id}");
    let of_network = format!("network={network}");
    let mut events: Vec<(u128, String)> = [
        ["type=container", of_container.as_str()],
        ["type=network", of_network.as_str()],
    ]
    .iter()
    .flat_map(|[kind, which]| {
        #[rustfmt::skip]
        let lines = docker_stdout([
            "events", "--since", since, "--until", &until, "--format", format,
            "--filter", kind, "--filter", which,
        ]);
        lines
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let about_it = fields.get(2..)?.contains(&id);
                let at = fields.first()?.parse().ok()?;
                let action = fields.get(1)?.to_string();
                about_it.then_some((at, action))
            })
            .collect::<Vec<_>>()
    })
    .collect();
    events.sort();
    events.into_iter().map(|(_, action)| action).collect()
}

#[test]
fn strategy_label_forces_stop_first() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _) = Site::new(&mut cleanup, "stopfirst");
    let name = run_site(
        &mut cleanup,
        &site,
        &site.name,
        &["--label", "dockhook.strategy=stop-first"],
    );
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    let id = deployment["id"].as_i64().unwrap();
    assert_steps_in_order(&dockhook, id, &["stopping", "starting", "verifying"]);
    assert_one_running(&name, &v2);
}

/// How a deployment must end after a crash right after recording a step.
#[derive(Clone, Copy)]
enum After {
    /// Before the commit point: what it did is undone (the old container
    /// runs on, or again), then the update is queued again and carried out.
    UndoneThenUpdated,
    /// The new container had taken the name: finished, and it runs.
    Succeeded,
}

/// Crashes dockhook right after it records `step`, starts it again, and
/// checks what recovery left.
fn crash_at(step: &str, strategy: &str, expected: After) {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _) = Site::new(&mut cleanup, &format!("crash-{}", step.replace('_', "")));
    let labels = [
        "--label",
        &format!("dockhook.strategy={strategy}"),
        "--label",
        "dockhook.pre-update=true",
        "--label",
        "dockhook.post-update=true",
    ];
    let name = run_site(&mut cleanup, &site, &site.name, &labels);
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().to_string();
    let mut crashing = Dockhook::start(
        &site.registry.host(),
        &[
            ("DOCKHOOK_DATA_DIR", data_dir.as_str()),
            ("DOCKHOOK_FAULT_ABORT_AT", step),
        ],
    );
    let (status, answer) = site.hook(&crashing, "latest");
    assert_eq!(status, 202, "{answer}");
    let id = answer["deployments"][0].as_i64().unwrap();
    let exit = crashing.wait_exit(Duration::from_secs(60));
    assert!(
        exit.is_some_and(|s| !s.success()),
        "dockhook did not crash at {step}:\n{}",
        crashing.log_text()
    );

    let dockhook = Dockhook::start(
        &site.registry.host(),
        &[("DOCKHOOK_DATA_DIR", data_dir.as_str())],
    );
    let deployment = wait_deployment(&dockhook, id);
    assert_eq!(deployment["state"], "succeeded", "{step}: {deployment}");
    let cause = format!("during step {step}");
    match expected {
        After::UndoneThenUpdated => {
            let again = queued_again(&dockhook, id).expect("queued again");
            assert!(
                again.contains(&cause) && again.ends_with("; updating again"),
                "{step}: {again}"
            );
        }
        After::Succeeded => {
            assert_eq!(queued_again(&dockhook, id), None, "{step}");
            let (_, last) = steps(&dockhook, id).pop().unwrap();
            assert!(last.contains(&cause), "{step}: {last}");
        }
    }
    assert_one_running(&name, &v2);
}

macro_rules! crash_tests {
    ($($test:ident: $step:literal, $strategy:literal => $expected:ident;)*) => {$(
        #[test]
        fn $test() {
            crash_at($step, $strategy, After::$expected);
        }
    )*};
}

crash_tests! {
    crash_while_pulling_updates_again: "pulling", "start-first" => UndoneThenUpdated;
    crash_before_pre_update_hook_updates_again: "pre_update", "start-first" => UndoneThenUpdated;
    crash_while_creating_updates_again: "creating", "start-first" => UndoneThenUpdated;
    crash_while_starting_beside_the_old_undoes_and_updates_again: "starting", "start-first" => UndoneThenUpdated;
    crash_while_verifying_beside_the_old_undoes_and_updates_again: "verifying", "start-first" => UndoneThenUpdated;
    crash_while_retiring_the_old_finishes_the_update: "stopping", "start-first" => Succeeded;
    crash_while_cleaning_up_finishes_the_update: "cleaning_up", "start-first" => Succeeded;
    crash_before_post_update_hook_finishes_the_update: "post_update", "start-first" => Succeeded;
    crash_while_stopping_stop_first_undoes_and_updates_again: "stopping", "stop-first" => UndoneThenUpdated;
    crash_while_starting_stop_first_finishes_the_update: "starting", "stop-first" => Succeeded;
    crash_while_verifying_stop_first_finishes_the_update: "verifying", "stop-first" => Succeeded;
}

#[test]
fn kill_9_during_verification_is_undone_then_carried_out_on_restart() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _) = Site::new(&mut cleanup, "kill9");
    let name = run_site(&mut cleanup, &site, &site.name, &[]);
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().to_string();
    let env = [
        ("DOCKHOOK_DATA_DIR", data_dir.as_str()),
        ("DOCKHOOK_GRACE", "60s"),
    ];
    let mut first = Dockhook::start(&site.registry.host(), &env);
    let (status, answer) = site.hook(&first, "latest");
    assert_eq!(status, 202, "{answer}");
    let id = answer["deployments"][0].as_i64().unwrap();
    let verifying = wait_until(Duration::from_secs(30), || {
        api(&first, &format!("/api/deployments/{id}")).1["state"] == "verifying"
    });
    assert!(verifying, "{}", first.log_text());
    assert_eq!(
        containers_named(&name).len(),
        2,
        "old and new run side by side"
    );
    first.kill_9();

    let second = Dockhook::start(
        &site.registry.host(),
        &[("DOCKHOOK_DATA_DIR", data_dir.as_str())],
    );
    let deployment = wait_deployment(&second, id);
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    let again = queued_again(&second, id).expect("queued again");
    assert!(
        again.contains("during step verifying")
            && again.contains("runs its previous container and image again; updating again"),
        "{again}"
    );
    assert_one_running(&name, &v2);
    assert_eq!(tagged(&site.image("latest")), v2);
}

#[test]
fn containers_sharing_or_linking_the_target_are_recreated_with_it() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _) = Site::new(&mut cleanup, "deps");
    let (other, _) = Site::new(&mut cleanup, "sidecar");
    let name = run_site(&mut cleanup, &site, &site.name, &[]);
    let sidecar = cleanup.container(&format!("{name}-sidecar"));
    let linked = cleanup.container(&format!("{name}-linked"));
    cleanup.containers_with_prefix(&format!("{sidecar}-dockhook-"));
    // The sidecar shares the site's network stack, so it must not bind 8080.
    #[rustfmt::skip]
    docker([
        "run", "-d", "--name", &sidecar, "--label", "dockhook-test=1",
        "--network", &format!("container:{name}"),
        "--entrypoint", "sh", &other.image("latest"), "-c", "trap 'exit 0' TERM; sleep 3600 & wait",
    ]);
    run_container(
        &linked,
        &other.image("latest"),
        &["--link", &format!("{name}:upstream")],
    );
    let linked_before = container_inspect(&linked)["Id"].clone();
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let dockhook = Dockhook::start(&site.registry.host(), &[]);

    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    let new_id = container_inspect(&name)["Id"].as_str().unwrap().to_string();
    assert_eq!(container_inspect(&name)["Image"], v2.as_str());

    let side = container_inspect(&sidecar);
    assert_eq!(
        side["HostConfig"]["NetworkMode"],
        format!("container:{new_id}")
    );
    assert_eq!(side["State"]["Running"], true);
    // Recreated from its reference, not an image ID: later pushes of its
    // own repository still select it.
    assert_eq!(side["Config"]["Image"], other.image("latest"));
    let through_sidecar = docker_stdout([
        "exec",
        &sidecar,
        "wget",
        "-q",
        "-O-",
        "http://127.0.0.1:8080/",
    ]);
    assert_eq!(
        through_sidecar, "v2",
        "the sidecar shares the new container's network"
    );

    let link = container_inspect(&linked);
    assert_eq!(link["State"]["Running"], true);
    assert_eq!(link["Config"]["Image"], other.image("latest"));
    assert_ne!(
        link["Id"], linked_before,
        "the linked container was recreated"
    );
    let through_link = docker_stdout([
        "exec",
        &linked,
        "wget",
        "-q",
        "-O-",
        "http://upstream:8080/",
    ]);
    assert_eq!(through_link, "v2");
}

#[test]
fn hooks_run_in_the_old_and_the_new_container() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _) = Site::new(&mut cleanup, "hooks");
    let shared = tempfile::tempdir().unwrap();
    let mount = format!("{}:/shared", shared.path().display());
    let name = run_site(
        &mut cleanup,
        &site,
        &site.name,
        &[
            "-v",
            &mount,
            "--label",
            "dockhook.pre-update=cat /www/index.html > /shared/pre",
            "--label",
            r#"dockhook.post-update=["sh", "-c", "cat /www/index.html > /shared/post"]"#,
        ],
    );
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    let read = |file: &str| std::fs::read_to_string(shared.path().join(file)).unwrap_or_default();
    assert_eq!(read("pre"), "v1\n", "pre-update ran in the old container");
    assert_eq!(read("post"), "v2\n", "post-update ran in the new container");
    assert_one_running(&name, &v2);
}

#[test]
fn failing_pre_update_hook_aborts_the_update() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "prefail");
    let name = run_site(
        &mut cleanup,
        &site,
        &site.name,
        &["--label", "dockhook.pre-update=echo not now; exit 7"],
    );
    let before = container_inspect(&name)["Id"].clone();
    site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(deployment["state"], "failed", "{deployment}");
    let error = deployment["error"].as_str().unwrap();
    assert!(
        error.contains("pre-update hook failed")
            && error.contains("code 7")
            && error.contains("not now"),
        "{error}"
    );
    assert_eq!(container_inspect(&name)["Id"], before);
    assert_one_running(&name, &v1);
}
