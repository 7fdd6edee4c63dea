//! End to end against the real engine and a real registry: reconcile
//! deploys a push whose webhook never came, skips an image built on the
//! host with one log line, and costs the registry one manifest `HEAD` per
//! distinct image per interval, however many containers run it.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::scenario::{api, assert_one_running, wait_deployment, PrivateSite, Site};
use support::*;

/// The interval the tests run reconcile at.
const INTERVAL: &str = "5s";
/// [`INTERVAL`] in seconds, for the waits.
const INTERVAL_SECS: u64 = 5;
/// Reconcile looks at every container on the daemon: the tests here take
/// turns, and their dockhooks take only the containers labelled for them.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
const SETTINGS: [(&str, &str); 2] = [
    ("DOCKHOOK_RECONCILE_INTERVAL", INTERVAL),
    ("DOCKHOOK_LABEL_ENABLE", "true"),
];
const ENABLED: [&str; 2] = ["--label", "dockhook.enable=true"];
/// What a pass of reconcile logs when it is done.
const PASS_DONE: &str = "reconcile: asked the registries about";

fn page(port: u16) -> Option<String> {
    http_get(&format!("http://127.0.0.1:{port}/")).map(|body| body.trim().to_string())
}

/// The deployments of container `name`, newest first.
fn deployments_of(dockhook: &Dockhook, name: &str) -> Vec<Value> {
    let (status, body) = api(dockhook, &format!("/api/deployments?target={name}"));
    assert_eq!(status, 200, "{body}");
    body["deployments"].as_array().cloned().unwrap_or_default()
}

/// How many passes of reconcile `dockhook` finished.
fn passes(dockhook: &Dockhook) -> usize {
    log_count(dockhook, PASS_DONE)
}

/// Waits until `dockhook` finished `n` passes; panics, with its log, if
/// that takes more than `n` intervals and a margin.
fn wait_passes(dockhook: &Dockhook, n: usize) {
    let limit = Duration::from_secs(INTERVAL_SECS * n as u64 + 15);
    assert!(
        wait_until(limit, || passes(dockhook) >= n),
        "not {n} passes within {limit:?}:\n{}",
        dockhook.log_text()
    );
}

/// How many lines of `dockhook`'s log contain `needle`.
fn log_count(dockhook: &Dockhook, needle: &str) -> usize {
    dockhook
        .logs()
        .iter()
        .filter(|line| line.contains(needle))
        .count()
}

/// Runs a container of `site`'s `tag`, labelled for the tests' dockhook,
/// with `args`, its port published; its name and the port.
fn run_site(cleanup: &mut Cleanup, site: &Site, tag: &str, args: &[&str]) -> (String, u16) {
    let name = cleanup.container(&site.name);
    cleanup.containers_with_prefix(&format!("{name}-dockhook-"));
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:{SITE_PORT}");
    let mut all = vec![ENABLED[0], ENABLED[1], "-p", &publish];
    all.extend_from_slice(args);
    run_container(&name, &site.image(tag), &all);
    (name, port)
}

#[test]
fn a_push_without_a_webhook_is_deployed_at_the_next_interval() {
    require_docker();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cleanup = Cleanup::new();
    let (site, _v1) = Site::new(&mut cleanup, "recon");
    let (name, port) = run_site(&mut cleanup, &site, "latest", &[]);
    assert_eq!(page_within(port, "v1"), Some("v1".into()));

    // An image built here, never pushed: no digest to compare.
    let local_name = cleanup.container(&format!("local-{}", site.name));
    let local_image = site
        .registry
        .image(&format!("{OWNER}/{local_name}"), "latest");
    cleanup.image(&local_image);
    let local_id = build_site_image(&local_image, "local");
    run_container(&local_name, &local_image, &ENABLED);

    let dockhook = Dockhook::start(&site.registry.host(), &SETTINGS);
    let skipped = format!("reconcile skips image {}", &local_id[7..19]);
    assert!(
        dockhook
            .wait_for_log(&skipped, Duration::from_secs(20))
            .is_some(),
        "the local image is not said to be skipped:\n{}",
        dockhook.log_text()
    );
    wait_passes(&dockhook, 1);
    assert!(deployments_of(&dockhook, &name).is_empty(), "up to date");

    // A push, and no webhook.
    site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let pushed = Instant::now();
    let serving = wait_until(Duration::from_secs(60), || {
        page(port).as_deref() == Some("v2")
    });
    let took = pushed.elapsed();
    assert!(
        serving,
        "v2 never served without a webhook:\n{}",
        dockhook.log_text()
    );
    println!(
        "reconcile at a {INTERVAL} interval: push → serving v2 in {:.1} s",
        took.as_secs_f64()
    );

    let deployments = deployments_of(&dockhook, &name);
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    let deployment = wait_deployment(&dockhook, deployments[0]["id"].as_i64().unwrap());
    assert_eq!(deployment["source"], "reconcile", "{deployment}");
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    let new_image = container_inspect(&name)["Image"]
        .as_str()
        .unwrap()
        .to_string();
    assert_one_running(&name, &new_image);
    let digest = deployment["digest"].as_str().expect("a digest");
    let repo_digests = docker_stdout([
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &new_image,
    ]);
    assert!(
        repo_digests.contains(digest),
        "{digest} is not what runs: {repo_digests}"
    );

    // Two more intervals: nothing more to deploy, and the local image is
    // not logged about again.
    wait_passes(&dockhook, passes(&dockhook) + 2);
    assert_eq!(deployments_of(&dockhook, &name).len(), 1);
    assert!(deployments_of(&dockhook, &local_name).is_empty());
    assert_eq!(log_count(&dockhook, "reconcile skips image"), 1);
    let warnings: Vec<String> = dockhook
        .logs()
        .into_iter()
        .filter(|line| line.contains(" WARN ") && line.contains("reconcile"))
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}

/// The page on `port` once it is `version`; `None` if not within 30 s
/// (an interval, and up to two updates).
fn page_within(port: u16, version: &str) -> Option<String> {
    wait_for(Duration::from_secs(30), || {
        page(port).filter(|body| body == version)
    })
}

#[test]
fn ten_containers_of_three_images_cost_one_head_per_image_per_interval() {
    require_docker();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cleanup = Cleanup::new();
    let (site, _) = Site::on(Registry::start_logging_requests(), &mut cleanup, "recount");
    site.push(&mut cleanup, "blue", SiteImage::new("blue"));
    site.push(&mut cleanup, "green", SiteImage::new("green"));
    let tags = ["latest", "blue", "green"];
    for i in 0..10 {
        let name = cleanup.container(&format!("{}-{i}", site.name));
        run_container(&name, &site.image(tags[i % 3]), &ENABLED);
    }

    let mut dockhook = Dockhook::start(&site.registry.host(), &SETTINGS);
    wait_passes(&dockhook, 3);
    // Stopped between passes: the next one is seconds away.
    dockhook.terminate(Duration::from_secs(10));
    let passes = passes(&dockhook);

    let ours: Vec<(String, String)> = site
        .registry
        .requests()
        .into_iter()
        .filter(|(_, _, agent)| agent.starts_with("dockhook/"))
        .map(|(method, path, _)| (method, path))
        .collect();
    let mut expected = Vec::new();
    for tag in tags {
        let manifest = format!("/v2/{}/manifests/{tag}", site.repo);
        expected.extend(std::iter::repeat_n(("HEAD".to_string(), manifest), passes));
    }
    let mut sorted = ours.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(
        sorted, expected,
        "one HEAD per image per pass ({passes} passes)"
    );
    println!(
        "reconcile: {} registry requests in {passes} passes for 10 containers of 3 images: \
         {} per interval",
        ours.len(),
        ours.len() / passes
    );
    assert_eq!(log_count(&dockhook, "update queued"), 0, "all up to date");
}

#[test]
fn a_semver_policy_moves_to_the_newest_version_in_range_without_a_webhook() {
    require_docker();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cleanup = Cleanup::new();
    let (site, _) = Site::new(&mut cleanup, "resemver");
    site.push(&mut cleanup, "1.0.0", SiteImage::new("1.0.0"));
    let policy = ["--label", "dockhook.policy=semver:minor"];
    let (name, port) = run_site(&mut cleanup, &site, "1.0.0", &policy);
    assert_eq!(page_within(port, "1.0.0"), Some("1.0.0".into()));

    let dockhook = Dockhook::start(&site.registry.host(), &SETTINGS);
    wait_passes(&dockhook, 1);
    // Beyond the range, then within it twice: the newest in range wins.
    for tag in ["2.0.0", "1.1.0", "1.2.0"] {
        site.push(&mut cleanup, tag, SiteImage::new(tag));
    }
    assert_eq!(
        page_within(port, "1.2.0"),
        Some("1.2.0".into()),
        "{}",
        dockhook.log_text()
    );
    let deployments = deployments_of(&dockhook, &name);
    let deployment = wait_deployment(&dockhook, deployments[0]["id"].as_i64().unwrap());
    assert_eq!(deployment["source"], "reconcile", "{deployment}");
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    assert!(
        deployment["image"].as_str().unwrap().ends_with(":1.2.0"),
        "{deployment}"
    );
    assert_eq!(
        container_inspect(&name)["Config"]["Image"],
        site.image("1.2.0")
    );
}

#[test]
fn a_private_registry_is_asked_with_the_login_from_the_docker_config() {
    require_docker();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cleanup = Cleanup::new();
    let site = PrivateSite::new(&mut cleanup, "reprivate", &ENABLED);
    let (host, container) = (site.registry.host(), &site.name);

    // Without the login: one warning per interval, nothing changes.
    let empty = tempfile::tempdir().unwrap();
    let empty = empty.path().to_string_lossy().to_string();
    let mut without = Dockhook::start(
        &host,
        &[SETTINGS[0], SETTINGS[1], ("DOCKER_CONFIG", &empty)],
    );
    wait_passes(&without, 2);
    assert!(deployments_of(&without, container).is_empty());
    without.terminate(Duration::from_secs(10));
    let refused = log_count(&without, "refused access to the manifest");
    assert_eq!(refused, passes(&without), "{}", without.log_text());
    assert_eq!(container_inspect(container)["Image"], site.v1.as_str());

    // With it: deployed as a webhook would.
    let logins_dir = site.logins_dir();
    let with = Dockhook::start(
        &host,
        &[SETTINGS[0], SETTINGS[1], ("DOCKER_CONFIG", &logins_dir)],
    );
    let deployment = wait_for(Duration::from_secs(30), || {
        deployments_of(&with, container).into_iter().next()
    })
    .unwrap_or_else(|| panic!("nothing deployed:\n{}", with.log_text()));
    let deployment = wait_deployment(&with, deployment["id"].as_i64().unwrap());
    assert_eq!(deployment["source"], "reconcile", "{deployment}");
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    assert_eq!(container_inspect(container)["Image"], site.v2.as_str());
}
