//! A private Docker daemon, for tests that stop or restart one: the
//! machine's own `dockerd` (and everything other people run on it) is never
//! touched.
//!
//! [`PrivateDaemon::start`] runs `dockerd` with its own socket, data root,
//! exec root (so its own `containerd`), pid file and configuration file (the
//! machine's `/etc/docker/daemon.json` is not read), all in one temporary
//! directory, and the same storage driver as the machine's daemon. It needs
//! root, as any `dockerd` does.
//!
//! Its network stays out of the machine's way: it never touches iptables or
//! IP forwarding, and its default bridge is one this module creates, with an
//! address from 198.18.0.0/15 (set aside for tests), and deletes afterwards.
//! (`--bridge=none` would be simpler but is not safe: dockerd then deletes the
//! host's `docker0`, which the machine's own daemon still uses.) Pulls and
//! pushes go to registries on 127.0.0.1 like the machine's daemon's do, as
//! an insecure registry.
//!
//! Dropping it removes every container, network and volume on it, stops it,
//! deletes the bridge and the directory.

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use super::util::{free_port, wait_for, wait_until};

/// The files of a daemon's TLS listener.
pub struct ServerTls {
    /// The CA whose client certificates it accepts.
    pub ca: PathBuf,
    /// Its own certificate, and key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How long dockerd may take to answer after a start, or to exit after
/// SIGTERM (it stops its containers first).
const DAEMON_TIMEOUT: Duration = Duration::from_secs(60);

/// A running private dockerd; see the module doc.
pub struct PrivateDaemon {
    dir: TempDir,
    bridge: String,
    args: Vec<String>,
    child: Option<Child>,
}

impl PrivateDaemon {
    /// Starts a private dockerd and waits until it answers. Panics with
    /// what to do if it cannot (not root, no dockerd, or it fails to start).
    pub fn start() -> PrivateDaemon {
        Self::start_with(Vec::new())
    }

    /// Like [`PrivateDaemon::start`], also listening on
    /// `tcp://127.0.0.1:PORT` with `--tlsverify`: it presents `tls.server`
    /// and accepts clients whose certificate `tls.ca` signed. Returns the
    /// daemon and `tcp://127.0.0.1:PORT`.
    pub fn start_with_tls(tls: &ServerTls) -> (PrivateDaemon, String) {
        let address = format!("tcp://127.0.0.1:{}", free_port());
        let daemon = Self::start_with(vec![
            format!("--host={address}"),
            "--tlsverify".to_string(),
            format!("--tlscacert={}", tls.ca.display()),
            format!("--tlscert={}", tls.cert.display()),
            format!("--tlskey={}", tls.key.display()),
        ]);
        (daemon, address)
    }

    fn start_with(extra_args: Vec<String>) -> PrivateDaemon {
        assert!(
            is_root(),
            "this test starts a private dockerd, which needs root: run the tests as root \
             (.ci/run does), or leave this test binary out"
        );
        let dir = tempfile::Builder::new()
            .prefix("dockhook-dockerd-")
            .tempdir()
            .expect("cannot create a directory for the private dockerd");
        let config = dir.path().join("daemon.json");
        let driver = storage_driver();
        fs::write(&config, format!("{{\"storage-driver\": \"{driver}\"}}\n"))
            .expect("cannot write the private dockerd's configuration");
        let bridge = format!("dht{}", std::process::id());
        create_bridge(&bridge);
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        let args: Vec<String> = vec![
            format!("--config-file={}", path("daemon.json")),
            format!("--host=unix://{}", path("docker.sock")),
            format!("--data-root={}", path("data")),
            format!("--exec-root={}", path("exec")),
            format!("--pidfile={}", path("docker.pid")),
            format!("--bridge={bridge}"),
            "--iptables=false".to_string(),
            "--ip-forward=false".to_string(),
            "--ip-masq=false".to_string(),
        ]
        .into_iter()
        .chain(extra_args)
        .collect();
        let mut daemon = PrivateDaemon {
            dir,
            bridge,
            args,
            child: None,
        };
        daemon.launch();
        daemon
    }

    /// `unix:///…/docker.sock`, for DOCKER_HOST or DOCKHOOK_DOCKER_HOST.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// Stops the daemon as `systemctl restart docker` would (SIGTERM: it
    /// stops its containers and exits), then starts it again and waits until
    /// it answers.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Everything the daemon has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("dockerd.log")
    }

    fn launch(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("cannot open the private dockerd's log");
        let child = Command::new("dockerd")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cannot clone a file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot run dockerd ({err}): install docker.io (.ci/run does)")
            });
        self.child = Some(child);
        let answers = wait_until(DAEMON_TIMEOUT, || self.answers() || !self.is_running());
        assert!(
            answers && self.is_running(),
            "the private dockerd did not answer within {DAEMON_TIMEOUT:?}; its log:\n{}",
            self.log()
        );
    }

    /// SIGTERM, then SIGKILL if it has not exited within the timeout.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let exited = wait_for(DAEMON_TIMEOUT, || child.try_wait().ok().flatten());
        if exited.is_none() {
            eprintln!("the private dockerd ignored SIGTERM for {DAEMON_TIMEOUT:?}; killing it");
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    fn answers(&self) -> bool {
        self.docker(&["version", "--format", "{{.Server.Version}}"])
            .is_some()
    }

    /// `docker ARGS` against this daemon: its stdout, or `None` if it failed.
    fn docker(&self, args: &[&str]) -> Option<String> {
        Command::new("docker")
            .env("DOCKER_HOST", self.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Removes what tests left on the daemon. Its networks matter most: each
    /// is a bridge interface on the host that outlives the daemon.
    fn empty(&self) {
        if let Some(ids) = self.docker(&["ps", "-aq"]) {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(ids);
                self.docker(&args);
            }
        }
        self.docker(&["network", "prune", "-f"]);
        self.docker(&["volume", "prune", "-f"]);
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        if thread::panicking() {
            super::util::print_log_tail("private dockerd", &self.log(), 40);
        }
        if self.is_running() {
            self.empty();
        }
        self.stop();
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .status();
    }
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// The machine's daemon's storage driver (what works on this kernel and
/// file system), or `vfs`, which works everywhere, if it does not say.
fn storage_driver() -> String {
    Command::new("docker")
        .args(["info", "--format", "{{.Driver}}"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .filter(|driver| !driver.is_empty())
        .unwrap_or_else(|| "vfs".to_string())
}

/// Creates bridge `name` with the first 198.18.N.1/24 no interface uses.
fn create_bridge(name: &str) {
    let addresses = ip(&["-4", "-o", "addr", "show"]).unwrap_or_default();
    let subnet = (0..=255u8)
        .map(|n| format!("198.18.{n}."))
        .find(|prefix| !addresses.contains(prefix.as_str()))
        .expect("every 198.18.N.0/24 is taken");
    let address = format!("{subnet}1/24");
    // A bridge of an earlier run of this process ID that was killed.
    let _ = ip(&["link", "delete", name]);
    for args in [
        &["link", "add", "name", name, "type", "bridge"][..],
        &["addr", "add", &address, "dev", name],
        &["link", "set", name, "up"],
    ] {
        if ip(args).is_none() {
            let _ = ip(&["link", "delete", name]);
            panic!(
                "`ip {}` failed: the private dockerd needs its own bridge",
                args.join(" ")
            );
        }
    }
}

/// `ip ARGS`: its stdout, or `None` if it failed.
fn ip(args: &[&str]) -> Option<String> {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
}
