//! A private SSH server in front of a Docker daemon, for tests of
//! `DOCKER_HOST=ssh://…`: Debian's `sshd` on a free 127.0.0.1 port, with
//! its own host key, configuration and pid file in a temporary directory,
//! taking one client key, whose `authorized_keys` entry forces the command
//! `docker --host DAEMON system dial-stdio` (as a restricted deploy key
//! would), so the client's `docker system dial-stdio` reaches the daemon the
//! test chose, never the machine's.
//!
//! The client side stands in for the user's `~/.ssh`: [`PrivateSshd::client_path`]
//! is a `PATH` whose `ssh` is the system's with a configuration file of the
//! test (the client key, and a known-hosts file that already knows the
//! server), so nothing under the machine's `~/.ssh` is read or written.
//!
//! `sshd` needs its privilege separation directory, `/run/sshd`; it is
//! created if missing and removed again. Dropping the server stops it and
//! deletes the directory.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::util::{free_port, wait_until};

const SSHD: &str = "/usr/sbin/sshd";
const PRIVSEP_DIR: &str = "/run/sshd";

/// A running private sshd; see the module doc.
pub struct PrivateSshd {
    dir: TempDir,
    child: Child,
    port: u16,
    made_privsep_dir: bool,
}

impl PrivateSshd {
    /// Starts sshd, forwarding sessions of its one key to the daemon at
    /// `docker_host` (`unix:///…`), and waits until it accepts connections.
    pub fn start(docker_host: &str) -> PrivateSshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install Debian's openssh-server (.ci/run does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("dockhook-sshd-")
            .tempdir()
            .expect("cannot create a directory for sshd");
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        for key in ["host_key", "client_key"] {
            keygen(&path(key));
        }
        let client_key = fs::read_to_string(path("client_key.pub")).unwrap();
        fs::write(
            path("authorized_keys"),
            format!(
                "command=\"docker --host {docker_host} system dial-stdio\",restrict {client_key}"
            ),
        )
        .unwrap();
        let port = free_port();
        fs::write(
            path("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
                 AuthorizedKeysFile {}\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 UsePAM no\nStrictModes no\nAllowUsers root\n",
                path("host_key"),
                path("sshd.pid"),
                path("authorized_keys"),
            ),
        )
        .unwrap();
        // The client's view: this key, and this server already known.
        let host_key = fs::read_to_string(path("host_key.pub")).unwrap();
        let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        fs::write(
            path("known_hosts"),
            format!("[127.0.0.1]:{port} {}\n", host_key.join(" ")),
        )
        .unwrap();
        fs::write(
            path("ssh_config"),
            format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
                 StrictHostKeyChecking yes\n",
                path("client_key"),
                path("known_hosts")
            ),
        )
        .unwrap();
        fs::create_dir(path("bin")).unwrap();
        let wrapper = dir.path().join("bin/ssh");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
                path("ssh_config")
            ),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();

        let made_privsep_dir = !Path::new(PRIVSEP_DIR).exists();
        if made_privsep_dir {
            fs::create_dir(PRIVSEP_DIR).expect("cannot create /run/sshd");
        }
        let log = fs::File::create(path("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f", &path("sshd_config")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {SSHD}: {err}"));
        let mut sshd = PrivateSshd {
            dir,
            child,
            port,
            made_privsep_dir,
        };
        let listening = wait_until(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok() || !sshd.is_running()
        });
        assert!(
            listening && sshd.is_running(),
            "sshd did not start; its log:\n{}",
            sshd.log()
        );
        sshd
    }

    /// `ssh://root@127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("ssh://root@127.0.0.1:{}", self.port)
    }

    /// A `PATH` for the client: the test's `ssh` first, then the usual.
    pub fn client_path(&self) -> String {
        let path = std::env::var("PATH").unwrap_or_default();
        format!("{}:{path}", self.dir.path().join("bin").display())
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for PrivateSshd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- sshd log ---\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.made_privsep_dir {
            let _ = fs::remove_dir(PRIVSEP_DIR);
        }
    }
}

/// An ed25519 key pair without passphrase at `path` and `path.pub`.
fn keygen(path: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f", path])
        .stdin(Stdio::null())
        .status()
        .expect("cannot run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
}
