//! End to end: dockhook as users run it, a container from its own
//! `FROM scratch` image with the Docker socket mounted, read-only, without
//! capabilities, updates a site and never updates itself.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::scenario::{Endpoint, Site};
use support::*;

/// Builds the static binary the image needs, in its own target directory so
/// it never waits on the build lock of the `cargo test` running us.
fn static_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = root.join("target").join("e2e-static");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "x86_64-unknown-linux-gnu",
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "static build failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    target_dir.join("x86_64-unknown-linux-gnu/release/dockhook")
}

/// Builds the project's Dockerfile around the static binary as `tag`.
fn build_dockhook_image(tag: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let context = tempfile::tempdir().unwrap();
    let binary_dir = context
        .path()
        .join("target/x86_64-unknown-linux-gnu/release");
    std::fs::create_dir_all(&binary_dir).unwrap();
    std::fs::copy(static_binary(), binary_dir.join("dockhook")).unwrap();
    std::fs::copy(root.join("Dockerfile"), context.path().join("Dockerfile")).unwrap();
    let output = Command::new("docker")
        .args(["build", "-q", "--label", "dockhook-test=1", "-t", tag])
        .arg(context.path())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// dockhook running in a container, reached on a published loopback port.
struct Contained {
    name: String,
    port: u16,
}

impl Endpoint for Contained {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log_text(&self) -> String {
        let output = Command::new("docker")
            .args(["logs", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

#[test]
fn dockhook_in_its_own_container_updates_a_site_but_never_itself() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "contained");
    let site_name = cleanup.container(&site.name);
    cleanup.containers_with_prefix(&format!("{site_name}-dockhook-"));
    let site_port = free_port();
    run_container(
        &site_name,
        &site.image("latest"),
        &["-p", &format!("127.0.0.1:{site_port}:8080")],
    );
    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));

    // dockhook's image, pushed to the registry under the test owner, so a
    // webhook for it would select dockhook's own container if it could.
    let local_tag = cleanup.image(&unique("dockhook-e2e"));
    build_dockhook_image(&local_tag);
    let self_repo = format!("{OWNER}/{}", unique("dockhook"));
    let self_image = site.registry.image(&self_repo, "latest");
    cleanup.repository(&format!("{}/{self_repo}", site.registry.host()));
    docker(["tag", &local_tag, &self_image]);
    push(&self_image);

    let dockhook = Contained {
        name: cleanup.container(&unique("dockhook")),
        port: free_port(),
    };
    #[rustfmt::skip]
    docker([
        "run", "-d", "--name", &dockhook.name, "--label", "dockhook-test=1",
        "-v", "/var/run/docker.sock:/var/run/docker.sock",
        // As the compose example runs it: nothing writable but the data
        // volume (the Dockerfile's VOLUME /data), no capabilities, no
        // privilege gained through exec.
        "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "-e", &format!("OWNER={OWNER}"),
        "-e", &format!("DOCKHOOK_TOKEN={TOKEN}"),
        "-e", &format!("DOCKHOOK_API_TOKEN={API_TOKEN}"),
        "-e", &format!("DOCKHOOK_DOCKERHUB_REGISTRY={}", site.registry.host()),
        "-e", "DOCKHOOK_GRACE=1s",
        // As for every test instance (see support/dockhook.rs).
        "-e", "DOCKHOOK_RECONCILE_INTERVAL=0",
        // The blog's setting: the old image goes as soon as the new one runs.
        "-e", "DOCKHOOK_KEEP_IMAGES=0",
        "-p", &format!("127.0.0.1:{}:8080", dockhook.port),
        "--health-interval", "1s",
        &self_image,
    ]);
    let healthy = wait_until(Duration::from_secs(30), || {
        container_inspect(&dockhook.name)["State"]["Health"]["Status"] == "healthy"
    });
    assert!(
        healthy,
        "`dockhook healthcheck` never passed:\n{}",
        dockhook.log_text()
    );

    // The command dockhook's log names prints the webhook URL whole.
    let shown = docker_stdout([
        "exec",
        &dockhook.name,
        "dockhook",
        "check-config",
        "--show-token",
    ]);
    assert!(
        shown.contains(&format!("/hooks/dockerhub/{}", hook_token("dockerhub"))),
        "{shown}"
    );
    assert!(
        dockhook
            .log_text()
            .contains("docker exec dockhook dockhook check-config --show-token"),
        "{}",
        dockhook.log_text()
    );

    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(
        deployment["state"],
        "succeeded",
        "{deployment}\n{}",
        dockhook.log_text()
    );
    let served = wait_for(Duration::from_secs(15), || {
        http_get(&format!("http://127.0.0.1:{site_port}/")).filter(|page| page.trim() == "v2")
    });
    assert!(served.is_some(), "the site serves v2");
    assert_eq!(container_inspect(&site_name)["Image"], v2.as_str());
    assert!(!support::scenario::image_exists(&v1));

    // The client in the same binary needs nothing more inside the
    // container: the server's listen address and token are its defaults.
    let status = docker_stdout(["exec", &dockhook.name, "dockhook", "status"]);
    eprintln!("$ docker exec dockhook dockhook status\n{status}");
    assert!(status.starts_with("NAME "), "{status}");
    let id = deployment["id"].to_string();
    let row: Vec<&str> = status
        .lines()
        .find(|line| line.starts_with(&format!("{site_name} ")))
        .unwrap_or_else(|| panic!("{site_name} is not listed: {status}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[4..6], [id.as_str(), "succeeded"], "{status}");
    let history = docker_stdout([
        "exec",
        &dockhook.name,
        "dockhook",
        "history",
        &site_name,
        "--json",
    ]);
    let history: serde_json::Value = serde_json::from_str(&history).expect(&history);
    assert_eq!(history["deployments"][0]["new_image_id"], v2.as_str());

    // A push of dockhook's own image selects nothing: it never replaces itself.
    let dockhook_id = container_inspect(&dockhook.name)["Id"].clone();
    let self_name = self_repo.split('/').nth(1).unwrap();
    let body = dockerhub_payload(OWNER, self_name, "latest").to_string();
    let (status, answer) = post_json(&dockhook.url(&support::scenario::hook_path()), &body, &[]);
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains("ignored") && answer.contains("dockhook itself"),
        "{answer}"
    );
    assert_eq!(container_inspect(&dockhook.name)["Id"], dockhook_id);
}
