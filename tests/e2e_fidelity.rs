//! End to end: a recreated container is the old one on the new image. One
//! container with a broad set of options is updated, and `docker inspect`
//! before and after must differ only where a successor must: its ID,
//! creation time, state and image, its runtime addresses, and what the old
//! image supplied (which the new image supplies now). A second case checks
//! Docker's entrypoint rule: a command that goes with the user's own
//! entrypoint is kept even when it equals the image's `CMD`.

mod support;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::scenario::Site;
use support::*;

/// The page a container serves on `port` (published on 127.0.0.1).
fn serves(port: u16, version: &str) -> bool {
    wait_until(Duration::from_secs(30), || {
        http_get(&format!("http://127.0.0.1:{port}/")).is_some_and(|body| body.trim() == version)
    })
}

/// Creates network `name` on a /24 of its own in 10.250.0.0/16, so that a
/// container can hold a fixed address on it; another subnet is tried when
/// one is taken. Returns the first three octets (`10.250.X`).
fn network_with_subnet(cleanup: &mut Cleanup, name: &str) -> String {
    cleanup.network(name);
    let random = RandomState::new();
    let mut refusals = Vec::new();
    for attempt in 0..32u32 {
        let prefix = format!("10.250.{}", random.hash_one(attempt) % 256);
        let subnet = format!("{prefix}.0/24");
        let output = Command::new("docker")
            .args(["network", "create", "--label", "dockhook-test=1"])
            .args(["--subnet", &subnet, name])
            .output()
            .expect("cannot run docker network create");
        if output.status.success() {
            return prefix;
        }
        let error = String::from_utf8_lossy(&output.stderr).trim().to_string();
        assert!(
            error.contains("overlaps"),
            "docker network create --subnet {subnet} {name} failed: {error}"
        );
        refusals.push(error);
    }
    panic!("no free /24 in 10.250.0.0/16 for network {name}: {refusals:?}")
}

/// The names of the volumes Docker created for the container: those its
/// mount list shows that no option named.
fn anonymous_volumes(inspect: &Value, named: &[&str]) -> Vec<String> {
    inspect["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["Type"] == "volume")
        .filter_map(|m| m["Name"].as_str())
        .filter(|name| !named.contains(name))
        .map(str::to_string)
        .collect()
}

/// `inspect` without what must differ between a container and its
/// successor, given the configuration of the image each runs (`docker image
/// inspect`'s `Config`) and the volumes Docker created for the old one.
fn comparable(inspect: &Value, image: &Value, anonymous: &[String]) -> Value {
    let mut v = inspect.clone();
    let id = inspect["Id"].as_str().expect("an Id").to_string();
    let top = v.as_object_mut().unwrap();
    // The container's own: identity, run state, image ID, its writable
    // layer, the execs run in it. `Args` follows `Config.Cmd` (see below).
    for key in [
        "Id",
        "Created",
        "State",
        "Image",
        "GraphDriver",
        "ExecIDs",
        "Args",
    ] {
        top.remove(key);
    }

    let settings = v["NetworkSettings"].as_object_mut().unwrap();
    settings.remove("SandboxID");
    settings.remove("SandboxKey");
    for endpoint in settings["Networks"].as_object_mut().unwrap().values_mut() {
        let endpoint = endpoint.as_object_mut().unwrap();
        endpoint.remove("EndpointID");
        // IPAM hands out another address unless the user fixed one (the
        // MAC address derives from it).
        if endpoint["IPAMConfig"].is_null() {
            endpoint.remove("IPAddress");
            endpoint.remove("MacAddress");
        }
    }

    // What the image supplied follows the image (checked separately).
    let config = v["Config"].as_object_mut().unwrap();
    let image_env = image["Env"].as_array().cloned().unwrap_or_default();
    if let Some(env) = config["Env"].as_array_mut() {
        env.retain(|e| !image_env.contains(e));
    }
    if let Some(labels) = config["Labels"].as_object_mut() {
        labels.retain(|key, value| image["Labels"][key] != *value);
    }
    if config["Cmd"] == image["Cmd"] {
        config.remove("Cmd");
    }

    // Docker shows mode `z` for a volume the options name, none for one it
    // created; the successor names the old container's anonymous volumes.
    let mounts = v["Mounts"].as_array_mut().unwrap();
    mounts.sort_by_key(|m| m["Destination"].as_str().unwrap_or_default().to_string());
    for mount in mounts.iter_mut() {
        if anonymous.iter().any(|name| mount["Name"] == name.as_str()) {
            mount.as_object_mut().unwrap().remove("Mode");
        }
    }
    // ...in its mount options: as sources of the volume mounts that had
    // none, and as mounts of their own for `Config.Volumes`.
    let volumes = v["Config"]["Volumes"].clone();
    if let Some(options) = v["HostConfig"]["Mounts"].as_array_mut() {
        for option in options.iter_mut() {
            if anonymous
                .iter()
                .any(|name| option["Source"] == name.as_str())
            {
                option.as_object_mut().unwrap().remove("Source");
            }
        }
        options.retain(|o| {
            let bare = o.as_object().is_some_and(|o| o.len() == 2) && o["Type"] == "volume";
            !(bare
                && volumes
                    .get(o["Target"].as_str().unwrap_or_default())
                    .is_some())
        });
    }

    // Paths, the default hostname and Docker's own alias name the ID.
    replace_in_strings(&mut v, &id, "<ID>");
    replace_in_strings(&mut v, &id[..12], "<ID>");
    v
}

fn replace_in_strings(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(s) => *s = s.replace(from, to),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| replace_in_strings(i, from, to)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|i| replace_in_strings(i, from, to)),
        _ => {}
    }
}

/// Where `after` differs from `before`, one line per JSON path.
fn differences(path: &str, before: &Value, after: &Value, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let (b, a) = (b.get(key), a.get(key));
                let missing = Value::String("<absent>".into());
                differences(
                    &format!("{path}/{key}"),
                    b.unwrap_or(&missing),
                    a.unwrap_or(&missing),
                    out,
                );
            }
        }
        (Value::Array(b), Value::Array(a)) if b.len() == a.len() => {
            for (i, (b, a)) in b.iter().zip(a).enumerate() {
                differences(&format!("{path}/{i}"), b, a, out);
            }
        }
        _ if before != after => out.push(format!("{path}: before {before}, after {after}")),
        _ => {}
    }
}

fn assert_same(before: &Value, after: &Value) {
    let mut out = Vec::new();
    differences("", before, after, &mut out);
    assert!(
        out.is_empty(),
        "the recreated container differs from the old one beyond what must:\n  {}",
        out.join("\n  ")
    );
}

/// The strings of a JSON array.
fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn image_config(id: &str) -> Value {
    let output = docker(["image", "inspect", "--format", "{{json .Config}}", id]);
    serde_json::from_slice(&output.stdout).expect("image config as JSON")
}

#[test]
fn recreated_container_differs_from_the_old_one_only_where_it_must() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, _) = Site::new(&mut cleanup, "fidelity");
    let v1 = site.push(
        &mut cleanup,
        "latest",
        SiteImage::new("v1").versioned_defaults(),
    );
    let name = cleanup.container(&site.name);
    cleanup.containers_with_prefix(&format!("{name}-dockhook-"));
    let front = cleanup.network(&format!("{name}-front"));
    docker(["network", "create", "--label", "dockhook-test=1", &front]);
    let back = format!("{name}-back");
    let fixed_ip = format!("{}.10", network_with_subnet(&mut cleanup, &back));
    let volume = cleanup.volume(&format!("{name}-data"));
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("hello.txt"), "from the host\n").unwrap();

    let port = free_port();
    let publish = format!("127.0.0.1:{port}:{SITE_PORT}");
    let named = format!("{volume}:/data");
    let bind = format!("{}:/srv/host:ro", host_dir.path().display());
    let health = format!("timeout 1 wget -q -O- http://127.0.0.1:{SITE_PORT}/");
    let image = site.image("latest");
    #[rustfmt::skip]
    docker([
        "create", "--name", &name,
        "--label", "dockhook-test=1", "--label", "app.tier=web", "--label", "site.mode=user",
        "-e", "SECRET_KEY=s3cret", "-e", "SITE_MODE=user",
        "-p", &publish, "--expose", "9090",
        "-v", &named, "-v", &bind, "-v", "/anon",
        "--mount", "type=volume,dst=/anon2",
        "--tmpfs", "/tmp:size=1m",
        "--mount", "type=tmpfs,dst=/cache,tmpfs-size=1048576",
        "--network", &front, "--network-alias", "web-alias", "--network-alias", "www",
        "--restart", "on-failure:3",
        "--health-cmd", &health, "--health-interval", "1s", "--health-timeout", "2s",
        "--health-retries", "3", "--health-start-period", "1s",
        "--user", "1000:1000", "--group-add", "50", "--workdir", "/www",
        "--domainname", "example.test",
        "--init", "--stop-signal", "SIGQUIT", "--stop-timeout", "7",
        "--memory", "64m", "--memory-reservation", "32m", "--cpus", "0.5",
        "--cpu-shares", "512", "--pids-limit", "100", "--shm-size", "16m",
        "--oom-score-adj", "100",
        "--ulimit", "nofile=1024:2048",
        "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD",
        "--security-opt", "no-new-privileges",
        "--sysctl", "net.core.somaxconn=1024",
        "--add-host", "db.local:10.0.0.5",
        "--dns", "10.0.0.53", "--dns-search", "example.test", "--dns-option", "ndots:2",
        "--log-driver", "json-file", "--log-opt", "max-size=1m", "--log-opt", "max-file=2",
        &image,
    ]);
    #[rustfmt::skip]
    docker(["network", "connect", "--alias", "back-alias", "--ip", &fixed_ip, &back, &name]);
    docker(["start", &name]);
    assert!(serves(port, "v1"), "{name} does not serve v1");
    docker([
        "exec",
        "-u",
        "0",
        &name,
        "sh",
        "-c",
        "echo kept > /data/file && echo kept > /anon/file && echo kept > /anon2/file",
    ]);
    let before = container_inspect(&name);
    // dockhook removes the old image once it is replaced.
    let v1_config = image_config(&v1);
    // Named in the successor's options, they outlive `docker rm -v`.
    let anonymous = anonymous_volumes(&before, &[&volume]);
    assert_eq!(anonymous.len(), 2, "{}", before["Mounts"]);
    for name in &anonymous {
        cleanup.volume(name);
    }

    let v2 = site.push(
        &mut cleanup,
        "latest",
        SiteImage::new("v2").versioned_defaults(),
    );
    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(
        deployment["state"],
        "succeeded",
        "{deployment}\n{}",
        dockhook.log_text()
    );
    assert!(serves(port, "v2"), "{name} does not serve v2");
    let after = container_inspect(&name);

    assert_ne!(after["Id"], before["Id"]);
    assert_eq!(before["Image"], v1.as_str());
    assert_eq!(after["Image"], v2.as_str());
    assert_eq!(
        after["Config"]["Hostname"].as_str(),
        after["Id"].as_str().map(|id| &id[..12]),
        "the default hostname is the new container's short ID"
    );
    assert_same(
        &comparable(&before, &v1_config, &anonymous),
        &comparable(&after, &image_config(&v2), &anonymous),
    );

    // What came from the old image's defaults follows the new image; what
    // the user set over them stays.
    let env = strings(&after["Config"]["Env"]);
    for expected in ["SITE_VERSION=v2", "SITE_MODE=user", "SECRET_KEY=s3cret"] {
        assert!(env.contains(&expected.to_string()), "{expected}: {env:?}");
    }
    for stale in ["SITE_VERSION=v1", "SITE_MODE=image"] {
        assert!(!env.contains(&stale.to_string()), "{stale}: {env:?}");
    }
    let labels = &after["Config"]["Labels"];
    assert_eq!(labels["site.version"], "v2", "{labels}");
    assert_eq!(labels["site.mode"], "user", "{labels}");
    let v2_cmd = SiteImage::versioned_cmd("v2");
    assert_eq!(strings(&after["Config"]["Cmd"]), v2_cmd);
    assert_eq!(strings(&after["Args"]), v2_cmd[1..]);
    let processes = docker_stdout(["top", &name]);
    assert!(processes.contains("site-v2"), "{processes}");

    // The data is still there, in the same volumes.
    let files = docker_stdout([
        "exec",
        &name,
        "cat",
        "/data/file",
        "/anon/file",
        "/anon2/file",
        "/srv/host/hello.txt",
    ]);
    assert_eq!(files, "kept\nkept\nkept\nfrom the host");
}

#[test]
fn own_entrypoint_keeps_a_command_equal_to_the_images_cmd() {
    require_docker();
    let mut cleanup = Cleanup::new();
    let (site, v1) = Site::new(&mut cleanup, "entrypoint");
    let name = cleanup.container(&site.name);
    cleanup.containers_with_prefix(&format!("{name}-dockhook-"));
    let network = cleanup.network(&format!("{name}-net"));
    docker(["network", "create", "--label", "dockhook-test=1", &network]);
    // `env COMMAND...` runs the command: with no command, it prints the
    // environment and exits, which is what Docker runs when the entrypoint
    // is given without Cmd.
    pull(&site.image("latest"));
    let image_cmd = strings(&image_config(&v1)["Cmd"]);
    assert!(!image_cmd.is_empty(), "the site image has a CMD");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:{SITE_PORT}");
    let options = ["--network", &network, "-p", &publish, "--entrypoint", "env"];
    run_container_with_command(&name, &site.image("latest"), &options, &image_cmd);
    assert!(serves(port, "v1"), "{name} does not serve v1");

    site.push(&mut cleanup, "latest", SiteImage::new("v2"));
    let dockhook = Dockhook::start(&site.registry.host(), &[]);
    let deployment = site.deploy(&dockhook, "latest");
    assert_eq!(
        deployment["state"],
        "succeeded",
        "{deployment}\n{}",
        dockhook.log_text()
    );
    assert!(serves(port, "v2"), "{name} does not serve v2");
    let after = container_inspect(&name);
    assert_eq!(strings(&after["Config"]["Entrypoint"]), ["env"]);
    assert_eq!(strings(&after["Config"]["Cmd"]), image_cmd);
}

/// `docker run -d` of `image` with `options` before and `command` after it.
fn run_container_with_command(name: &str, image: &str, options: &[&str], command: &[String]) {
    let mut args: Vec<&str> = vec!["run", "-d", "--name", name, "--label", "dockhook-test=1"];
    args.extend_from_slice(options);
    args.push(image);
    args.extend(command.iter().map(String::as_str));
    docker(args);
}
