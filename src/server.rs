//! The HTTP server: routes, limits and JSON errors.
//!
//! Thin by design: a request is authenticated, its body read within the size
//! limit and handed to its source for parsing, the selected targets go to
//! the deploy queue, and the response says what was queued. Nothing here
//! waits for a deployment.
//!
//! Hooks run on the HTTP threads ([`crate::app`]): a webhook that selects no
//! container from a current inventory is answered there; anything that
//! touches Docker, the history or the queue is handed to the main runtime
//! ([`AppState::main`]), as is every other route.
//!
//! Every source in [`sources::ALL`] gets its hook: `POST /hooks/{name}/{token}`
//! for a source behind a token (and `POST /hooks/{name}` with
//! `Authorization: Bearer` when it allows that), `POST /hooks/{name}` for a
//! source that proves itself with its own header or signature. A hook
//! token opens its own source's hook and nothing else ([`crate::tokens`]).
//! What the headers prove is checked before the body is read, so a forged
//! request costs no body read. Besides the hooks:
//!
//! | route                        | auth                  |
//! |------------------------------|-----------------------|
//! | `GET /healthz`               | none                  |
//! | `GET /api/deployments`       | API or read-only token |
//! | `GET /api/deployments/{id}`  | API or read-only token |
//! | `POST /api/deployments/{id}/approve`, `/reject` | API token |
//! | `GET /api/targets`           | API or read-only token |
//! | `POST /api/targets/{name}/update`, `/rollback` | API token |
//! | `GET /api/events` (Server-Sent Events) | API or read-only token |
//! | `POST /api/tokens/{kind}/rotate` | API token |
//! | `GET /metrics` (Prometheus) | API, read-only or metrics token, or none with `metrics_public` |
//!
//! Tokens are bearer tokens (`Authorization: Bearer`); a missing or wrong
//! one is answered 401, the read-only token on an action 403.
//!
//! Every hook request is counted in `dockhook_webhooks_total` by its source
//! and how it ended ([`crate::metrics::WebhookOutcome`]). A webhook that
//! changes nothing is logged at debug level only: senders notify of much
//! that concerns no container here, and a flood of them must not fill the
//! disk.
//!
//! The status page's routes (`/`, `/login`, ...) come from [`crate::page`].
//!
//! Every route sits behind [`crate::abuse::layer`], which finds the client's
//! address and answers 429 instead of 401 to a client that failed
//! authentication too often.
//!
//! A delivery ID (a sender's ID for one delivery, retried under the same ID)
//! counts as seen only once the delivery was handled: its deployments
//! queued, or found to need none. A retry of a delivery that failed, timed
//! out or lost its connection is processed; a copy arriving while the first
//! is still being handled is answered 409, so the sender tries again later.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::control::{Actor, ControlError};
use crate::deploy::{Enqueued, Queue, Request as DeployRequest};
use crate::engine::{ContainerInfo, Engine};
use crate::event::ImageEvent;
use crate::inventory::Inventory;
use crate::metrics::WebhookOutcome;
use crate::settings::Secret;
use crate::sources::{self, Auth, Source, SourceError, Verdict};
use crate::store::Store;
use crate::tags::{TagPolicy, POLICY_LABEL};
use crate::targets::{self, TargetRules};
use crate::tokens::Role;

/// What the handlers share.
pub struct AppState<E> {
    /// Who may do what: hook tokens, the API and read-only tokens.
    pub tokens: Arc<crate::tokens::Tokens>,
    pub sources: sources::Settings,
    pub rules: TargetRules,
    pub max_body: usize,
    pub engine: Arc<E>,
    pub inventory: Arc<Inventory<E>>,
    pub store: Arc<Store>,
    pub queue: Queue<E>,
    /// Deliveries being handled right now.
    pub deliveries: InFlight,
    /// What a person sees and does (API and status page).
    pub control: crate::control::Control<E>,
    /// Who may read `/metrics`.
    pub metrics: crate::metrics::Settings,
    /// Client addresses and the limit on failed authentication.
    pub abuse: Arc<crate::abuse::Guard>,
    /// The runtime where everything but the reading of requests runs:
    /// Docker, the history, the queue (see [`crate::app`]).
    pub main: tokio::runtime::Handle,
}

/// The deliveries being handled, so that a copy arriving meanwhile (a
/// sender's retry after a timeout) is not handled twice.
#[derive(Default)]
pub struct InFlight(Mutex<HashSet<(&'static str, String)>>);

impl InFlight {
    /// Claims a delivery until the returned guard drops; `None` while
    /// another request holds it.
    fn claim(&self, source: &'static str, delivery: &str) -> Option<Claim<'_>> {
        let key = (source, delivery.to_string());
        let inserted = {
            let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
            set.insert(key.clone())
        };
        // Made only once the lock is released: a claim that is not taken
        // would otherwise drop, and lock again, while it is held.
        inserted.then(|| Claim { set: self, key })
    }
}

/// A delivery being handled; released on drop, however the handling ends.
struct Claim<'a> {
    set: &'a InFlight,
    key: (&'static str, String),
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut set = self.set.0.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.key);
    }
}

type Shared<E> = State<Arc<AppState<E>>>;

/// The router with every route and limit.
pub fn router<E: Engine>(state: Arc<AppState<E>>) -> Router {
    let mut router = Router::new();
    for &source in sources::ALL {
        let path = format!("/hooks/{}", source.name);
        router = match source.auth {
            Auth::Token { bearer } => {
                let router = router.route(
                    &format!("{path}/{{token}}"),
                    post(move |state, path, request| {
                        counted(source, token_hook::<E>(source, state, path, request))
                    }),
                );
                if bearer {
                    router.route(
                        &path,
                        post(move |state, request| {
                            counted(source, hook::<E>(source, state, request))
                        }),
                    )
                } else {
                    router
                }
            }
            Auth::Own { .. } => router.route(
                &path,
                post(move |state, request| counted(source, hook::<E>(source, state, request))),
            ),
        };
    }
    router
        .route("/healthz", get(healthz::<E>))
        .route("/api/deployments", get(list_deployments::<E>))
        .route("/api/deployments/{id}", get(get_deployment::<E>))
        .route("/api/deployments/{id}/approve", post(approve::<E>))
        .route("/api/deployments/{id}/reject", post(reject::<E>))
        .route("/api/targets", get(list_targets::<E>))
        .route("/api/targets/{name}/update", post(update_target::<E>))
        .route("/api/targets/{name}/rollback", post(rollback_target::<E>))
        .route("/api/events", get(events::<E>))
        .route("/api/tokens/{kind}/rotate", post(rotate_token::<E>))
        .route("/metrics", get(metrics::<E>))
        .merge(crate::page::routes(state.clone()))
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
        // Outermost: the span shows the client, and every 401 is counted.
        .layer(axum::middleware::from_fn_with_state(
            state.abuse.clone(),
            crate::abuse::layer,
        ))
        .with_state(state)
}

/// The trace span of a request: its client, method and route, never its URI. Tokens
/// travel in paths (`/hooks/dockerhub/<token>`), so the route's pattern
/// (`/hooks/dockerhub/{token}`) stands in for the path, and a path that
/// matches no route is not shown at all: it may be a token with a typo.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("(no route)", axum::extract::MatchedPath::as_str);
    let client = request
        .extensions()
        .get::<crate::abuse::ClientAddr>()
        .map(|client| tracing::field::display(client.0));
    tracing::debug_span!("request", client, method = %request.method(), route)
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

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
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

/// Whether `given` is the token, compared in constant time.
pub(crate) fn token_matches(expected: &Secret, given: &str) -> bool {
    bool::from(expected.expose().as_bytes().ct_eq(given.as_bytes()))
}

/// The bearer token of a request; empty when there is none.
fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .trim()
}

/// The request bears a token of at least `role`: 401 without a valid one,
/// 403 for the read-only token where an action needs the API token.
fn require<E>(state: &AppState<E>, headers: &HeaderMap, role: Role) -> Result<(), ApiError> {
    match state.tokens.role(bearer(headers)) {
        Some(given) if given >= role => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the read-only token cannot do this: use the API token (api_token)",
        )),
        None => Err(ApiError::unauthorized()),
    }
}

/// Reads the body, refusing more than `limit` bytes with 413; the head is
/// handed back, so nothing of the request has to be copied.
async fn read_body(
    request: Request,
    limit: usize,
) -> Result<(http::request::Parts, axum::body::Bytes), ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is larger than the {limit}-byte limit (max_body)"),
        )
    };
    let (head, body) = request.into_parts();
    let declared = head
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            too_large()
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, format!("cannot read body: {e}"))
        }
    })?;
    Ok((head, body))
}

/// Runs a hook's handler and counts how the request ended, also when it
/// never ends (the client went away, or the request timed out).
async fn counted(
    source: &'static Source,
    handler: impl std::future::Future<Output = Result<Response, ApiError>>,
) -> Response {
    /// Counts on drop, so a request dropped half-way counts too.
    struct Tally(&'static str, WebhookOutcome);
    impl Drop for Tally {
        fn drop(&mut self) {
            crate::metrics::webhook(self.0, self.1);
        }
    }
    let mut tally = Tally(source.name, WebhookOutcome::Dropped);
    let response = handler.await.into_response();
    tally.1 = response
        .extensions()
        .get::<WebhookOutcome>()
        .copied()
        .unwrap_or_else(|| WebhookOutcome::of_status(response.status()));
    response
}

/// The handler of a source reached at `/hooks/{name}/{token}`.
async fn token_hook<E: Engine>(
    source: &'static Source,
    State(state): Shared<E>,
    Path(token): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    check_headers(&state, source, request.headers(), Some(&token))?;
    receive(state, source, request).await
}

/// The handler of a source reached at `/hooks/{name}`: one that checks its
/// own header or signature, or one behind the token given as a bearer.
async fn hook<E: Engine>(
    source: &'static Source,
    State(state): Shared<E>,
    request: Request,
) -> Result<Response, ApiError> {
    check_headers(&state, source, request.headers(), None)?;
    receive(state, source, request).await
}

/// What the headers alone prove, checked before the body is read: the
/// source is on, and the token (in the path, else as a bearer) or the
/// source's own header is right.
fn check_headers<E>(
    state: &AppState<E>,
    source: &Source,
    headers: &HeaderMap,
    path_token: Option<&str>,
) -> Result<(), ApiError> {
    if !(source.enabled)(&state.sources) {
        return Err(ApiError::unauthorized());
    }
    match (source.auth, path_token) {
        (Auth::Token { .. }, given) => {
            let given = given.unwrap_or_else(|| bearer(headers));
            if state.tokens.hook_accepts(source.name, given) {
                Ok(())
            } else {
                Err(ApiError::unauthorized())
            }
        }
        (Auth::Own { headers: check }, _) => Ok(check(headers, &state.sources)?),
    }
}

/// The longest delivery ID taken: senders use UUIDs (36 bytes) or the like.
const MAX_DELIVERY_ID: usize = 200;

/// Reads and parses an authenticated webhook, then hands it to [`handle`].
async fn receive<E: Engine>(
    state: Arc<AppState<E>>,
    source: &'static Source,
    request: Request,
) -> Result<Response, ApiError> {
    let (head, body) = read_body(request, state.max_body).await?;
    let verdict = (source.parse)(
        &sources::Request {
            headers: &head.headers,
            body: &body,
        },
        &state.sources,
    )?;
    if let Some(delivery) = &verdict.delivery {
        check_delivery_id(delivery)?;
    }
    let main = state.main.clone();
    if verdict.delivery.is_some() {
        return carried_to_its_end(&main, source, handle(state, source, verdict)).await;
    }
    // Most webhooks select no container here (registries announce every
    // push of every image they hold): from a current inventory, they are
    // answered on the spot, on the thread that read them.
    if let Some(containers) = state.inventory.current() {
        let selections = selections_in(&state, source, verdict, &containers);
        if selections.queue_nothing() {
            return queue_all(&state, selections).await;
        }
        let queueing = async move { queue_all(&state, selections).await };
        return carried_to_its_end(&main, source, queueing).await;
    }
    let handling = async move {
        let selections = select_all(&state, source, verdict).await?;
        queue_all(&state, selections).await
    };
    carried_to_its_end(&main, source, handling).await
}

/// Runs `work` on the main runtime and waits for it: whatever touches
/// Docker, the history or the queue runs there, never on an HTTP thread
/// (see [`crate::app`]). Carried to its end even if the client goes away
/// or the request times out, so deployments queued for a delivery are
/// remembered with it (or the sender's retry would queue them again), and
/// a queueing is never left half-way.
async fn carried_to_its_end(
    main: &tokio::runtime::Handle,
    source: &'static Source,
    work: impl std::future::Future<Output = Result<Response, ApiError>> + Send + 'static,
) -> Result<Response, ApiError> {
    main.spawn(work).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, source = source.name, "handling a webhook failed");
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "handling the webhook failed; see dockhook's log",
        ))
    })
}

/// A delivery ID is refused rather than ignored when it is too long or has
/// control characters: no sender makes such IDs, and dropping it would
/// silently turn replay detection off for the request.
fn check_delivery_id(delivery: &str) -> Result<(), ApiError> {
    if delivery.len() > MAX_DELIVERY_ID {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the delivery ID is longer than {MAX_DELIVERY_ID} bytes"),
        ));
    }
    if delivery.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the delivery ID has control characters",
        ));
    }
    Ok(())
}

/// Dispatches a parsed webhook once per delivery: a delivery is remembered
/// only after it was handled, and a copy arriving meanwhile is refused.
async fn handle<E: Engine>(
    state: Arc<AppState<E>>,
    source: &'static Source,
    verdict: Verdict,
) -> Result<Response, ApiError> {
    let Some(delivery) = verdict.delivery.clone() else {
        return dispatch_all(&state, source, verdict).await;
    };
    let Some(_claim) = state.deliveries.claim(source.name, &delivery) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("delivery {delivery} is being handled; send it again if that fails"),
        ));
    };
    let (name, id) = (source.name, delivery.clone());
    let seen = state
        .store
        .call(move |store| store.delivery_seen(name, &id))
        .await?;
    if seen {
        tracing::debug!(source = name, %delivery, "delivery already received");
        let mut response = ignored(format!("delivery {delivery} was already received"));
        response.extensions_mut().insert(WebhookOutcome::Duplicate);
        return Ok(response);
    }
    let response = dispatch_all(&state, source, verdict).await?;
    state
        .store
        .call(move |store| store.remember_delivery(name, &delivery).map(drop))
        .await?;
    Ok(response)
}

/// Queues the verdict's events; the answer says what was queued, or why
/// nothing was.
async fn dispatch_all<E: Engine>(
    state: &AppState<E>,
    source: &Source,
    verdict: Verdict,
) -> Result<Response, ApiError> {
    let selections = select_all(state, source, verdict).await?;
    queue_all(state, selections).await
}

/// What a webhook selects, decided before anything is queued.
struct Selections {
    /// Why the webhook asks for nothing (a ping, a blob, a delete…).
    ignored: Option<String>,
    events: Vec<(ImageEvent, Selection)>,
}

impl Selections {
    fn queue_nothing(&self) -> bool {
        self.events
            .iter()
            .all(|(_, selection)| matches!(selection, Selection::NoTarget(_)))
    }
}

/// The targets of every event of the verdict, looked up without changing
/// anything.
async fn select_all<E: Engine>(
    state: &AppState<E>,
    source: &Source,
    verdict: Verdict,
) -> Result<Selections, ApiError> {
    let containers = if verdict.ignored.is_some() {
        Arc::default()
    } else {
        running(state).await?
    };
    Ok(selections_in(state, source, verdict, &containers))
}

/// [`select_all`] among `containers`: pure.
fn selections_in<E>(
    state: &AppState<E>,
    source: &Source,
    verdict: Verdict,
    containers: &[ContainerInfo],
) -> Selections {
    if let Some(reason) = verdict.ignored {
        // Registries notify of every blob; only a log at debug level.
        tracing::debug!(source = source.name, %reason, "webhook ignored");
        return Selections {
            ignored: Some(reason),
            events: Vec::new(),
        };
    }
    let events = verdict
        .events
        .into_iter()
        .map(|event| {
            let selection = select_in(state, containers, &event);
            (event, selection)
        })
        .collect();
    Selections {
        ignored: None,
        events,
    }
}

/// Queues what the events selected; the answer says what was queued, or
/// why nothing was.
async fn queue_all<E: Engine>(
    state: &AppState<E>,
    selections: Selections,
) -> Result<Response, ApiError> {
    if let Some(reason) = selections.ignored {
        return Ok(ignored(reason));
    }
    let mut deployments = Vec::new();
    let mut reasons = Vec::new();
    for (event, selection) in selections.events {
        match queue(state, &event, selection).await? {
            Dispatched::Queued(ids) => deployments.extend(ids),
            Dispatched::NoTarget(reason) => reasons.push(reason),
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

/// The answer to a webhook that changes nothing: the commonest answer of
/// all, so serialised straight from a struct rather than through a map.
fn ignored(reason: String) -> Response {
    #[derive(serde::Serialize)]
    struct Ignored {
        status: &'static str,
        reason: String,
    }
    let body = Ignored {
        status: "ignored",
        reason,
    };
    (StatusCode::OK, Json(body)).into_response()
}

/// What became of one event.
pub(crate) enum Dispatched {
    Queued(Vec<i64>),
    /// No container may be updated for it; why.
    NoTarget(String),
}

/// Queues an update for every container the event selects: for
/// [`crate::reconcile`], which has no request to answer.
pub(crate) async fn dispatch<E: Engine>(
    state: &AppState<E>,
    event: &ImageEvent,
) -> Result<Dispatched, ApiError> {
    let selection = select(state, event).await?;
    queue(state, event, selection).await
}

/// What one event selects.
enum Selection {
    /// The containers to update, and why each takes the image.
    Targets(Vec<(ContainerInfo, String)>),
    /// No container may be updated for it; why.
    NoTarget(String),
}

/// The containers the event selects, from the inventory; changes nothing.
async fn select<E: Engine>(state: &AppState<E>, event: &ImageEvent) -> Result<Selection, ApiError> {
    Ok(select_in(state, &running(state).await?, event))
}

/// The running containers and services, from the inventory (which may ask
/// Docker).
async fn running<E: Engine>(state: &AppState<E>) -> Result<Arc<Vec<ContainerInfo>>, ApiError> {
    state.inventory.running().await.map_err(|e| {
        tracing::error!(error = %e, "cannot list containers");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the Docker engine does not answer; the event was not processed, send it again later",
        )
    })
}

/// The targets the event selects among `containers`: pure.
fn select_in<E>(
    state: &AppState<E>,
    containers: &[ContainerInfo],
    event: &ImageEvent,
) -> Selection {
    let (selected, excluded) = targets::select(containers, &event.image, &state.rules);
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
        tracing::debug!(image = %event.image, %reason, "event ignored");
        return Selection::NoTarget(reason);
    }
    Selection::Targets(
        selected
            .into_iter()
            .map(|targets::Selected { container, why }| (container.clone(), why))
            .collect(),
    )
}

/// Queues an update for every container selected.
async fn queue<E: Engine>(
    state: &AppState<E>,
    event: &ImageEvent,
    selection: Selection,
) -> Result<Dispatched, ApiError> {
    let selected = match selection {
        Selection::NoTarget(reason) => return Ok(Dispatched::NoTarget(reason)),
        Selection::Targets(selected) => selected,
    };
    let mut deployments = Vec::with_capacity(selected.len());
    let mut refused = Vec::new();
    for (container, why) in selected {
        let label = container.labels.get(POLICY_LABEL).map(String::as_str);
        let policy = TagPolicy::parse(label).unwrap_or(TagPolicy::Exact);
        let control = &state.control;
        let (mode, delay) = match crate::deploy::mode::for_container(
            &container.labels,
            control.default_mode,
            control.default_delay,
        ) {
            Ok(found) => found,
            Err(e) => {
                // A typo in a label never deploys what its owner meant to
                // hold back.
                tracing::warn!(target = %container.name, error = %e, "container not updated");
                refused.push(format!("{} ({e})", container.name));
                continue;
            }
        };
        let enqueued = state
            .queue
            .enqueue(&DeployRequest {
                pusher: event.pusher.as_deref(),
                digest: event.digest.as_deref(),
                mode,
                delay,
                service: container.kind == crate::engine::TargetKind::Service,
                ..DeployRequest::push(
                    &container.name,
                    &container.id,
                    &event.image,
                    event.source,
                    &why,
                    &policy,
                )
            })
            .await?;
        let id = enqueued.id();
        if let Enqueued::New(_) = enqueued {
            tracing::info!(deployment = id, target = %container.name, image = %event.image, %why, %mode, "update queued");
        } else {
            // A copy of a push in flight changes nothing.
            tracing::debug!(deployment = id, target = %container.name, image = %event.image, "the same push is in flight");
        }
        deployments.push(id);
    }
    if deployments.is_empty() {
        return Ok(Dispatched::NoTarget(format!(
            "no container took {}: {}",
            event.image,
            refused.join(", ")
        )));
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
    /// Only this container's deployments.
    target: Option<String>,
}

async fn list_deployments<E: Engine>(
    State(state): Shared<E>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    require(&state, &headers, Role::Reader)?;
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "limit must be between 1 and 1000",
        ));
    }
    let target = query.target;
    let deployments = state
        .store
        .call(move |store| store.list_of(target.as_deref(), limit))
        .await?;
    Ok(Json(json!({ "deployments": deployments })).into_response())
}

async fn get_deployment<E: Engine>(
    State(state): Shared<E>,
    headers: HeaderMap,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    require(&state, &headers, Role::Reader)?;
    let id = deployment_id(id)?;
    match state.store.call(move |store| store.get(id)).await? {
        Some((deployment, steps)) => {
            let timings = crate::timing::Timings::of(&deployment, &steps);
            let mut body = serde_json::to_value(deployment).expect("deployments serialise");
            body["steps"] = serde_json::to_value(steps).expect("steps serialise");
            body["timings"] = serde_json::to_value(timings).expect("timings serialise");
            Ok(Json(body).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no deployment {id}"),
        )),
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        match error {
            ControlError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, m),
            ControlError::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            ControlError::Invalid(m) => Self::new(StatusCode::BAD_REQUEST, m),
            ControlError::Unavailable(m) => Self::new(StatusCode::SERVICE_UNAVAILABLE, m),
            ControlError::Store(e) => e.into(),
        }
    }
}

async fn list_targets<E: Engine>(
    State(state): Shared<E>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&state, &headers, Role::Reader)?;
    let targets = state.control.targets().await?;
    Ok(Json(json!({ "targets": targets })).into_response())
}

/// The body of `POST /api/targets/{name}/update`; may be empty.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    force: bool,
}

/// The body of `POST /api/targets/{name}/rollback`; may be empty.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    to: Option<i64>,
}

/// An optional small JSON body: empty is the default, anything else must
/// parse.
async fn small_json<T: serde::de::DeserializeOwned + Default>(
    request: Request,
) -> Result<T, ApiError> {
    let (_, body) = read_body(request, 4096).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

fn accepted(deployment: i64) -> Response {
    let body = json!({ "status": "accepted", "deployment": deployment });
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

async fn update_target<E: Engine>(
    State(state): Shared<E>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    require(&state, request.headers(), Role::Admin)?;
    let body: UpdateBody = small_json(request).await?;
    let id = state.control.update(&name, body.force, Actor::Api).await?;
    Ok(accepted(id))
}

async fn rollback_target<E: Engine>(
    State(state): Shared<E>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    require(&state, request.headers(), Role::Admin)?;
    let body: RollbackBody = small_json(request).await?;
    let id = state.control.rollback(&name, body.to, Actor::Api).await?;
    Ok(accepted(id))
}

fn deployment_id(
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<i64, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "deployment id must be a number"))
}

async fn approve<E: Engine>(
    State(state): Shared<E>,
    headers: HeaderMap,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    require(&state, &headers, Role::Admin)?;
    let deployment = state
        .control
        .approve(deployment_id(id)?, Actor::Api)
        .await?;
    Ok(Json(json!({ "status": "approved", "deployment": deployment })).into_response())
}

async fn reject<E: Engine>(
    State(state): Shared<E>,
    headers: HeaderMap,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    require(&state, &headers, Role::Admin)?;
    let deployment = state.control.reject(deployment_id(id)?, Actor::Api).await?;
    Ok(Json(json!({ "status": "rejected", "deployment": deployment })).into_response())
}

/// The body of `POST /api/tokens/{kind}/rotate`; may be empty.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// How long the replaced value stays valid (`1h`, `0s`); `token_grace`
    /// when absent.
    grace: Option<String>,
}

/// Replaces a token dockhook keeps with a new one, answered once; the old
/// one stays valid for the grace. A new hook secret answers the new hook
/// paths.
async fn rotate_token<E: Engine>(
    State(state): Shared<E>,
    Path(kind): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    use crate::tokens::{Kind, TokenError};
    require(&state, request.headers(), Role::Admin)?;
    let kind = Kind::parse(&kind).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no such token: rotate hook, api or read",
        )
    })?;
    let body: RotateBody = small_json(request).await?;
    let grace = body
        .grace
        .map(|grace| crate::tokens::parse_grace(&grace))
        .transpose()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("grace: {e}")))?;
    let tokens = state.tokens.clone();
    let rotated = tokio::task::spawn_blocking(move || tokens.rotate(kind, grace))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|error| match error {
            TokenError::Configured { .. } => ApiError::new(StatusCode::CONFLICT, error.to_string()),
            TokenError::Grace => ApiError::new(StatusCode::BAD_REQUEST, error.to_string()),
            TokenError::DataDir { .. } | TokenError::Stored { .. } => {
                tracing::error!(%error, "cannot rotate a token");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot keep the new token; see dockhook's log (nothing changed)",
                )
            }
        })?;
    let until = rotated.previous_until.map(|until| {
        let millis = until
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        crate::timing::format(millis)
    });
    let mut body = json!({
        "token": kind.as_str(),
        "value": rotated.token.expose(),
        "previous_valid_until": until,
    });
    if kind == Kind::Hook {
        let hooks: serde_json::Map<String, serde_json::Value> = sources::ALL
            .iter()
            .map(|source| {
                let token = state.tokens.hook_token(source.name);
                (
                    source.name.to_string(),
                    source.hook_path(token.expose()).into(),
                )
            })
            .collect();
        body["hooks"] = hooks.into();
    }
    Ok(Json(body).into_response())
}

/// How long a scrape waits for Docker to answer its ping.
const SCRAPE_PING_TIMEOUT: Duration = Duration::from_secs(1);

async fn metrics<E: Engine>(
    State(state): Shared<E>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !state.metrics.public {
        let given = bearer(&headers);
        // Both are compared whatever the first says.
        let metrics_token = state
            .metrics
            .token
            .as_ref()
            .is_some_and(|token| token_matches(token, given));
        if state.tokens.role(given).is_none() & !metrics_token {
            return Err(ApiError::unauthorized());
        }
    }
    let docker_up = matches!(
        tokio::time::timeout(SCRAPE_PING_TIMEOUT, state.engine.ping()).await,
        Ok(Ok(()))
    );
    let now = crate::metrics::Scrape {
        queue_depth: state.queue.depth(),
        docker_up,
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = crate::metrics::Format::negotiate(accept);
    let body = crate::metrics::render(format, now);
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

async fn events<E: Engine>(
    State(state): Shared<E>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&state, &headers, Role::Reader)?;
    Ok(crate::events::sse(&state.store).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::fake::FakeEngine;
    use crate::sources::testing::{
        self, fixture_json, hook_token, serve_on, serve_with, API_TOKEN, READ_TOKEN,
    };

    const IMAGE: &str = "myregistry.azurecr.io/hello-world:v1";

    /// A router over a fake host running `site` on the image the ACR
    /// fixture names; the URL of the ACR hook.
    async fn acr() -> (String, Arc<AppState<FakeEngine>>, Arc<FakeEngine>) {
        let engine = Arc::new(FakeEngine::with_container(
            "site",
            IMAGE,
            "sha256:old",
            "sha256:new",
        ));
        let (base, state) = serve_on(engine.clone(), sources::Settings::for_tests()).await;
        (
            format!("{base}/hooks/acr/{}", hook_token("acr")),
            state,
            engine,
        )
    }

    fn delivery(id: &str) -> Vec<u8> {
        let mut payload = fixture_json("acr-push.json");
        payload["id"] = id.into();
        serde_json::to_vec(&payload).unwrap()
    }

    #[tokio::test]
    async fn a_delivery_is_remembered_only_once_handled() {
        let (url, state, engine) = acr().await;
        let body = delivery("d-1");
        engine.lock().fail_list = true;
        let (status, answer) = testing::post(&url, &[], &body).await;
        assert_eq!(status, 503, "{answer}");
        assert!(!state.store.delivery_seen("acr", "d-1").unwrap());

        engine.lock().fail_list = false;
        let (status, answer) = testing::post(&url, &[], &body).await;
        assert_eq!(status, 202, "the retry is handled: {answer}");
        let (status, answer) = testing::post(&url, &[], &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["reason"], "delivery d-1 was already received",
            "{answer}"
        );
        assert_eq!(state.store.list(10).unwrap().len(), 1, "queued once");
    }

    #[tokio::test]
    async fn a_copy_of_a_delivery_being_handled_is_refused_for_now() {
        let (url, state, _engine) = acr().await;
        let body = delivery("d-2");
        let claim = state.deliveries.claim("acr", "d-2").unwrap();
        let (status, answer) = testing::post(&url, &[], &body).await;
        assert_eq!(status, 409, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("send it again"),
            "{answer}"
        );
        assert!(state.store.list(10).unwrap().is_empty(), "nothing queued");
        drop(claim);
        let (status, answer) = testing::post(&url, &[], &body).await;
        assert_eq!(status, 202, "{answer}");
        assert!(
            state.deliveries.claim("acr", "d-2").is_some(),
            "released once handled"
        );
    }

    #[tokio::test]
    async fn concurrent_copies_of_a_delivery_queue_once() {
        let (url, state, _engine) = acr().await;
        let body = delivery("d-3");
        let copies = (0..8).map(|_| testing::post(&url, &[], &body));
        let statuses: Vec<u16> = futures_util::future::join_all(copies)
            .await
            .into_iter()
            .map(|(status, _)| status)
            .collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 202).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| [200, 202, 409].contains(s)),
            "{statuses:?}"
        );
        assert_eq!(state.store.list(10).unwrap().len(), 1);
    }

    /// GETs `/metrics` with `headers`: the status, content type and body.
    async fn scrape(base: &str, pairs: &[(&str, &str)]) -> (u16, String, String) {
        let response = reqwest::Client::new()
            .get(format!("{base}/metrics"))
            .headers(testing::headers(pairs))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, kind, response.text().await.unwrap())
    }

    #[tokio::test]
    async fn metrics_take_the_token_or_the_metrics_token() {
        let metrics_token = "metrics-only-token-0123";
        let settings = crate::metrics::Settings {
            token: Some(Secret::for_tests(metrics_token)),
            public: false,
        };
        let engine = Arc::new(FakeEngine::default());
        let (base, _state) = serve_with(engine, sources::Settings::for_tests(), settings).await;
        for refused in [
            vec![],
            vec![("Authorization", "Bearer wrong-token-wrong-token")],
            vec![("Authorization", metrics_token)],
        ] {
            let (status, _, body) = scrape(&base, &refused).await;
            assert_eq!(status, 401, "{refused:?}: {body}");
        }
        for token in [metrics_token, API_TOKEN, READ_TOKEN] {
            let bearer = format!("Bearer {token}");
            let (status, kind, body) = scrape(&base, &[("Authorization", &bearer)]).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
            assert!(body.contains("# TYPE dockhook_docker_up gauge\n"), "{body}");
            assert!(body.contains("\ndockhook_docker_up 1\n"), "{body}");
            assert!(body.contains("\ndockhook_queue_depth 0\n"), "{body}");
        }
        let bearer = format!("Bearer {metrics_token}");
        let (status, kind, body) = scrape(
            &base,
            &[
                ("Authorization", &bearer),
                ("Accept", "application/openmetrics-text; version=1.0.0"),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        // The metrics token opens nothing else.
        let response = reqwest::Client::new()
            .get(format!("{base}/api/deployments"))
            .header("Authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
    }

    /// POSTs `body` to `url` with `bearer`, if any; the status and answer.
    async fn send(url: &str, bearer: Option<&str>, body: &str) -> (u16, serde_json::Value) {
        let auth = bearer.map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = auth
            .iter()
            .map(|auth| ("Authorization", auth.as_str()))
            .collect();
        testing::post(url, &headers, body.as_bytes()).await
    }

    async fn get(url: &str, bearer: &str) -> u16 {
        reqwest::Client::new()
            .get(url)
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn a_hook_token_opens_its_own_hook_and_nothing_else() {
        let base = testing::serve(sources::Settings::for_tests()).await;
        let generic = r#"{"image": "alice/site:v2"}"#;
        let url = |source: &str, token: &str| format!("{base}/hooks/{source}/{token}");
        let (status, answer) = send(&url("generic", &hook_token("generic")), None, generic).await;
        assert_eq!(status, 200, "{answer}");
        for token in [
            hook_token("dockerhub"),
            hook_token("registry"),
            API_TOKEN.into(),
            testing::HOOK_SECRET.into(),
        ] {
            let (status, _) = send(&url("generic", &token), None, generic).await;
            assert_eq!(status, 401, "{token} opened the generic hook");
        }
        // The registry's hook also takes its token as a bearer; only its own.
        let notification = r#"{"events": []}"#;
        let registry = format!("{base}/hooks/registry");
        let (status, answer) = send(&registry, Some(&hook_token("registry")), notification).await;
        assert_eq!(status, 200, "{answer}");
        for token in [hook_token("generic"), API_TOKEN.into()] {
            let (status, _) = send(&registry, Some(&token), notification).await;
            assert_eq!(status, 401, "{token} opened the registry hook");
        }
        // A hook token opens no API.
        assert_eq!(
            get(&format!("{base}/api/targets"), &hook_token("generic")).await,
            401
        );
    }

    #[tokio::test]
    async fn the_read_only_token_reads_and_cannot_act() {
        let base = testing::serve(sources::Settings::for_tests()).await;
        for path in ["/api/targets", "/api/deployments", "/metrics"] {
            assert_eq!(
                get(&format!("{base}{path}"), READ_TOKEN).await,
                200,
                "{path}"
            );
        }
        for path in [
            "/api/targets/site/update",
            "/api/targets/site/rollback",
            "/api/deployments/1/approve",
            "/api/deployments/1/reject",
            "/api/tokens/read/rotate",
        ] {
            let (status, answer) = send(&format!("{base}{path}"), Some(READ_TOKEN), "").await;
            assert_eq!(status, 403, "{path}: {answer}");
            assert!(
                answer["error"].as_str().unwrap().contains("read-only"),
                "{answer}"
            );
            // The API token gets past the check: to "no such target" and the like.
            let (status, _) = send(&format!("{base}{path}"), Some(API_TOKEN), "").await;
            assert!(![401, 403].contains(&status), "{path}: {status}");
        }
    }

    #[tokio::test]
    async fn tokens_rotate_over_the_api_with_a_grace_for_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<&'static str> = sources::ALL.iter().map(|s| s.name).collect();
        let settings = crate::tokens::Settings::default();
        let (tokens, _) = crate::tokens::Tokens::load(&settings, dir.path(), &names).unwrap();
        let old_api = tokens.current(crate::tokens::Kind::Api).unwrap();
        let old_generic = tokens.hook_token("generic");
        let base = testing::serve_tokens(Arc::new(tokens)).await;
        let rotate = |kind: &str| format!("{base}/api/tokens/{kind}/rotate");

        let (status, answer) =
            send(&rotate("api"), Some(old_api.expose()), r#"{"grace": "1h"}"#).await;
        assert_eq!(status, 200, "{answer}");
        let new_api = answer["value"].as_str().unwrap().to_string();
        assert!(answer["previous_valid_until"].is_string(), "{answer}");
        assert_eq!(get(&format!("{base}/api/targets"), &new_api).await, 200);
        assert_eq!(
            get(&format!("{base}/api/targets"), old_api.expose()).await,
            200,
            "grace"
        );

        let (status, answer) = send(&rotate("hook"), Some(&new_api), r#"{"grace": "0s"}"#).await;
        assert_eq!(status, 200, "{answer}");
        assert!(answer["previous_valid_until"].is_null(), "{answer}");
        let generic = answer["hooks"]["generic"].as_str().unwrap();
        let body = r#"{"image": "alice/site:v2"}"#;
        let (status, _) = send(&format!("{base}{generic}"), None, body).await;
        assert_eq!(status, 200);
        let old = format!("{base}/hooks/generic/{}", old_generic.expose());
        assert_eq!(send(&old, None, body).await.0, 401, "no grace was given");

        for (kind, body, expected) in [
            ("bogus", "", 404),
            ("api", r#"{"grace": "soon"}"#, 400),
            ("api", r#"{"grace": "1000h"}"#, 400),
            ("api", r#"{"when": "now"}"#, 400),
        ] {
            let (status, answer) = send(&rotate(kind), Some(&new_api), body).await;
            assert_eq!(status, expected, "{kind} {body}: {answer}");
        }
        assert_eq!(
            get(&format!("{base}/api/targets"), &new_api).await,
            200,
            "unchanged"
        );
    }

    #[tokio::test]
    async fn a_configured_token_is_not_rotated_over_the_api() {
        let base = testing::serve(sources::Settings::for_tests()).await;
        let url = format!("{base}/api/tokens/api/rotate");
        let (status, answer) = send(&url, Some(API_TOKEN), "").await;
        assert_eq!(status, 409, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("api_token_previous"),
            "{answer}"
        );
        assert_eq!(get(&format!("{base}/api/targets"), API_TOKEN).await, 200);
    }

    #[tokio::test]
    async fn public_metrics_need_no_token() {
        let settings = crate::metrics::Settings {
            token: None,
            public: true,
        };
        let engine = Arc::new(FakeEngine::default());
        engine.lock().fail_list = true;
        let (base, _state) = serve_with(engine, sources::Settings::for_tests(), settings).await;
        let (status, _, body) = scrape(&base, &[]).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains("# TYPE dockhook_build_info gauge\n"),
            "{body}"
        );
        assert!(body.contains("\ndockhook_docker_up 0\n"), "{body}");
    }

    #[tokio::test]
    async fn delivery_ids_are_bounded_and_printable() {
        let (url, state, _engine) = acr().await;
        let longest = "x".repeat(MAX_DELIVERY_ID);
        for (id, needle) in [
            (format!("{longest}y"), "longer than 200 bytes"),
            ("d\u{7}4".to_string(), "control characters"),
            ("d\n4".to_string(), "control characters"),
        ] {
            let (status, answer) = testing::post(&url, &[], &delivery(&id)).await;
            assert_eq!(status, 400, "{id:?}: {answer}");
            assert!(
                answer["error"].as_str().unwrap().contains(needle),
                "{answer}"
            );
        }
        assert!(state.store.list(10).unwrap().is_empty(), "nothing queued");
        let (status, answer) = testing::post(&url, &[], &delivery(&longest)).await;
        assert_eq!(status, 202, "{answer}");
    }
}
