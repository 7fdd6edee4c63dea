//! End to end against the real engine and a real registry: a Docker Hub
//! webhook updates the containers that use the pushed image and tag, keeps
//! their configuration, cleans up, skips, fails safely and rolls back.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::scenario::{api, containers_named, image_exists, wait_deployment, Site};
use support::*;

/// The page a container serves on `port` (published on 127.0.0.1).
fn page(port: u16) -> Option<String> {
    http_get(&format!("http://127.0.0.1:{port}/")).map(|body| body.trim().to_string())
}

fn serves(port: u16, version: &str) -> bool {
    wait_until(Duration::from_secs(15), || {
        page(port).as_deref() == Some(version)
    })
}

fn inspect(name: &str) -> Value {
    container_inspect(name)
}

fn sorted(value: &Value) -> Vec<String> {
    let mut items: Vec<String> = value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    items.sort();
    items
}

#[test]
fn push_updates_a_docker_run_container_keeping_its_whole_config() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "full");
    let name = cleanup.container(&site.name);
    cleanup.containers_with_prefix(&format!("{name}-dockhook-"));
    let other_tag = cleanup.container(&format!("{name}-other-tag"));
    let other_repo = cleanup.container(&format!("{name}-other-repo"));
    let net1 = cleanup.network(&format!("{name}-front"));
    let net2 = cleanup.network(&format!("{name}-back"));
    let volume = cleanup.volume(&format!("{name}-data"));
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("hello.txt"), "from the host\n").unwrap();
    docker(["network", "create", "--label", "dockhook-test=1", &net1]);
    docker(["network", "create", "--label", "dockhook-test=1", &net2]);

    // The same image under another tag, and another repository: both must
    // be left alone by a push of `latest`.
    site.push(&mut cleanup, "stable", SiteImage::new("stable"));
    let other = Site::new(&mut cleanup, "otherrepo").0;
    run_container(&other_tag, &site.image("stable"), &[]);
    run_container(&other_repo, &other.image("latest"), &[]);

    let port = free_port();
    let publish = format!("127.0.0.1:{port}:{SITE_PORT}");
    let bind = format!("{}:/srv/host:ro", host_dir.path().display());
    let named = format!("{volume}:/data");
    let custom_cmd =
        "trap 'exit 0' TERM QUIT; echo custom > /marker; httpd -f -p 8080 -h /www & wait";
    let image = site.image("latest");
    #[rustfmt::skip]
    docker([
        "run", "-d", "--name", &name, "--label", "dockhook-test=1",
        "-p", &publish,
        "-e", "SECRET_KEY=s3cret",
        "--label", "app.tier=web",
        "--label", "dockhook.enable=true",
        "-v", &named,
        "-v", &bind,
        "-v", "/anon",
        "--restart", "unless-stopped",
        "--network", &net1,
        "--network-alias", "web-alias",
        "--health-cmd", "test -f /www/index.html",
        "--health-interval", "1s",
        "--user", "0:0",
        "--workdir", "/www",
        "--hostname", "custom-host",
        "--stop-signal", "SIGQUIT",
        "--stop-timeout", "7",
        "--entrypoint", "sh",
        &image, "-c", custom_cmd,
    ]);
    docker(["network", "connect", "--alias", "back-alias", &net2, &name]);
    docker([
        "exec",
        &name,
        "sh",
        "-c",
        "echo kept > /data/file && echo kept > /anon/file",
    ]);
    assert!(serves(port, "v1"));
    let before = inspect(&name);
    // The successor names the anonymous volume to keep its data, so
    // `docker rm -v` no longer removes it.
    for mount in before["Mounts"].as_array().into_iter().flatten() {
        if mount["Destination"] == "/anon" {
            cleanup.volume(mount["Name"].as_str().unwrap());
        }
    }
    let others_before = (
        inspect(&other_tag)["Id"].clone(),
        inspect(&other_repo)["Id"].clone(),
    );

    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(
        deployment["state"],
        "succeeded",
        "{deployment}\n{}",
        dockhook.log_text()
    );
    assert_eq!(deployment["old_image_id"], v1.as_str());
    assert_eq!(deployment["new_image_id"], v2.as_str());

    assert!(
        serves(port, "v2"),
        "the new version serves on the same port"
    );
    let after = inspect(&name);
    assert_ne!(after["Id"], before["Id"]);
    assert_eq!(after["Image"], v2.as_str());
    assert_eq!(after["Name"], format!("/{name}"));
    assert_eq!(after["Config"]["Image"], site.image("latest"));
    for pointer in [
        "/Config/Entrypoint",
        "/Config/Cmd",
        "/Config/Healthcheck",
        "/Config/User",
        "/Config/WorkingDir",
        "/Config/Hostname",
        "/Config/StopSignal",
        "/Config/StopTimeout",
        "/HostConfig/PortBindings",
        "/HostConfig/RestartPolicy",
        "/HostConfig/Binds",
        "/HostConfig/NetworkMode",
    ] {
        assert_eq!(
            after.pointer(pointer),
            before.pointer(pointer),
            "{pointer} changed"
        );
    }
    assert!(sorted(&after["Config"]["Env"]).contains(&"SECRET_KEY=s3cret".to_string()));
    assert_eq!(after["Config"]["Labels"]["app.tier"], "web");
    for (network, alias) in [(&net1, "web-alias"), (&net2, "back-alias")] {
        let aliases = sorted(&after["NetworkSettings"]["Networks"][network.as_str()]["Aliases"]);
        assert!(
            aliases.contains(&alias.to_string()),
            "{network}: {aliases:?}"
        );
    }
    // Named and anonymous volumes keep their data; the bind mount is there.
    let check = docker_stdout([
        "exec",
        &name,
        "sh",
        "-c",
        "cat /data/file /anon/file /srv/host/hello.txt /marker",
    ]);
    assert_eq!(check, "kept\nkept\nfrom the host\ncustom");

    // The old container is gone, nothing parked is left, and the old image
    // is kept for a rollback (keep_images = 1 by default).
    assert_eq!(
        containers_named(&format!("{name}-dockhook-")),
        Vec::<String>::new()
    );
    assert!(!docker_ok(["inspect", before["Id"].as_str().unwrap()]));
    assert!(image_exists(&v1), "old image {v1} is kept for rollbacks");
    // The other tag and the other repository were not touched.
    assert_eq!(inspect(&other_tag)["Id"], others_before.0);
    assert_eq!(inspect(&other_repo)["Id"], others_before.1);
    assert_eq!(inspect(&other_tag)["State"]["Running"], true);
}

#[test]
fn push_updates_a_docker_compose_service() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _v1) = Site::new(&mut cleanup, "compose");
    let project = site.name.replace('-', "");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    cleanup.compose_project(&project, &file);
    cleanup.containers_with_prefix(&format!("{project}_web_1-dockhook-"));
    let port = free_port();
    std::fs::write(
        &file,
        format!(
            "version: \"2.4\"\nservices:\n  web:\n    image: {}\n    restart: always\n    \
             environment:\n      GREETING: hello\n    labels:\n      dockhook-test: \"1\"\n    \
             ports:\n      - \"127.0.0.1:{port}:8080\"\n",
            site.image("latest")
        ),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let output = std::process::Command::new("docker-compose")
            .args(["-p", &project, "-f", &file.to_string_lossy()])
            .args(args)
            .output()
            .expect("docker-compose runs");
        assert!(
            output.status.success(),
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    compose(&["up", "-d"]);
    let old_id = compose(&["ps", "-q", "web"]);
    assert!(serves(port, "v1"));

    site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(
        deployment["state"],
        "succeeded",
        "{deployment}\n{}",
        dockhook.log_text()
    );
    assert_eq!(deployment["target"], format!("{project}_web_1"));

    assert!(serves(port, "v2"));
    let new_id = compose(&["ps", "-q", "web"]);
    assert!(
        !new_id.is_empty() && new_id != old_id,
        "compose lists the new container"
    );
    let listing = compose(&["ps"]);
    assert!(
        listing.contains(&format!("{project}_web_1")) && listing.contains("Up"),
        "{listing}"
    );
    let after = inspect(&new_id);
    assert_eq!(
        after["Config"]["Labels"]["com.docker.compose.service"],
        "web"
    );
    assert!(sorted(&after["Config"]["Env"]).contains(&"GREETING=hello".to_string()));
    let aliases =
        sorted(&after["NetworkSettings"]["Networks"][format!("{project}_default")]["Aliases"]);
    assert!(aliases.contains(&"web".to_string()), "{aliases:?}");
}

#[test]
fn up_to_date_image_is_skipped_without_restart() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _) = Site::new(&mut cleanup, "uptodate");
    let name = cleanup.container(&site.name);
    run_container(&name, &site.image("latest"), &[]);
    let before = inspect(&name);

    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(deployment["state"], "skipped", "{deployment}");
    let after = inspect(&name);
    assert_eq!(after["Id"], before["Id"]);
    assert_eq!(
        after["State"]["StartedAt"], before["State"]["StartedAt"],
        "not restarted"
    );
}

#[test]
fn burst_of_ten_identical_webhooks_recreates_once() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _) = Site::new(&mut cleanup, "burst");
    let name = cleanup.container(&site.name);
    cleanup.containers_with_prefix(&format!("{name}-dockhook-"));
    run_container(&name, &site.image("latest"), &[]);
    site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let dockhook = Dockhook::start(&site.registry.host(), &[]);

    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..10)
            .map(|_| scope.spawn(|| site.hook(&dockhook, "latest")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids: Vec<i64> = answers
        .iter()
        .map(|(status, answer)| {
            assert_eq!(*status, 202, "{answer}");
            answer["deployments"][0].as_i64().unwrap()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert!(
        ids.len() <= 2,
        "a burst folds into at most one running and one waiting: {ids:?}"
    );
    let states: Vec<String> = ids
        .iter()
        .map(|&id| {
            wait_deployment(&dockhook, id)["state"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // The first updates; the one that waited finds the image current.
    assert_eq!(
        states,
        ["succeeded", "skipped"][..ids.len()],
        "{ids:?}: {states:?}"
    );
    let (_, all) = api(&dockhook, "/api/deployments");
    assert_eq!(all["deployments"].as_array().unwrap().len(), ids.len());
    assert_eq!(inspect(&name)["State"]["Running"], true);
}

#[test]
fn failed_pull_leaves_the_old_container_running() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "pullfail");
    let name = cleanup.container(&site.name);
    let port = free_port();
    run_container(
        &name,
        &site.image("latest"),
        &["-p", &format!("127.0.0.1:{port}:8080")],
    );
    assert!(serves(port, "v1"));
    let before = inspect(&name);
    let registry_host = site.registry.host();
    let dockhook = Dockhook::start(&registry_host, &[]);
    // The registry goes away: the pull cannot succeed.
    let Site {
        registry,
        name: repo_name,
        ..
    } = site;
    drop(registry);

    let body = dockerhub_payload(OWNER, &repo_name, "latest").to_string();
    let (status, answer) = post_json(&dockhook.url(&support::scenario::hook_path()), &body, &[]);
    assert_eq!(status, 202, "{answer}");
    let id = serde_json::from_str::<Value>(&answer).unwrap()["deployments"][0]
        .as_i64()
        .unwrap();
    let deployment = wait_deployment(&dockhook, id);
    assert_eq!(deployment["state"], "failed", "{deployment}");
    let error = deployment["error"].as_str().unwrap();
    assert!(
        error.contains("pull") && error.contains("keeps running"),
        "{error}"
    );
    let after = inspect(&name);
    assert_eq!(after["Id"], before["Id"]);
    assert_eq!(after["State"]["Running"], true);
    assert_eq!(after["Image"], v1.as_str());
    assert_eq!(page(port).as_deref(), Some("v1"));
}

#[test]
fn new_image_that_exits_at_once_is_rolled_back() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "rollback");
    let name = cleanup.container(&site.name);
    cleanup.containers_with_prefix(&format!("{name}-dockhook-"));
    let port = free_port();
    run_container(
        &name,
        &site.image("latest"),
        &[
            "-p",
            &format!("127.0.0.1:{port}:8080"),
            "--restart",
            "unless-stopped",
        ],
    );
    assert!(serves(port, "v1"));
    let before = inspect(&name);
    let broken = site.push(&mut cleanup, "latest", SiteImage::new("broken").exiting());
    let dockhook = Dockhook::start(&site.registry.host(), &[]);

    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(
        deployment["state"],
        "rolled_back",
        "{deployment}\n{}",
        dockhook.log_text()
    );
    let error = deployment["error"].as_str().unwrap();
    assert!(
        error.contains("exited with code 1") || error.contains("restarting"),
        "{error}"
    );
    assert_eq!(deployment["new_image_id"], broken.as_str());

    let after = inspect(&name);
    assert_eq!(
        after["Id"], before["Id"],
        "the old container is back under its name"
    );
    assert_eq!(after["State"]["Running"], true);
    assert_eq!(after["Image"], v1.as_str());
    assert!(serves(port, "v1"));
    assert_eq!(
        containers_named(&format!("{name}-dockhook-")),
        Vec::<String>::new()
    );
    assert!(image_exists(&v1));
}
