//! End-to-end test support: the real world a dockhook test runs against.
//!
//! Included from each integration test file with `mod support;`. It owns the
//! setup that tests share, and nothing about dockhook's own logic:
//!
//! - [`docker`]: the docker CLI (tests may shell out; the product never does),
//!   container inspection, published ports, [`require_docker`], and
//!   [`use_daemon`] to aim all of it at another daemon.
//! - [`daemon`]: a private `dockerd` for tests that restart one.
//! - [`podman`]: a private Podman service, for tests against Podman.
//! - [`registry`]: a real, throwaway `docker-registry` on a loopback port.
//! - [`image`]: tiny busybox web-site images, one per version, imported
//!   from a root filesystem (nothing is pulled, no builder runs).
//! - [`dockhook`]: the product binary under test, with its logs captured.
//! - [`browser`]: a headless Chromium driven over WebDriver, for the page.
//! - [`prometheus`]: a real Prometheus scraping it, and `promtool`.
//! - [`cleanup`]: a Drop guard that removes what a test created, even when it
//!   panics.
//! - [`http`]: a small blocking HTTP client over `std::net::TcpStream`.
//! - [`receiver`]: a webhook receiver that records what it gets, for
//!   notification tests.
//! - [`webhook`]: registry webhook payloads to post to dockhook.
//! - [`scenario`]: a registry with a site repository, webhooks, deployments.
//! - [`sshd`]: a private sshd in front of a Docker daemon, for `ssh://`.
//! - [`tls`]: throwaway certificate authorities (`openssl`), for TLS tests.
//! - [`pebble`]: a real ACME server on loopback, for ACME tests.
//! - [`util`]: unique names, free ports, polling.
//! - [`swarm`]: the machine's engine as a single-node Swarm manager, for
//!   the tests `DOCKHOOK_TEST_SWARM=1` lets run.
//!
//! Every test names its containers, images and networks with [`unique`] and
//! registers them with a [`Cleanup`] before creating them. Everything the
//! support creates carries the [`TEST_LABEL`] label so a CI run can sweep
//! leftovers of a killed run, and fail when a run left any. No test stops,
//! restarts or reconfigures the machine's Docker daemon: one that needs to
//! runs a [`PrivateDaemon`].
//!
//! Traffic stays on loopback: containers are reached through ports published
//! on 127.0.0.1 ([`published_port`]), never through their bridge addresses.

// Each test binary uses only part of this module.
#![allow(dead_code, unused_imports)]

pub mod browser;
pub mod cleanup;
pub mod daemon;
pub mod docker;
pub mod dockhook;
pub mod http;
pub mod image;
pub mod pebble;
pub mod podman;
pub mod prometheus;
pub mod receiver;
pub mod registry;
pub mod scenario;
pub mod sshd;
pub mod swarm;
pub mod tls;
pub mod util;
pub mod webhook;

pub use cleanup::Cleanup;
pub use daemon::PrivateDaemon;
pub use docker::{
    container_inspect, docker, docker_as, docker_command, docker_ok, docker_stdout, image_id,
    published_port, pull, push, remove_image, require_docker, run_container, use_daemon,
    TEST_LABEL,
};
pub use dockhook::{hook_token, hook_token_of, Dockhook, API_TOKEN, OWNER, TOKEN};
pub use http::{connect_from, http_get, post_json, request, request_from, Response};
pub use image::{build_site_image, SiteImage, SITE_PORT};
pub use receiver::Receiver;
pub use registry::Registry;
pub use util::{free_port, unique, wait_for, wait_until};
pub use webhook::dockerhub_payload;
