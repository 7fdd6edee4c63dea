//! Target selection: which running containers and Swarm services an event
//! updates.
//!
//! A container or service is a target when its configured image is the
//! event's repository, its tag policy accepts the pushed tag (by default:
//! the same tag), it does not pin a digest, its labels allow it, and it is
//! not dockhook itself. A service's image is its spec's without the digest
//! pinned behind its tag, so a service created with `repo:tag` takes pushes
//! of that tag. The containers of Swarm tasks are never targets: Swarm
//! replaces them when their service is updated. Pure: the caller lists the
//! containers and services.

use crate::engine::{ContainerInfo, TargetKind, SWARM_SERVICE_LABEL, SWARM_TASK_LABEL};
use crate::image_ref::ImageRef;
use crate::tags::{TagPolicy, POLICY_LABEL};

/// Label that opts a container in (`true`) or out (`false`).
pub const ENABLE_LABEL: &str = "dockhook.enable";

/// Marker in the names of the containers dockhook parks during an update.
pub const PARKED_MARKER: &str = "-dockhook-";

/// The rules that do not come from the event.
#[derive(Debug, Clone, Default)]
pub struct TargetRules {
    /// Only containers labelled `dockhook.enable=true` are eligible.
    pub label_enable: bool,
    /// The container dockhook runs in, never a target (nor the Swarm
    /// service it is a task of).
    pub own_container_id: Option<String>,
}

/// Why a container of the pushed repository was not selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusion {
    PinnedDigest,
    DisabledByLabel,
    NotEnabledByLabel,
    Dockhook,
    Parked,
    /// A container of a Swarm task: its service is the target.
    SwarmTask,
    /// Its tag policy turned the pushed tag down, or is not valid.
    Policy(String),
}

/// A container the event updates, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected<'a> {
    pub container: &'a ContainerInfo,
    /// The tag policy's decision, for the record.
    pub why: String,
}

impl std::fmt::Display for Exclusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Exclusion::PinnedDigest => "pins a digest",
            Exclusion::DisabledByLabel => "labelled dockhook.enable=false",
            Exclusion::NotEnabledByLabel => "not labelled dockhook.enable=true",
            Exclusion::Dockhook => "dockhook itself",
            Exclusion::Parked => "parked by an update in progress",
            Exclusion::SwarmTask => "a Swarm task, updated through its service",
            Exclusion::Policy(why) => why,
        })
    }
}

/// The containers a push of `pushed` selects, and those of its repository
/// that were turned down, with the reason.
pub fn select<'a>(
    containers: &'a [ContainerInfo],
    pushed: &ImageRef,
    rules: &TargetRules,
) -> (Vec<Selected<'a>>, Vec<(&'a ContainerInfo, Exclusion)>) {
    let mut selected = Vec::new();
    let mut excluded = Vec::new();
    let own_service = own_service(containers, rules);
    for container in containers {
        let Ok(configured) = ImageRef::parse(&container.image) else {
            continue;
        };
        if configured.registry != pushed.registry || configured.repository != pushed.repository {
            continue;
        }
        let why = TagPolicy::parse(container.labels.get(POLICY_LABEL).map(String::as_str))
            .and_then(|policy| match policy.decide(&configured.tag, &pushed.tag) {
                // A container on another tag is simply not using this image.
                Err(_) if policy == TagPolicy::Exact => Ok(None),
                decision => decision.map(Some),
            });
        match (why, exclusion(container, &configured, rules, own_service)) {
            (Ok(None), _) => {}
            (Ok(Some(why)), None) => selected.push(Selected { container, why }),
            (Ok(Some(_)), Some(reason)) => excluded.push((container, reason)),
            (Err(why), _) => excluded.push((container, Exclusion::Policy(why))),
        }
    }
    (selected, excluded)
}

/// The running containers dockhook may update: those whose image
/// reference parses, pins no digest, and that no rule excludes.
pub fn watched<'a>(containers: &'a [ContainerInfo], rules: &TargetRules) -> Vec<&'a ContainerInfo> {
    let own_service = own_service(containers, rules);
    containers
        .iter()
        .filter(|c| {
            ImageRef::parse(&c.image)
                .is_ok_and(|image| exclusion(c, &image, rules, own_service).is_none())
        })
        .collect()
}

/// Whether `container` is the container dockhook runs in.
fn is_own_container(container: &ContainerInfo, rules: &TargetRules) -> bool {
    container.kind == TargetKind::Container
        && rules
            .own_container_id
            .as_deref()
            .is_some_and(|own| !own.is_empty() && container.id.starts_with(own))
}

/// The ID of the Swarm service dockhook runs as a task of, if it does:
/// updating it would replace dockhook in the middle of its own update.
fn own_service<'a>(containers: &'a [ContainerInfo], rules: &TargetRules) -> Option<&'a str> {
    containers
        .iter()
        .find(|c| is_own_container(c, rules))
        .and_then(|own| own.labels.get(SWARM_SERVICE_LABEL))
        .map(String::as_str)
}

fn exclusion(
    container: &ContainerInfo,
    configured: &ImageRef,
    rules: &TargetRules,
    own_service: Option<&str>,
) -> Option<Exclusion> {
    let is_self = is_own_container(container, rules)
        || (container.kind == TargetKind::Service && own_service == Some(container.id.as_str()));
    let is_task = container.kind == TargetKind::Container
        && (container.labels.contains_key(SWARM_SERVICE_LABEL)
            || container.labels.contains_key(SWARM_TASK_LABEL));
    let label = container
        .labels
        .get(ENABLE_LABEL)
        .map(|v| v.trim().to_ascii_lowercase());
    if is_self {
        Some(Exclusion::Dockhook)
    } else if is_task {
        Some(Exclusion::SwarmTask)
    } else if container.name.contains(PARKED_MARKER) {
        Some(Exclusion::Parked)
    } else if configured.digest.is_some() {
        Some(Exclusion::PinnedDigest)
    } else if label.as_deref() == Some("false") {
        Some(Exclusion::DisabledByLabel)
    } else if rules.label_enable && label.as_deref() != Some("true") {
        Some(Exclusion::NotEnabledByLabel)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn service(name: &str, image: &str, labels: &[(&str, &str)]) -> ContainerInfo {
        ContainerInfo {
            kind: TargetKind::Service,
            id: format!("{name}-service-id"),
            ..container(name, image, labels)
        }
    }

    fn container(name: &str, image: &str, labels: &[(&str, &str)]) -> ContainerInfo {
        ContainerInfo {
            kind: TargetKind::Container,
            id: format!("{name:0<64}").replace(|c: char| !c.is_ascii_hexdigit(), "a"),
            name: name.to_string(),
            image: image.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        }
    }

    fn names(selected: &[Selected<'_>]) -> Vec<String> {
        selected.iter().map(|s| s.container.name.clone()).collect()
    }

    #[test]
    fn selects_containers_on_the_same_repository_and_tag() {
        let digest = format!("sha256:{}", "1".repeat(64));
        let containers = vec![
            container("short", "alice/site", &[]),
            container("full", "docker.io/alice/site:latest", &[]),
            container("other-tag", "alice/site:v2", &[]),
            container("other-repo", "alice/blog", &[]),
            container("other-registry", "127.0.0.1:5000/alice/site", &[]),
            container("pinned", &format!("alice/site@{digest}"), &[]),
        ];
        let image = ImageRef::parse("alice/site").unwrap();
        let (selected, excluded) = select(&containers, &image, &TargetRules::default());
        assert_eq!(names(&selected), ["short", "full"]);
        assert_eq!(excluded.len(), 1);
        assert_eq!(excluded[0].0.name, "pinned");
        assert_eq!(excluded[0].1, Exclusion::PinnedDigest);
    }

    #[test]
    fn labels_opt_out_and_opt_in() {
        let containers = vec![
            container("plain", "alice/site", &[]),
            container("off", "alice/site", &[(ENABLE_LABEL, "false")]),
            container("on", "alice/site", &[(ENABLE_LABEL, "true")]),
        ];
        let image = ImageRef::parse("alice/site").unwrap();
        let (selected, _) = select(&containers, &image, &TargetRules::default());
        assert_eq!(names(&selected), ["plain", "on"]);
        let rules = TargetRules {
            label_enable: true,
            ..Default::default()
        };
        let (selected, excluded) = select(&containers, &image, &rules);
        assert_eq!(names(&selected), ["on"]);
        let reasons: Vec<_> = excluded.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(
            reasons,
            [Exclusion::NotEnabledByLabel, Exclusion::DisabledByLabel]
        );
    }

    #[test]
    fn never_selects_itself_or_parked_containers() {
        let me = container("dockhook", "alice/site", &[]);
        let rules = TargetRules {
            own_container_id: Some(me.id.clone()),
            ..Default::default()
        };
        let containers = vec![me, container("site-dockhook-old-7", "alice/site", &[])];
        let image = ImageRef::parse("alice/site").unwrap();
        let (selected, excluded) = select(&containers, &image, &rules);
        assert!(selected.is_empty());
        let reasons: Vec<_> = excluded.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(reasons, [Exclusion::Dockhook, Exclusion::Parked]);
    }

    #[test]
    fn tag_policies_choose_which_pushes_move_a_container() {
        let containers = vec![
            container(
                "pinned-minor",
                "alice/site:1.2.3",
                &[(POLICY_LABEL, "semver:minor")],
            ),
            container(
                "pinned-patch",
                "alice/site:1.2.3",
                &[(POLICY_LABEL, "semver:patch")],
            ),
            container("exact", "alice/site:1.2.3", &[]),
            container("broken", "alice/site:1.2.3", &[(POLICY_LABEL, "newest")]),
        ];
        let image = ImageRef::parse("alice/site:1.3.0").unwrap();
        let (selected, excluded) = select(&containers, &image, &TargetRules::default());
        assert_eq!(names(&selected), ["pinned-minor"]);
        assert_eq!(selected[0].why, "1.2.3 → 1.3.0 (policy semver:minor)");
        let excluded: Vec<_> = excluded
            .iter()
            .map(|(c, r)| (c.name.as_str(), r.to_string()))
            .collect();
        assert_eq!(excluded.len(), 2, "{excluded:?}");
        assert_eq!(excluded[0].0, "pinned-patch");
        assert!(excluded[0].1.contains("beyond semver:patch"));
        assert_eq!(excluded[1].0, "broken");
        assert!(excluded[1].1.contains("not a policy"));
    }

    #[test]
    fn services_are_targets_and_their_tasks_are_not() {
        let task = [
            (SWARM_SERVICE_LABEL, "web-service-id"),
            (SWARM_TASK_LABEL, "t1"),
        ];
        let containers = vec![
            service("web", "alice/site:latest", &[]),
            container("web.1.t1", "alice/site:latest", &task),
            service("off", "alice/site:latest", &[(ENABLE_LABEL, "false")]),
        ];
        let image = ImageRef::parse("alice/site").unwrap();
        let (selected, excluded) = select(&containers, &image, &TargetRules::default());
        assert_eq!(names(&selected), ["web"]);
        let reasons: Vec<_> = excluded
            .iter()
            .map(|(c, r)| (c.name.as_str(), r.clone()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("web.1.t1", Exclusion::SwarmTask),
                ("off", Exclusion::DisabledByLabel)
            ]
        );
        let watched: Vec<_> = watched(&containers, &TargetRules::default())
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(watched, ["web"]);
    }

    #[test]
    fn never_selects_the_service_dockhook_runs_in() {
        let me = container(
            "dockhook.1.x",
            "alice/site",
            &[(SWARM_SERVICE_LABEL, "dockhook-service-id")],
        );
        let rules = TargetRules {
            own_container_id: Some(me.id.clone()),
            ..Default::default()
        };
        let containers = vec![me, service("dockhook", "alice/site", &[])];
        let image = ImageRef::parse("alice/site").unwrap();
        let (selected, excluded) = select(&containers, &image, &rules);
        assert!(selected.is_empty());
        let reasons: Vec<_> = excluded.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(reasons, [Exclusion::Dockhook, Exclusion::Dockhook]);
    }

    #[test]
    fn unparsable_configured_images_are_ignored() {
        let containers = vec![container("weird", "sha256:abc", &[])];
        let image = ImageRef::parse("alice/site").unwrap();
        let (selected, excluded) = select(&containers, &image, &TargetRules::default());
        assert!(selected.is_empty() && excluded.is_empty());
    }
}
