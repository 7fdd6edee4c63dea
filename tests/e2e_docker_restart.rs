//! End to end: the Docker daemon restarts in the middle of an update.
//!
//! The daemon restarted is a private `dockerd` this test starts for itself
//! ([`PrivateDaemon`]: its own socket, data root, exec root, pid file and
//! bridge), never the machine's: the test's docker commands and dockhook
//! both talk to it, and it goes away with everything on it when the test
//! ends. It needs root, as any dockerd does. It lives alone in its own test
//! binary because it aims the whole test support at that daemon.

mod support;

use std::time::Duration;

use support::scenario::{api, containers_named, wait_deployment, Site};
use support::*;

#[test]
fn docker_daemon_restart_during_an_update_leaves_one_running_container() {
    // Declared first, so it is dropped last, after the cleanup.
    let mut daemon = PrivateDaemon::start();
    use_daemon(&daemon.host());
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "dockerrestart");
    let name = cleanup.container(&site.name);
    cleanup.containers_with_prefix(&format!("{name}-dockhook-"));
    // No restart policy: after the daemon restart nothing but dockhook
    // brings the site back.
    run_container(&name, &site.image("latest"), &[]);
    site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let dockhook = Dockhook::start(&site.registry.host(), &[("DOCKHOOK_GRACE", "30s")]);
    let (status, answer) = site.hook(&dockhook, "latest");
    assert_eq!(status, 202, "{answer}");
    let id = answer["deployments"][0].as_i64().unwrap();
    let verifying = wait_until(Duration::from_secs(30), || {
        api(&dockhook, &format!("/api/deployments/{id}")).1["state"] == "verifying"
    });
    assert!(verifying, "{}", dockhook.log_text());

    daemon.restart();

    let deployment = wait_deployment(&dockhook, id);
    eprintln!("after the daemon restart: {deployment}");
    // The restart stopped the new container before it passed its gate (it
    // has no restart policy): the update is undone, the old one runs again.
    assert_eq!(
        deployment["state"],
        "rolled_back",
        "{deployment}\n{}",
        dockhook.log_text()
    );
    assert_eq!(
        containers_named(&name),
        vec![name.clone()],
        "leftover containers"
    );
    let container = container_inspect(&name);
    assert_eq!(
        container["State"]["Running"],
        true,
        "{}",
        dockhook.log_text()
    );
    assert_eq!(container["Image"], v1.as_str());
    // dockhook follows Docker again: it answers healthy.
    let healthy = wait_until(Duration::from_secs(10), || {
        request("GET", &dockhook.url("/healthz"), &[], b"").is_ok_and(|r| r.status == 200)
    });
    assert!(healthy);
}
