//! The client against a small stand-in of dockhook's API: the routes and
//! answers the real server gives (tests/e2e_cli.rs runs it against the
//! real one), with deployments a test moves on by hand.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State as AxumState};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::*;

const TOKEN: &str = "stub-token-0123456789";
const CREATED: &str = "2026-11-29T07:00:00.000Z";

/// What the stand-in knows and what it was asked.
struct Stub {
    deployments: Mutex<HashMap<i64, Value>>,
    changes: broadcast::Sender<String>,
    /// Event streams end after this many events (a proxy dropping them).
    events_per_stream: Option<usize>,
    /// Queries `GET /api/deployments` got.
    queries: Mutex<Vec<HashMap<String, String>>>,
}

type Shared = Arc<Stub>;

/// Every route wants the bearer token, as dockhook's do.
async fn authorised(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let expected = format!("Bearer {TOKEN}");
    let given = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if given == Some(expected.as_str()) {
        next.run(request).await
    } else {
        error(StatusCode::UNAUTHORIZED, "unauthorized")
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "status": "error", "error": message }))).into_response()
}

/// A deployment as the API shows it, with `steps` (state, at, detail).
fn deployment(id: i64, state: &str, steps: &[(&str, &str, &str)]) -> Value {
    let finished = ["succeeded", "skipped", "failed", "rolled_back", "rejected"]
        .contains(&state)
        .then(|| steps.last().map(|s| s.1))
        .flatten();
    json!({
        "id": id, "target": "site", "image": "docker.io/acme/site:latest",
        "source": "api", "pusher": null, "digest": null, "state": state,
        "old_container_id": "0123456789abcdef0123", "new_container_id": null,
        "old_image_id": "sha256:aaaaaaaaaaaabbbb", "new_image_id": null,
        "strategy": "start-first", "error": null, "due_at": null, "kind": "manual",
        "rollback_to": null, "force": false, "created_at": CREATED,
        "updated_at": CREATED, "finished_at": finished,
        "steps": steps.iter().map(|(state, at, detail)| json!({
            "state": state, "at": at, "detail": (!detail.is_empty()).then_some(*detail),
        })).collect::<Vec<_>>(),
        "timings": { "to_serving": finished.map(|_| 3.25), "downtime": finished.map(|_| 0.0), "total": finished.map(|_| 4.0) },
    })
}

const QUEUED: (&str, &str, &str) = ("queued", "2026-11-29T07:00:00.000Z", "");
const PULLING: (&str, &str, &str) = ("pulling", "2026-11-29T07:00:00.250Z", "");
const SUCCEEDED: (&str, &str, &str) = ("succeeded", "2026-11-29T07:00:04.000Z", "");

async fn targets() -> Response {
    let last = deployment(3, "succeeded", &[QUEUED, SUCCEEDED]);
    let pending = deployment(4, "awaiting_approval", &[QUEUED]);
    Json(json!({ "targets": [
        {
            "name": "site", "container_id": "c1", "image": "acme/site:latest",
            "image_id": "sha256:1", "digest": "sha256:0123456789abcdef0123456789abcdef",
            "mode": "approve", "delay_seconds": 600, "label_error": null,
            "last_deployment": last, "pending": [pending],
        },
        {
            "name": "db", "container_id": "c2", "image": "postgres:16",
            "image_id": null, "digest": null, "mode": "auto", "delay_seconds": 0,
            "label_error": "dockhook.mode: expected auto, approve or monitor",
            "last_deployment": null, "pending": [],
        },
    ]}))
    .into_response()
}

async fn list(
    AxumState(stub): AxumState<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    stub.queries.lock().unwrap().push(query);
    let mut all: Vec<Value> = stub.deployments.lock().unwrap().values().cloned().collect();
    all.sort_by_key(|d| -d["id"].as_i64().unwrap());
    Json(json!({ "deployments": all })).into_response()
}

async fn show(AxumState(stub): AxumState<Shared>, Path(id): Path<i64>) -> Response {
    match stub.deployments.lock().unwrap().get(&id) {
        Some(d) => Json(d.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("no deployment {id}")),
    }
}

async fn update(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "site" => (
            StatusCode::ACCEPTED,
            Json(json!({ "status": "accepted", "deployment": 7 })),
        )
            .into_response(),
        _ => error(
            StatusCode::NOT_FOUND,
            &format!("no running container {name} that dockhook watches"),
        ),
    }
}

async fn decide(
    AxumState(stub): AxumState<Shared>,
    Path((id, decision)): Path<(i64, String)>,
) -> Response {
    let Some(d) = stub.deployments.lock().unwrap().get(&id).cloned() else {
        return error(StatusCode::NOT_FOUND, &format!("no deployment {id}"));
    };
    let status = if decision == "approve" {
        "approved"
    } else {
        "rejected"
    };
    Json(json!({ "status": status, "deployment": d })).into_response()
}

async fn events(AxumState(stub): AxumState<Shared>) -> Response {
    let changes = stub.changes.subscribe();
    let limit = stub.events_per_stream.unwrap_or(usize::MAX);
    let stream =
        futures_util::stream::unfold((changes, 0), move |(mut changes, sent)| async move {
            if sent == limit {
                return None;
            }
            let text = changes.recv().await.ok()?;
            let event = match text.strip_prefix("lagged:") {
                Some(missed) => Event::default().event("lagged").data(missed),
                None => Event::default().event("deployment").data(text),
            };
            Some((Ok::<_, Infallible>(event), (changes, sent + 1)))
        });
    Sse::new(stream).into_response()
}

/// A running stand-in; its base URL.
async fn serve(events_per_stream: Option<usize>) -> (String, Shared) {
    let stub = Arc::new(Stub {
        deployments: Mutex::new(HashMap::new()),
        changes: broadcast::channel(16).0,
        events_per_stream,
        queries: Mutex::new(Vec::new()),
    });
    let router = Router::new()
        .route("/api/targets", get(targets))
        .route("/api/targets/{name}/update", post(update))
        .route("/api/deployments", get(list))
        .route("/api/deployments/{id}", get(show))
        .route("/api/deployments/{id}/{decision}", post(decide))
        .route("/api/events", get(events))
        .layer(axum::middleware::from_fn(authorised))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, stub)
}

impl Stub {
    fn set(&self, id: i64, state: &str, steps: &[(&str, &str, &str)]) {
        let d = deployment(id, state, steps);
        self.deployments.lock().unwrap().insert(id, d);
    }

    /// Moves deployment `id` on, then says so on the event stream.
    fn advance(&self, id: i64, state: &str, steps: &[(&str, &str, &str)]) {
        self.set(id, state, steps);
        let change = json!({ "deployment": id, "target": "site", "state": state, "detail": null });
        let _ = self.changes.send(change.to_string());
    }

    /// Waits until `n` event streams are open.
    async fn listeners(&self, n: usize) {
        for _ in 0..500 {
            if self.changes.receiver_count() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the client never subscribed");
    }
}

fn client(base: &str, token: &str) -> Client {
    Client::new(base, Secret::new(token)).unwrap()
}

/// Runs a request; its exit code (or error) and what it printed.
async fn run_request(base: &str, request: Request, json: bool) -> (Result<u8, CliError>, String) {
    let mut out = Vec::new();
    let code = execute(&client(base, TOKEN), request, json, &mut out).await;
    (code, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn status_is_a_table_for_people_and_the_api_json_for_scripts() {
    let (base, _stub) = serve(None).await;
    let (code, text) = run_request(&base, Request::Status, false).await;
    assert_eq!(code.unwrap(), EXIT_OK);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NAME  IMAGE"), "{text}");
    let site = lines[1];
    for cell in [
        "site",
        "acme/site:latest",
        "sha256:0123456789ab ",
        "approve (delay 10m00s)",
        "3 succeeded",
        "4 awaiting_approval",
    ] {
        assert!(site.contains(cell), "{cell:?} missing: {text}");
    }
    assert_eq!(
        site.find("acme/site"),
        lines[2].find("postgres"),
        "aligned: {text}"
    );
    assert!(
        text.contains("db: takes no update until its labels are fixed: dockhook.mode"),
        "{text}"
    );

    let (code, text) = run_request(&base, Request::Status, true).await;
    assert_eq!(code.unwrap(), EXIT_OK);
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        parsed["targets"][0]["digest"],
        "sha256:0123456789abcdef0123456789abcdef"
    );
}

#[tokio::test]
async fn history_asks_for_one_target_and_shows_each_deployment() {
    let (base, stub) = serve(None).await;
    stub.set(5, "succeeded", &[QUEUED, PULLING, SUCCEEDED]);
    stub.set(6, "failed", &[QUEUED]);
    let request = Request::History {
        target: Some("site".into()),
        limit: 7,
    };
    let (code, text) = run_request(&base, request, false).await;
    assert_eq!(code.unwrap(), EXIT_OK);
    let query = stub.queries.lock().unwrap()[0].clone();
    assert_eq!(query["target"], "site");
    assert_eq!(query["limit"], "7");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ID  TARGET  STATE"), "{text}");
    assert!(
        lines[1].starts_with("6   site    failed"),
        "newest first: {text}"
    );
    assert!(
        lines[2].starts_with("5   site    succeeded  manual"),
        "{text}"
    );
    assert!(lines[2].ends_with("4.0s"), "took: {text}");
}

#[tokio::test]
async fn show_lists_the_steps_with_their_times_and_the_timings() {
    let (base, stub) = serve(None).await;
    stub.set(
        5,
        "succeeded",
        &[
            QUEUED,
            ("pulling", "2026-11-29T07:00:01.500Z", "pulling acme/site"),
            SUCCEEDED,
        ],
    );
    let (code, text) = run_request(&base, Request::Show { id: 5 }, false).await;
    assert_eq!(code.unwrap(), EXIT_OK);
    assert!(text.starts_with("deployment 5 of site\n"), "{text}");
    assert!(
        text.contains("  before    container 0123456789ab, image sha256:aaaaaaaaaaaa\n"),
        "{text}"
    );
    assert!(
        text.contains("timings   to serving 3.3s, downtime 0.0s, total 4.0s"),
        "{text}"
    );
    assert!(
        text.contains("07:00:01.500  +1.5s  pulling    pulling acme/site"),
        "{text}"
    );
}

#[tokio::test]
async fn update_wait_prints_each_step_as_it_comes_and_exits_0_on_success() {
    let (base, stub) = serve(None).await;
    stub.set(7, "queued", &[QUEUED]);
    let driver = stub.clone();
    let drive = tokio::spawn(async move {
        driver.listeners(1).await;
        driver.advance(7, "pulling", &[QUEUED, PULLING]);
        // Another deployment's change wakes nothing.
        let _ = driver.changes.send(
            json!({"deployment": 8, "target": "x", "state": "queued", "detail": null}).to_string(),
        );
        driver.advance(7, "succeeded", &[QUEUED, PULLING, SUCCEEDED]);
    });
    let request = Request::Update {
        target: "site".into(),
        force: false,
        wait: true,
    };
    let (code, text) = run_request(&base, request, false).await;
    drive.await.unwrap();
    assert_eq!(code.unwrap(), EXIT_OK, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "update of site queued as deployment 7");
    assert_eq!(lines[1], "07:00:00.000     +0.0s  queued");
    assert_eq!(lines[2], "07:00:00.250     +0.3s  pulling");
    assert_eq!(lines[3], "07:00:04.000     +4.0s  succeeded");
    assert_eq!(
        lines[4],
        "deployment 7 succeeded: site runs docker.io/acme/site:latest (serving after 3.3s, downtime 0.0s)"
    );
    assert_eq!(lines.len(), 5, "each step once: {text}");
}

/// The exit code of `update --wait` when deployment 7 ends in `state`.
async fn exit_code_when_it_ends(state: &str, json: bool) -> (u8, String) {
    let (base, stub) = serve(None).await;
    stub.set(7, "queued", &[QUEUED]);
    let driver = stub.clone();
    let end = state.to_string();
    tokio::spawn(async move {
        driver.listeners(1).await;
        driver.advance(
            7,
            &end,
            &[
                QUEUED,
                (end.as_str(), "2026-11-29T07:00:01.000Z", "why it ended"),
            ],
        );
    });
    let request = Request::Update {
        target: "site".into(),
        force: true,
        wait: true,
    };
    let (code, text) = run_request(&base, request, json).await;
    (code.unwrap(), text)
}

#[tokio::test]
async fn wait_exits_non_zero_unless_the_deployment_succeeded() {
    for (state, expected) in [
        ("failed", EXIT_NOT_DONE),
        ("rolled_back", EXIT_NOT_DONE),
        ("rejected", EXIT_NOT_DONE),
        ("skipped", EXIT_SKIPPED),
    ] {
        let (code, text) = exit_code_when_it_ends(state, false).await;
        assert_eq!(code, expected, "{state}: {text}");
        assert!(
            text.ends_with(&format!("deployment 7 {state}: why it ended\n")),
            "{state}: {text}"
        );
    }
}

#[tokio::test]
async fn wait_with_json_prints_only_the_ended_deployment() {
    let (code, text) = exit_code_when_it_ends("failed", true).await;
    assert_eq!(code, EXIT_NOT_DONE);
    let parsed: Value = serde_json::from_str(&text).expect(&text);
    assert_eq!(parsed["state"], "failed");
    assert_eq!(parsed["steps"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_dropped_stream_and_a_lagged_one_lose_no_step() {
    // Every stream ends after one event, as behind a proxy cutting them.
    let (base, stub) = serve(Some(1)).await;
    stub.set(7, "queued", &[QUEUED]);
    let driver = stub.clone();
    let drive = tokio::spawn(async move {
        driver.listeners(1).await;
        let _ = driver.changes.send("lagged:{\"missed\":4}".to_string());
        // The follower opens a new stream after the first one ended.
        while driver.changes.receiver_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        driver.set(7, "pulling", &[QUEUED, PULLING]);
        driver.listeners(1).await;
        driver.advance(7, "succeeded", &[QUEUED, PULLING, SUCCEEDED]);
    });
    let (code, text) = run_request(&base, Request::Approve { id: 7, wait: true }, false).await;
    drive.await.unwrap();
    assert_eq!(code.unwrap(), EXIT_OK, "{text}");
    for state in ["queued", "pulling", "succeeded"] {
        let count = text
            .lines()
            .filter(|l| l.split_whitespace().nth(2) == Some(state))
            .count();
        assert_eq!(count, 1, "{state} once: {text}");
    }
}

#[tokio::test]
async fn approve_and_reject_say_what_becomes_of_the_container() {
    let (base, stub) = serve(None).await;
    stub.set(4, "rejected", &[QUEUED]);
    let (code, text) = run_request(&base, Request::Reject { id: 4 }, false).await;
    assert_eq!(code.unwrap(), EXIT_OK);
    assert_eq!(text, "deployment 4 rejected: site was not touched\n");

    let (code, text) = run_request(&base, Request::Approve { id: 4, wait: false }, false).await;
    assert_eq!(code.unwrap(), EXIT_OK);
    assert!(
        text.starts_with(
            "deployment 4 approved: site is being updated to docker.io/acme/site:latest"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn errors_say_what_went_wrong_and_how_to_exit() {
    let (base, _stub) = serve(None).await;
    let mut out = Vec::new();
    let error = execute(
        &client(&base, "wrong-token-0123456789"),
        Request::Status,
        false,
        &mut out,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, CliError::Unauthorized { .. }), "{error}");
    assert!(
        error.to_string().contains("refused the token (401)"),
        "{error}"
    );
    assert_eq!(error.exit_code(), EXIT_ERROR);

    let (code, _) = run_request(&base, Request::Show { id: 99 }, false).await;
    let error = code.unwrap_err();
    assert_eq!(error.to_string(), "no deployment 99");
    assert_eq!(error.exit_code(), EXIT_NOT_DONE);

    let request = Request::Update {
        target: "nope".into(),
        force: false,
        wait: true,
    };
    let (code, _) = run_request(&base, request, false).await;
    let error = code.unwrap_err();
    assert!(
        error.to_string().contains("no running container nope"),
        "{error}"
    );
    assert_eq!(error.exit_code(), EXIT_NOT_DONE);

    // Nothing listens on a port just released.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let (code, _) = run_request(&closed, Request::Status, false).await;
    let error = code.unwrap_err();
    assert!(matches!(error, CliError::Unreachable { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("cannot reach dockhook at {closed}")),
        "{error}"
    );
    assert_eq!(error.exit_code(), EXIT_ERROR);
}

#[tokio::test]
async fn an_answer_that_is_not_dockhooks_is_named_so() {
    let router = Router::new().fallback(|| async { (StatusCode::NOT_FOUND, "<html>nginx</html>") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let (code, _) = run_request(&base, Request::Status, false).await;
    let error = code.unwrap_err();
    assert!(matches!(error, CliError::Protocol { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("HTTP 404 Not Found: <html>nginx</html>"),
        "{error}"
    );
}

#[test]
fn the_default_url_is_the_listen_port_on_this_host() {
    assert_eq!(
        local_url("0.0.0.0:8080".parse().unwrap()),
        "http://127.0.0.1:8080"
    );
    assert_eq!(local_url("[::]:9000".parse().unwrap()), "http://[::1]:9000");
    assert_eq!(
        local_url("10.1.2.3:80".parse().unwrap()),
        "http://10.1.2.3:80"
    );
}

#[test]
fn with_tls_the_default_url_is_https_and_trusts_the_served_certificate() {
    let settings = |tls| ClientSettings {
        listen: "0.0.0.0:8443".parse().unwrap(),
        api_token: None,
        api_token_path: "/data/api-token".into(),
        tls,
    };
    let (url, trust) = local_connection(&settings(Mode::Files {
        cert: "/etc/tls/chain.pem".into(),
        key: "/etc/tls/key.pem".into(),
    }));
    assert_eq!(url, "https://127.0.0.1:8443");
    assert!(
        matches!(trust, Trust::Pinned(path) if path == std::path::Path::new("/etc/tls/chain.pem"))
    );
    let (url, trust) = local_connection(&settings(Mode::Acme {
        domains: vec!["hooks.example.com".into(), "b.example.com".into()],
        email: "ops@example.com".into(),
        directory: crate::tls::LETS_ENCRYPT.into(),
        ca: None,
    }));
    assert_eq!(url, "https://hooks.example.com:8443");
    assert!(matches!(
        trust,
        Trust::Resolve { domain, addr }
            if domain == "hooks.example.com" && addr == "127.0.0.1:8443".parse().unwrap()
    ));
    let (url, _) = local_connection(&settings(Mode::Plain));
    assert_eq!(url, "http://127.0.0.1:8443");
}

#[test]
fn the_token_is_the_configured_api_token_else_the_generated_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let load = |token: Option<&str>| {
        Config::load_client_with(None, |key| match key {
            "DOCKHOOK_DATA_DIR" => Some(data.clone()),
            "DOCKHOOK_API_TOKEN" => token.map(str::to_string),
            // The hook secret is not the client's token.
            "DOCKHOOK_TOKEN" => Some("the-hook-secret-0123456789".into()),
            _ => None,
        })
        .expect("a client needs no OWNER")
    };
    let configured = api_token(&load(Some("set-in-the-env-0123456789"))).unwrap();
    assert_eq!(configured.expose(), "set-in-the-env-0123456789");

    let error = api_token(&load(None)).unwrap_err();
    assert_eq!(error.exit_code(), EXIT_ERROR);
    assert!(
        error
            .to_string()
            .contains("set DOCKHOOK_API_TOKEN or pass --token-file"),
        "{error}"
    );
    assert!(
        error.to_string().contains(&format!("{data}/api_token")),
        "{error}"
    );

    std::fs::write(dir.path().join("api_token"), "generated-0123456789abcdef\n").unwrap();
    assert_eq!(
        api_token(&load(None)).unwrap().expose(),
        "generated-0123456789abcdef"
    );
    assert_eq!(load(None).listen.port(), 8080, "the default listen port");

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let error = read_token(&empty).unwrap_err();
    assert!(error.to_string().contains("is empty"), "{error}");
}

#[test]
fn a_closed_output_ends_quietly() {
    /// A pipe whose reader went away (`dockhook history | head`).
    struct Closed;
    impl std::io::Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let error = say(&mut Closed, "a row").unwrap_err();
    assert!(matches!(error, CliError::OutputClosed), "{error}");
    assert_eq!(error.exit_code(), 0);
}
