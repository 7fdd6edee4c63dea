//! Tests of URL parsing, grouping and rendering, the outbox, and each
//! service's request format against a real HTTP receiver on loopback (the
//! services' own hosts replaced by it through [`Http::with_base`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::message::{batches, Grouping, Item};
use super::outbox::{backoff, Outbox};
use super::*;
use crate::store::{Facts, NewDeployment, State, Store};

/// A request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    method: String,
    /// Path and query.
    uri: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

type Answer = Arc<dyn Fn(&Got) -> (u16, String) + Send + Sync>;

/// An HTTP server on 127.0.0.1 that records every request and answers
/// with `answer`.
struct Receiver {
    base: String,
    got: Arc<Mutex<Vec<Got>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start(answer: impl Fn(&Got) -> (u16, String) + Send + Sync + 'static) -> Self {
        let answer: Answer = Arc::new(answer);
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let record = got.clone();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let (answer, record) = (answer.clone(), record.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
                let got = Got {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    headers: parts.headers,
                    body,
                };
                let (status, text) = answer(&got);
                record.lock().unwrap().push(got);
                (axum::http::StatusCode::from_u16(status).unwrap(), text)
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { base, got, task }
    }

    /// Answers 200 with `body` to everything.
    async fn ok(body: &'static str) -> Self {
        Self::start(move |_| (200, body.to_string())).await
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn http(&self) -> Http {
        Http::with_base(&self.base)
    }
}

fn endpoint(url: &str) -> Endpoint {
    let settings = Settings::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    settings.endpoints.into_iter().next().unwrap()
}

/// A rollback of `site` with the new container's last log lines.
fn rolled_back() -> Message {
    Message {
        id: 7,
        notice: Notice {
            items: vec![Item {
                event: Kind::RolledBack,
                at: "2026-11-29T07:00:00.000Z".into(),
                deployment: Some(3),
                container: Some("site".into()),
                image: Some("docker.io/alice/site:latest".into()),
                old_digest: Some("1a2b3c4d5e6f".into()),
                new_digest: Some("9f8e7d6c5b4a".into()),
                source: Some("dockerhub".into()),
                pusher: Some("alice".into()),
                to_serving_s: None,
                downtime_s: Some(1.25),
                reason: Some("the new container exited with code 1".into()),
                log_lines: Some("starting\npanic: <config> & missing".into()),
            }],
        },
    }
}

/// Sends `message` to `url` with the receiver standing in for the service.
async fn send_to(receiver: &Receiver, url: &str, message: &Message) -> Result<(), String> {
    endpoint(url).send(&receiver.http(), message).await
}

// ---- URLs ----

#[test]
fn every_scheme_parses_and_masks_its_secrets() {
    let cases = [
        (
            "slack://hook:T0SECRET1-B0SECRET2-XXXXXXXXXXXXSECRET3@webhook",
            "slack",
            &["SECRET2", "SECRET3"][..],
        ),
        (
            "slack://xoxb:123-456-BOTSECRET@C0123",
            "slack",
            &["BOTSECRET"],
        ),
        (
            "discord://DISCORDTOKEN@123456",
            "discord",
            &["DISCORDTOKEN"],
        ),
        (
            "teams://GROUPSECRET@TENANTSECRET/ALTSECRET/OWNERSECRET?host=x.webhook.office.com",
            "teams",
            &["GROUPSECRET", "ALTSECRET", "OWNERSECRET"],
        ),
        (
            "mattermost://bot@chat.example.com/MMTOKEN/town",
            "mattermost",
            &["MMTOKEN"],
        ),
        (
            "googlechat://chat.googleapis.com/v1/spaces/FOO/messages?key=GKEY123&token=GTOKEN123",
            "googlechat",
            &["GKEY123", "GTOKEN123"],
        ),
        (
            "telegram://123456:TGSECRET@telegram?chats=@chan",
            "telegram",
            &["TGSECRET"],
        ),
        (
            "matrix://alice:MXPASSWORD@matrix.example.com/?rooms=!r:x",
            "matrix",
            &["MXPASSWORD"],
        ),
        (
            "ntfy://bob:NTFYPASSWORD@ntfy.sh/topic",
            "ntfy",
            &["NTFYPASSWORD"],
        ),
        (
            "gotify://gotify.example.com/AGOTIFYTOKEN01",
            "gotify",
            &["AGOTIFYTOKEN01"],
        ),
        (
            "pushover://shoutrrr:POAPITOKEN@POUSERKEY/?devices=a",
            "pushover",
            &["POAPITOKEN", "POUSERKEY"],
        ),
        (
            "smtp://me:SMTPPASSWORD@mail.example.com:587/?from=a@example.com&to=b@example.com",
            "smtp",
            &["SMTPPASSWORD"],
        ),
        (
            "generic://hooks.example.com/x?secret=GENERICSECRET",
            "generic",
            &["GENERICSECRET"],
        ),
        (
            "generic+http://u:BASICPASSWORD@10.0.0.1:8080/x",
            "generic",
            &["BASICPASSWORD"],
        ),
        ("generic+https://hooks.example.com/x", "generic", &[]),
    ];
    let all: String = cases
        .iter()
        .map(|(url, _, _)| *url)
        .collect::<Vec<_>>()
        .join(" ");
    let settings = Settings::parse(&all).unwrap();
    assert_eq!(settings.endpoints.len(), cases.len());
    let mut keys = std::collections::HashSet::new();
    for ((url, service, secrets), endpoint) in cases.iter().zip(&settings.endpoints) {
        assert_eq!(endpoint.service, *service, "{url}");
        for secret in *secrets {
            assert!(
                !endpoint.masked.contains(secret),
                "{url} shown as {}",
                endpoint.masked
            );
            assert!(
                endpoint.secrets.iter().any(|s| s.contains(secret)),
                "{url}: {secret} not registered"
            );
        }
        assert!(endpoint
            .masked
            .starts_with(url.split("://").next().unwrap()));
        assert!(!endpoint.key.contains(url), "the key is a hash");
        assert!(keys.insert(endpoint.key.clone()), "keys are distinct");
    }
    let shown = settings.shown();
    assert!(shown.contains("slack://hook:***@webhook"), "{shown}");
    assert!(shown.contains("discord://***@123456"), "{shown}");
    // The same URL keeps its key across restarts.
    assert_eq!(
        Settings::parse(&all).unwrap().endpoints[3].key,
        settings.endpoints[3].key
    );
}

#[test]
fn bad_urls_are_refused_without_quoting_secrets() {
    for (url, expected) in [
        ("slack", "not a service URL"),
        ("foo://x", "unknown service `foo`"),
        ("discord://@123", "expected discord://TOKEN@WEBHOOK_ID"),
        ("telegram://123456:SECRETX@telegram", "no `chats`"),
        (
            "smtp://mail.example.com/?to=b@example.com",
            "no `from` address",
        ),
        (
            "smtp://mail.example.com/?from=a@example.com&to=b@example.com&auth=CRAMMD5",
            "CRAMMD5 is not supported",
        ),
        (
            "smtp://mail.example.com/?from=a@example.com&to=b@example.com&encryption=SSL",
            "expected None, ExplicitTLS",
        ),
        (
            "generic://x/y?secret=SECRETX&events=failed,exploded",
            "unknown event `exploded`",
        ),
        ("generic://x/y?events=", "events is empty"),
        (
            "googlechat://chat.googleapis.com/v1/spaces/F/messages?token=SECRETX",
            "no `key`",
        ),
    ] {
        let error = Settings::parse(&format!("generic://ok/x {url}")).unwrap_err();
        assert!(error.starts_with("URL 2"), "{url}: {error}");
        assert!(error.contains(expected), "{url}: {error}");
        assert!(!error.contains("SECRETX"), "{url}: {error}");
    }
    assert!(Settings::parse("  ").unwrap().endpoints.is_empty());
}

#[test]
fn a_url_hears_only_the_events_it_names() {
    let e = endpoint("generic://x/y?events=failed,rolled_back,docker&other=1");
    assert!(e.wants(Kind::Failed) && e.wants(Kind::RolledBack));
    assert!(e.wants(Kind::DockerUnreachable) && e.wants(Kind::DockerReachable));
    assert!(!e.wants(Kind::Succeeded) && !e.wants(Kind::Available));
    assert!(e.wants(Kind::Test), "a test goes everywhere");
    assert!(!e.masked.contains("events") || e.masked.contains("events=failed"));
    let all = endpoint("generic://x/y");
    assert!(Kind::NAMED.iter().all(|k| all.wants(*k)));
}

#[test]
fn backoff_doubles_from_five_seconds_to_an_hour() {
    let delays: Vec<u64> = (1..=12).map(|n| backoff(n).as_secs()).collect();
    assert_eq!(
        delays,
        [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
    );
}

// ---- Rendering ----

#[test]
fn a_rollback_names_everything_and_its_logs() {
    let message = rolled_back();
    assert_eq!(message.title(), "dockhook: site rolled back");
    assert_eq!(
        message.text(),
        "docker.io/alice/site:latest, from dockerhub (pushed by alice)\n\
         - site: rolled back, 1a2b3c4d5e6f → 9f8e7d6c5b4a; downtime 1.2 s\n  \
         reason: the new container exited with code 1\n  \
         last log lines:\n    starting\n    panic: <config> & missing"
    );
}

// ---- Store, grouping ----

fn push(store: &Store, target: &str) -> i64 {
    store
        .create(&NewDeployment {
            target: target.into(),
            container_id: format!("{target}-id"),
            image: "docker.io/alice/site:latest".into(),
            source: "dockerhub".into(),
            pusher: Some("alice".into()),
            digest: Some("sha256:9f8e7d6c5b4a3210".into()),
            ..NewDeployment::default()
        })
        .unwrap()
}

fn finish(store: &Store, id: i64, state: State, error: Option<&str>) {
    let facts = Facts {
        old_image_id: Some("sha256:1a2b3c4d5e6f7890".into()),
        new_image_id: Some("sha256:9f8e7d6c5b4a3210".into()),
        strategy: Some("stop-first".into()),
        ..Facts::default()
    };
    store.step(id, State::Pulling, None, &facts).unwrap();
    store.transition(id, State::Stopping, None).unwrap();
    if state == State::Succeeded {
        store.transition(id, State::CleaningUp, None).unwrap();
    }
    store.transition(id, state, error).unwrap();
}

const NOW_GROUPING: Grouping = Grouping {
    push_window: Duration::from_secs(10),
    wait: Duration::ZERO,
    hold: Duration::from_secs(600),
};

#[test]
fn only_real_changes_into_notified_states_make_outbox_rows() {
    let store = Store::in_memory().unwrap();
    let off = push(&store, "quiet");
    finish(&store, off, State::Succeeded, None);
    assert!(
        store
            .pending_notices(Duration::from_secs(10))
            .unwrap()
            .is_empty(),
        "off by default"
    );

    store.enable_notifications();
    let skipped = push(&store, "a");
    store
        .transition(skipped, State::Skipped, Some("image unchanged"))
        .unwrap();
    let ok = push(&store, "b");
    finish(&store, ok, State::Succeeded, None);
    // Recovery writing the state it is in again is no news.
    store.transition(ok, State::Succeeded, None).unwrap();
    store
        .record_notice("docker_unreachable", Some("for 30 s: refused"))
        .unwrap();
    let waiting = push(&store, "c");
    store
        .transition(waiting, State::AwaitingApproval, None)
        .unwrap();
    let monitored = push(&store, "d");
    store.transition(monitored, State::Available, None).unwrap();
    let pending = store.pending_notices(Duration::from_secs(10)).unwrap();
    let kinds: Vec<_> = pending.iter().map(|p| p.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "succeeded",
            "docker_unreachable",
            "awaiting_approval",
            "available"
        ]
    );
    let ready = batches(&pending, crate::timing::now(), NOW_GROUPING);
    let items: Vec<_> = ready.iter().flat_map(|b| b.notice.items.clone()).collect();
    let waiting = items
        .iter()
        .find(|i| i.event == Kind::AwaitingApproval)
        .unwrap();
    assert_eq!(
        (waiting.to_serving_s, waiting.downtime_s),
        (None, None),
        "nothing deployed yet"
    );
    assert_eq!(
        waiting.new_digest.as_deref(),
        Some("9f8e7d6c5b4a"),
        "the pushed digest"
    );
    assert_eq!(pending[0].deployment.as_ref().unwrap().0.id, ok);
    assert!(pending[0].push_settled);
    assert!(pending[1].deployment.is_none());
}

#[test]
fn one_push_to_many_containers_is_one_message_once_all_have_ended() {
    let store = Store::in_memory().unwrap();
    store.enable_notifications();
    let ids: Vec<i64> = ["web-1", "web-2", "web-3"]
        .iter()
        .map(|t| push(&store, t))
        .collect();
    finish(&store, ids[0], State::Succeeded, None);
    finish(
        &store,
        ids[1],
        State::RolledBack,
        Some(
            "the new container exited with code 1; its last log lines:\nstarting\nboom\n\
             ; web-2 runs its previous container and image again",
        ),
    );
    let pending = store.pending_notices(NOW_GROUPING.push_window).unwrap();
    assert!(!pending[0].push_settled, "web-3 is still queued");
    assert!(batches(&pending, crate::timing::now(), NOW_GROUPING).is_empty());
    // Held too long: what has ended goes out.
    let held = Grouping {
        hold: Duration::ZERO,
        ..NOW_GROUPING
    };
    assert_eq!(
        batches(&pending, crate::timing::now(), held)[0]
            .events
            .len(),
        2
    );

    finish(&store, ids[2], State::Succeeded, None);
    let pending = store.pending_notices(NOW_GROUPING.push_window).unwrap();
    let ready = batches(&pending, crate::timing::now(), NOW_GROUPING);
    assert_eq!(ready.len(), 1, "{ready:?}");
    let notice = &ready[0].notice;
    let containers: Vec<_> = notice
        .items
        .iter()
        .map(|i| i.container.clone().unwrap())
        .collect();
    assert_eq!(containers, ["web-1", "web-2", "web-3"]);
    assert_eq!(
        notice.title(),
        "dockhook: docker.io/alice/site:latest on 3 containers: 1 rolled back, 2 updated"
    );
    let web2 = &notice.items[1];
    assert_eq!(web2.old_digest.as_deref(), Some("1a2b3c4d5e6f"));
    assert_eq!(web2.new_digest.as_deref(), Some("9f8e7d6c5b4a"));
    assert_eq!(
        web2.reason.as_deref(),
        Some(
            "the new container exited with code 1; \
             web-2 runs its previous container and image again"
        )
    );
    assert_eq!(web2.log_lines.as_deref(), Some("starting\nboom"));
    assert_eq!(web2.to_serving_s, None);
    assert!(web2.downtime_s.is_some());
    let web1 = &notice.items[0];
    assert!(
        web1.to_serving_s.is_some() && web1.downtime_s.is_some(),
        "{web1:?}"
    );

    // Waiting a moment for the rest of a push: not ready before `wait`.
    let patient = Grouping {
        wait: Duration::from_secs(60),
        ..NOW_GROUPING
    };
    assert!(batches(&pending, crate::timing::now(), patient).is_empty());

    // Queued, the events are gone and the deliveries due.
    let message = store
        .queue_message(&ready[0].events, "{}", &["k1".into(), "k2".into()])
        .unwrap();
    assert!(store
        .pending_notices(NOW_GROUPING.push_window)
        .unwrap()
        .is_empty());
    let due = store.due_deliveries().unwrap();
    assert_eq!(
        due.iter()
            .map(|d| (d.message_id, d.url.as_str()))
            .collect::<Vec<_>>(),
        [(message, "k1"), (message, "k2")]
    );
}

#[test]
fn deliveries_back_off_give_up_and_resume_after_a_restart() {
    let store = Store::in_memory().unwrap();
    let m = store
        .queue_message(&[], "{}", &["a".into(), "b".into(), "gone".into()])
        .unwrap();
    store
        .delivery_failed(m, "a", "refused", Some(Duration::from_secs(3600)))
        .unwrap();
    store.delivery_failed(m, "b", "refused", None).unwrap();
    let due: Vec<_> = store
        .due_deliveries()
        .unwrap()
        .into_iter()
        .map(|d| d.url)
        .collect();
    assert_eq!(due, ["gone"], "a waits an hour, b was given up");
    assert_eq!(
        store.resume_deliveries(&["a".into(), "b".into()]).unwrap(),
        (1, 1)
    );
    let due: Vec<_> = store
        .due_deliveries()
        .unwrap()
        .into_iter()
        .map(|d| (d.url, d.attempts))
        .collect();
    assert_eq!(due, [("a".to_string(), 1)], "due at once after a restart");
    store.delivery_sent(m, "a").unwrap();
    let states: Vec<_> = store
        .notify_deliveries()
        .unwrap()
        .into_iter()
        .map(|d| (d.url, d.state, d.attempts, d.last_error))
        .collect();
    assert_eq!(
        states,
        [
            ("a".into(), "sent".into(), 2, Some("refused".into())),
            ("b".into(), "gave_up".into(), 1, Some("refused".into())),
            (
                "gone".into(),
                "dropped".into(),
                0,
                Some("the URL is no longer configured".into())
            ),
        ]
    );
    // Nothing waits for it: retention may forget it (not before its age).
    assert_eq!(
        store
            .prune_notifications(Duration::from_secs(3600))
            .unwrap(),
        0
    );
    assert_eq!(store.prune_notifications(Duration::ZERO).unwrap(), 1);
    assert!(store.notify_deliveries().unwrap().is_empty());
}

// ---- The outbox worker ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_slow_service_never_holds_up_another_and_failures_are_retried() {
    // Answers 500 to the first attempt at message 1, then 200.
    let flaky = Receiver::start({
        let failed = Arc::new(Mutex::new(false));
        move |got| {
            let mut failed = failed.lock().unwrap();
            if got.header("x-dockhook-delivery") == "1" && !*failed {
                *failed = true;
                (500, "down".into())
            } else {
                (200, "ok".into())
            }
        }
    })
    .await;
    // Accepts connections and never answers.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_addr = slow.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = slow.accept().await {
            held.push(socket);
        }
    });
    let good = Receiver::ok("ok").await;
    let urls = format!(
        "generic+http://{slow_addr}/slow {}/good?events=succeeded {}/flaky",
        good.base.replacen("http", "generic+http", 1),
        flaky.base.replacen("http", "generic+http", 1),
    );
    let settings = Settings::parse(&urls).unwrap();
    let store = Arc::new(Store::in_memory().unwrap());
    store.enable_notifications();
    let id = push(&store, "site");
    finish(&store, id, State::Succeeded, None);
    store
        .record_notice("docker_unreachable", Some("for 30 s: refused"))
        .unwrap();

    let outbox = Outbox::new(store.clone(), &settings, Http::new()).with_grouping(NOW_GROUPING);
    outbox.pass().await.unwrap();
    wait("the good URL gets its message", || good.got().len() == 1).await;
    let got = &good.got()[0];
    assert_eq!(got.json()["events"][0]["container"], "site");
    // The good URL does not want Docker news; the flaky one failed the
    // first message and took the second.
    let flaky_key = &settings.endpoints[2].key;
    let flaky_records = || -> Vec<(i64, String, u32)> {
        store
            .notify_deliveries()
            .unwrap()
            .into_iter()
            .filter(|r| &r.url == flaky_key)
            .map(|r| (r.message_id, r.state, r.attempts))
            .collect()
    };
    wait("the flaky URL's attempts are recorded", || {
        flaky_records() == [(1, "pending".into(), 1), (2, "sent".into(), 1)]
    })
    .await;
    let error = store
        .notify_deliveries()
        .unwrap()
        .into_iter()
        .find(|r| &r.url == flaky_key)
        .unwrap()
        .last_error;
    assert!(error.as_deref().unwrap().contains("500"), "{error:?}");
    // The slow one is still in flight; another pass does not start it twice.
    outbox.pass().await.unwrap();
    assert_eq!(good.got().len(), 1, "sent once");
    // A restart makes what failed due at once.
    store
        .resume_deliveries(
            &settings
                .endpoints
                .iter()
                .map(|e| e.key.clone())
                .collect::<Vec<_>>(),
        )
        .unwrap();
    outbox.pass().await.unwrap();
    wait("the flaky URL gets the first message on retry", || {
        flaky_records() == [(1, "sent".into(), 2), (2, "sent".into(), 1)]
    })
    .await;
    assert_eq!(flaky.got().len(), 3, "each message sent once");
    let slow_key = &settings.endpoints[0].key;
    assert!(
        store
            .notify_deliveries()
            .unwrap()
            .iter()
            .filter(|r| &r.url == slow_key)
            .all(|r| r.state == "pending" && r.attempts == 0),
        "the slow service is still being waited for"
    );
}

async fn wait(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn docker_going_away_and_coming_back_is_recorded_once_each() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let store = Arc::new(Store::in_memory().unwrap());
    store.enable_notifications();
    let up = Arc::new(AtomicBool::new(false));
    let stop = tokio_util::sync::CancellationToken::new();
    let pace = docker::Pace {
        every: Duration::from_millis(10),
        down_after: Duration::from_millis(100),
    };
    let ping = {
        let up = up.clone();
        move || {
            let up = up.load(Ordering::SeqCst);
            async move {
                if up {
                    Ok(())
                } else {
                    Err("connection refused")
                }
            }
        }
    };
    let task = tokio::spawn(docker::watch(ping, store.clone(), pace, stop.clone()));
    let kinds = || -> Vec<String> {
        store
            .pending_notices(Duration::ZERO)
            .unwrap()
            .into_iter()
            .map(|p| p.kind)
            .collect()
    };
    wait("unreachable recorded", || kinds().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(kinds(), ["docker_unreachable"], "once");
    let detail = store.pending_notices(Duration::ZERO).unwrap()[0]
        .detail
        .clone()
        .unwrap();
    assert!(detail.contains("connection refused"), "{detail}");
    up.store(true, Ordering::SeqCst);
    wait("reachable recorded", || kinds().len() == 2).await;
    assert_eq!(kinds(), ["docker_unreachable", "docker_reachable"]);
    stop.cancel();
    task.await.unwrap();
}

// ---- Each service's request format ----

#[tokio::test]
async fn slack_webhook_and_bot_api() {
    let receiver = Receiver::ok("ok").await;
    let message = rolled_back();
    send_to(&receiver, "slack://hook:T00000000-B11111111-abcdefghijklmnopqrstuvwx@webhook?botname=dockhook&icon=:whale:", &message).await.unwrap();
    send_to(
        &receiver,
        "slack://dh@T00000000/B11111111/abcdefghijklmnopqrstuvwx",
        &message,
    )
    .await
    .unwrap();
    let got = receiver.got();
    for hook in &got {
        assert_eq!(hook.method, "POST");
        assert_eq!(
            hook.uri,
            "/services/T00000000/B11111111/abcdefghijklmnopqrstuvwx"
        );
        let body = hook.json();
        assert_eq!(body["text"], "dockhook: site rolled back");
        assert_eq!(body["attachments"][0]["text"], message.text());
        assert_eq!(body["attachments"][0]["color"], "#ecb22e");
    }
    assert_eq!(got[0].json()["username"], "dockhook");
    assert_eq!(got[0].json()["icon_emoji"], ":whale:");
    assert_eq!(got[1].json()["username"], "dh");

    let api = Receiver::start(|got| {
        let ok = got.json()["channel"] == "C0123";
        (
            200,
            if ok {
                r#"{"ok":true}"#
            } else {
                r#"{"ok":false,"error":"channel_not_found"}"#
            }
            .into(),
        )
    })
    .await;
    send_to(&api, "slack://xoxb:123-456-abc@C0123", &message)
        .await
        .unwrap();
    let call = &api.got()[0];
    assert_eq!(call.uri, "/api/chat.postMessage");
    assert_eq!(call.header("authorization"), "Bearer xoxb-123-456-abc");
    let error = send_to(&api, "slack://xoxb:123-456-abc@C999", &message)
        .await
        .unwrap_err();
    assert!(error.contains("channel_not_found"), "{error}");
}

#[tokio::test]
async fn discord_webhook() {
    let receiver = Receiver::start(|_| (204, String::new())).await;
    let message = rolled_back();
    send_to(
        &receiver,
        "discord://tok3n-secret@123456789?username=dockhook",
        &message,
    )
    .await
    .unwrap();
    let got = &receiver.got()[0];
    assert_eq!(
        (got.method.as_str(), got.uri.as_str()),
        ("POST", "/api/webhooks/123456789/tok3n-secret")
    );
    let body = got.json();
    assert_eq!(body["embeds"][0]["title"], message.title());
    assert_eq!(body["embeds"][0]["description"], message.text());
    assert_eq!(body["embeds"][0]["color"], 0xecb22e);
    assert_eq!(body["username"], "dockhook");
}

#[tokio::test]
async fn teams_webhook() {
    let receiver = Receiver::ok("1").await;
    let message = rolled_back();
    let url = "teams://11111111-1111-4111-8111-111111111111@22222222-2222-4222-8222-222222222222/\
               33333333333333333333333333333333/44444444-4444-4444-8444-444444444444\
               ?host=example.webhook.office.com";
    send_to(&receiver, url, &message).await.unwrap();
    let got = &receiver.got()[0];
    assert_eq!(
        got.uri,
        "/webhookb2/11111111-1111-4111-8111-111111111111@22222222-2222-4222-8222-222222222222\
         /IncomingWebhook/33333333333333333333333333333333/44444444-4444-4444-8444-444444444444"
    );
    let body = got.json();
    assert_eq!(body["@type"], "MessageCard");
    assert_eq!(body["title"], message.title());
    assert_eq!(body["themeColor"], "ecb22e");
    let lines: Vec<_> = body["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(lines.join("\n"), message.text());
}

#[tokio::test]
async fn mattermost_webhook() {
    let receiver = Receiver::ok("ok").await;
    let message = rolled_back();
    send_to(
        &receiver,
        "mattermost://dockhook@chat.example.com/mmtoken123/ops?icon=https://x/i.png",
        &message,
    )
    .await
    .unwrap();
    let got = &receiver.got()[0];
    assert_eq!(got.uri, "/hooks/mmtoken123");
    let body = got.json();
    assert_eq!(body["username"], "dockhook");
    assert_eq!(body["channel"], "ops");
    assert_eq!(body["icon_url"], "https://x/i.png");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("#### dockhook: site rolled back\n") && text.contains(&message.text()),
        "{text}"
    );
}

#[tokio::test]
async fn google_chat_webhook() {
    let receiver = Receiver::ok("{}").await;
    let message = rolled_back();
    send_to(
        &receiver,
        "googlechat://chat.googleapis.com/v1/spaces/FOO/messages?key=kkk&token=ttt",
        &message,
    )
    .await
    .unwrap();
    let got = &receiver.got()[0];
    assert_eq!(got.uri, "/v1/spaces/FOO/messages?key=kkk&token=ttt");
    assert_eq!(
        got.json()["text"],
        format!("*{}*\n{}", message.title(), message.text())
    );
}

#[tokio::test]
async fn telegram_bot_api_to_each_chat() {
    let receiver = Receiver::ok(r#"{"ok":true,"result":{}}"#).await;
    let message = rolled_back();
    send_to(
        &receiver,
        "telegram://123456:ABC-def_ghi@telegram?chats=@deploys,-1001234:7&notification=no",
        &message,
    )
    .await
    .unwrap();
    let got = receiver.got();
    assert_eq!(got.len(), 2);
    assert!(got
        .iter()
        .all(|g| g.uri == "/bot123456:ABC-def_ghi/sendMessage"));
    let (first, second) = (got[0].json(), got[1].json());
    assert_eq!(first["chat_id"], "@deploys");
    assert_eq!(second["chat_id"], "-1001234");
    assert_eq!(second["message_thread_id"], 7);
    assert_eq!(first["parse_mode"], "HTML");
    assert_eq!(first["disable_notification"], true);
    let text = first["text"].as_str().unwrap();
    assert!(
        text.starts_with("<b>dockhook: site rolled back</b>\n"),
        "{text}"
    );
    assert!(
        text.contains("panic: &lt;config&gt; &amp; missing"),
        "escaped: {text}"
    );

    let refusing = Receiver::ok(r#"{"ok":false,"description":"chat not found"}"#).await;
    let error = send_to(
        &refusing,
        "telegram://123456:ABC@telegram?chats=9",
        &message,
    )
    .await
    .unwrap_err();
    assert!(error.contains("chat not found"), "{error}");
}

#[tokio::test]
async fn matrix_login_join_send_logout() {
    let receiver = Receiver::start(|got| {
        let body = match got.uri.as_str() {
            "/_matrix/client/v3/login" => {
                json!({ "access_token": "syt_session", "user_id": "@alice:x" })
            }
            uri if uri.starts_with("/_matrix/client/v3/join/") => {
                json!({ "room_id": "!room:example.com" })
            }
            "/_matrix/client/v3/joined_rooms" => json!({ "joined_rooms": ["!a:x", "!b:x"] }),
            _ => json!({ "event_id": "$e" }),
        };
        (200, body.to_string())
    })
    .await;
    let message = rolled_back();
    send_to(
        &receiver,
        "matrix://alice:pa55word@matrix.example.com/?rooms=ops:example.com",
        &message,
    )
    .await
    .unwrap();
    let got = receiver.got();
    let calls: Vec<_> = got
        .iter()
        .map(|g| {
            format!(
                "{} {}",
                g.method,
                g.uri.split("/m.room.message/").next().unwrap()
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            "POST /_matrix/client/v3/login",
            "POST /_matrix/client/v3/join/%23ops%3Aexample%2Ecom",
            "PUT /_matrix/client/v3/rooms/%21room%3Aexample%2Ecom/send",
            "POST /_matrix/client/v3/logout",
        ]
    );
    let login = got[0].json();
    assert_eq!(login["type"], "m.login.password");
    assert_eq!(login["identifier"]["user"], "alice");
    assert_eq!(login["password"], "pa55word");
    assert_eq!(got[1].header("authorization"), "Bearer syt_session");
    assert_eq!(
        got[2].json(),
        json!({ "msgtype": "m.text", "body": message.plain() })
    );

    // With an access token and no rooms: every joined room, no login.
    let receiver2 = Receiver::start(|got| {
        let body = if got.uri.ends_with("/joined_rooms") {
            json!({ "joined_rooms": ["!a:x", "!b:x"] })
        } else {
            json!({ "event_id": "$e" })
        };
        (200, body.to_string())
    })
    .await;
    send_to(
        &receiver2,
        "matrix://:syt_token@matrix.example.com",
        &message,
    )
    .await
    .unwrap();
    let got = receiver2.got();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].uri, "/_matrix/client/v3/joined_rooms");
    assert!(got[1]
        .uri
        .starts_with("/_matrix/client/v3/rooms/%21a%3Ax/send/m.room.message/"));
    assert!(got
        .iter()
        .all(|g| g.header("authorization") == "Bearer syt_token"));
}

#[tokio::test]
async fn ntfy_publish() {
    let receiver = Receiver::ok("{}").await;
    let message = rolled_back();
    send_to(
        &receiver,
        "ntfy://:tk_secret@ntfy.example.com/deploys?click=https://x",
        &message,
    )
    .await
    .unwrap();
    send_to(
        &receiver,
        "ntfy://bob:pw123456@ntfy.example.com/deploys?priority=5&tags=whale",
        &message,
    )
    .await
    .unwrap();
    let got = receiver.got();
    assert_eq!(
        (got[0].method.as_str(), got[0].uri.as_str()),
        ("POST", "/deploys")
    );
    assert_eq!(got[0].text(), message.text());
    assert_eq!(got[0].header("title"), message.title());
    assert_eq!(got[0].header("authorization"), "Bearer tk_secret");
    assert_eq!(got[0].header("tags"), "warning");
    assert_eq!(got[0].header("click"), "https://x");
    assert_eq!(got[1].header("authorization"), "Basic Ym9iOnB3MTIzNDU2");
    assert_eq!(
        (got[1].header("priority"), got[1].header("tags")),
        ("5", "whale")
    );
}

#[tokio::test]
async fn gotify_message() {
    let receiver = Receiver::ok("{}").await;
    let message = rolled_back();
    send_to(
        &receiver,
        "gotify://gotify.example.com/sub/path/AbCdEfGhIjKlMnO",
        &message,
    )
    .await
    .unwrap();
    let got = &receiver.got()[0];
    assert_eq!(got.uri, "/sub/path/message");
    assert_eq!(got.header("x-gotify-key"), "AbCdEfGhIjKlMnO");
    let body = got.json();
    assert_eq!(
        (
            body["title"].as_str().unwrap(),
            body["message"].as_str().unwrap()
        ),
        (message.title().as_str(), message.text().as_str())
    );
    assert_eq!(body["priority"], 5, "a rollback is a warning");
}

#[tokio::test]
async fn pushover_message() {
    let receiver = Receiver::ok(r#"{"status":1}"#).await;
    let message = rolled_back();
    send_to(
        &receiver,
        "pushover://shoutrrr:apptoken123@userkey456/?devices=phone,tablet",
        &message,
    )
    .await
    .unwrap();
    let got = &receiver.got()[0];
    assert_eq!(got.uri, "/1/messages.json");
    assert_eq!(
        got.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&got.body)
        .into_owned()
        .collect();
    assert_eq!(form["token"], "apptoken123");
    assert_eq!(form["user"], "userkey456");
    assert_eq!(form["device"], "phone,tablet");
    assert_eq!(form["title"], message.title());
    assert_eq!(form["message"], message.text());
    assert_eq!(form["priority"], "0");
}

#[tokio::test]
async fn generic_webhooks_are_signed_json_posts() {
    let receiver = Receiver::ok("").await;
    let message = rolled_back();
    let base = receiver.base.trim_start_matches("http://");
    let url = format!("generic+http://{base}/hook?secret=s3cr3t-value&team=ops&@X-Custom=1&$env=prod&_secret=passed");
    // The real URL, no stand-in: generic+http is plain HTTP.
    endpoint(&url).send(&Http::new(), &message).await.unwrap();
    let got = &receiver.got()[0];
    assert_eq!(got.method, "POST");
    assert_eq!(got.uri, "/hook?team=ops&secret=passed");
    assert_eq!(got.header("content-type"), "application/json");
    assert_eq!(got.header("x-custom"), "1");
    assert_eq!(got.header("x-dockhook-delivery"), "7");
    assert_eq!(
        got.header("x-dockhook-signature"),
        generic::signature("s3cr3t-value", &got.body)
    );
    assert_ne!(
        got.header("x-dockhook-signature"),
        generic::signature("another", &got.body)
    );
    let body = got.json();
    assert_eq!(body["id"], 7);
    assert_eq!(body["title"], message.title());
    assert_eq!(body["message"], message.text());
    assert_eq!(body["level"], "warning");
    assert_eq!(body["env"], "prod");
    assert_eq!(body["events"][0]["event"], "rolled_back");
    assert_eq!(body["events"][0]["old_digest"], "1a2b3c4d5e6f");
    assert_eq!(
        body["events"][0]["log_lines"],
        "starting\npanic: <config> & missing"
    );

    // generic:// is HTTPS unless disabletls=yes; unsigned without a secret.
    endpoint(&format!(
        "generic://{base}/plain?disabletls=yes&titlekey=subject"
    ))
    .send(&Http::new(), &message)
    .await
    .unwrap();
    let plain = &receiver.got()[1];
    assert_eq!(plain.uri, "/plain");
    assert_eq!(plain.header("x-dockhook-signature"), "");
    assert_eq!(plain.json()["subject"], message.title());
    for https in [
        format!("generic://{base}/tls"),
        format!("generic+https://{base}/tls"),
    ] {
        let error = endpoint(&https)
            .send(&Http::new(), &message)
            .await
            .unwrap_err();
        assert!(!error.is_empty() && !error.contains(base), "{error}");
    }
    assert_eq!(
        receiver.got().len(),
        2,
        "TLS to a plain server gets nowhere"
    );
}

// ---- SMTP, against a real server ----

/// aiosmtpd on a free loopback port, started by Debian's python3 (the
/// `python3-aiosmtpd` package); it writes each message it accepts to its
/// standard output, and takes `user`/`secret-pass` with AUTH.
struct SmtpServer {
    port: u16,
    child: std::process::Child,
    out: Arc<Mutex<String>>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SMTP_SINK: &str = r#"
import asyncio, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

class Sink:
    async def handle_DATA(self, server, session, envelope):
        print("FROM", envelope.mail_from, "TO", ",".join(envelope.rcpt_tos), "AUTH", bool(session.authenticated), flush=True)
        print(envelope.content.decode("utf8", "replace"), flush=True)
        print("END-OF-MESSAGE", flush=True)
        return "250 OK"

def check(server, session, envelope, mechanism, data):
    ok = data.login == b"user" and data.password == b"secret-pass"
    return AuthResult(success=ok, handled=False)

port = int(sys.argv[1])
controller = Controller(Sink(), hostname="127.0.0.1", port=port, authenticator=check, auth_require_tls=False)
controller.start()
print("READY", flush=True)
asyncio.get_event_loop().run_forever()
"#;

impl SmtpServer {
    /// Starts the sink on a port that was free a moment ago; another
    /// process can take that port first, so a sink that could not listen is
    /// started again on another.
    fn start() -> Self {
        (0..5)
            .find_map(|_| Self::try_start())
            .expect("aiosmtpd did not start (is python3-aiosmtpd installed?)")
    }

    fn try_start() -> Option<Self> {
        use std::io::BufRead;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new("/usr/bin/python3")
            .args(["-c", SMTP_SINK, &port.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("/usr/bin/python3 with python3-aiosmtpd (apt-get install python3-aiosmtpd)");
        let out: Arc<Mutex<String>> = Arc::default();
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let sink = out.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line == "READY" {
                    let _ = ready_tx.send(());
                }
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let server = Self { port, child, out };
        // A sink that could not listen exits, which ends the reader thread
        // and so the channel, before READY.
        ready_rx.recv_timeout(Duration::from_secs(20)).ok()?;
        Some(server)
    }

    /// What the sink printed once `count` messages are in it (it prints a
    /// message before it answers 250, and a thread reads that), or after 10 s.
    fn mail(&self, count: usize) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mail = self.out.lock().unwrap().clone();
            if mail.matches("END-OF-MESSAGE").count() >= count
                || std::time::Instant::now() >= deadline
            {
                return mail;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_sends_through_a_real_server_with_and_without_auth() {
    let server = SmtpServer::start();
    let message = rolled_back();
    let port = server.port;
    let url = format!("smtp://127.0.0.1:{port}/?from=dockhook@example.com&fromname=Dockhook&to=ops@example.com,dev@example.com&encryption=None");
    send_to_real(&url, &message).await.unwrap();
    let with_auth = format!("smtp://user:secret-pass@127.0.0.1:{port}/?from=dockhook@example.com&to=ops@example.com&encryption=None&auth=Plain&subject=Deploys");
    send_to_real(&with_auth, &message).await.unwrap();
    let login = with_auth.replace("auth=Plain", "auth=Login");
    send_to_real(&login, &message).await.unwrap();
    let wrong = with_auth.replace("secret-pass", "wrong-pass");
    let error = send_to_real(&wrong, &message).await.unwrap_err();
    assert!(
        error.contains("SMTP") && !error.contains("wrong-pass"),
        "{error}"
    );
    // The server offers no STARTTLS: required TLS refuses to send in clear.
    let tls = with_auth.replace("encryption=None", "encryption=ExplicitTLS");
    let error = send_to_real(&tls, &message).await.unwrap_err();
    assert!(error.to_lowercase().contains("tls"), "{error}");

    let mail = server.mail(3);
    let messages: Vec<&str> = mail
        .split("END-OF-MESSAGE")
        .filter(|m| m.contains("FROM"))
        .collect();
    assert_eq!(messages.len(), 3, "{mail}");
    assert!(
        messages[0]
            .contains("FROM dockhook@example.com TO ops@example.com,dev@example.com AUTH False"),
        "{mail}"
    );
    assert!(
        messages[0].contains("Subject: dockhook: site rolled back"),
        "{mail}"
    );
    assert!(
        messages[0].contains("From: Dockhook <dockhook@example.com>"),
        "{mail}"
    );
    assert!(
        messages[0].contains("the new container exited with code 1"),
        "{mail}"
    );
    assert!(
        messages[1].contains("AUTH True") && messages[1].contains("Subject: Deploys"),
        "{mail}"
    );
    assert!(messages[2].contains("AUTH True"), "{mail}");
}

async fn send_to_real(url: &str, message: &Message) -> Result<(), String> {
    outbox::send(&Http::new(), &endpoint(url), message).await
}

// ---- One rendered message per event kind ----

fn item(event: Kind, container: &str) -> Item {
    Item {
        event,
        at: "2026-11-29T07:00:00.000Z".into(),
        deployment: Some(41),
        container: Some(container.into()),
        image: Some("registry.example.com/alice/site:latest".into()),
        old_digest: Some("1a2b3c4d5e6f".into()),
        new_digest: Some("9f8e7d6c5b4a".into()),
        source: Some("dockerhub".into()),
        pusher: Some("alice".into()),
        to_serving_s: None,
        downtime_s: None,
        reason: None,
        log_lines: None,
    }
}

/// One message of each kind, as the chat services and e-mail show them
/// (title, blank line, text).
fn examples() -> Vec<(&'static str, Notice)> {
    let succeeded = Item {
        to_serving_s: Some(6.4),
        downtime_s: Some(0.0),
        ..item(Kind::Succeeded, "site")
    };
    let rolled_back = Item {
        downtime_s: Some(2.1),
        reason: Some(
            "the new container exited with code 1; site runs its previous container and image \
             again"
                .into(),
        ),
        log_lines: Some("listening on :8080\npanic: DATABASE_URL is not set".into()),
        ..item(Kind::RolledBack, "site")
    };
    let failed = Item {
        old_digest: Some("1a2b3c4d5e6f".into()),
        new_digest: None,
        downtime_s: Some(0.0),
        reason: Some(
            "pulling registry.example.com/alice/site:latest failed: manifest unknown".into(),
        ),
        ..item(Kind::Failed, "site")
    };
    let rollback_failed = Item {
        downtime_s: Some(31.0),
        reason: Some("the new container is unhealthy; rolling back failed too: the old container did not start".into()),
        ..item(Kind::RollbackFailed, "site")
    };
    let waiting = Item {
        old_digest: Some("1a2b3c4d5e6f".into()),
        ..item(Kind::AwaitingApproval, "site")
    };
    let available = item(Kind::Available, "site");
    let at = "2026-11-29T07:00:00.000Z";
    let grouped = vec![
        Item {
            to_serving_s: Some(5.9),
            downtime_s: Some(0.0),
            ..item(Kind::Succeeded, "web-1")
        },
        Item {
            to_serving_s: Some(7.2),
            downtime_s: Some(1.4),
            ..item(Kind::Succeeded, "web-2")
        },
        Item {
            downtime_s: Some(0.0),
            reason: Some(
                "the new container is unhealthy (last check exited 1: curl: (7) Failed to connect)"
                    .into(),
            ),
            ..item(Kind::RolledBack, "web-3")
        },
    ];
    vec![
        (
            "succeeded",
            Notice {
                items: vec![succeeded],
            },
        ),
        (
            "rolled_back",
            Notice {
                items: vec![rolled_back],
            },
        ),
        (
            "failed",
            Notice {
                items: vec![failed],
            },
        ),
        (
            "rollback_failed",
            Notice {
                items: vec![rollback_failed],
            },
        ),
        (
            "awaiting_approval",
            Notice {
                items: vec![waiting],
            },
        ),
        (
            "available",
            Notice {
                items: vec![available],
            },
        ),
        (
            "docker_unreachable",
            Notice {
                items: vec![Item::docker(
                    Kind::DockerUnreachable,
                    at,
                    Some("for 30 s: error trying to connect: No such file or directory"),
                )],
            },
        ),
        (
            "docker_reachable",
            Notice {
                items: vec![Item::docker(
                    Kind::DockerReachable,
                    at,
                    Some("after about 95 s out"),
                )],
            },
        ),
        ("one push to three containers", Notice { items: grouped }),
        ("notify-test", Notice::test()),
    ]
}

#[test]
fn every_kind_renders_with_what_happened_to_which_container() {
    let rendered: Vec<String> = examples()
        .into_iter()
        .map(|(name, notice)| {
            let message = Message { id: 1, notice };
            format!("### {name}\n{}\n", message.plain())
        })
        .collect();
    let text = rendered.join("\n");
    // `cargo test --lib every_kind_renders -- --nocapture` shows them.
    println!("{text}");
    for (needle, why) in [
        ("dockhook: site updated\n\nregistry.example.com/alice/site:latest, from dockerhub (pushed by alice)\n- site: updated, 1a2b3c4d5e6f → 9f8e7d6c5b4a; serving after 6.4 s, downtime 0.0 s", "succeeded"),
        ("  last log lines:\n    listening on :8080\n    panic: DATABASE_URL is not set", "the logs of a rollback"),
        ("- site: update failed, 1a2b3c4d5e6f → ?; downtime 0.0 s\n  reason: pulling", "a failure's reason"),
        ("dockhook: site: update and rollback failed (needs a person)", "rollback failed"),
        ("dockhook: site: waits for approval", "awaiting approval"),
        ("dockhook: site: new image available\n", "available"),
        ("- site: new image available (monitor mode), 1a2b3c4d5e6f → 9f8e7d6c5b4a", "available"),
        ("dockhook: Docker is unreachable\n\n- Docker is unreachable: for 30 s: error", "Docker down"),
        ("dockhook: Docker answers again\n\n- Docker answers again: after about 95 s out", "Docker back"),
        ("dockhook: registry.example.com/alice/site:latest on 3 containers: 1 rolled back, 2 updated", "a grouped push"),
        ("- web-3: rolled back, 1a2b3c4d5e6f → 9f8e7d6c5b4a; downtime 0.0 s\n  reason: the new container is unhealthy", "the grouped rollback"),
        ("dockhook: test message\n\n- test message: dockhook can reach this service URL", "the test"),
    ] {
        assert!(text.contains(needle), "{why}: {needle:?} not in\n{text}");
    }
}
