//! End to end: the Docker daemon restarts in the middle of an update. This
//! test stops and starts the machine's `dockerd`, so it lives alone in its
//! own test binary (cargo runs test binaries one after another), and a Drop
//! guard starts the daemon again whatever happens.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::scenario::{api, containers_named, wait_deployment, Site};
use support::*;

/// The running daemon: its PID and command line.
fn dockerd() -> (u32, Vec<String>) {
    let output = Command::new("pgrep")
        .args(["-o", "-x", "dockerd"])
        .output()
        .unwrap();
    let pid: u32 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("dockerd runs on this machine");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (pid, args)
}

fn engine_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts the daemon again on drop if it is not answering.
struct DaemonGuard(Vec<String>);

impl DaemonGuard {
    fn start(&self) {
        let log = std::fs::File::create("/var/log/dockhook-test-dockerd.log").unwrap();
        // `setsid -f` forks the daemon off into its own session and returns.
        let forked = Command::new("setsid")
            .arg("-f")
            .args(&self.0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .expect("setsid runs");
        assert!(forked.success(), "cannot start dockerd");
        assert!(
            wait_until(Duration::from_secs(60), engine_answers),
            "dockerd did not come back; see /var/log/dockhook-test-dockerd.log"
        );
    }
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        if !engine_answers() {
            self.start();
        }
    }
}

#[test]
fn docker_daemon_restart_during_an_update_leaves_one_running_container() {
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

    let (pid, args) = dockerd();
    let guard = DaemonGuard(args);
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let stopped = wait_until(Duration::from_secs(60), || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
    assert!(stopped, "dockerd did not stop");
    guard.start();

    let deployment = wait_deployment(&dockhook, id);
    eprintln!("after the daemon restart: {deployment}");
    assert!(
        ["rolled_back", "succeeded"].contains(&deployment["state"].as_str().unwrap()),
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
    if deployment["state"] == "rolled_back" {
        assert_eq!(container["Image"], v1.as_str());
    }
    // dockhook follows Docker again: it answers healthy.
    let healthy = wait_until(Duration::from_secs(10), || {
        request("GET", &dockhook.url("/healthz"), &[], b"").is_ok_and(|r| r.status == 200)
    });
    assert!(healthy);
}
