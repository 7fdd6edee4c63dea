//! Small helpers with no Docker in them: unique names, free ports, polling.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often [`wait_for`] asks again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A name no other test, test thread or earlier run uses: `prefix-PID-TIME-N`,
/// lowercase, so it is valid for containers, networks, compose projects and
/// image repositories alike.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_millis()
        % 100_000_000;
    format!("{prefix}-{}-{millis}-{n}", std::process::id()).to_lowercase()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Publish a container on a fixed port from here (`-p 127.0.0.1:PORT:8080`)
/// when the test must reach it again after dockhook recreated it: a port
/// published as `127.0.0.1:0:8080` gets a new random number on every create.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("cannot bind an ephemeral port on 127.0.0.1")
        .port()
}

/// Polls `probe` until it returns `Some`, or `None` once `timeout` has passed.
/// The probe runs at least once.
pub fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Polls `condition` until it holds (`true`) or `timeout` passes (`false`).
/// Callers assert on the result with a message saying what did not happen.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    wait_for(timeout, || condition().then_some(())).is_some()
}

/// Prints the last `lines` lines of `log`, under a heading naming `what`:
/// a failing test's view of a process it ran.
pub fn print_log_tail(what: &str, log: &str, lines: usize) {
    let all: Vec<&str> = log.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    eprintln!("--- {what} log (last lines) ---\n{}", tail.join("\n"));
}
