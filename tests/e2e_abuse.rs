//! End to end: abuse limits against the real binary. A client that keeps
//! failing authentication gets 429 on its failures while its authenticated
//! webhooks are still served; `X-Forwarded-For` names the client only from a
//! trusted proxy; and a slowloris flood of half-open connections, more than
//! dockhook serves at once, does not keep a real webhook out, nor close an
//! event stream that was open before it.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::prometheus::sample;
use support::scenario::hook_path;
use support::*;

/// dockhook's failed-authentication threshold (`abuse::failures::THRESHOLD`).
const THRESHOLD: usize = 20;
/// dockhook's connection slots (`MAX_CONNECTIONS` in `app`).
const SLOTS: usize = 1024;
const PROXY: &str = "127.0.0.2";
const CLIENT: &str = "127.0.0.3";
const BLOCKED_LOG: &str = "answering this client's failed requests 429";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// POSTs a Docker Hub webhook for an image no container runs, with `token`
/// in the path, from `source`, with `forwarded` as `X-Forwarded-For`.
fn webhook(dockhook: &Dockhook, source: &str, token: &str, forwarded: Option<&str>) -> Response {
    let body = dockerhub_payload(OWNER, "nobody-runs-it", "latest").to_string();
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(forwarded) = forwarded {
        headers.push(("X-Forwarded-For", forwarded));
    }
    let url = dockhook.url(&format!("/hooks/dockerhub/{token}"));
    request_from(Some(ip(source)), "POST", &url, &headers, body.as_bytes())
        .unwrap_or_else(|e| panic!("POST from {source}: {e}"))
}

fn scrape(dockhook: &Dockhook) -> String {
    let auth = format!("Bearer {API_TOKEN}");
    let response = request(
        "GET",
        &dockhook.url("/metrics"),
        &[("Authorization", &auth)],
        b"",
    )
    .expect("GET /metrics answers");
    assert_eq!(response.status, 200, "{}", response.body);
    response.body
}

#[test]
fn failing_clients_get_429_but_authenticated_requests_still_pass() {
    require_docker();
    let dockhook = Dockhook::start("127.0.0.1:9", &[("DOCKHOOK_TRUSTED_PROXIES", PROXY)]);
    let wrong = "not-the-token-at-all";

    // A client not behind the proxy: its X-Forwarded-For is not believed,
    // so its failures count against its own address.
    for i in 0..THRESHOLD {
        let response = webhook(&dockhook, CLIENT, wrong, Some("198.51.100.7"));
        assert_eq!(response.status, 401, "failure {i}: {}", response.body);
    }
    let mut blocked = 0;
    let response = webhook(&dockhook, CLIENT, wrong, Some("198.51.100.7"));
    assert_eq!(response.status, 429, "{}", response.body);
    blocked += 1;
    let retry_after: u64 = response
        .header("Retry-After")
        .expect("a 429 says when to retry")
        .parse()
        .expect("Retry-After in seconds");
    assert!((540..=600).contains(&retry_after), "{retry_after}");
    // The API refuses its failures too.
    let api = request_from(
        Some(ip(CLIENT)),
        "GET",
        &dockhook.url("/api/deployments"),
        &[("Authorization", "Bearer wrong-token-of-some-length")],
        b"",
    )
    .unwrap();
    assert_eq!(api.status, 429, "{}", api.body);
    blocked += 1;
    // An authenticated webhook from the same address gets its usual answer.
    let response = webhook(&dockhook, CLIENT, &hook_token("dockerhub"), None);
    assert_eq!(response.status, 200, "{}", response.body);

    // The spoofed 198.51.100.7 was never counted: through the proxy, that
    // client has failed once.
    let response = webhook(&dockhook, PROXY, wrong, Some("198.51.100.7"));
    assert_eq!(response.status, 401, "{}", response.body);
    // Through the proxy, X-Forwarded-For names the client: the blocked one...
    for forwarded in [
        CLIENT,
        &format!("{CLIENT}, {PROXY}"),
        &format!("10.9.9.9, {CLIENT}"),
    ] {
        let response = webhook(&dockhook, PROXY, wrong, Some(forwarded));
        assert_eq!(response.status, 429, "{forwarded}: {}", response.body);
        blocked += 1;
    }
    // ...but only its rightmost untrusted entry: the leftmost is the
    // client's to write.
    let response = webhook(
        &dockhook,
        PROXY,
        wrong,
        Some(&format!("{CLIENT}, 203.0.113.9")),
    );
    assert_eq!(response.status, 401, "{}", response.body);
    let response = webhook(&dockhook, PROXY, &hook_token("dockerhub"), Some(CLIENT));
    assert_eq!(response.status, 200, "{}", response.body);

    let log = dockhook.log_text();
    assert_eq!(
        log.matches(BLOCKED_LOG).count(),
        1,
        "logged once per block:\n{log}"
    );
    assert!(
        log.lines()
            .any(|line| line.contains(BLOCKED_LOG) && line.contains(CLIENT)),
        "{log}"
    );
    let metrics = scrape(&dockhook);
    assert_eq!(
        sample(&metrics, "dockhook_auth_blocked_total"),
        Some(blocked as f64),
        "{metrics}"
    );
}

/// The start of a request whose head comes a byte at a time.
const SLOW_HEAD: &[u8] = b"POST /hooks/dockerhub/x HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
/// A whole request head, to a route that reads the body before it
/// authenticates (the login form), whose body comes a byte at a time.
const SLOW_BODY: &[u8] = b"POST /login HTTP/1.1\r\nHost: slow\r\n\
    Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\ntoken=";

/// A slowloris client's connection: the start of a request, more of which
/// comes a byte at a time.
struct HalfOpen(TcpStream);

impl HalfOpen {
    fn open(addr: SocketAddr, start: &[u8]) -> std::io::Result<HalfOpen> {
        // Short: when dockhook takes no more connections, the flood stops
        // soon after.
        let mut stream = connect_from(None, addr, Duration::from_millis(250))?;
        stream.write_all(start)?;
        Ok(HalfOpen(stream))
    }

    /// One more byte, if dockhook still listens.
    fn drip(&mut self) {
        let _ = self.0.write_all(b"a");
    }

    /// Whether dockhook still holds the connection open: no end of file or
    /// reset, nothing to read.
    fn is_open(&self) -> bool {
        self.0.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        matches!((&self.0).read(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock)
    }
}

#[test]
fn connections_dripping_their_heads_do_not_keep_a_webhook_out() {
    slowloris(SLOW_HEAD);
}

#[test]
fn connections_dripping_their_bodies_do_not_keep_a_webhook_out() {
    slowloris(SLOW_BODY);
}

/// Floods dockhook with twice as many connections as it serves, each
/// sending `start` and then a byte, and checks that a webhook still gets
/// in, at once, and that an event stream opened before is left alone.
fn slowloris(start: &[u8]) {
    require_docker();
    let dockhook = Dockhook::start("127.0.0.1:9", &[]);
    let addr: SocketAddr = dockhook.addr().parse().unwrap();
    let hook = dockhook.url(&hook_path());
    let body = dockerhub_payload(OWNER, "nobody-runs-it", "latest").to_string();
    assert_eq!(
        post_json(&hook, &body, &[]).0,
        200,
        "served before the flood"
    );

    // A request in progress for as long as it lasts: an event stream.
    let mut events = connect_from(None, addr, Duration::from_secs(2)).unwrap();
    let head =
        format!("GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}\r\n\r\n");
    events.write_all(head.as_bytes()).unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = [0u8; 12];
    events.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200", "the event stream is open");

    let attempts = 2 * SLOTS;
    // Only 1024 served at once; without eviction the rest wait in the
    // listen queue until it is full, and then the webhook gets in no more.
    let flood = Instant::now();
    // Well within the header timeout (10 s), which would clear the flood.
    let mut connections: Vec<HalfOpen> = (0..attempts)
        .take_while(|_| flood.elapsed() < Duration::from_secs(3))
        .filter_map(|_| HalfOpen::open(addr, start).ok())
        .collect();
    for connection in &mut connections {
        connection.drip();
    }
    let flood = flood.elapsed();

    let started = Instant::now();
    let (status, answer) = post_json(&hook, &body, &[]);
    let took = started.elapsed();
    let held = connections.iter().filter(|c| c.is_open()).count();
    let what = String::from_utf8_lossy(&start[..start.len().min(20)]);
    println!(
        "slowloris ({what}…): {held} half-open connections held open (of {} opened, {attempts} \
         attempted in {flood:?}; {SLOTS} slots) while a webhook was answered {status} in \
         {took:?}",
        connections.len()
    );
    assert_eq!(status, 200, "{answer}");
    assert!(took < Duration::from_secs(3), "the webhook waited {took:?}");
    assert!(
        connections.len() > SLOTS,
        "only {} connected",
        connections.len()
    );
    // The flood filled every slot: the webhook got in by taking the slot of
    // the longest-waiting one.
    assert!(
        held >= SLOTS * 9 / 10,
        "only {held} half-open connections held"
    );
    let evicted = sample(&scrape(&dockhook), "dockhook_connections_evicted_total").unwrap();
    assert!(
        evicted >= (connections.len() - SLOTS) as f64,
        "{evicted} connections evicted for {} opened",
        connections.len()
    );
    // The stream had a request in progress: it was not closed for room.
    events.set_nonblocking(true).unwrap();
    let mut rest = [0u8; 4096];
    let stream_open = loop {
        match events.read(&mut rest) {
            Ok(0) => break false,
            Ok(_) => continue,
            Err(e) => break e.kind() == ErrorKind::WouldBlock,
        }
    };
    assert!(stream_open, "the event stream was closed");
    drop(connections);
    // dockhook is none the worse.
    assert_eq!(post_json(&hook, &body, &[]).0, 200);
}
