//! The product under test: `dockhook serve` as a child process.
//!
//! [`Dockhook::start`] gives it a test environment (loopback listener on a
//! random port, the test [`TOKEN`], [`API_TOKEN`] and [`OWNER`], the test registry standing
//! in for Docker Hub, a fresh data directory, a 1 s grace period, reconcile
//! off, the daemon
//! chosen with [`super::docker::use_daemon`] if any), captures
//! every line it prints on stdout and stderr, and waits for the line
//! `listening on ADDR` that says it is ready. Dropping it kills the process;
//! if the test is panicking, the captured log is printed first.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tempfile::TempDir;

use super::util::wait_for;

/// The hook secret every test instance is configured with; each hook's
/// token is derived from it ([`hook_token`]).
pub const TOKEN: &str = "dockhook-test-token";
/// The API token every test instance is configured with.
pub const API_TOKEN: &str = "dockhook-test-api-token";

/// The token in `source`'s hook URL of a test instance.
pub fn hook_token(source: &str) -> String {
    hook_token_of(TOKEN, source)
}

/// The token in `source`'s hook URL under the hook secret `secret`.
pub fn hook_token_of(secret: &str, source: &str) -> String {
    ::dockhook::tokens::hook_token(&::dockhook::settings::Secret::new(secret.trim()), source)
        .expose()
        .to_string()
}
/// The Docker Hub namespace every test instance accepts images from.
pub const OWNER: &str = "dockhooktest";

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const READY_MARKER: &str = "listening on ";

/// A running dockhook; see the module doc.
pub struct Dockhook {
    child: Child,
    addr: String,
    logs: Logs,
    data_dir: PathBuf,
    /// The data directory, when the support created it (not passed in env).
    _data_tempdir: Option<TempDir>,
}

impl Dockhook {
    /// Path of the binary cargo built for these tests.
    pub const BINARY: &'static str = env!("CARGO_BIN_EXE_dockhook");

    /// The binary, without the settings of the developer's shell: they
    /// must not leak into a test.
    pub fn command() -> Command {
        let mut command = Command::new(Self::BINARY);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DOCKHOOK_") || key == "OWNER" {
                command.env_remove(key);
            }
        }
        command
    }

    /// Starts `dockhook serve` against the registry at `registry_host` and
    /// waits until it listens. `env` adds or overrides variables (an empty
    /// value sets the variable empty). Panics, with its log, if it does not
    /// become ready.
    pub fn start(registry_host: &str, env: &[(&str, &str)]) -> Dockhook {
        Self::try_start(registry_host, env).unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// Like [`Dockhook::start`], but an instance that exits or never becomes
    /// ready is an `Err` with its exit status and log, e.g. for tests of
    /// configuration errors.
    pub fn try_start(registry_host: &str, env: &[(&str, &str)]) -> Result<Dockhook, String> {
        let overrides_data_dir = env.iter().any(|(key, _)| *key == "DOCKHOOK_DATA_DIR");
        let data_tempdir = (!overrides_data_dir).then(|| {
            tempfile::Builder::new()
                .prefix("dockhook-data-")
                .tempdir()
                .expect("cannot create a data directory for dockhook")
        });

        let mut command = Self::command();
        command.arg("serve");
        if let Some(dir) = &data_tempdir {
            command.env("DOCKHOOK_DATA_DIR", dir.path());
        }
        // A test that gives DOCKER_HOST chooses the engine (and transport)
        // itself.
        let chooses_engine = env.iter().any(|(key, _)| *key == "DOCKER_HOST");
        if let Some(host) = super::docker::daemon_host().filter(|_| !chooses_engine) {
            command.env("DOCKHOOK_DOCKER_HOST", host);
        }
        command
            .envs([
                ("DOCKHOOK_LISTEN", "127.0.0.1:0"),
                ("DOCKHOOK_TOKEN", TOKEN),
                ("DOCKHOOK_API_TOKEN", API_TOKEN),
                ("OWNER", OWNER),
                ("DOCKHOOK_DOCKERHUB_REGISTRY", registry_host),
                ("DOCKHOOK_GRACE", "1s"),
                // Reconcile would look at every container on the daemon at
                // start, other tests' too, and deploy their pushes before
                // their webhooks do: tests of reconcile turn it on.
                ("DOCKHOOK_RECONCILE_INTERVAL", "0"),
                ("RUST_LOG", "info"),
                ("NO_COLOR", "1"),
            ])
            .envs(env.iter().copied());
        let data_dir = match &data_tempdir {
            Some(dir) => dir.path().to_path_buf(),
            None => PathBuf::from(env_value(env, "DOCKHOOK_DATA_DIR")),
        };

        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", Self::BINARY));
        let logs = Logs::default();
        let readers = [
            logs.capture(child.stdout.take().expect("stdout is piped")),
            logs.capture(child.stderr.take().expect("stderr is piped")),
        ];

        let outcome = wait_for(READY_TIMEOUT, || {
            if let Some(addr) = logs.find_map(listen_address) {
                return Some(Ok(addr));
            }
            match child.try_wait() {
                Ok(Some(status)) => Some(Err(status.to_string())),
                _ => None,
            }
        });
        let failure = match outcome {
            Some(Ok(addr)) => {
                return Ok(Dockhook {
                    child,
                    addr,
                    logs,
                    data_dir,
                    _data_tempdir: data_tempdir,
                })
            }
            Some(Err(status)) => format!("exited ({status})"),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                format!("did not log `{READY_MARKER}ADDR` within {READY_TIMEOUT:?}")
            }
        };
        // The process is gone, so its pipes are closed: take its last words.
        for reader in readers {
            let _ = reader.join();
        }
        Err(format!(
            "dockhook serve {failure}; its log:\n{}",
            logs.text()
        ))
    }

    /// The address it listens on, `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url()` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// Its DOCKHOOK_DATA_DIR.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line printed so far, ANSI colour codes removed.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lines()
    }

    /// Every line printed so far, as one text.
    pub fn log_text(&self) -> String {
        self.logs.text()
    }

    /// Waits until a line containing `needle` has been printed and returns
    /// it, or `None` after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        wait_for(timeout, || {
            self.logs
                .find_map(|line| line.contains(needle).then(|| line.to_string()))
        })
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit.
    /// `None` means it is still running (Drop will kill it).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        self.wait_exit(timeout)
    }

    /// Sends SIGKILL, as a crash or `kill -9` would, and reaps the process.
    pub fn kill_9(&mut self) -> ExitStatus {
        self.signal("KILL");
        self.wait_exit(Duration::from_secs(10))
            .expect("a killed process exits")
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_for(timeout, || self.child.try_wait().ok().flatten())
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        assert!(sent, "could not send SIG{signal} to dockhook");
    }
}

impl Drop for Dockhook {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("--- dockhook {} log ---\n{}", self.addr, self.logs.text());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines captured from the child's output streams, shared with the threads
/// that read them.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<String>>>);

impl Logs {
    /// Reads `stream` line by line into the log until it closes.
    fn capture(&self, stream: impl Read + Send + 'static) -> JoinHandle<()> {
        let logs = self.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let text = strip_ansi(String::from_utf8_lossy(&line).trim_end());
                logs.0.lock().unwrap().push(text);
                line.clear();
            }
        })
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn text(&self) -> String {
        self.lines().join("\n")
    }

    fn find_map<T>(&self, mut f: impl FnMut(&str) -> Option<T>) -> Option<T> {
        self.0.lock().unwrap().iter().find_map(|line| f(line))
    }
}

/// The address in a line like `... listening on 127.0.0.1:41234` (or a JSON
/// line with `"message":"listening on 127.0.0.1:41234"`): what follows the
/// marker up to the first character no address has, which must parse as a
/// socket address.
fn listen_address(line: &str) -> Option<String> {
    let (_, rest) = line.split_once(READY_MARKER)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end]
        .parse::<SocketAddr>()
        .ok()
        .map(|addr| addr.to_string())
}

/// `text` without ANSI escape sequences (colours, mostly).
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            plain.push(c);
        } else if chars.next() == Some('[') {
            // A CSI sequence runs up to its final byte, in '@'..='~'.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    plain
}

fn env_value<'a>(env: &[(&str, &'a str)], key: &str) -> &'a str {
    env.iter()
        .rev()
        .find(|(k, _)| *k == key)
        .map(|(_, value)| *value)
        .unwrap_or_default()
}
