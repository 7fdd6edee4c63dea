//! Proves the end-to-end support works before any dockhook test relies on it:
//! a real registry, an image built from scratch, pushed and pulled back, a
//! container serving its version, and a cleanup guard that leaves nothing.

mod support;

use std::time::Duration;

use support::*;

const SERVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether docker still knows an object: `docker KIND inspect NAME`.
fn exists(kind: &str, name: &str) -> bool {
    docker_ok([kind, "inspect", name])
}

#[test]
fn registry_image_container_and_cleanup() {
    require_docker();
    let registry = Registry::start();
    let repository = format!("{OWNER}/{}", unique("smoke-site"));
    let image = registry.image(&repository, "v1");
    let local_images = format!("reference={}/{repository}", registry.host());
    let container = unique("smoke-site");
    let network = unique("smoke-net");

    {
        let mut cleanup = Cleanup::new();
        cleanup.container(&container);
        cleanup.repository(&format!("{}/{repository}", registry.host()));
        cleanup.network(&network);

        let built = SiteImage::new("v1").build_and_push(&image);
        assert_eq!(image_id(&image), built);
        let tags = http_get(&format!("{}/v2/{repository}/tags/list", registry.url()));
        assert!(
            tags.as_deref().is_some_and(|tags| tags.contains("\"v1\"")),
            "registry does not list tag v1: {tags:?}"
        );

        // Run from the registry, not the local copy, to prove the push.
        assert!(remove_image(&image));
        docker([
            "network",
            "create",
            "--label",
            &format!("{TEST_LABEL}=1"),
            &network,
        ]);
        run_container(
            &container,
            &image,
            &["-p", "127.0.0.1:0:8080", "--network", &network],
        );
        assert_eq!(image_id(&image), built, "pulled image differs from built");

        let url = format!(
            "http://127.0.0.1:{}/",
            published_port(&container, SITE_PORT)
        );
        let body = wait_for(SERVE_TIMEOUT, || http_get(&url));
        assert_eq!(
            body.as_deref(),
            Some("v1\n"),
            "site did not serve v1 at {url}"
        );
        assert_eq!(container_inspect(&container)["State"]["Running"], true);
    }

    assert!(
        !exists("container", &container),
        "cleanup left the container"
    );
    assert_eq!(
        docker_stdout(["images", "-q", "--filter", &local_images]),
        "",
        "cleanup left images of the repository"
    );
    assert!(!exists("network", &network), "cleanup left the network");
}

#[test]
fn versions_differ_and_exiting_variant_exits() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let repository = unique("smoke-variant");
    let v1 = cleanup.image(&format!("{repository}:v1"));
    let v2 = cleanup.image(&format!("{repository}:v2"));
    let broken = cleanup.image(&format!("{repository}:broken"));
    let container = cleanup.container(&unique("smoke-broken"));

    let v1_id = build_site_image(&v1, "v1");
    assert_ne!(
        v1_id,
        build_site_image(&v2, "v2"),
        "versions share an image"
    );
    SiteImage::new("broken").exiting().build(&broken);

    run_container(&container, &broken, &[]);
    let exited = wait_until(SERVE_TIMEOUT, || {
        container_inspect(&container)["State"]["Status"] == "exited"
    });
    assert!(exited, "container of the exiting image is still running");
    assert_eq!(container_inspect(&container)["State"]["ExitCode"], 1);
}
