//! A Drop guard that removes what a test created, whether it passed or
//! panicked. Register a name before creating the thing it names, so a panic
//! half-way still cleans up.
//!
//! Removal order: Swarm services (waiting for their task containers to
//! go), containers (by name, then by name prefix), compose projects,
//! networks, volumes, images (by name, then by repository).
//! Failures are ignored: the thing may never have been created.
//!
//! Volumes: `docker rm -v` removes a container's anonymous volumes only
//! while they are anonymous to it. dockhook recreates a container with its
//! anonymous volumes mounted by name, so after an update they survive the
//! `rm -v`; the guard therefore also removes every anonymous volume (a
//! 64-hex-digit name) that the containers it removes had mounted.
//!
//! Images: rebuilding under a tag leaves the old image behind under its
//! digest (once pushed or pulled) or as a dangling ID. Register the
//! repository to catch the former, the IDs `SiteImage::build` returns to
//! catch the latter. Anything left still carries the test label, which
//! `.ci/run` sweeps, and after the tests reports as a failure.

use std::path::{Path, PathBuf};

use super::docker::{docker_command, docker_ok};

/// See the module doc. Declare it first in a test, so it drops last.
#[derive(Debug, Default)]
pub struct Cleanup {
    services: Vec<String>,
    containers: Vec<String>,
    container_prefixes: Vec<String>,
    compose_projects: Vec<(String, PathBuf)>,
    networks: Vec<String>,
    volumes: Vec<String>,
    images: Vec<String>,
    repositories: Vec<String>,
}

impl Cleanup {
    pub fn new() -> Cleanup {
        Cleanup::default()
    }

    /// Removes Swarm service `name` and the containers of its tasks.
    /// Returns `name`.
    pub fn service(&mut self, name: &str) -> String {
        remember(&mut self.services, name)
    }

    /// Removes container `name` (`docker rm -f -v`). Returns `name`.
    pub fn container(&mut self, name: &str) -> String {
        remember(&mut self.containers, name)
    }

    /// Removes every container whose name starts with `prefix`, such as the
    /// renamed or temporary containers an update may leave. Returns `prefix`.
    pub fn containers_with_prefix(&mut self, prefix: &str) -> String {
        remember(&mut self.container_prefixes, prefix)
    }

    /// Takes compose project `project` down with its volumes; also removes
    /// whatever carries its compose label if `compose_file` is gone by then.
    /// Returns `project`.
    pub fn compose_project(&mut self, project: &str, compose_file: &Path) -> String {
        self.compose_projects
            .push((project.to_string(), compose_file.to_path_buf()));
        project.to_string()
    }

    /// Removes network `name`. Returns `name`.
    pub fn network(&mut self, name: &str) -> String {
        remember(&mut self.networks, name)
    }

    /// Removes volume `name`. Returns `name`.
    pub fn volume(&mut self, name: &str) -> String {
        remember(&mut self.volumes, name)
    }

    /// Removes image `image` (a tag or an ID; `docker rmi -f`). Returns it.
    pub fn image(&mut self, image: &str) -> String {
        remember(&mut self.images, image)
    }

    /// Removes every image in `repository` (`HOST/NAME`, without a tag):
    /// all its tags, and images known only by a digest in it, such as those
    /// dockhook pulled. Returns `repository`.
    pub fn repository(&mut self, repository: &str) -> String {
        remember(&mut self.repositories, repository)
    }

    fn remove_compose_project(project: &str, compose_file: &Path) {
        if compose_file.exists() {
            let file = compose_file.to_string_lossy();
            let mut command = std::process::Command::new("docker-compose");
            if let Some(host) = super::docker::daemon_host() {
                command.env("DOCKER_HOST", host);
            }
            let _ = command
                .args(["-p", project, "-f", &file, "down", "-v", "--remove-orphans"])
                .output();
        }
        // Whatever `down` missed (or all of it, if the file is gone).
        let label = format!("label=com.docker.compose.project={project}");
        remove_listed(&["ps", "-aq", "--filter", &label], &["rm", "-f", "-v"]);
        remove_listed(
            &["network", "ls", "-q", "--filter", &label],
            &["network", "rm"],
        );
        remove_listed(
            &["volume", "ls", "-q", "--filter", &label],
            &["volume", "rm", "-f"],
        );
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.remove_services();
        let containers = self.containers_to_remove();
        let anonymous = anonymous_volumes(&containers);
        remove_all(&["rm", "-f", "-v"], &containers);
        for (project, file) in &self.compose_projects {
            Self::remove_compose_project(project, file);
        }
        remove_all(&["network", "rm"], &self.networks);
        remove_all(&["volume", "rm", "-f"], &self.volumes);
        remove_all(&["volume", "rm", "-f"], &anonymous);
        remove_all(&["rmi", "-f"], &self.images);
        for repository in &self.repositories {
            let filter = format!("reference={repository}");
            remove_listed(&["images", "-q", "--filter", &filter], &["rmi", "-f"]);
        }
    }
}

impl Cleanup {
    /// Removes the registered services, then their task containers, which
    /// Swarm stops on its own time: a network is in use until they are
    /// gone.
    fn remove_services(&self) {
        if self.services.is_empty() {
            return;
        }
        remove_all(&["service", "rm"], &self.services);
        let tasks = |service: &String| {
            let label = format!("label=com.docker.swarm.service.name={service}");
            list(&["ps", "-aq", "--filter", &label])
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.services.iter().any(|s| !tasks(s).is_empty())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        for service in &self.services {
            remove_all(&["rm", "-f", "-v"], &tasks(service));
        }
    }

    /// The IDs of the registered containers that exist, by name and by
    /// prefix, and of the containers of the registered compose projects.
    fn containers_to_remove(&self) -> Vec<String> {
        let mut filters: Vec<String> = self
            .containers
            .iter()
            .map(|name| format!("name=^/{name}$"))
            .chain(
                self.container_prefixes
                    .iter()
                    .map(|prefix| format!("name=^/{prefix}")),
            )
            .collect();
        filters.extend(
            self.compose_projects
                .iter()
                .map(|(project, _)| format!("label=com.docker.compose.project={project}")),
        );
        let mut ids: Vec<String> = filters
            .iter()
            .flat_map(|filter| list(&["ps", "-aq", "--no-trunc", "--filter", filter]))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// The anonymous volumes (named by 64 hex digits) that `containers` mount.
fn anonymous_volumes(containers: &[String]) -> Vec<String> {
    if containers.is_empty() {
        return Vec::new();
    }
    let format = r#"{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}"#;
    let mut args = vec!["container", "inspect", "--format", format];
    args.extend(containers.iter().map(String::as_str));
    let mut volumes: Vec<String> = list(&args)
        .into_iter()
        .filter(|name| name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    volumes.sort();
    volumes.dedup();
    volumes
}

fn remember(list: &mut Vec<String>, name: &str) -> String {
    list.push(name.to_string());
    name.to_string()
}

/// `docker REMOVE... NAME...` in one call, if there is anything to remove.
fn remove_all(remove: &[&str], names: &[String]) {
    if !names.is_empty() {
        docker_ok(
            remove
                .iter()
                .copied()
                .chain(names.iter().map(String::as_str)),
        );
    }
}

/// Removes each ID that `docker LIST...` prints.
fn remove_listed(list_args: &[&str], remove: &[&str]) {
    let mut ids = list(list_args);
    ids.sort();
    ids.dedup(); // `docker images` lists an image once per tag
    remove_all(remove, &ids);
}

/// The words `docker ARGS...` prints; nothing if it fails (this runs in
/// Drop, where a panic would abort a failing test).
fn list(args: &[&str]) -> Vec<String> {
    docker_command()
        .args(args)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| {
            String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}
