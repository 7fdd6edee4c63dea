//! Test support for the sources: fixtures, signatures, and the router served
//! over real HTTP with a fake engine, for tests that go through a route.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{Request, Settings, SourceError, Verdict};
use crate::deploy::fake::FakeEngine;
use crate::deploy::{Queue, Updater};
use crate::inventory::Inventory;
use crate::server::{router, AppState};
use crate::store::Store;

/// The bytes of `tests/fixtures/{name}`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fixture parsed as JSON, to be changed by a test.
pub fn fixture_json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(name)).expect("fixtures are JSON")
}

/// Asserts that a source refused `body` as malformed, saying `needle`.
pub fn assert_malformed(result: Result<Verdict, SourceError>, needle: &str, body: &str) {
    match result {
        Err(SourceError::Malformed(message)) => {
            assert!(
                message.contains(needle),
                "{body}: {message:?} lacks {needle:?}"
            )
        }
        other => panic!("{body}: expected a malformed-body error, got {other:?}"),
    }
}

pub use crate::fuzzing::hmac_hex;

/// A header map from name/value pairs.
pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            )
        })
        .collect()
}

/// Runs a source's parser on a request made of `pairs` and `body`.
pub fn run(
    parse: fn(&Request<'_>, &Settings) -> Result<Verdict, SourceError>,
    pairs: &[(&str, &str)],
    body: &[u8],
    settings: &Settings,
) -> Result<Verdict, SourceError> {
    let headers = headers(pairs);
    parse(
        &Request {
            headers: &headers,
            body,
        },
        settings,
    )
}

/// The whole router on a local port, with no container running; returns
/// its base URL. The server lives as long as the test's runtime.
pub async fn serve(sources: Settings) -> String {
    serve_on(Arc::new(FakeEngine::default()), sources).await.0
}

/// The hook secret of the router [`serve`] and [`serve_on`] run.
pub const HOOK_SECRET: &str = "hook-secret-of-the-tests";
/// Its API token.
pub const API_TOKEN: &str = "api-token-of-the-tests";
/// Its read-only token.
pub const READ_TOKEN: &str = "read-token-of-the-tests";

/// The token in `source`'s hook URL on that router.
pub fn hook_token(source: &str) -> String {
    crate::tokens::hook_token(&crate::settings::Secret::for_tests(HOOK_SECRET), source)
        .expose()
        .to_string()
}

/// The tokens of that router, all configured (so none is rotated).
pub fn tokens() -> Arc<crate::tokens::Tokens> {
    tokens_in(&std::env::temp_dir())
}

/// The same tokens, with `dir` as the data directory (for rotation).
pub fn tokens_in(dir: &std::path::Path) -> Arc<crate::tokens::Tokens> {
    use crate::tokens::{Configured, Settings as TokenSettings, Tokens};
    let configured = |text: &str| Configured {
        current: Some(crate::settings::Secret::for_tests(text)),
        previous: None,
    };
    let settings = TokenSettings {
        hook: configured(HOOK_SECRET),
        api: configured(API_TOKEN),
        read: configured(READ_TOKEN),
        ..TokenSettings::default()
    };
    let names: Vec<&'static str> = crate::sources::ALL.iter().map(|s| s.name).collect();
    Arc::new(
        Tokens::load(&settings, dir, &names)
            .expect("configured tokens load")
            .0,
    )
}

/// The whole router on a local port over `engine`; its base URL and state.
pub async fn serve_on(
    engine: Arc<FakeEngine>,
    sources: Settings,
) -> (String, Arc<AppState<FakeEngine>>) {
    serve_with(engine, sources, crate::metrics::Settings::default()).await
}

/// [`serve_on`] with `metrics` guarding `/metrics`.
pub async fn serve_with(
    engine: Arc<FakeEngine>,
    sources: Settings,
    metrics: crate::metrics::Settings,
) -> (String, Arc<AppState<FakeEngine>>) {
    serve_all(engine, sources, metrics, tokens()).await
}

/// [`serve`] with `tokens` instead of the configured test tokens.
pub async fn serve_tokens(tokens: Arc<crate::tokens::Tokens>) -> String {
    let engine = Arc::new(FakeEngine::default());
    let metrics = crate::metrics::Settings::default();
    serve_all(engine, Settings::for_tests(), metrics, tokens)
        .await
        .0
}

async fn serve_all(
    engine: Arc<FakeEngine>,
    sources: Settings,
    metrics: crate::metrics::Settings,
    tokens: Arc<crate::tokens::Tokens>,
) -> (String, Arc<AppState<FakeEngine>>) {
    let store = Arc::new(Store::in_memory().unwrap());
    let updater = Arc::new(Updater::new(
        engine.clone(),
        store.clone(),
        crate::deploy::Settings::default(),
    ));
    let inventory = Arc::new(Inventory::new(engine.clone()));
    let queue = Queue::new(updater, store.clone());
    let rules = crate::targets::TargetRules::default();
    let state = Arc::new(AppState {
        tokens,
        sources,
        rules: rules.clone(),
        max_body: 1024 * 1024,
        control: crate::control::Control {
            engine: engine.clone(),
            inventory: inventory.clone(),
            store: store.clone(),
            queue: queue.clone(),
            rules,
            default_mode: crate::deploy::Mode::Auto,
            default_delay: std::time::Duration::ZERO,
        },
        inventory,
        engine,
        queue,
        store,
        deliveries: Default::default(),
        main: tokio::runtime::Handle::current(),
        metrics,
        abuse: crate::abuse::Guard::new(Default::default()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), state)
}

/// POSTs `body` with `pairs` as headers; the status and the JSON answer.
pub async fn post(url: &str, pairs: &[(&str, &str)], body: &[u8]) -> (u16, serde_json::Value) {
    // Bounded, so a handler that never answers fails the test.
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
        .post(url)
        .headers(headers(pairs))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}
