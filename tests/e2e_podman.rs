//! End to end against Podman: dockhook, with `DOCKER_HOST` on a private
//! `podman system service` (Podman 4.3, Debian's), updates containers that
//! Podman started, start-first (with pre- and post-update hooks) and
//! stop-first, and rolls back a new version that exits. Images are built with the machine's Docker, pushed to a
//! loopback registry, and pulled from there by Podman.
//!
//! Podman runs no healthchecks without systemd, so the health gate here is
//! the grace period; health-gated updates are tested on Docker
//! (e2e_update.rs).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::podman::PrivatePodman;
use support::scenario::{assert_steps_in_order, wait_deployment, Site};
use support::*;

/// Podman reports the ulimits it gave a container (here the
/// `default_ulimits` of the private service) by their kernel names, which
/// its create endpoint refuses: the case dockhook must translate.
fn assert_reports_kernel_ulimit_names(container: &Value) {
    let ulimits = &container["HostConfig"]["Ulimits"];
    let names: Vec<&str> = ulimits
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["Name"].as_str())
        .collect();
    assert!(names.contains(&"RLIMIT_NOFILE"), "ulimits: {ulimits}");
}

/// The image ID a container inspect shows, as the docker CLI prints it:
/// Podman's inspect leaves out the `sha256:`.
fn image_of(container: &Value) -> String {
    let id = container["Image"].as_str().expect("an image ID");
    format!("sha256:{}", id.trim_start_matches("sha256:"))
}

fn nofile(container: &Value) -> Option<(i64, i64)> {
    container["HostConfig"]["Ulimits"]
        .as_array()?
        .iter()
        .find(|u| u["Name"] == "RLIMIT_NOFILE")
        .map(|u| (u["Soft"].as_i64().unwrap(), u["Hard"].as_i64().unwrap()))
}

/// dockhook with DOCKER_HOST on `podman`, removing replaced images at once.
fn dockhook_on(podman: &PrivatePodman, site: &Site) -> Dockhook {
    let host = podman.host();
    let dockhook = Dockhook::start(
        &site.registry.host(),
        &[("DOCKER_HOST", &host), ("DOCKHOOK_KEEP_IMAGES", "0")],
    );
    assert!(
        dockhook
            .wait_for_log("connected to Podman", Duration::from_secs(10))
            .is_some(),
        "dockhook did not recognise Podman; log:\n{}",
        dockhook.log_text()
    );
    dockhook
}

/// Runs the site's `latest` on Podman, named after the site, publishing
/// its port on a free loopback port; returns the name and the port.
fn run_published(podman: &PrivatePodman, site: &Site, args: &[&str]) -> (String, u16) {
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:{SITE_PORT}");
    let args = [&["-p", publish.as_str()][..], args].concat();
    podman.run(&site.name, &site.image("latest"), &args);
    (site.name.clone(), port)
}

/// Sends the webhook for `latest` and returns the deployment's ID.
fn hook(site: &Site, dockhook: &Dockhook) -> i64 {
    let (status, answer) = site.hook(dockhook, "latest");
    assert_eq!(status, 202, "webhook not accepted: {answer}");
    let ids = answer["deployments"].as_array().expect("deployment ids");
    assert_eq!(ids.len(), 1, "{answer}");
    ids[0].as_i64().unwrap()
}

/// Exactly one container has the target's name, it runs `image`, and the
/// container and image it replaced are gone.
fn assert_replaced(podman: &PrivatePodman, name: &str, image: &str, old: &Value) {
    assert_eq!(podman.containers_named(name), vec![name.to_string()]);
    let new = podman.inspect(name);
    assert_eq!(new["State"]["Running"], true, "{name} is not running");
    assert_eq!(image_of(&new), image, "{name} runs the wrong image");
    assert_ne!(new["Id"], old["Id"], "{name} was not replaced");
    let old_image = image_of(old);
    assert!(
        !podman.image_exists(&old_image),
        "the old image {old_image} was kept"
    );
    // Its configuration came along, the ulimits included.
    assert_eq!(nofile(&new), Some((20000, 20000)));
    // On its network, and on no other (Podman reports the mode `bridge`).
    let networks = &new["NetworkSettings"]["Networks"];
    let joined: Vec<&String> = networks.as_object().expect("networks").keys().collect();
    assert_eq!(joined, [podman.network()], "{networks}");
    assert_eq!(new["Config"]["Labels"]["site.owner"], "alice");
}

#[test]
fn start_first_update_on_podman_serves_the_new_version() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "podman-start");
    let podman = PrivatePodman::start(&site.registry.host());
    let name = site.name.clone();
    podman.run(
        &name,
        &site.image("latest"),
        &[
            "--label",
            "dockhook.strategy=start-first",
            "--label",
            "dockhook.pre-update=test -f /www/index.html",
            "--label",
            "dockhook.post-update=test -f /www/index.html",
            "--label",
            "site.owner=alice",
        ],
    );
    let old = podman.inspect(&name);
    assert_eq!(image_of(&old), v1);
    assert_reports_kernel_ulimit_names(&old);
    assert!(wait_until(Duration::from_secs(10), || {
        podman.page(&name).as_deref() == Some("v1")
    }));
    let dockhook = dockhook_on(&podman, &site);
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));

    let sent = Instant::now();
    let id = hook(&site, &dockhook);
    let serving = wait_for(Duration::from_secs(60), || {
        (podman.page(&name).as_deref() == Some("v2")).then(|| sent.elapsed())
    });
    let deployment = wait_deployment(&dockhook, id);
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    let serving = serving.expect("the container never served v2");
    let steps: Vec<String> = deployment["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|step| {
            format!(
                "{} {}",
                step["at"].as_str().unwrap_or_default(),
                step["state"]
            )
        })
        .collect();
    eprintln!(
        "podman start-first: webhook -> {name} serving v2 in {:.2} s (dockhook: to_serving {} s, \
         total {} s); steps:\n  {}",
        serving.as_secs_f64(),
        deployment["timings"]["to_serving"],
        deployment["timings"]["total"],
        steps.join("\n  ")
    );
    assert_eq!(deployment["strategy"], "start-first");
    // Both hooks ran, through Podman's exec API (a failed pre-update hook
    // would have stopped the update).
    let summary = deployment["steps"].to_string();
    assert!(summary.contains("post-update hook succeeded"), "{summary}");
    assert_steps_in_order(&dockhook, id, &["starting", "verifying", "stopping"]);
    assert_replaced(&podman, &name, &v2, &old);
}

#[test]
fn stop_first_update_on_podman_keeps_the_published_port() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "podman-stop");
    let podman = PrivatePodman::start(&site.registry.host());
    let (name, port) = run_published(&podman, &site, &["--label", "site.owner=alice"]);
    let page = || http_get(&format!("http://127.0.0.1:{port}/")).map(|p| p.trim().to_string());
    assert!(wait_until(Duration::from_secs(10), || page().as_deref() == Some("v1")));
    let old = podman.inspect(&name);
    assert_eq!(image_of(&old), v1);
    let dockhook = dockhook_on(&podman, &site);
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));

    let id = hook(&site, &dockhook);
    let deployment = wait_deployment(&dockhook, id);
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    // A published host port is what two containers cannot hold at once.
    assert_eq!(deployment["strategy"], "stop-first");
    assert_steps_in_order(&dockhook, id, &["stopping", "starting", "verifying"]);
    assert_eq!(page().as_deref(), Some("v2"));
    assert_replaced(&podman, &name, &v2, &old);
}

#[test]
fn a_new_version_that_exits_is_rolled_back_on_podman() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "podman-undo");
    let podman = PrivatePodman::start(&site.registry.host());
    let (name, port) = run_published(&podman, &site, &[]);
    let old = podman.inspect(&name);
    let dockhook = dockhook_on(&podman, &site);
    site.push(&mut cleanup, "latest", SiteImage::new("v2").exiting());

    let id = hook(&site, &dockhook);
    let deployment = wait_deployment(&dockhook, id);
    assert_eq!(deployment["state"], "rolled_back", "{deployment}");
    // The old container serves again under its name, alone, on its port.
    assert_eq!(podman.containers_named(&name), vec![name.clone()]);
    let now = podman.inspect(&name);
    assert_eq!(now["Id"], old["Id"]);
    assert_eq!(now["State"]["Running"], true);
    assert_eq!(image_of(&now), v1);
    // The tag names the old image again.
    let tagged = podman.podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        &site.image("latest"),
    ]);
    assert_eq!(format!("sha256:{tagged}"), v1);
    let page = http_get(&format!("http://127.0.0.1:{port}/"));
    assert_eq!(page.as_deref().map(str::trim), Some("v1"));
}
