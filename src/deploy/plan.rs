//! Planning a replacement: from an inspected container to the options that
//! create its successor. Pure.
//!
//! What `docker inspect` shows is the container's own settings merged with
//! the defaults of the image it was created from. Copying all of it would pin
//! the old image's defaults (its `CMD`, `ENV`, labels, healthcheck…) onto the
//! new image and undo the very change being deployed. So the plan keeps what
//! differs from the old image's defaults and lets the new image supply the
//! rest, as `docker run` and compose would on a fresh start.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig, ImageConfig,
    Mount, MountType, NetworkingConfig,
};

/// How to create the new container.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatePlan {
    pub body: ContainerCreateBody,
    /// Networks beyond the first: API 1.41 connects only one at create time,
    /// so these are connected before the container starts.
    pub extra_networks: Vec<(String, EndpointSettings)>,
}

impl CreatePlan {
    /// Takes the network-scoped aliases (`web` behind a proxy) out of the
    /// plan and returns the endpoints that had any, to connect again with
    /// them once the container is ready: a container that answers to a
    /// shared alias gets requests as soon as it starts, before it listens.
    pub fn defer_aliases(&mut self) -> Vec<(String, EndpointSettings)> {
        let mut deferred = Vec::new();
        let first = self
            .body
            .networking_config
            .iter_mut()
            .flat_map(|c| c.endpoints_config.iter_mut().flatten());
        for (network, endpoint) in
            first.chain(self.extra_networks.iter_mut().map(|(n, e)| (&*n, e)))
        {
            if endpoint.aliases.is_some() {
                deferred.push((network.clone(), endpoint.clone()));
                endpoint.aliases = None;
            }
        }
        deferred
    }
}

/// The plan that recreates `container` from `image` (the reference it was
/// configured with), given the configuration of the image it ran before.
pub fn plan(
    container: &ContainerInspectResponse,
    old_image: Option<&ImageConfig>,
    image: &str,
) -> CreatePlan {
    let config = container.config.clone().unwrap_or_default();
    let defaults = old_image.cloned().unwrap_or_default();
    let id = container.id.as_deref().unwrap_or_default();
    let mut host_config = container.host_config.clone().unwrap_or_default();
    let mode = host_config.network_mode.as_deref().unwrap_or_default();
    let shares_stack = mode == "host" || mode.starts_with("container:");
    keep_anonymous_volumes(container, &mut host_config);
    host_config.links = host_config
        .links
        .map(|links| links.iter().filter_map(|l| create_link(l)).collect());
    let (networking_config, extra_networks) = networks(container, &host_config, id);

    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        // The default hostname is the old ID; a shared network stack brings
        // its own, and Docker refuses one set beside it.
        hostname: config
            .hostname
            .filter(|h| !h.is_empty() && !id.starts_with(h.as_str()) && !shares_stack),
        domainname: config.domainname.filter(|d| !d.is_empty() && !shares_stack),
        user: differs(config.user, defaults.user).filter(|u| !u.is_empty()),
        attach_stdin: config.attach_stdin,
        attach_stdout: config.attach_stdout,
        attach_stderr: config.attach_stderr,
        exposed_ports: minus(config.exposed_ports, defaults.exposed_ports),
        tty: config.tty,
        open_stdin: config.open_stdin,
        stdin_once: config.stdin_once,
        env: minus(config.env, defaults.env),
        cmd: differs(config.cmd, defaults.cmd),
        healthcheck: differs(config.healthcheck, defaults.healthcheck),
        args_escaped: None,
        volumes: minus(config.volumes, defaults.volumes),
        working_dir: differs(config.working_dir, defaults.working_dir).filter(|w| !w.is_empty()),
        entrypoint: differs(config.entrypoint, defaults.entrypoint),
        network_disabled: config.network_disabled,
        on_build: None,
        labels: labels_minus(config.labels, defaults.labels),
        stop_signal: differs(config.stop_signal, defaults.stop_signal),
        stop_timeout: config.stop_timeout,
        shell: differs(config.shell, defaults.shell),
        host_config: Some(host_config),
        networking_config,
    };
    CreatePlan {
        body,
        extra_networks,
    }
}

/// The container's value when the image did not supply it.
fn differs<T: PartialEq>(value: Option<T>, default: Option<T>) -> Option<T> {
    if value == default {
        None
    } else {
        value
    }
}

/// The container's list entries that the image did not supply.
fn minus(values: Option<Vec<String>>, defaults: Option<Vec<String>>) -> Option<Vec<String>> {
    let defaults = defaults.unwrap_or_default();
    let kept: Vec<String> = values?
        .into_iter()
        .filter(|v| !defaults.contains(v))
        .collect();
    (!kept.is_empty()).then_some(kept)
}

fn labels_minus(
    labels: Option<HashMap<String, String>>,
    defaults: Option<HashMap<String, String>>,
) -> Option<HashMap<String, String>> {
    let defaults = defaults.unwrap_or_default();
    let kept: HashMap<_, _> = labels?
        .into_iter()
        .filter(|(k, v)| defaults.get(k) != Some(v))
        .collect();
    (!kept.is_empty()).then_some(kept)
}

/// Volumes created for the image's `VOLUME`s are named only in the
/// container's mount list; mounting them again by name keeps their data, as
/// compose does.
fn keep_anonymous_volumes(container: &ContainerInspectResponse, host_config: &mut HostConfig) {
    let mut covered: Vec<String> = Vec::new();
    for bind in host_config.binds.iter().flatten() {
        if let Some(target) = bind.split(':').nth(1) {
            covered.push(target.to_string());
        }
    }
    covered.extend(
        host_config
            .mounts
            .iter()
            .flatten()
            .filter_map(|m| m.target.clone()),
    );
    covered.extend(host_config.tmpfs.iter().flat_map(|t| t.keys().cloned()));
    let anonymous: Vec<Mount> = container
        .mounts
        .iter()
        .flatten()
        .filter(|m| m.typ.as_deref() == Some("volume"))
        .filter_map(|m| {
            let (name, target) = (m.name.clone()?, m.destination.clone()?);
            (!covered.contains(&target)).then(|| Mount {
                typ: Some(MountType::VOLUME),
                source: Some(name),
                target: Some(target),
                read_only: m.rw.map(|rw| !rw),
                ..Default::default()
            })
        })
        .collect();
    if !anonymous.is_empty() {
        host_config
            .mounts
            .get_or_insert_with(Vec::new)
            .extend(anonymous);
    }
}

/// Inspect shows legacy links as `/other:/this/alias`; create wants `other:alias`.
fn create_link(link: &str) -> Option<String> {
    let (other, alias) = link.split_once(':')?;
    let alias = alias.rsplit('/').next()?;
    Some(format!("{}:{alias}", other.trim_start_matches('/')))
}

/// The endpoint settings to recreate: the network named by the network mode
/// at create time, the others afterwards. Runtime facts (IDs, addresses
/// assigned by IPAM, the old container's own ID alias) are dropped.
fn networks(
    container: &ContainerInspectResponse,
    host_config: &HostConfig,
    id: &str,
) -> (Option<NetworkingConfig>, Vec<(String, EndpointSettings)>) {
    let mode = host_config.network_mode.as_deref().unwrap_or("default");
    if matches!(mode, "host" | "none") || mode.starts_with("container:") {
        return (None, Vec::new());
    }
    let primary = if mode == "default" { "bridge" } else { mode };
    let attached = container
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.clone())
        .unwrap_or_default();
    let mut first = None;
    let mut extra = Vec::new();
    let mut names: Vec<_> = attached.keys().cloned().collect();
    names.sort();
    for name in names {
        let endpoint = endpoint_to_recreate(&name, &attached[&name], id);
        if name == primary {
            first = Some((name, endpoint));
        } else {
            extra.push((name, endpoint));
        }
    }
    let networking_config = first.map(|(name, endpoint)| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(name, endpoint)])),
    });
    (networking_config, extra)
}

pub(super) fn endpoint_to_recreate(
    network: &str,
    endpoint: &EndpointSettings,
    id: &str,
) -> EndpointSettings {
    // The default bridge has no aliases; elsewhere Docker adds the short ID
    // of each container itself.
    let aliases = endpoint
        .aliases
        .as_ref()
        .filter(|_| network != "bridge")
        .map(|aliases| {
            aliases
                .iter()
                .filter(|a| a.is_empty() || !id.starts_with(a.as_str()))
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|a| !a.is_empty());
    EndpointSettings {
        ipam_config: endpoint.ipam_config.clone(),
        links: endpoint.links.clone().filter(|l| !l.is_empty()),
        aliases,
        driver_opts: endpoint.driver_opts.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{
        ContainerConfig, HealthConfig, MountPoint, NetworkSettings, PortBinding, RestartPolicy,
        RestartPolicyNameEnum,
    };

    const ID: &str = "4d7e1f0c2b3a4d7e1f0c2b3a4d7e1f0c2b3a4d7e1f0c2b3a4d7e1f0c2b3a0000";

    fn strings(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    fn image_defaults() -> ImageConfig {
        ImageConfig {
            env: strings(&["PATH=/bin", "VERSION=1"]),
            cmd: strings(&["busybox", "httpd", "-f"]),
            working_dir: Some("/www".into()),
            exposed_ports: strings(&["8080/tcp"]),
            volumes: strings(&["/data"]),
            labels: Some(HashMap::from([(
                "org.opencontainers.image.version".into(),
                "1".into(),
            )])),
            healthcheck: Some(HealthConfig {
                test: strings(&["CMD", "true"]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn inspected() -> ContainerInspectResponse {
        let mut labels = image_defaults().labels.unwrap();
        labels.insert("com.docker.compose.service".into(), "web".into());
        labels.insert("com.docker.compose.project".into(), "blog".into());
        ContainerInspectResponse {
            id: Some(ID.into()),
            name: Some("/blog_web_1".into()),
            config: Some(ContainerConfig {
                hostname: Some(ID[..12].into()),
                image: Some("127.0.0.1:5000/alice/site".into()),
                env: strings(&["PATH=/bin", "VERSION=1", "SECRET_KEY=x"]),
                cmd: strings(&["busybox", "httpd", "-f"]),
                working_dir: Some("/www".into()),
                user: Some("1000".into()),
                exposed_ports: strings(&["8080/tcp", "9090/tcp"]),
                volumes: strings(&["/data"]),
                labels: Some(labels),
                healthcheck: image_defaults().healthcheck,
                stop_signal: Some("SIGQUIT".into()),
                stop_timeout: Some(3),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                binds: strings(&["/srv/www:/www:ro"]),
                network_mode: Some("blog_default".into()),
                port_bindings: Some(HashMap::from([(
                    "8080/tcp".into(),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some("8081".into()),
                    }]),
                )])),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: Some(0),
                }),
                links: strings(&["/db:/blog_web_1/database"]),
                ..Default::default()
            }),
            mounts: Some(vec![
                MountPoint {
                    typ: Some("bind".into()),
                    source: Some("/srv/www".into()),
                    destination: Some("/www".into()),
                    rw: Some(false),
                    ..Default::default()
                },
                MountPoint {
                    typ: Some("volume".into()),
                    name: Some("f00dcafe".into()),
                    destination: Some("/data".into()),
                    rw: Some(true),
                    ..Default::default()
                },
            ]),
            network_settings: Some(NetworkSettings {
                networks: Some(HashMap::from([
                    (
                        "blog_default".into(),
                        EndpointSettings {
                            aliases: strings(&["web", &ID[..12]]),
                            network_id: Some("n1".into()),
                            endpoint_id: Some("e1".into()),
                            ip_address: Some("172.20.0.5".into()),
                            gateway: Some("172.20.0.1".into()),
                            ..Default::default()
                        },
                    ),
                    (
                        "proxy".into(),
                        EndpointSettings {
                            aliases: strings(&["blog"]),
                            ..Default::default()
                        },
                    ),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_what_the_user_set_and_drops_image_defaults() {
        let plan = plan(
            &inspected(),
            Some(&image_defaults()),
            "127.0.0.1:5000/alice/site",
        );
        let body = &plan.body;
        assert_eq!(body.image.as_deref(), Some("127.0.0.1:5000/alice/site"));
        assert_eq!(body.env, strings(&["SECRET_KEY=x"]));
        assert_eq!(body.cmd, None, "the new image's CMD applies");
        assert_eq!(body.working_dir, None);
        assert_eq!(body.healthcheck, None);
        assert_eq!(body.user.as_deref(), Some("1000"));
        assert_eq!(body.exposed_ports, strings(&["9090/tcp"]));
        assert_eq!(body.volumes, None);
        assert_eq!(body.hostname, None, "the default hostname is the old ID");
        assert_eq!(body.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(body.stop_timeout, Some(3));
        let labels = body.labels.as_ref().unwrap();
        assert_eq!(
            labels.get("com.docker.compose.service").map(String::as_str),
            Some("web")
        );
        assert!(!labels.contains_key("org.opencontainers.image.version"));
    }

    #[test]
    fn keeps_host_config_and_anonymous_volumes() {
        let plan = plan(&inspected(), Some(&image_defaults()), "x");
        let host = plan.body.host_config.as_ref().unwrap();
        assert_eq!(host.binds, strings(&["/srv/www:/www:ro"]));
        assert_eq!(
            host.restart_policy.as_ref().unwrap().name,
            Some(RestartPolicyNameEnum::UNLESS_STOPPED)
        );
        assert_eq!(
            host.port_bindings.as_ref().unwrap()["8080/tcp"]
                .as_ref()
                .unwrap()[0]
                .host_port
                .as_deref(),
            Some("8081")
        );
        let mounts = host.mounts.as_ref().unwrap();
        assert_eq!(mounts.len(), 1, "the bind is already in Binds");
        assert_eq!(mounts[0].source.as_deref(), Some("f00dcafe"));
        assert_eq!(mounts[0].target.as_deref(), Some("/data"));
        assert_eq!(mounts[0].typ, Some(MountType::VOLUME));
        assert_eq!(host.links, strings(&["db:database"]));
    }

    #[test]
    fn networks_keep_aliases_but_not_runtime_facts() {
        let plan = plan(&inspected(), Some(&image_defaults()), "x");
        let endpoints = plan
            .body
            .networking_config
            .as_ref()
            .unwrap()
            .endpoints_config
            .as_ref()
            .unwrap();
        let primary = &endpoints["blog_default"];
        assert_eq!(primary.aliases, strings(&["web"]));
        assert_eq!(primary.ip_address, None);
        assert_eq!(primary.network_id, None);
        assert_eq!(plan.extra_networks.len(), 1);
        assert_eq!(plan.extra_networks[0].0, "proxy");
        assert_eq!(plan.extra_networks[0].1.aliases, strings(&["blog"]));
    }

    #[test]
    fn aliases_can_be_deferred_until_the_container_is_ready() {
        let mut plan = plan(&inspected(), Some(&image_defaults()), "x");
        let deferred = plan.defer_aliases();
        let names: Vec<_> = deferred.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["blog_default", "proxy"]);
        assert_eq!(deferred[0].1.aliases, strings(&["web"]));
        let endpoints = plan
            .body
            .networking_config
            .as_ref()
            .unwrap()
            .endpoints_config
            .as_ref()
            .unwrap();
        assert_eq!(endpoints["blog_default"].aliases, None);
        assert_eq!(plan.extra_networks[0].1.aliases, None);
    }

    #[test]
    fn host_and_container_network_modes_get_no_endpoints() {
        for mode in ["host", "none", "container:abc"] {
            let mut container = inspected();
            container.host_config.as_mut().unwrap().network_mode = Some(mode.into());
            container.config.as_mut().unwrap().hostname = Some("custom".into());
            let plan = plan(&container, None, "x");
            assert!(plan.body.networking_config.is_none(), "{mode}");
            let keeps_hostname = mode == "none";
            assert_eq!(plan.body.hostname.is_some(), keeps_hostname, "{mode}");
            assert!(plan.extra_networks.is_empty(), "{mode}");
        }
    }

    #[test]
    fn default_bridge_drops_aliases() {
        let mut container = inspected();
        container.host_config.as_mut().unwrap().network_mode = Some("default".into());
        container.network_settings = Some(NetworkSettings {
            networks: Some(HashMap::from([(
                "bridge".into(),
                EndpointSettings {
                    aliases: strings(&["x"]),
                    ..Default::default()
                },
            )])),
            ..Default::default()
        });
        let plan = plan(&container, None, "x");
        let endpoints = plan
            .body
            .networking_config
            .unwrap()
            .endpoints_config
            .unwrap();
        assert_eq!(endpoints["bridge"].aliases, None);
    }

    #[test]
    fn without_image_defaults_everything_is_kept() {
        let plan = plan(&inspected(), None, "x");
        assert_eq!(plan.body.cmd, strings(&["busybox", "httpd", "-f"]));
        assert_eq!(plan.body.env.as_ref().unwrap().len(), 3);
        assert_eq!(plan.body.working_dir.as_deref(), Some("/www"));
    }
}
