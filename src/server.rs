//! The HTTP server: routes, limits and JSON errors.
//!
//! Thin by design: a request is authenticated, its body read within the size
//! limit and handed to its source for parsing, the selected targets go to
//! the deploy queue, and the response says what was queued. Nothing here
//! waits for a deployment.
//!
//! | route                        | auth                  |
//! |------------------------------|-----------------------|
//! | `POST /hooks/dockerhub/{token}` | token in the path  |
//! | `POST /hooks/github`         | `X-Hub-Signature-256` (HMAC with `github_secret`) |
//! | `POST /hooks/gitea`          | `X-Gitea-Signature` / `X-Forgejo-Signature` (HMAC with `gitea_secret`) |
//! | `POST /hooks/gitlab`         | `X-Gitlab-Token` equal to `gitlab_token` |
//! | `POST /hooks/harbor`         | `Authorization` equal to `harbor_auth` |
//! | `POST /hooks/quay/{token}`   | token in the path     |
//! | `POST /hooks/acr/{token}`    | token in the path     |
//! | `POST /hooks/generic/{token}` | token in the path    |
//! | `GET /healthz`               | none                  |
//! | `GET /api/deployments`       | `Authorization: Bearer` |
//! | `GET /api/deployments/{id}`  | `Authorization: Bearer` |

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::deploy::{Queue, Request as DeployRequest};
use crate::engine::Engine;
use crate::event::ImageEvent;
use crate::inventory::Inventory;
use crate::settings::Secret;
use crate::sources::{self, SourceError, Verdict};
use crate::store::Store;
use crate::tags::{TagPolicy, POLICY_LABEL};
use crate::targets::{self, TargetRules};

/// What the handlers share.
pub struct AppState<E> {
    pub token: Secret,
    pub sources: sources::Settings,
    pub rules: TargetRules,
    pub max_body: usize,
    pub engine: Arc<E>,
    pub inventory: Arc<Inventory<E>>,
    pub store: Arc<Store>,
    pub queue: Queue<E>,
}

type Shared<E> = State<Arc<AppState<E>>>;

/// The router with every route and limit.
pub fn router<E: Engine>(state: Arc<AppState<E>>) -> Router {
    Router::new()
        .route(
            "/hooks/dockerhub/{token}",
            post(|state, path, request| path_token_hook::<E>(DOCKERHUB, state, path, request)),
        )
        .route(
            "/hooks/github",
            post(|state, request| own_auth_hook::<E>(GITHUB, state, request)),
        )
        .route(
            "/hooks/gitea",
            post(|state, request| own_auth_hook::<E>(GITEA, state, request)),
        )
        .route(
            "/hooks/gitlab",
            post(|state, request| own_auth_hook::<E>(GITLAB, state, request)),
        )
        .route(
            "/hooks/harbor",
            post(|state, request| own_auth_hook::<E>(HARBOR, state, request)),
        )
        .route(
            "/hooks/quay/{token}",
            post(|state, path, request| path_token_hook::<E>(QUAY, state, path, request)),
        )
        .route(
            "/hooks/acr/{token}",
            post(|state, path, request| path_token_hook::<E>(ACR, state, path, request)),
        )
        .route(
            "/hooks/generic/{token}",
            post(|state, path, request| path_token_hook::<E>(GENERIC, state, path, request)),
        )
        .route(
            "/hooks/registry/{token}",
            post(|state, path, request| path_token_hook::<E>(REGISTRY, state, path, request)),
        )
        .route(
            "/hooks/registry",
            post(|state, request| bearer_hook::<E>(REGISTRY, state, request)),
        )
        .route("/healthz", get(healthz::<E>))
        .route("/api/deployments", get(list_deployments::<E>))
        .route("/api/deployments/{id}", get(get_deployment::<E>))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
            )
        })
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The trace span of a request: its method and route, never its URI. Tokens
/// travel in paths (`/hooks/dockerhub/<token>`), so the route's pattern
/// (`/hooks/dockerhub/{token}`) stands in for the path, and a path that
/// matches no route is not shown at all: it may be a token with a typo.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("(no route)", axum::extract::MatchedPath::as_str);
    tracing::debug_span!("request", method = %request.method(), route)
}

/// An error response: a status and a JSON body a person can act on.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "status": "error", "error": self.message }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("static header"),
            );
        }
        response
    }
}

impl From<SourceError> for ApiError {
    fn from(error: SourceError) -> Self {
        match error {
            SourceError::Malformed(m) => Self::new(StatusCode::BAD_REQUEST, m),
            SourceError::Unauthorized => Self::unauthorized(),
            SourceError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, m),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        tracing::error!(%error, "history database");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the history database failed; see dockhook's log",
        )
    }
}

fn token_matches(expected: &Secret, given: &str) -> bool {
    bool::from(expected.expose().as_bytes().ct_eq(given.as_bytes()))
}

fn require_bearer(expected: &Secret, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if token_matches(expected, given.trim()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// Reads the body, refusing more than `limit` bytes with 413.
async fn read_body(request: Request, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is larger than the {limit}-byte limit (max_body)"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|e| {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                too_large()
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, format!("cannot read body: {e}"))
            }
        })
}

/// How a source's requests prove they are genuine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// The secret token is in the URL path.
    PathToken,
    /// The source checks its own signature or header.
    Own,
}

/// A webhook format: its name, how it authenticates, and its parser.
#[derive(Clone, Copy)]
struct Source {
    name: &'static str,
    auth: Auth,
    parse: fn(&sources::Request<'_>, &sources::Settings) -> Result<Verdict, SourceError>,
}

const REGISTRY: Source = Source {
    name: sources::registry::SOURCE,
    auth: Auth::PathToken,
    parse: sources::registry::parse,
};

const DOCKERHUB: Source = Source {
    name: sources::dockerhub::SOURCE,
    auth: Auth::PathToken,
    parse: sources::dockerhub::parse,
};

const GITHUB: Source = Source {
    name: sources::github::SOURCE,
    auth: Auth::Own,
    parse: sources::github::parse,
};

const GITEA: Source = Source {
    name: sources::gitea::SOURCE,
    auth: Auth::Own,
    parse: sources::gitea::parse,
};

const GITLAB: Source = Source {
    name: sources::gitlab::SOURCE,
    auth: Auth::Own,
    parse: sources::gitlab::parse,
};

const HARBOR: Source = Source {
    name: sources::harbor::SOURCE,
    auth: Auth::Own,
    parse: sources::harbor::parse,
};

const QUAY: Source = Source {
    name: sources::quay::SOURCE,
    auth: Auth::PathToken,
    parse: sources::quay::parse,
};

const ACR: Source = Source {
    name: sources::acr::SOURCE,
    auth: Auth::PathToken,
    parse: sources::acr::parse,
};

const GENERIC: Source = Source {
    name: sources::generic::SOURCE,
    auth: Auth::PathToken,
    parse: sources::generic::parse,
};

/// The handler of a source that authenticates its requests itself.
async fn own_auth_hook<E: Engine>(
    source: Source,
    State(state): Shared<E>,
    request: Request,
) -> Result<Response, ApiError> {
    debug_assert_eq!(source.auth, Auth::Own);
    receive(&state, source, request).await
}

/// The handler of a path-token source reached without the token in its
/// path: the token comes as `Authorization: Bearer <token>` instead.
async fn bearer_hook<E: Engine>(
    source: Source,
    State(state): Shared<E>,
    request: Request,
) -> Result<Response, ApiError> {
    debug_assert_eq!(source.auth, Auth::PathToken);
    require_bearer(&state.token, request.headers())?;
    receive(&state, source, request).await
}

/// The handler of a source authenticated by the token in its path.
async fn path_token_hook<E: Engine>(
    source: Source,
    State(state): Shared<E>,
    Path(token): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    debug_assert_eq!(source.auth, Auth::PathToken);
    if !token_matches(&state.token, &token) {
        return Err(ApiError::unauthorized());
    }
    receive(&state, source, request).await
}

/// Reads, parses and dispatches an authenticated webhook.
async fn receive<E: Engine>(
    state: &AppState<E>,
    source: Source,
    request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    let body = read_body(request, state.max_body).await?;
    let verdict = (source.parse)(
        &sources::Request {
            headers: &headers,
            body: &body,
        },
        &state.sources,
    )?;
    if let Some(delivery) = &verdict.delivery {
        let (name, id) = (source.name, delivery.clone());
        let fresh = state
            .store
            .call(move |store| store.remember_delivery(name, &id))
            .await?;
        if !fresh {
            return Ok(ignored(format!("delivery {delivery} was already received")));
        }
    }
    if let Some(reason) = verdict.ignored {
        // Registries notify of every blob; only a log at debug level.
        tracing::debug!(source = source.name, %reason, "webhook ignored");
        return Ok(ignored(reason));
    }
    let mut deployments = Vec::new();
    let mut reasons = Vec::new();
    for event in verdict.events {
        match dispatch(state, &event).await {
            Ok(Dispatched::Queued(ids)) => deployments.extend(ids),
            Ok(Dispatched::NoTarget(reason)) => reasons.push(reason),
            Err(error) => {
                // Not processed: the sender's retry of this delivery must
                // not be taken for a replay.
                if let Some(delivery) = verdict.delivery.clone() {
                    let name = source.name;
                    state
                        .store
                        .call(move |store| store.forget_delivery(name, &delivery))
                        .await?;
                }
                return Err(error);
            }
        }
    }
    if deployments.is_empty() {
        let reason = if reasons.is_empty() {
            "the webhook named no image".to_string()
        } else {
            reasons.join("; ")
        };
        return Ok(ignored(reason));
    }
    deployments.sort_unstable();
    deployments.dedup();
    let body = json!({ "status": "accepted", "deployments": deployments });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

fn ignored(reason: String) -> Response {
    (
        StatusCode::OK,
        Json(json!({ "status": "ignored", "reason": reason })),
    )
        .into_response()
}

/// What became of one event.
enum Dispatched {
    Queued(Vec<i64>),
    /// No container may be updated for it; why.
    NoTarget(String),
}

/// Queues an update for every container the event selects.
async fn dispatch<E: Engine>(
    state: &AppState<E>,
    event: &ImageEvent,
) -> Result<Dispatched, ApiError> {
    let containers = state.inventory.running().await.map_err(|e| {
        tracing::error!(error = %e, "cannot list containers");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the Docker engine does not answer; the event was not processed, send it again later",
        )
    })?;
    let (selected, excluded) = targets::select(&containers, &event.image, &state.rules);
    if selected.is_empty() {
        let mut reason = format!("no running container uses {}", event.image);
        if !excluded.is_empty() {
            let names: Vec<_> = excluded
                .iter()
                .map(|(c, why)| format!("{} ({why})", c.name))
                .collect();
            reason = format!(
                "{reason} that dockhook may update; excluded: {}",
                names.join(", ")
            );
        }
        tracing::info!(image = %event.image, %reason, "event ignored");
        return Ok(Dispatched::NoTarget(reason));
    }
    let mut deployments = Vec::with_capacity(selected.len());
    for targets::Selected { container, why } in selected {
        let label = container.labels.get(POLICY_LABEL).map(String::as_str);
        let policy = TagPolicy::parse(label).unwrap_or(TagPolicy::Exact);
        let id = state
            .queue
            .submit(&DeployRequest {
                target: &container.name,
                container_id: &container.id,
                image: &event.image,
                source: event.source,
                pusher: event.pusher.as_deref(),
                digest: event.digest.as_deref(),
                reason: &why,
                policy: &policy,
            })
            .await?;
        tracing::info!(deployment = id, target = %container.name, image = %event.image, %why, "update queued");
        deployments.push(id);
    }
    Ok(Dispatched::Queued(deployments))
}

async fn healthz<E: Engine>(State(state): Shared<E>) -> Response {
    match tokio::time::timeout(Duration::from_secs(3), state.engine.ping()).await {
        Ok(Ok(())) => match state.queue.recovering() {
            0 => Json(json!({ "status": "ok", "docker": "ok" })).into_response(),
            n => {
                let body = json!({
                    "status": "recovering",
                    "docker": "ok",
                    "recovering": n,
                    "error": format!("finishing or undoing {n} deployment(s) interrupted by a restart"),
                });
                (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
            }
        },
        Ok(Err(e)) => unhealthy(e.to_string()),
        Err(_) => unhealthy("the Docker engine did not answer within 3 s".to_string()),
    }
}

fn unhealthy(error: String) -> Response {
    let body = json!({ "status": "unavailable", "docker": "unavailable", "error": error });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u32>,
}

async fn list_deployments<E: Engine>(
    State(state): Shared<E>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    require_bearer(&state.token, &headers)?;
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "limit must be between 1 and 1000",
        ));
    }
    let deployments = state.store.call(move |store| store.list(limit)).await?;
    Ok(Json(json!({ "deployments": deployments })).into_response())
}

async fn get_deployment<E: Engine>(
    State(state): Shared<E>,
    headers: HeaderMap,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    require_bearer(&state.token, &headers)?;
    let Path(id) =
        id.map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "deployment id must be a number"))?;
    match state.store.call(move |store| store.get(id)).await? {
        Some((deployment, steps)) => {
            let mut body = serde_json::to_value(deployment).expect("deployments serialise");
            body["steps"] = serde_json::to_value(steps).expect("steps serialise");
            Ok(Json(body).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no deployment {id}"),
        )),
    }
}
