//! Planning a replacement: from an inspected container to the options that
//! create its successor. Pure.
//!
//! What `docker inspect` shows is the container's own settings merged with
//! the defaults of the image it was created from. Copying all of it would pin
//! the old image's defaults (its `CMD`, `ENV`, labels, healthcheck…) onto the
//! new image and undo the very change being deployed. So the plan keeps what
//! differs from the old image's defaults and lets the new image supply the
//! rest, as `docker run` and compose would on a fresh start. The one place
//! where "differs" is not enough is the command: Docker takes the image's
//! `CMD` only when the create body names no entrypoint, so a command that
//! goes with the user's own entrypoint is kept even when it equals the old
//! image's `CMD` (see `command`).
//!
//! Everything else is carried as the engine reports it: the whole host
//! configuration (resources, ulimits, capabilities, sysctls, DNS, extra
//! hosts, log driver, init, tmpfs…), the stop timeout, and per network the
//! aliases, fixed addresses and driver options. Only what belongs to the old
//! container itself is left out: its ID as hostname and alias, its runtime
//! addresses. Volumes that Docker created for it (anonymous ones) are named
//! explicitly, so the successor mounts the same data.
//!
//! Not carried: a fixed MAC address (`--mac-address`). API 1.41 takes it only
//! as `Config.MacAddress`, which the bollard models no longer have, so it can
//! be neither read nor sent here.

use std::collections::HashMap;

use bollard::models::{
    ContainerConfig, ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HealthConfig,
    HostConfig, ImageConfig, Mount, MountType, NetworkingConfig,
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
    // A shared network or UTS namespace brings its own hostname, and Docker
    // refuses one set beside it.
    let own_hostname = !(mode == "host"
        || mode.starts_with("container:")
        || host_config.uts_mode.as_deref() == Some("host"));
    keep_anonymous_volumes(container, &config, &mut host_config);
    host_config.links = host_config
        .links
        .map(|links| links.iter().filter_map(|l| create_link(l)).collect());
    let (networking_config, extra_networks) = networks(container, &mut host_config, id);
    let (entrypoint, cmd) = command(
        config.entrypoint,
        config.cmd,
        defaults.entrypoint,
        defaults.cmd,
    );

    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        // The default hostname is the old container's short ID.
        hostname: config
            .hostname
            .filter(|h| !h.is_empty() && h != short_id(id) && own_hostname),
        domainname: config.domainname.filter(|d| !d.is_empty() && own_hostname),
        user: differs(config.user, defaults.user).filter(|u| !u.is_empty()),
        attach_stdin: config.attach_stdin,
        attach_stdout: config.attach_stdout,
        attach_stderr: config.attach_stderr,
        exposed_ports: minus(config.exposed_ports, defaults.exposed_ports),
        tty: config.tty,
        open_stdin: config.open_stdin,
        stdin_once: config.stdin_once,
        env: minus(config.env, defaults.env),
        cmd,
        healthcheck: healthcheck(config.healthcheck, defaults.healthcheck),
        args_escaped: None,
        volumes: minus(config.volumes, defaults.volumes),
        working_dir: differs(config.working_dir, defaults.working_dir).filter(|w| !w.is_empty()),
        entrypoint,
        network_disabled: config.network_disabled,
        on_build: None,
        labels: labels_minus(config.labels, defaults.labels),
        stop_signal: differs(config.stop_signal, defaults.stop_signal).filter(|s| !s.is_empty()),
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

/// The short ID Docker uses as a container's default hostname and alias.
fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The entrypoint and command to create with, from the container's and the
/// old image's.
///
/// At create, Docker fills a body without `Entrypoint` with the image's
/// `ENTRYPOINT`, and then with its `CMD` if the body has no `Cmd`; a body
/// with an `Entrypoint` gets nothing from the image, so its command is
/// empty unless the body gives one. Hence:
///
/// - the image's entrypoint (the user set none, or the same one): leave it
///   to the new image, and the command too unless the user changed it;
/// - the user's own entrypoint (another one, or one cleared with
///   `--entrypoint ""`): keep it, and keep its command as is, even when it
///   equals the old image's `CMD`;
/// - the image's entrypoint with no command although the image has a `CMD`:
///   Docker would have filled the command, so the user gave that entrypoint
///   explicitly: keep it, with no command.
fn command(
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    image_entrypoint: Option<Vec<String>>,
    image_cmd: Option<Vec<String>>,
) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let (entrypoint, cmd) = (given(entrypoint), given(cmd));
    let (image_entrypoint, image_cmd) = (given(image_entrypoint), given(image_cmd));
    let own_entrypoint = entrypoint != image_entrypoint
        || (entrypoint.is_some() && cmd.is_none() && image_cmd.is_some());
    if own_entrypoint {
        // `[""]` is how the API says "no entrypoint, not the image's".
        (Some(entrypoint.unwrap_or_else(|| vec![String::new()])), cmd)
    } else {
        (None, differs(cmd, image_cmd))
    }
}

/// A command line, unless it is empty (`null`, `[]` or `[""]` all say "none").
fn given(line: Option<Vec<String>>) -> Option<Vec<String>> {
    line.filter(|l| !(l.is_empty() || l.len() == 1 && l[0].is_empty()))
}

/// The healthcheck settings the image did not supply. Docker fills each
/// setting left unset from the image's healthcheck, so the ones equal to the
/// old image's are left for the new image to fill.
fn healthcheck(value: Option<HealthConfig>, default: Option<HealthConfig>) -> Option<HealthConfig> {
    let Some(default) = default else {
        return value;
    };
    let value = value?;
    let own = HealthConfig {
        test: differs(value.test, default.test),
        interval: differs(value.interval, default.interval),
        timeout: differs(value.timeout, default.timeout),
        retries: differs(value.retries, default.retries),
        start_period: differs(value.start_period, default.start_period),
        start_interval: differs(value.start_interval, default.start_interval),
    };
    (own != HealthConfig::default()).then_some(own)
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

/// Names the volumes Docker created for the container, which the container
/// mount list alone records: those for its `Config.Volumes` (the image's
/// `VOLUME`s, `-v /path`) that nothing else mounts, and those of `--mount
/// type=volume` without a source. Mounted again by name, they keep their
/// data, as compose does; left unnamed, Docker would create empty ones.
/// Volumes that came from `--volumes-from` stay with that option.
fn keep_anonymous_volumes(
    container: &ContainerInspectResponse,
    config: &ContainerConfig,
    host_config: &mut HostConfig,
) {
    let volume_at = |target: &str| {
        container
            .mounts
            .iter()
            .flatten()
            .filter(|m| m.typ.as_deref() == Some("volume"))
            .find(|m| m.destination.as_deref() == Some(target))
            .and_then(|m| Some((m.name.clone()?, m.rw)))
    };
    for mount in host_config.mounts.iter_mut().flatten() {
        let unnamed = mount.source.as_deref().unwrap_or_default().is_empty();
        if mount.typ == Some(MountType::VOLUME) && unnamed {
            if let Some((name, _)) = mount.target.as_deref().and_then(volume_at) {
                mount.source = Some(name);
            }
        }
    }

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
    let anonymous: Vec<Mount> = config
        .volumes
        .iter()
        .flatten()
        .filter(|target| !covered.contains(target))
        .filter_map(|target| {
            let (name, rw) = volume_at(target)?;
            Some(Mount {
                typ: Some(MountType::VOLUME),
                source: Some(name),
                target: Some(target.clone()),
                read_only: rw.map(|rw| !rw).filter(|&ro| ro),
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
///
/// The networks the container is on are the truth: when the network mode
/// names none of them, the mode becomes the first of them. Podman reports
/// `bridge` (its driver) as the mode of a container on any bridge network,
/// and Docker keeps `bridge` for a container taken off the default bridge;
/// created in that mode, the new container would join a network the old
/// one was not on.
fn networks(
    container: &ContainerInspectResponse,
    host_config: &mut HostConfig,
    id: &str,
) -> (Option<NetworkingConfig>, Vec<(String, EndpointSettings)>) {
    let mode = host_config.network_mode.as_deref().unwrap_or("default");
    if matches!(mode, "host" | "none") || mode.starts_with("container:") {
        return (None, Vec::new());
    }
    let attached = container
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.clone())
        .unwrap_or_default();
    let mut names: Vec<_> = attached.keys().cloned().collect();
    names.sort();
    let primary = primary_network(mode, &attached).or_else(|| {
        let first = names.first()?.clone();
        host_config.network_mode = Some(first.clone());
        Some(first)
    });
    let mut first = None;
    let mut extra = Vec::new();
    for name in names {
        let endpoint = endpoint_to_recreate(&name, &attached[&name], id);
        if Some(&name) == primary.as_ref() {
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

/// The name of the network the network mode names: `default` is the
/// bridge; a mode may name its network by ID (or a prefix of it), while
/// inspect lists the networks by name.
fn primary_network(mode: &str, attached: &HashMap<String, EndpointSettings>) -> Option<String> {
    let mode = if mode == "default" { "bridge" } else { mode };
    if attached.contains_key(mode) {
        return Some(mode.to_string());
    }
    attached
        .iter()
        .find(|(_, endpoint)| {
            endpoint
                .network_id
                .as_deref()
                .is_some_and(|id| !mode.is_empty() && id.starts_with(mode))
        })
        .map(|(name, _)| name.clone())
}

pub(super) fn endpoint_to_recreate(
    network: &str,
    endpoint: &EndpointSettings,
    id: &str,
) -> EndpointSettings {
    // The default bridge has no aliases; elsewhere Docker adds the short ID
    // of each container itself (and compose v1 names it too): the new
    // container gets its own.
    let aliases = endpoint
        .aliases
        .as_ref()
        .filter(|_| network != "bridge")
        .map(|aliases| {
            aliases
                .iter()
                .filter(|a| !a.is_empty() && a.as_str() != short_id(id))
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|a| !a.is_empty());
    EndpointSettings {
        // The fixed addresses (`--ip`, `--ip6`, `--link-local-ip`); those
        // IPAM assigned are runtime facts and stay behind.
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
        EndpointIpamConfig, MountPoint, NetworkSettings, PortBinding, RestartPolicy,
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
    fn a_mode_naming_no_network_it_is_on_becomes_the_first_it_is_on() {
        // As Podman reports a container on two bridge networks.
        let mut container = inspected();
        container.host_config.as_mut().unwrap().network_mode = Some("bridge".into());
        let plan = plan(&container, Some(&image_defaults()), "x");
        let host = plan.body.host_config.as_ref().unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("blog_default"));
        let endpoints = plan.body.networking_config.as_ref().unwrap();
        let first: Vec<_> = endpoints
            .endpoints_config
            .as_ref()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(first, ["blog_default"]);
        assert_eq!(plan.extra_networks.len(), 1);
        assert_eq!(plan.extra_networks[0].0, "proxy");
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

    /// The image's command line, for the entrypoint cases.
    fn image_with(entrypoint: Option<&[&str]>, cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            entrypoint: entrypoint.and_then(strings),
            cmd: strings(cmd),
            ..image_defaults()
        }
    }

    fn container_with(
        entrypoint: Option<&[&str]>,
        cmd: Option<&[&str]>,
    ) -> ContainerInspectResponse {
        let mut container = inspected();
        let config = container.config.as_mut().unwrap();
        config.entrypoint = entrypoint.and_then(strings);
        config.cmd = cmd.and_then(strings);
        container
    }

    fn planned_command(
        container: &ContainerInspectResponse,
        image: &ImageConfig,
    ) -> (Option<Vec<String>>, Option<Vec<String>>) {
        let body = plan(container, Some(image), "x").body;
        (body.entrypoint, body.cmd)
    }

    const HTTPD: &[&str] = &["httpd", "-f"];

    #[test]
    fn own_entrypoint_keeps_its_command_even_when_it_is_the_images_cmd() {
        // `docker run --entrypoint env IMAGE httpd -f` on an image whose CMD
        // is `httpd -f`: without Cmd in the body, Docker would run `env` alone.
        let image = image_with(None, HTTPD);
        let container = container_with(Some(&["env"]), Some(HTTPD));
        assert_eq!(
            planned_command(&container, &image),
            (strings(&["env"]), strings(HTTPD))
        );
        // Likewise over an image entrypoint of its own.
        let image = image_with(Some(&["/docker-entrypoint.sh"]), HTTPD);
        let container = container_with(Some(&["/wrap"]), Some(HTTPD));
        assert_eq!(
            planned_command(&container, &image),
            (strings(&["/wrap"]), strings(HTTPD))
        );
    }

    #[test]
    fn images_entrypoint_with_own_command_leaves_the_entrypoint_to_the_new_image() {
        let image = image_with(Some(&["/docker-entrypoint.sh"]), HTTPD);
        let container = container_with(Some(&["/docker-entrypoint.sh"]), Some(&["sh"]));
        assert_eq!(
            planned_command(&container, &image),
            (None, strings(&["sh"])),
            "a new ENTRYPOINT in the next image applies, with the user's command"
        );
    }

    #[test]
    fn images_entrypoint_and_cmd_are_both_left_to_the_new_image() {
        for entrypoint in [None, Some(&["/docker-entrypoint.sh"][..])] {
            let image = image_with(entrypoint, HTTPD);
            let container = container_with(entrypoint, Some(HTTPD));
            assert_eq!(
                planned_command(&container, &image),
                (None, None),
                "{entrypoint:?}"
            );
        }
    }

    #[test]
    fn images_entrypoint_given_explicitly_without_command_stays_without_one() {
        // `docker run --entrypoint /docker-entrypoint.sh IMAGE`: the image's
        // entrypoint, but Docker did not fill in the image's CMD.
        let image = image_with(Some(&["/docker-entrypoint.sh"]), HTTPD);
        let container = container_with(Some(&["/docker-entrypoint.sh"]), None);
        assert_eq!(
            planned_command(&container, &image),
            (strings(&["/docker-entrypoint.sh"]), None)
        );
    }

    #[test]
    fn cleared_entrypoint_stays_cleared() {
        // `docker run --entrypoint "" IMAGE httpd -f`: inspect shows no
        // entrypoint; an empty body entrypoint would bring the image's back.
        let image = image_with(Some(&["/docker-entrypoint.sh"]), HTTPD);
        let container = container_with(None, Some(HTTPD));
        assert_eq!(
            planned_command(&container, &image),
            (strings(&[""]), strings(HTTPD))
        );
    }

    #[test]
    fn unknown_old_image_keeps_the_whole_command_line() {
        let container = container_with(Some(&["/wrap"]), Some(HTTPD));
        let body = plan(&container, None, "x").body;
        assert_eq!(body.entrypoint, strings(&["/wrap"]));
        assert_eq!(body.cmd, strings(HTTPD));
    }

    #[test]
    fn healthcheck_keeps_only_the_settings_the_user_changed() {
        let mut container = inspected();
        let mut merged = image_defaults().healthcheck.unwrap();
        merged.interval = Some(1_000_000_000);
        container.config.as_mut().unwrap().healthcheck = Some(merged);
        let body = plan(&container, Some(&image_defaults()), "x").body;
        assert_eq!(
            body.healthcheck,
            Some(HealthConfig {
                interval: Some(1_000_000_000),
                ..Default::default()
            }),
            "the test command is the image's: the new image's applies"
        );

        container.config.as_mut().unwrap().healthcheck = Some(HealthConfig {
            test: strings(&["NONE"]),
            ..Default::default()
        });
        let body = plan(&container, Some(&image_defaults()), "x").body;
        assert_eq!(body.healthcheck.unwrap().test, strings(&["NONE"]));
    }

    #[test]
    fn hostname_is_kept_unless_it_is_the_old_id_or_another_namespaces() {
        let with = |hostname: &str, uts: Option<&str>| {
            let mut container = inspected();
            container.config.as_mut().unwrap().hostname = Some(hostname.into());
            container.config.as_mut().unwrap().domainname = Some("example.org".into());
            container.host_config.as_mut().unwrap().uts_mode = uts.map(Into::into);
            let body = plan(&container, None, "x").body;
            (body.hostname, body.domainname)
        };
        assert_eq!(with(&ID[..12], None), (None, Some("example.org".into())));
        // A hostname that merely looks like a prefix of the ID is the user's.
        assert_eq!(
            with(&ID[..4], None),
            (Some(ID[..4].into()), Some("example.org".into()))
        );
        assert_eq!(with("host-name", Some("host")), (None, None));
    }

    #[test]
    fn host_settings_are_carried_whole() {
        use bollard::models::{HostConfigLogConfig, ResourcesUlimits};
        let mut container = inspected();
        let host = HostConfig {
            init: Some(true),
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            ulimits: Some(vec![ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(1024),
                hard: Some(2048),
            }]),
            cap_add: strings(&["NET_ADMIN"]),
            cap_drop: strings(&["MKNOD"]),
            sysctls: Some(HashMap::from([("net.ipv4.ip_forward".into(), "1".into())])),
            extra_hosts: strings(&["db.local:10.0.0.5"]),
            dns: strings(&["10.0.0.53"]),
            dns_search: strings(&["example.org"]),
            tmpfs: Some(HashMap::from([("/cache".into(), "size=1m".into())])),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([("max-size".into(), "1m".into())])),
            }),
            network_mode: Some("blog_default".into()),
            ..Default::default()
        };
        container.host_config = Some(host.clone());
        container.mounts = None;
        let body = plan(&container, Some(&image_defaults()), "x").body;
        assert_eq!(body.host_config, Some(host));
    }

    #[test]
    fn sourceless_volume_mounts_get_their_volume_and_volumes_from_stays() {
        let mut container = inspected();
        container.config.as_mut().unwrap().volumes = strings(&["/data", "/anon"]);
        let host = container.host_config.as_mut().unwrap();
        host.mounts = Some(vec![Mount {
            typ: Some(MountType::VOLUME),
            target: Some("/cache".into()),
            ..Default::default()
        }]);
        host.volumes_from = strings(&["other"]);
        let volume = |name: &str, destination: &str| MountPoint {
            typ: Some("volume".into()),
            name: Some(name.into()),
            destination: Some(destination.into()),
            rw: Some(true),
            ..Default::default()
        };
        container.mounts = Some(vec![
            volume("v-data", "/data"),
            volume("v-anon", "/anon"),
            volume("v-cache", "/cache"),
            volume("v-shared", "/shared"),
        ]);
        let body = plan(&container, Some(&image_defaults()), "x").body;
        let host = body.host_config.unwrap();
        let mounts: Vec<_> = host
            .mounts
            .unwrap()
            .into_iter()
            .map(|m| (m.source.unwrap(), m.target.unwrap()))
            .collect();
        let pair = |s: &str, t: &str| (s.to_string(), t.to_string());
        assert_eq!(
            mounts,
            [
                pair("v-cache", "/cache"),
                pair("v-data", "/data"),
                pair("v-anon", "/anon")
            ],
            "/shared comes with --volumes-from"
        );
        assert_eq!(host.volumes_from, strings(&["other"]));
        assert_eq!(body.volumes, strings(&["/anon"]), "/data is the image's");
    }

    #[test]
    fn fixed_addresses_and_compose_aliases_are_kept() {
        let mut container = inspected();
        let fixed = EndpointIpamConfig {
            ipv4_address: Some("10.250.3.10".into()),
            ..Default::default()
        };
        let networks = container
            .network_settings
            .as_mut()
            .unwrap()
            .networks
            .as_mut()
            .unwrap();
        let proxy = networks.get_mut("proxy").unwrap();
        proxy.ipam_config = Some(fixed.clone());
        // compose v1 names the service and the container's short ID; an
        // alias that is a mere prefix of the ID is the user's.
        proxy.aliases = strings(&["web", &ID[..12], "4d7e"]);
        let plan = plan(&container, None, "x");
        let (name, endpoint) = &plan.extra_networks[0];
        assert_eq!(name, "proxy");
        assert_eq!(endpoint.ipam_config, Some(fixed));
        assert_eq!(endpoint.aliases, strings(&["web", "4d7e"]));
    }

    #[test]
    fn network_mode_may_name_the_network_by_id() {
        let mut container = inspected();
        let networks = container
            .network_settings
            .as_mut()
            .unwrap()
            .networks
            .as_mut()
            .unwrap();
        networks.get_mut("blog_default").unwrap().network_id = Some("9f8e7d6c5b4a".repeat(5));
        container.host_config.as_mut().unwrap().network_mode = Some("9f8e7d6c5b4a".into());
        let plan = plan(&container, None, "x");
        let endpoints = plan
            .body
            .networking_config
            .unwrap()
            .endpoints_config
            .unwrap();
        assert!(endpoints.contains_key("blog_default"), "{endpoints:?}");
        let extra: Vec<_> = plan
            .extra_networks
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(extra, ["proxy"], "connected once, at create");
    }
}
