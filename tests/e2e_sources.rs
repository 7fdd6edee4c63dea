//! End to end: registries other than Docker Hub trigger updates. A real
//! `docker-registry` notifies dockhook of a `docker push`, and nothing else
//! is needed for the container to be updated.

mod support;

use std::time::Duration;

use support::scenario::{api, PrivateSite, Site};
use support::*;

/// A registry that notifies `dockhook` of every event, with the registry
/// hook's token as a bearer header, as its endpoint configuration allows.
fn notifying_registry(dockhook: &Dockhook) -> Registry {
    Registry::start_with(&format!(
        "\
notifications:
  endpoints:
    - name: dockhook
      url: {}
      headers:
        Authorization: [Bearer {}]
      timeout: 2s
      threshold: 5
      backoff: 1s
",
        dockhook.url("/hooks/registry"),
        hook_token("registry")
    ))
}

#[test]
fn a_docker_push_alone_updates_the_container() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let dockhook = Dockhook::start("127.0.0.1:9", &[]);
    let (site, _) = Site::on(notifying_registry(&dockhook), &mut cleanup, "notified");
    let name = cleanup.container(&site.name);
    cleanup.containers_with_prefix(&format!("{name}-dockhook-"));
    run_container(&name, &site.image("latest"), &[]);

    // Pushed without untagging it here afterwards (as `Site::push` does):
    // the notification arrives during the push, and dockhook's pull must
    // not race a test's `docker rmi`.
    let v2 = SiteImage::new("v2").build_and_push(&site.image("latest"));
    cleanup.image(&v2);
    // Until a deployment of the push succeeded and every one has ended.
    let ended = wait_until(Duration::from_secs(90), || {
        let (_, history) = api(&dockhook, "/api/deployments");
        let deployments = history["deployments"].as_array().unwrap();
        deployments.iter().any(|d| d["state"] == "succeeded")
            && deployments.iter().all(|d| d["finished_at"].is_string())
    });
    let (_, history) = api(&dockhook, "/api/deployments");
    assert!(
        ended,
        "the push did not update {name}: {history}\n{}",
        dockhook.log_text()
    );
    assert_eq!(container_inspect(&name)["Image"], v2.as_str());
    assert_eq!(container_inspect(&name)["State"]["Running"], true);
    let deployments = history["deployments"].as_array().unwrap();
    let done: Vec<_> = deployments
        .iter()
        .filter(|d| d["target"] == name.as_str() && d["state"] == "succeeded")
        .collect();
    assert_eq!(done.len(), 1, "{history}");
    assert_eq!(done[0]["source"], "registry");
    let digest = done[0]["digest"]
        .as_str()
        .expect("the notification's digest is recorded");
    let repo_digests =
        docker_stdout(["image", "inspect", "--format", "{{json .RepoDigests}}", &v2]);
    assert!(
        repo_digests.contains(digest),
        "{digest} not in {repo_digests}"
    );
}

#[test]
fn registry_hook_takes_the_token_in_the_path_or_as_bearer_only() {
    let dockhook = Dockhook::start("127.0.0.1:9", &[]);
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/registry-other-events.json"
    ))
    .unwrap();
    let post = |path: &str, headers: &[(&str, &str)]| {
        request("POST", &dockhook.url(path), headers, &body)
            .unwrap()
            .status
    };
    let bearer = format!("Bearer {}", hook_token("registry"));
    let content_type = (
        "Content-Type",
        "application/vnd.docker.distribution.events.v1+json",
    );
    assert_eq!(
        post(
            &format!("/hooks/registry/{}", hook_token("registry")),
            &[content_type]
        ),
        200
    );
    assert_eq!(
        post(
            "/hooks/registry",
            &[content_type, ("Authorization", &bearer)]
        ),
        200
    );
    assert_eq!(post("/hooks/registry", &[content_type]), 401);
    assert_eq!(
        post(
            "/hooks/registry",
            &[("Authorization", "Bearer wrong-token-xxxxxxxx")]
        ),
        401
    );
    assert_eq!(
        post("/hooks/registry/wrong-token-xxxxxxxx", &[content_type]),
        401
    );
}

#[test]
fn private_registry_logins_come_from_the_docker_config() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let site = PrivateSite::new(&mut cleanup, "private", &[]);
    let (host, name, container) = (site.registry.host(), &site.name, &site.name);

    let payload = dockerhub_payload(OWNER, name, "latest").to_string();
    let hook = support::scenario::hook_path();
    let deploy = |dockhook: &Dockhook| {
        let (status, answer) = post_json(&dockhook.url(&hook), &payload, &[]);
        assert_eq!(status, 202, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        support::scenario::wait_deployment(dockhook, answer["deployments"][0].as_i64().unwrap())
    };

    // Without the login the pull is refused and nothing changes.
    let empty = tempfile::tempdir().unwrap();
    let empty_dir = empty.path().to_string_lossy().to_string();
    let without = Dockhook::start(&host, &[("DOCKER_CONFIG", empty_dir.as_str())]);
    let deployment = deploy(&without);
    assert_eq!(deployment["state"], "failed", "{deployment}");
    assert!(
        deployment["error"]
            .as_str()
            .unwrap()
            .contains("keeps running"),
        "{deployment}"
    );
    assert_eq!(container_inspect(container)["Image"], site.v1.as_str());
    drop(without);

    let logins_dir = site.logins_dir();
    let with = Dockhook::start(&host, &[("DOCKER_CONFIG", logins_dir.as_str())]);
    let deployment = deploy(&with);
    assert_eq!(
        deployment["state"],
        "succeeded",
        "{deployment}\n{}",
        with.log_text()
    );
    assert_eq!(container_inspect(container)["Image"], site.v2.as_str());
}

#[test]
fn a_semver_policy_moves_the_container_to_a_newer_minor_version_only() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _) = Site::new(&mut cleanup, "semver");
    let v123 = site.push(&mut cleanup, "1.2.3", SiteImage::new("1.2.3"));
    docker(["pull", &site.image("1.2.3")]);
    let name = cleanup.container(&site.name);
    cleanup.containers_with_prefix(&format!("{name}-dockhook-"));
    run_container(
        &name,
        &site.image("1.2.3"),
        &["--label", "dockhook.policy=semver:minor"],
    );
    site.push(&mut cleanup, "2.0.0", SiteImage::new("2.0.0"));
    let v130 = site.push(&mut cleanup, "1.3.0", SiteImage::new("1.3.0"));
    let dockhook = Dockhook::start(&site.registry.host(), &[]);

    let (status, answer) = site.hook(&dockhook, "2.0.0");
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("beyond semver:minor"),
        "{answer}"
    );
    assert_eq!(container_inspect(&name)["Image"], v123.as_str());

    let deployment = site.deploy(&dockhook, "1.3.0");
    assert_eq!(deployment["state"], "succeeded", "{deployment}");
    let steps = support::scenario::steps(&dockhook, deployment["id"].as_i64().unwrap());
    assert_eq!(steps[0].1, "1.2.3 → 1.3.0 (policy semver:minor)");
    let container = container_inspect(&name);
    assert_eq!(container["Image"], v130.as_str());
    assert_eq!(container["Config"]["Image"], site.image("1.3.0"));
}
