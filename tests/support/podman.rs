//! A private Podman engine: `podman system service` on its own socket, for
//! tests of dockhook against Podman's Docker-compatible API.
//!
//! [`PrivatePodman::start`] runs the service with its own storage
//! (`--root`), run directory (`--runroot`), `containers.conf` and
//! `registries.conf`, all in one temporary directory: the machine's podman
//! storage and configuration are never read or written. The configuration:
//!
//! - `default_ulimits` that the sandbox allows (Podman otherwise tries to
//!   raise the open-files limit to a value a container here may not have).
//!   These are what Podman then reports as `RLIMIT_NOFILE`, the very
//!   ulimits dockhook must send back in the form Podman accepts;
//! - the test registry on 127.0.0.1 as insecure (plain HTTP): unlike
//!   Docker, Podman does not take loopback registries as insecure;
//! - its temporary files, file locks (not the host-wide `/dev/shm`
//!   segment), event log and network configurations in the directory, and
//!   one network of the test's own ([`PrivatePodman::network`]) with a
//!   subnet from 198.19.0.0/16 (set aside for tests), so that Podman's
//!   default network (the host's `cni-podman0`) is never created.
//!
//! Podman runs healthchecks through systemd timers; without systemd (as
//! here) they never run, so health-gated paths are tested on Docker.
//!
//! Two things Podman 4.3 puts on the host whatever its configuration: its
//! blob cache in `/var/lib/containers/cache`, and CNI's iptables chains
//! (`CNI-*`) once a port is published. Dropping the service removes
//! either if it was not there before it started; one service runs at a time
//! per test process, so that no test removes them from under another.
//!
//! Dropping it also removes every container, image and network on it, stops
//! the service, unmounts what its storage left mounted, deletes the network's
//! bridge and the directory.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::docker::TEST_LABEL;
use super::image::SITE_PORT;
use super::util::{unique, wait_for, wait_until};

/// How long the service may take to answer after a start, or to exit after
/// SIGTERM.
const SERVICE_TIMEOUT: Duration = Duration::from_secs(30);

/// A running private Podman service; see the module doc.
pub struct PrivatePodman {
    dir: TempDir,
    child: Child,
    network: String,
    /// The bridge Podman made for the network.
    bridge: Option<String>,
    host_traces: HostTraces,
    _one_at_a_time: MutexGuard<'static, ()>,
}

/// Taken by each running [`PrivatePodman`]; see the module doc.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Where Podman leaves traces on the host whatever its configuration.
const BLOB_CACHE_PARENT: &str = "/var/lib/containers";

impl PrivatePodman {
    /// Starts the service, creates the test network, and waits until it
    /// answers. `registry` (`127.0.0.1:PORT`) is the registry it may pull
    /// from over plain HTTP. Panics with what to do if it cannot.
    pub fn start(registry: &str) -> PrivatePodman {
        // A test that panicked while holding it left nothing shared broken.
        let one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let host_traces = HostTraces::before_start();
        // The test process in the name: `.ci/run` sweeps what a killed run
        // left by it.
        let dir = tempfile::Builder::new()
            .prefix(&format!("dockhook-podman-{}-", std::process::id()))
            .tempdir()
            .expect("cannot create a directory for the private podman");
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        fs::create_dir(path("networks")).expect("cannot create the network directory");
        fs::write(
            path("containers.conf"),
            format!(
                "[containers]\n\
                 default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
                 [network]\n\
                 network_config_dir = \"{networks}\"\n\
                 [engine]\n\
                 lock_type = \"file\"\n\
                 tmp_dir = \"{tmp}\"\n\
                 static_dir = \"{root}/libpod\"\n\
                 volume_path = \"{root}/volumes\"\n\
                 events_logger = \"file\"\n\
                 events_logfile_path = \"{events}\"\n",
                networks = path("networks"),
                tmp = path("tmp"),
                root = path("root"),
                events = path("events.log"),
            ),
        )
        .expect("cannot write containers.conf");
        fs::write(
            path("registries.conf"),
            format!(
                "unqualified-search-registries = []\n\
                 [[registry]]\nlocation = \"{registry}\"\ninsecure = true\n"
            ),
        )
        .expect("cannot write registries.conf");
        let log = File::create(path("podman.log")).expect("cannot create the podman log");
        let child = Command::new("podman")
            .envs(Self::env_of(&dir))
            .args(["--root", &path("root"), "--runroot", &path("run")])
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", path("podman.sock")))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cannot clone a file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot run podman ({err}): install Debian's podman (.ci/run does)")
            });
        let mut podman = PrivatePodman {
            dir,
            child,
            network: unique("dhpod"),
            bridge: None,
            host_traces,
            _one_at_a_time: one_at_a_time,
        };
        let answers = wait_until(SERVICE_TIMEOUT, || {
            podman.try_podman(&["version"]).is_some() || !podman.is_running()
        });
        assert!(
            answers && podman.is_running(),
            "the private podman service did not answer within {SERVICE_TIMEOUT:?}; its log:\n{}",
            podman.log()
        );
        let subnet = free_subnet();
        let label = format!("{TEST_LABEL}=1");
        let network = podman.network.clone();
        podman.podman(&[
            "network", "create", "--label", &label, "--subnet", &subnet, &network,
        ]);
        let format = "{{.NetworkInterface}}";
        podman.bridge = Some(podman.podman(&["network", "inspect", "--format", format, &network]));
        podman
    }

    /// `unix:///…/podman.sock`, for DOCKER_HOST.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("podman.sock").display())
    }

    /// The network tests put their containers on.
    pub fn network(&self) -> &str {
        &self.network
    }

    /// Everything the service has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("podman.log")).unwrap_or_default()
    }

    /// `podman ARGS` against this service; panics with its stderr if it fails.
    pub fn podman(&self, args: &[&str]) -> String {
        let output = self.output(args);
        assert!(
            output.status.success(),
            "podman {args:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// `podman ARGS`: its stdout, or `None` if it failed.
    pub fn try_podman(&self, args: &[&str]) -> Option<String> {
        let output = self.output(args);
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// `podman run -d --name NAME --network NETWORK --label dockhook-test=1
    /// EXTRA... IMAGE`; returns the container ID.
    pub fn run(&self, name: &str, image: &str, extra_args: &[&str]) -> String {
        let label = format!("{TEST_LABEL}=1");
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--network",
            &self.network,
            "--label",
            &label,
        ];
        args.extend_from_slice(extra_args);
        args.push(image);
        self.podman(&args)
    }

    /// `podman container inspect NAME` as JSON (the one object).
    pub fn inspect(&self, name: &str) -> Value {
        let text = self.podman(&["container", "inspect", name]);
        let mut all: Value = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("podman inspect {name} printed no JSON: {err}"));
        all.get_mut(0).map(Value::take).expect("one container")
    }

    /// The names of the containers (running or not) that start with `prefix`.
    pub fn containers_named(&self, prefix: &str) -> Vec<String> {
        let filter = format!("name=^{prefix}");
        self.podman(&["ps", "-a", "--format", "{{.Names}}", "--filter", &filter])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Whether the engine has image `id`.
    pub fn image_exists(&self, id: &str) -> bool {
        self.try_podman(&["image", "exists", id]).is_some()
    }

    /// The page the container named `name` serves on port 8080, fetched at
    /// its address on the test network (which has no DNS and is not
    /// published: two containers may serve at once), from the host, which
    /// has an address on the network's bridge. Not `podman exec`: on
    /// Podman 4.3 each exec session leaves its `conmon` running.
    pub fn page(&self, name: &str) -> Option<String> {
        let format = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            self.network
        );
        let address = self.try_podman(&["container", "inspect", "--format", &format, name])?;
        super::http::http_get(&format!("http://{address}:{SITE_PORT}/"))
            .map(|page| page.trim().to_string())
    }

    fn output(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .envs(Self::env_of(&self.dir))
            .args(["--remote", "--url", &self.host()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("cannot run podman: {err}"))
    }

    /// The configuration files, for the service and its clients alike.
    fn env_of(dir: &TempDir) -> [(&'static str, PathBuf); 2] {
        [
            ("CONTAINERS_CONF", dir.path().join("containers.conf")),
            (
                "CONTAINERS_REGISTRIES_CONF",
                dir.path().join("registries.conf"),
            ),
        ]
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for PrivatePodman {
    fn drop(&mut self) {
        if thread::panicking() {
            super::util::print_log_tail("private podman", &self.log(), 40);
        }
        if self.is_running() {
            for args in [
                &["rm", "-a", "-f", "-v"][..],
                &["network", "rm", "-f", &self.network.clone()],
                &["rmi", "-a", "-f"],
            ] {
                let _ = self.try_podman(args);
            }
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if wait_for(SERVICE_TIMEOUT, || self.child.try_wait().ok().flatten()).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Container monitors outlive the service; none should be left, but
        // one that is would hold the storage.
        kill_conmons_under(self.dir.path());
        // The overlay driver bind-mounts its directory onto itself, and
        // leaves it mounted: the directory could not be deleted.
        unmount_under(self.dir.path());
        if let Some(bridge) = &self.bridge {
            let _ = Command::new("ip")
                .args(["link", "delete", bridge])
                .stderr(Stdio::null())
                .status();
        }
        self.host_traces.remove_new();
    }
}

/// Which of Podman's host-wide traces were there before a service started.
struct HostTraces {
    blob_cache: bool,
    cni_chains: bool,
}

impl HostTraces {
    fn before_start() -> HostTraces {
        HostTraces {
            blob_cache: Path::new(BLOB_CACHE_PARENT).exists(),
            cni_chains: !cni_chains("filter").is_empty() || !cni_chains("nat").is_empty(),
        }
    }

    /// Removes those that were not there before.
    fn remove_new(&self) {
        if !self.blob_cache {
            let _ = fs::remove_dir_all(BLOB_CACHE_PARENT);
        }
        if !self.cni_chains {
            for table in ["filter", "nat"] {
                remove_cni_chains(table);
            }
        }
    }
}

/// The `CNI-*` chains of iptables table `table`.
fn cni_chains(table: &str) -> Vec<String> {
    iptables(table, &["-S"])
        .lines()
        .filter_map(|line| line.strip_prefix("-N "))
        .filter(|chain| chain.starts_with("CNI-"))
        .map(str::to_string)
        .collect()
}

/// Removes the jumps from the built-in chains to CNI's, then CNI's chains.
fn remove_cni_chains(table: &str) {
    for chain in ["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"] {
        let listing = iptables(table, &["-L", chain, "-n", "--line-numbers"]);
        let mut jumps: Vec<u32> = listing
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let number = fields.next()?.parse().ok()?;
                fields.next()?.starts_with("CNI-").then_some(number)
            })
            .collect();
        // Later rules first, so the numbers of the others hold.
        jumps.sort_unstable_by(|a, b| b.cmp(a));
        for number in jumps {
            iptables(table, &["-D", chain, &number.to_string()]);
        }
    }
    let chains = cni_chains(table);
    for flag in ["-F", "-X"] {
        for chain in &chains {
            iptables(table, &[flag, chain]);
        }
    }
}

/// `iptables -t TABLE ARGS`: its stdout, empty if it failed.
fn iptables(table: &str, args: &[&str]) -> String {
    Command::new("iptables")
        .args(["-t", table])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default()
}

/// Kills the `conmon` processes working in `dir` and waits until they are
/// gone. SIGKILL: on SIGTERM a conmon runs its exit command, a `podman
/// container cleanup` that writes into `dir` again as it is being deleted.
fn kill_conmons_under(dir: &Path) {
    let Ok(output) = Command::new("pgrep").args(["-x", "conmon"]).output() else {
        return;
    };
    let mine: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline
                .split(|b| *b == 0)
                .any(|arg| Path::new(&*String::from_utf8_lossy(arg)).starts_with(dir))
        })
        .map(str::to_string)
        .collect();
    for pid in &mine {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    wait_until(SERVICE_TIMEOUT, || {
        mine.iter()
            .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    });
}

/// Unmounts everything mounted under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(4))
        .filter(|point| Path::new(point).starts_with(dir))
        .collect();
    points.sort_unstable_by_key(|point| std::cmp::Reverse(point.len()));
    for point in points {
        let _ = Command::new("umount").arg(point).status();
    }
}

/// The first 198.19.N.0/24 no interface on the host uses (the private
/// dockerd takes its bridges from 198.18.0.0/16).
fn free_subnet() -> String {
    let output = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .expect("cannot run ip");
    let addresses = String::from_utf8_lossy(&output.stdout);
    (0..=255u8)
        .map(|n| format!("198.19.{n}."))
        .find(|prefix| !addresses.contains(prefix.as_str()))
        .map(|prefix| format!("{prefix}0/24"))
        .expect("every 198.19.N.0/24 is taken")
}
