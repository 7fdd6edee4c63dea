//! Small helpers with no Docker in them: unique names, free ports, polling.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
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
///
/// The port is taken from outside the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`), so no outgoing connection of this
/// machine (Docker's, dockhook's, another test's) can be handed the same
/// port between this call and the bind that uses it, and no two calls in a
/// process return the same port, so a test that holds a port it binds later
/// does not lose it to another test.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = ephemeral_range();
    // The larger gap beside the ephemeral range: below it on Linux's default
    // (32768-60999) and on most tuned machines.
    let below = low.saturating_sub(10_000);
    let above = 65_535u32.saturating_sub(high);
    let (first, last) = if below >= above && below > 0 {
        (10_000, low - 1)
    } else if above > 0 {
        (high + 1, 65_535)
    } else {
        // The whole range is ephemeral: let the kernel choose.
        return TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("cannot bind an ephemeral port on 127.0.0.1")
            .port();
    };
    let span = last - first + 1;
    // Fixed for the process, so no two calls in it return the same port
    // (a test may hold a port it has not bound yet); different per process.
    static SEED: OnceLock<u32> = OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        std::process::id().wrapping_mul(7919).wrapping_add(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |t| t.subsec_nanos()),
        )
    });
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // 4099 is prime: unless it divides `span`, the steps visit every
        // port of the gap before one comes back.
        let step = (u64::from(seed) + u64::from(n) * 4099) % u64::from(span);
        let Ok(port) = u16::try_from(u64::from(first) + step) else {
            continue;
        };
        if nothing_listens_on(port) {
            return port;
        }
    }
    panic!("no free TCP port on 127.0.0.1 between {first} and {last}")
}

/// Whether a connection to 127.0.0.1:`port` is refused.
///
/// Asked by connecting rather than by binding a listener for a moment: a
/// listener's socket is copied into every process another test thread forks
/// in that moment, and stays bound there until that process has exec'd, so
/// the caller's own bind right after can fail with "address in use".
fn nothing_listens_on(port: u16) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    matches!(
        TcpStream::connect_timeout(&address, Duration::from_secs(1)),
        Err(error) if error.kind() == ErrorKind::ConnectionRefused
    )
}

/// `net.ipv4.ip_local_port_range`, Linux's default when it cannot be read.
fn ephemeral_range() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(str::parse::<u32>);
            Some((parts.next()?.ok()?, parts.next()?.ok()?))
        })
        .filter(|(low, high)| low <= high && *high <= 65_535)
        .unwrap_or((32_768, 60_999))
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
