//! A Drop guard that removes what a test created, whether it passed or
//! panicked. Register a name before creating the thing it names, so a panic
//! half-way still cleans up.
//!
//! Removal order: containers (by name, then by name prefix), compose
//! projects, networks, volumes, images (by name, then by repository).
//! Failures are ignored: the thing may never have been created.
//!
//! Images: rebuilding under a tag leaves the old image behind under its
//! digest (once pushed or pulled) or as a dangling ID. Register the
//! repository to catch the former, the IDs `SiteImage::build` returns to
//! catch the latter. Anything left still carries the test label, which
//! `.ci/run` sweeps.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::docker::docker_ok;

/// See the module doc. Declare it first in a test, so it drops last.
#[derive(Debug, Default)]
pub struct Cleanup {
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
            let _ = Command::new("docker-compose")
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
        remove_all(&["rm", "-f", "-v"], &self.containers);
        for prefix in &self.container_prefixes {
            let filter = format!("name=^/{prefix}");
            remove_listed(&["ps", "-aq", "--filter", &filter], &["rm", "-f", "-v"]);
        }
        for (project, file) in &self.compose_projects {
            Self::remove_compose_project(project, file);
        }
        remove_all(&["network", "rm"], &self.networks);
        remove_all(&["volume", "rm", "-f"], &self.volumes);
        remove_all(&["rmi", "-f"], &self.images);
        for repository in &self.repositories {
            let filter = format!("reference={repository}");
            remove_listed(&["images", "-q", "--filter", &filter], &["rmi", "-f"]);
        }
    }
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

/// Removes each ID that `docker LIST...` prints (nothing if listing fails:
/// this runs in Drop, where a panic would abort a failing test).
fn remove_listed(list: &[&str], remove: &[&str]) {
    let mut ids: Vec<String> = Command::new("docker")
        .args(list)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| {
            String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids.dedup(); // `docker images` lists an image once per tag
    remove_all(remove, &ids);
}
