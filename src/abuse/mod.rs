//! Abuse limits: who a request comes from, how often it may fail to
//! authenticate, and how many connections it may hold waiting.
//!
//! - [`client`]: the client address of a request: the connection's peer,
//!   or `X-Forwarded-For` read from the right behind a trusted proxy
//!   (`trusted_proxies`). Set on each request as [`ClientAddr`] by [`layer`].
//! - [`failures`]: a client that fails authentication 20 times in a minute
//!   gets 429 on its failed requests for 10 minutes. One [`layer`] around
//!   every route applies it to every answer 401 (hooks, API, metrics, page
//!   login), so no handler has to remember to.
//! - [`slots`]: the connection slots of the HTTP threads; when all are
//!   taken, the connection that has waited longest on its client (for a
//!   request head or body, or idle) makes room (slowloris).
//!
//! It must not decide who is authenticated: the handlers do, and this
//! module only reads their answers.

pub mod client;
pub mod failures;
pub mod slots;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

pub use client::{ClientAddr, TrustedProxies};
use failures::{Failures, Verdict};

/// The abuse settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
}

/// What [`layer`] keeps between requests.
#[derive(Default)]
pub struct Guard {
    settings: Settings,
    failures: Failures,
}

impl Guard {
    pub fn new(settings: Settings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            failures: Failures::default(),
        })
    }
}

/// Sets the request's [`ClientAddr`] and answers 429 instead of 401 to a
/// blocked client. A request served without a connection's address (in
/// tests of the router alone) has no client and is not limited.
pub async fn layer(State(guard): State<Arc<Guard>>, mut request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| {
            let forwarded = request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .map(HeaderValue::as_bytes);
            ClientAddr(client::client_addr(
                *peer,
                forwarded,
                &guard.settings.trusted_proxies,
            ))
        });
    if let Some(client) = client {
        request.extensions_mut().insert(client);
    }
    let response = next.run(request).await;
    let Some(client) = client else {
        return response;
    };
    if response.status() != StatusCode::UNAUTHORIZED {
        return response;
    }
    let retry_after = match guard.failures.failed(client.0, Instant::now()) {
        Verdict::Allow => return response,
        Verdict::Blocked { retry_after } => {
            tracing::warn!(
                %client,
                "{} failed authentications within {:?}: answering this client's failed \
                 requests 429 for {} minutes",
                failures::THRESHOLD + 1,
                failures::WINDOW,
                failures::BLOCK.as_secs() / 60,
            );
            retry_after
        }
        Verdict::StillBlocked { retry_after } => retry_after,
    };
    crate::metrics::auth_blocked();
    too_many_failures(retry_after.as_secs().max(1))
}

/// The answer to a blocked client's failed request.
fn too_many_failures(retry_after: u64) -> Response {
    let body = Json(serde_json::json!({
        "status": "error",
        "error": "too many failed authentications from this address; \
                  requests that authenticate are still served",
    }));
    let mut response = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;

    /// A route that authenticates with `Authorization: good`.
    fn app(trusted: &str) -> axum::Router {
        let guard = Guard::new(Settings {
            trusted_proxies: TrustedProxies::parse(trusted).unwrap(),
        });
        axum::Router::new()
            .route(
                "/",
                get(|request: Request| async move {
                    let client = request.extensions().get::<ClientAddr>().copied();
                    let status = if request.headers().get("authorization")
                        == Some(&HeaderValue::from_static("good"))
                    {
                        StatusCode::OK
                    } else {
                        StatusCode::UNAUTHORIZED
                    };
                    (status, client.map(|c| c.to_string()).unwrap_or_default())
                }),
            )
            .layer(axum::middleware::from_fn_with_state(guard, layer))
    }

    async fn call(
        app: &axum::Router,
        peer: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String, Option<String>) {
        let mut request = axum::http::Request::get("/");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(Body::empty()).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = tower_service::Service::call(&mut app.clone(), request)
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned(), retry)
    }

    #[tokio::test]
    async fn a_blocked_client_is_refused_only_when_it_fails() {
        let app = app("");
        let peer = "192.0.2.1:4000";
        for _ in 0..failures::THRESHOLD {
            assert_eq!(call(&app, peer, &[]).await.0, 401);
        }
        let (status, _, retry) = call(&app, peer, &[]).await;
        assert_eq!(status, 429);
        let retry: u64 = retry.expect("Retry-After").parse().unwrap();
        assert!(retry > 60 && retry <= failures::BLOCK.as_secs(), "{retry}");
        // Authenticated: served as ever, with its address.
        let (status, client, _) = call(&app, peer, &[("authorization", "good")]).await;
        assert_eq!((status, client.as_str()), (200, "192.0.2.1"));
        // Another client is not blocked.
        assert_eq!(call(&app, "192.0.2.2:4000", &[]).await.0, 401);
    }

    #[tokio::test]
    async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let app = app("10.0.0.1");
        let good = ("authorization", "good");
        let (_, client, _) = call(
            &app,
            "10.0.0.1:1",
            &[good, ("x-forwarded-for", "6.6.6.6, 203.0.113.5")],
        )
        .await;
        assert_eq!(client, "203.0.113.5");
        let (_, client, _) = call(
            &app,
            "192.0.2.9:1",
            &[good, ("x-forwarded-for", "203.0.113.5")],
        )
        .await;
        assert_eq!(client, "192.0.2.9");
        // The proxy's clients are counted one by one.
        for _ in 0..failures::THRESHOLD {
            call(&app, "10.0.0.1:1", &[("x-forwarded-for", "203.0.113.5")]).await;
        }
        let blocked = call(&app, "10.0.0.1:2", &[("x-forwarded-for", "203.0.113.5")]).await;
        assert_eq!(blocked.0, 429);
        let other = call(&app, "10.0.0.1:2", &[("x-forwarded-for", "203.0.113.6")]).await;
        assert_eq!(other.0, 401);
    }
}
