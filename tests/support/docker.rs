//! The docker CLI, as tests use it to set up and inspect the world.
//!
//! Every helper panics with the command and its stderr when docker fails,
//! except [`docker_ok`] and [`remove_image`], which report or ignore failure.
//!
//! Every docker command the support runs comes from [`docker_command`], so a
//! test binary can point all of them, and the dockhook it starts, at another
//! daemon with [`use_daemon`] (a private `dockerd`, see [`super::daemon`]).

use std::ffi::OsStr;
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

/// Label put on every container and image the support creates
/// (`dockhook-test=1`), so `.ci/run` can sweep leftovers of a killed run.
pub const TEST_LABEL: &str = "dockhook-test";

/// The daemon every docker command of this process goes to, when a test
/// chose one with [`use_daemon`].
static DAEMON: OnceLock<String> = OnceLock::new();

/// Points every docker command the support runs from now on, and every
/// dockhook it starts, at the daemon listening on `host`
/// (`unix:///…/docker.sock`). Once per process: a test binary that calls it
/// holds only tests for that daemon.
pub fn use_daemon(host: &str) {
    DAEMON
        .set(host.to_string())
        .unwrap_or_else(|_| panic!("use_daemon({host}) called twice in one test binary"));
}

/// The daemon chosen with [`use_daemon`], if any; otherwise commands go
/// where the docker CLI's own configuration says (DOCKER_HOST, or the
/// default socket).
pub fn daemon_host() -> Option<&'static str> {
    DAEMON.get().map(String::as_str)
}

/// `docker`, aimed at the daemon chosen with [`use_daemon`], if any.
pub fn docker_command() -> Command {
    let mut command = Command::new("docker");
    if let Some(host) = daemon_host() {
        command.env("DOCKER_HOST", host);
    }
    command
}

/// Panics with a clear message unless a Docker engine answers.
/// End-to-end tests call it first: they never skip.
pub fn require_docker() {
    let output = docker_command()
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    match output {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "the Docker engine does not answer (`docker version` failed: {}). \
             These tests need a running dockerd: start it, or run .ci/run as root.",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(err) => panic!(
            "cannot run the docker CLI ({err}). These tests need docker and a running \
             dockerd: install docker.io, or run .ci/run as root."
        ),
    }
}

/// Runs `docker ARGS...` and returns its output; panics with the command and
/// its stderr if it fails.
pub fn docker<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = docker_command();
    command.args(args);
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    output
}

/// Like [`docker`], but returns trimmed stdout as a string.
pub fn docker_stdout<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    String::from_utf8_lossy(&docker(args).stdout)
        .trim()
        .to_string()
}

/// Runs `docker ARGS...` quietly and tells whether it succeeded.
pub fn docker_ok<I, S>(args: I) -> bool
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    docker_command()
        .args(args)
        .output()
        .is_ok_and(|output| output.status.success())
}

/// `docker inspect NAME` as JSON: the one object, not the array around it.
pub fn container_inspect(name: &str) -> Value {
    let output = docker(["container", "inspect", name]);
    let mut all: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("docker inspect {name} printed no JSON: {err}"));
    all.get_mut(0)
        .map(Value::take)
        .unwrap_or_else(|| panic!("docker inspect {name} returned no object"))
}

/// The host port on which a running container publishes `container_port/tcp`
/// (publish it with `-p 127.0.0.1:0:PORT` or `-p 127.0.0.1:HOSTPORT:PORT`).
pub fn published_port(container: &str, container_port: u16) -> u16 {
    let inspect = container_inspect(container);
    let key = format!("{container_port}/tcp");
    let bindings = &inspect["NetworkSettings"]["Ports"][&key];
    bindings
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|binding| binding["HostPort"].as_str()?.parse().ok())
        .unwrap_or_else(|| {
            panic!("container {container} publishes no host port for {key}: {bindings}")
        })
}

/// `docker run -d --name NAME --label dockhook-test=1 EXTRA... IMAGE`;
/// returns the container ID. Register `name` with a `Cleanup` first.
pub fn run_container(name: &str, image: &str, extra_args: &[&str]) -> String {
    let label = format!("{TEST_LABEL}=1");
    let mut args = vec!["run", "-d", "--name", name, "--label", &label];
    args.extend_from_slice(extra_args);
    args.push(image);
    docker_stdout(args)
}

/// `docker ARGS` with the client configuration in `config_dir`, so a test
/// login never touches the machine's own; panics if it fails.
pub fn docker_as(config_dir: &std::path::Path, args: &[&str]) {
    let output = docker_command()
        .env("DOCKER_CONFIG", config_dir)
        .args(args)
        .output()
        .expect("cannot run docker");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `docker push IMAGE`.
pub fn push(image: &str) {
    docker(["push", image]);
}

/// `docker pull IMAGE`.
pub fn pull(image: &str) {
    docker(["pull", image]);
}

/// The local image ID (`sha256:...`) that `image` (a tag or ID) names.
pub fn image_id(image: &str) -> String {
    docker_stdout(["image", "inspect", "--format", "{{.Id}}", image])
}

/// `docker rmi -f IMAGE`; true if it was removed, false if it was not there
/// or could not be removed (still in use by a container, say).
pub fn remove_image(image: &str) -> bool {
    docker_ok(["rmi", "-f", image])
}
