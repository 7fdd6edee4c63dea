//! The usual end-to-end setting: a registry holding `OWNER/NAME:latest` at
//! version v1, and helpers to push new versions, send Docker Hub webhooks
//! and wait for dockhook's verdict.

use std::time::Duration;

use serde_json::Value;

use super::cleanup::Cleanup;
use super::dockhook::{hook_token, Dockhook, API_TOKEN, OWNER};
use super::http::{post_json, request};
use super::image::SiteImage;
use super::registry::Registry;
use super::util::{unique, wait_for};
use super::webhook::dockerhub_payload;

/// How long a test waits for a deployment to end.
pub const DEPLOY_TIMEOUT: Duration = Duration::from_secs(90);

/// A running dockhook the test talks to: a process or a container.
pub trait Endpoint {
    /// `http://127.0.0.1:PORT{path}`.
    fn url(&self, path: &str) -> String;
    /// Its log so far, for failure messages.
    fn log_text(&self) -> String;
}

impl Endpoint for Dockhook {
    fn url(&self, path: &str) -> String {
        Dockhook::url(self, path)
    }

    fn log_text(&self) -> String {
        Dockhook::log_text(self)
    }
}

/// A registry with one repository of the test owner. Declared after the
/// test's `Cleanup`, so it is dropped (the registry stopped) before it.
pub struct Site {
    pub registry: Registry,
    /// `OWNER/NAME`, as Docker Hub names it.
    pub repo: String,
    /// Short name of the repository, unique per test.
    pub name: String,
}

impl Site {
    /// Starts a registry and pushes v1 of a new repository to it as
    /// `latest`; returns the site and v1's image ID.
    pub fn new(cleanup: &mut Cleanup, prefix: &str) -> (Site, String) {
        Self::on(Registry::start(), cleanup, prefix)
    }

    /// Like [`Site::new`], on a registry the test started.
    pub fn on(registry: Registry, cleanup: &mut Cleanup, prefix: &str) -> (Site, String) {
        let name = unique(prefix);
        let repo = format!("{OWNER}/{name}");
        cleanup.repository(&format!("{}/{repo}", registry.host()));
        let site = Site {
            registry,
            repo,
            name,
        };
        let v1 = site.push(cleanup, "latest", SiteImage::new("v1"));
        (site, v1)
    }

    /// `HOST/OWNER/NAME:tag`.
    pub fn image(&self, tag: &str) -> String {
        self.registry.image(&self.repo, tag)
    }

    /// Builds `image` as `tag`, pushes it, then removes the local tag so that
    /// only a pull brings it back (as on a real server, where images are
    /// built elsewhere). Returns its image ID.
    pub fn push(&self, cleanup: &mut Cleanup, tag: &str, image: SiteImage) -> String {
        let reference = self.image(tag);
        let id = image.build_and_push(&reference);
        cleanup.image(&id);
        super::docker::docker(["rmi", &reference]);
        id
    }

    /// POSTs a Docker Hub push webhook for `tag` of this repository.
    pub fn hook(&self, dockhook: &impl Endpoint, tag: &str) -> (u16, Value) {
        let body = dockerhub_payload(OWNER, &self.name, tag).to_string();
        let (status, body) = post_json(&dockhook.url(&hook_path()), &body, &[]);
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("webhook answer is not JSON ({e}): {body}"));
        (status, json)
    }

    /// Sends the webhook, expects it accepted with exactly one deployment,
    /// and waits for that deployment to end.
    pub fn deploy(&self, dockhook: &impl Endpoint, tag: &str) -> Value {
        let (status, answer) = self.hook(dockhook, tag);
        assert_eq!(status, 202, "webhook not accepted: {answer}");
        let ids = answer["deployments"].as_array().expect("deployment ids");
        assert_eq!(ids.len(), 1, "{answer}");
        wait_deployment(dockhook, ids[0].as_i64().unwrap())
    }
}

/// A registry with basic auth (user `deployer`), where `OWNER/NAME:latest`
/// was v1 when a container started on it and is now v2: a private
/// registry's update waiting to be deployed. Declared after the test's
/// `Cleanup`, like [`Site`].
pub struct PrivateSite {
    pub registry: Registry,
    /// A Docker client configuration (`DOCKER_CONFIG`) logged in to it.
    pub logins: tempfile::TempDir,
    /// Short name of the repository, unique per test; also the container's.
    pub name: String,
    /// Image IDs of the two versions.
    pub v1: String,
    pub v2: String,
}

impl PrivateSite {
    /// Pushes v1, runs the container (with `args` for `docker run`), pushes
    /// v2 and removes its local tag.
    pub fn new(cleanup: &mut Cleanup, prefix: &str, args: &[&str]) -> PrivateSite {
        let registry = Registry::start_with_login("deployer", "s3cret-pw");
        let host = registry.host();
        let logins = tempfile::tempdir().expect("cannot create a Docker config directory");
        let login = ["login", &host, "-u", "deployer", "-p", "s3cret-pw"];
        super::docker::docker_as(logins.path(), &login);
        let name = unique(prefix);
        let image = registry.image(&format!("{OWNER}/{name}"), "latest");
        cleanup.repository(&format!("{host}/{OWNER}/{name}"));
        let container = cleanup.container(&name);
        cleanup.containers_with_prefix(&format!("{name}-dockhook-"));
        let mut push = |version: &str| {
            let id = SiteImage::new(version).build(&image);
            cleanup.image(&id);
            super::docker::docker_as(logins.path(), &["push", &image]);
            id
        };
        let v1 = push("v1");
        super::docker::run_container(&container, &image, args);
        let v2 = push("v2");
        super::docker::docker(["rmi", &image]);
        PrivateSite {
            registry,
            logins,
            name,
            v1,
            v2,
        }
    }

    /// The logged-in configuration's directory, for `DOCKER_CONFIG`.
    pub fn logins_dir(&self) -> String {
        self.logins.path().to_string_lossy().to_string()
    }
}

/// The Docker Hub hook path with the test instance's token.
pub fn hook_path() -> String {
    format!("/hooks/dockerhub/{}", hook_token("dockerhub"))
}

/// GETs an API path with the bearer token; returns `(status, json)`.
pub fn api(dockhook: &impl Endpoint, path: &str) -> (u16, Value) {
    let auth = format!("Bearer {API_TOKEN}");
    let response = request("GET", &dockhook.url(path), &[("Authorization", &auth)], b"")
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let json = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    (response.status, json)
}

/// POSTs `body` to an API path with the bearer token; returns `(status,
/// json)`.
pub fn api_post(dockhook: &impl Endpoint, path: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {API_TOKEN}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let response = request("POST", &dockhook.url(path), &headers, body.as_bytes())
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let json = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    (response.status, json)
}

/// Waits until deployment `id` is in `state` and returns it.
pub fn wait_state(dockhook: &impl Endpoint, id: i64, state: &str) -> Value {
    wait_for(DEPLOY_TIMEOUT, || {
        let (_, deployment) = api(dockhook, &format!("/api/deployments/{id}"));
        (deployment["state"] == state).then_some(deployment)
    })
    .unwrap_or_else(|| {
        let (_, deployment) = api(dockhook, &format!("/api/deployments/{id}"));
        panic!("deployment {id} never was {state}: {deployment}")
    })
}

/// Waits until deployment `id` is in a final state and returns it.
pub fn wait_deployment(dockhook: &impl Endpoint, id: i64) -> Value {
    wait_for(DEPLOY_TIMEOUT, || {
        let (status, deployment) = api(dockhook, &format!("/api/deployments/{id}"));
        assert_eq!(status, 200, "{deployment}");
        let state = deployment["state"].as_str().unwrap_or_default();
        [
            "succeeded",
            "skipped",
            "failed",
            "rolled_back",
            "rollback_failed",
            "available",
            "rejected",
        ]
        .contains(&state)
        .then_some(deployment)
    })
    .unwrap_or_else(|| {
        panic!(
            "deployment {id} did not end within {DEPLOY_TIMEOUT:?}; log:\n{}",
            dockhook.log_text()
        )
    })
}

/// The steps of deployment `id`, oldest first: its states and their notes.
pub fn steps(dockhook: &impl Endpoint, id: i64) -> Vec<(String, String)> {
    let (status, deployment) = api(dockhook, &format!("/api/deployments/{id}"));
    assert_eq!(status, 200, "{deployment}");
    deployment["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|step| {
            let state = step["state"].as_str().unwrap_or_default().to_string();
            (
                state,
                step["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Asserts that deployment `id` went through `states` in this order.
pub fn assert_steps_in_order(dockhook: &impl Endpoint, id: i64, states: &[&str]) {
    let steps = steps(dockhook, id);
    let positions: Vec<Option<usize>> = states
        .iter()
        .map(|state| steps.iter().position(|(s, _)| s == state))
        .collect();
    let ordered =
        positions.iter().all(Option::is_some) && positions.windows(2).all(|w| w[0] < w[1]);
    assert!(ordered, "expected {states:?} in this order, got {steps:?}");
}

/// The containers (running or not) whose name starts with `prefix`.
pub fn containers_named(prefix: &str) -> Vec<String> {
    let filter = format!("name=^/{prefix}");
    super::docker::docker_stdout(["ps", "-a", "--format", "{{.Names}}", "--filter", &filter])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether the engine still has image `id`.
pub fn image_exists(id: &str) -> bool {
    super::docker::docker_ok(["image", "inspect", id])
}

/// A site container named `name` on `site`'s `latest`, with `args` for
/// `docker run`; its name and dockhook's temporary ones are cleaned up.
pub fn run_site(cleanup: &mut Cleanup, site: &Site, name: &str, args: &[&str]) -> String {
    let name = cleanup.container(name);
    cleanup.containers_with_prefix(&format!("{name}-dockhook-"));
    super::docker::run_container(&name, &site.image("latest"), args);
    name
}

/// Exactly one container has the target's name (none of dockhook's
/// temporary ones is left), it runs, and it runs `image`.
pub fn assert_one_running(name: &str, image: &str) {
    assert_eq!(
        containers_named(name),
        vec![name.to_string()],
        "leftover containers"
    );
    let container = super::docker::container_inspect(name);
    assert_eq!(container["State"]["Running"], true, "{name} is not running");
    assert_eq!(container["Image"], image, "{name} runs the wrong image");
}
