//! Failed authentication, counted per client.
//!
//! A client (an IPv4 address, or an IPv6 /64: one host usually holds a
//! whole /64) that fails [`THRESHOLD`] times within [`WINDOW`] is blocked
//! for [`BLOCK`]: its failed requests are answered 429 instead of 401. Only
//! failures are refused: the count is kept from answers, not requests, so a
//! request that authenticates is served whatever its address did before. A
//! valid sender behind an address it shares with an attacker (Docker Hub's
//! egress, a NAT) keeps working.
//!
//! The table is bounded: at most [`CAPACITY`] clients, the least recently
//! failed forgotten first, so a flood from many addresses costs a fixed
//! amount of memory (about 100 bytes an entry, some 1.6 MB in all) and can
//! at worst make the limiter forget a blocked client early.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

/// Failures within [`WINDOW`] that block a client.
pub const THRESHOLD: u32 = 20;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How long a blocked client's failures are answered 429.
pub const BLOCK: Duration = Duration::from_secs(10 * 60);
/// Clients remembered at most.
pub const CAPACITY: usize = 16 * 1024;

/// The key a client is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key(u128);

impl Key {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Key(u128::from(u32::from(v4))),
            // The /64, tagged so that it cannot equal an IPv4 key.
            IpAddr::V6(v6) => Key((u128::from(v6) & !u128::from(u64::MAX)) | 1),
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// Failures since `since`.
    failures: u32,
    since: Instant,
    blocked_until: Option<Instant>,
}

/// What the limiter says of a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer as usual (401).
    Allow,
    /// This failure blocked the client: answer 429, and say so in the log.
    Blocked { retry_after: Duration },
    /// Blocked already: answer 429.
    StillBlocked { retry_after: Duration },
}

/// The failure counts of recent clients.
pub struct Failures {
    table: Mutex<LruCache<Key, Entry>>,
}

impl Default for Failures {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl Failures {
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            table: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Counts a failed authentication by `client` at `now`.
    pub fn failed(&self, client: IpAddr, now: Instant) -> Verdict {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let entry = table.get_or_insert_mut(Key::of(client), || Entry {
            failures: 0,
            since: now,
            blocked_until: None,
        });
        if let Some(until) = entry.blocked_until {
            if until > now {
                return Verdict::StillBlocked {
                    retry_after: until - now,
                };
            }
            entry.blocked_until = None;
            entry.failures = 0;
            entry.since = now;
        }
        if now.duration_since(entry.since) >= WINDOW {
            entry.failures = 0;
            entry.since = now;
        }
        entry.failures += 1;
        if entry.failures > THRESHOLD {
            entry.blocked_until = Some(now + BLOCK);
            return Verdict::Blocked { retry_after: BLOCK };
        }
        Verdict::Allow
    }

    /// Clients remembered now.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_threshold_blocks_the_next_failure_for_the_block_time() {
        let failures = Failures::default();
        let start = Instant::now();
        let client = ip("192.0.2.1");
        for i in 0..THRESHOLD {
            let at = start + Duration::from_millis(u64::from(i));
            assert_eq!(failures.failed(client, at), Verdict::Allow, "failure {i}");
        }
        let at = start + Duration::from_secs(1);
        assert_eq!(
            failures.failed(client, at),
            Verdict::Blocked { retry_after: BLOCK }
        );
        assert_eq!(
            failures.failed(client, at + Duration::from_secs(60)),
            Verdict::StillBlocked {
                retry_after: BLOCK - Duration::from_secs(60)
            }
        );
        // Another client is not touched.
        assert_eq!(failures.failed(ip("192.0.2.2"), at), Verdict::Allow);
        // After the block, the count starts again.
        let after = at + BLOCK;
        assert_eq!(failures.failed(client, after), Verdict::Allow);
    }

    #[test]
    fn failures_spread_wider_than_the_window_never_block() {
        let failures = Failures::default();
        let client = ip("192.0.2.1");
        let mut at = Instant::now();
        for _ in 0..(THRESHOLD * 5) {
            assert_eq!(failures.failed(client, at), Verdict::Allow);
            // THRESHOLD failures take just over one window.
            at += WINDOW / THRESHOLD + Duration::from_millis(10);
        }
    }

    #[test]
    fn an_ipv6_slash_64_is_one_client() {
        let failures = Failures::default();
        let now = Instant::now();
        for i in 0..THRESHOLD {
            let host = ip(&format!("2001:db8:1:2::{:x}", i + 1));
            assert_eq!(failures.failed(host, now), Verdict::Allow);
        }
        assert!(matches!(
            failures.failed(ip("2001:db8:1:2:ffff::1"), now),
            Verdict::Blocked { .. }
        ));
        assert_eq!(failures.failed(ip("2001:db8:1:3::1"), now), Verdict::Allow);
        // An IPv4-mapped address is that IPv4 client.
        for _ in 0..THRESHOLD {
            failures.failed(ip("192.0.2.9"), now);
        }
        assert!(matches!(
            failures.failed(ip("::ffff:192.0.2.9"), now),
            Verdict::Blocked { .. }
        ));
        assert_eq!(failures.clients(), 3);
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest() {
        let failures = Failures::with_capacity(100);
        let now = Instant::now();
        for _ in 0..=THRESHOLD {
            failures.failed(ip("192.0.2.1"), now);
        }
        assert!(matches!(
            failures.failed(ip("192.0.2.1"), now),
            Verdict::StillBlocked { .. }
        ));
        for i in 0..10_000u32 {
            let client = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            failures.failed(client, now);
            assert!(failures.clients() <= 100);
        }
        assert_eq!(failures.clients(), 100);
        // The oldest, blocked or not, made room.
        assert_eq!(failures.failed(ip("192.0.2.1"), now), Verdict::Allow);
    }
}
