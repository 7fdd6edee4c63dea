//! End to end: registries other than Docker Hub trigger updates. A real
//! `docker-registry` notifies dockhook of a `docker push`, and nothing else
//! is needed for the container to be updated.

mod support;

use std::time::Duration;

use support::scenario::{api, Site};
use support::*;

/// A registry that notifies `dockhook` of every event, with the token as a
/// bearer header, as its endpoint configuration allows.
fn notifying_registry(dockhook: &Dockhook) -> Registry {
    Registry::start_with(&format!(
        "\
notifications:
  endpoints:
    - name: dockhook
      url: {}
      headers:
        Authorization: [Bearer {TOKEN}]
      timeout: 2s
      threshold: 5
      backoff: 1s
",
        dockhook.url("/hooks/registry")
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

    let v2 = site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let updated = wait_until(Duration::from_secs(90), || {
        container_inspect(&name)["Image"] == v2.as_str()
            && container_inspect(&name)["State"]["Running"] == true
    });
    assert!(
        updated,
        "the push did not update {name}:\n{}",
        dockhook.log_text()
    );

    let (_, history) = api(&dockhook, "/api/deployments");
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
    let bearer = format!("Bearer {TOKEN}");
    let content_type = (
        "Content-Type",
        "application/vnd.docker.distribution.events.v1+json",
    );
    assert_eq!(
        post(&format!("/hooks/registry/{TOKEN}"), &[content_type]),
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
