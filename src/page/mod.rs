//! The status page at `/`: the watched containers, what waits for a person
//! or a delay, and the history with every step and its timing; buttons to
//! update, roll back, approve and reject. It reads what the API reads
//! ([`crate::control`], the [`Store`](crate::store::Store)) and acts through
//! the same [`Control`](crate::control::Control) calls, recorded as asked by
//! `page`.
//!
//! Server-rendered HTML (`view`) that works without JavaScript: every
//! button is a form that POSTs and is answered `303 See Other` back to the
//! page, with a one-time message saying what happened. The small script
//! (`assets`) only adds live updates: it listens to `GET /events` (the
//! deployment stream of [`crate::events`], behind the session cookie) and
//! refreshes the page's content when a deployment changes.
//!
//! | route                                   | auth                         |
//! |-----------------------------------------|------------------------------|
//! | `GET /login`, `POST /login` (`token`)   | none; the API token opens a session, the read-only token a session that only looks |
//! | `POST /logout`                          | session + CSRF               |
//! | `GET /`, `GET /deployments/{id}`        | session (else to `/login`)   |
//! | `POST /targets/{name}/update` (`force`), `/rollback` (`to`) | session of the API token + CSRF |
//! | `POST /deployments/{id}/approve`, `/reject` | session of the API token + CSRF |
//! | `GET /events` (Server-Sent Events)      | session                      |
//! | `GET /assets/app.css`, `/assets/app.js` | none                         |
//!
//! Every response carries a Content-Security-Policy that lets the page
//! load scripts, styles and connections only from dockhook itself, and
//! forbids framing. Sessions and CSRF are in `session`. A wrong token
//! is answered 401 after [`FAILED_LOGIN_DELAY`], and logins are taken one
//! at a time, so guessing runs at most one try a second per process.

mod assets;
mod session;
mod view;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use futures_util::StreamExt;
use maud::Markup;
use serde::Deserialize;

use crate::control::{Actor, ControlError};
use crate::engine::Engine;
use crate::server::AppState;
use crate::store::StoreError;
use crate::tokens::Role;
use assets::{CSS, JS};
use session::{Flash, Session, Sessions};
use view::Ctx;

/// How long a wrong token waits for its answer (and holds up other logins).
pub const FAILED_LOGIN_DELAY: Duration = Duration::from_secs(1);

/// What every response of the page says about where it may load from.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// What the page's handlers share.
struct Page<E> {
    app: Arc<AppState<E>>,
    sessions: Sessions,
    /// Held by the login being checked: logins are taken one at a time.
    logins: tokio::sync::Mutex<()>,
    failed_logins: AtomicU64,
}

type Shared<E> = State<Arc<Page<E>>>;

/// The page's routes, to merge into the server's router.
pub fn routes<E: Engine, S: Clone + Send + Sync + 'static>(app: Arc<AppState<E>>) -> Router<S> {
    let page = Arc::new(Page {
        app,
        sessions: Sessions::default(),
        logins: tokio::sync::Mutex::new(()),
        failed_logins: AtomicU64::new(0),
    });
    Router::new()
        .route("/", get(status::<E>))
        .route("/login", get(login_form).post(login::<E>))
        .route("/logout", post(logout::<E>))
        .route("/deployments/{id}", get(deployment::<E>))
        .route("/deployments/{id}/approve", post(approve::<E>))
        .route("/deployments/{id}/reject", post(reject::<E>))
        .route("/targets/{name}/update", post(update::<E>))
        .route("/targets/{name}/rollback", post(rollback::<E>))
        .route("/events", get(events::<E>))
        .route(CSS.path, get(|| async { CSS.response() }))
        .route(JS.path, get(|| async { JS.response() }))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(page)
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// An HTML page that no cache keeps.
fn html(status: StatusCode, markup: Markup) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], markup).into_response()
}

/// Why a request was not served.
enum Refusal {
    /// A page view without a session: to the login form.
    NotLoggedIn,
    /// A POST refused (403), saying why; nothing was done.
    Forbidden(&'static str),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NotLoggedIn => Redirect::to("/login").into_response(),
            Refusal::Forbidden(why) => html(
                StatusCode::FORBIDDEN,
                view::refused("Refused", &format!("{why} Nothing was done.")),
            ),
        }
    }
}

fn store_failed(error: StoreError) -> Response {
    tracing::error!(%error, "history database");
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        view::refused("Error", "The history database failed; see dockhook's log."),
    )
}

impl<E: Engine> Page<E> {
    /// The session of a page view, or the way to the login form.
    fn viewer(&self, headers: &HeaderMap) -> Result<(Session, Option<Flash>), Refusal> {
        let session = self.sessions.find(headers).ok_or(Refusal::NotLoggedIn)?;
        let flash = self.sessions.take_flash(&session);
        Ok((session, flash))
    }

    /// The session of a form's POST that came from this site with this
    /// session's CSRF token; else the 403 that refuses it.
    fn poster(&self, headers: &HeaderMap, csrf: Option<&str>) -> Result<Session, Refusal> {
        if !session::same_origin(headers) {
            return Err(Refusal::Forbidden("This form was sent from another site."));
        }
        let session = self.sessions.find(headers).ok_or(Refusal::Forbidden(
            "You are not logged in (or your session ended).",
        ))?;
        if !session.csrf_matches(csrf) {
            return Err(Refusal::Forbidden(
                "This form lacks its CSRF token, or has another session's: reload the page \
                 and try again.",
            ));
        }
        Ok(session)
    }

    /// [`Page::poster`], for a form that acts: refused to a session of the
    /// read-only token.
    fn actor(&self, headers: &HeaderMap, csrf: Option<&str>) -> Result<Session, Refusal> {
        let session = self.poster(headers, csrf)?;
        if session.role < Role::Admin {
            return Err(Refusal::Forbidden(
                "You logged in with the read-only token, which can change nothing: log in \
                 with the API token to act.",
            ));
        }
        Ok(session)
    }

    /// Says which deployment an action on `target` queued, or why it
    /// did not.
    fn queued(
        &self,
        session: &Session,
        what: &str,
        target: &str,
        outcome: Result<i64, ControlError>,
    ) -> Response {
        let message = |id| format!("{what} of {target} queued as deployment #{id}.");
        self.done(session, outcome.map(message))
    }

    /// Says what an action did on the next page, and goes back there.
    fn done(&self, session: &Session, outcome: Result<String, ControlError>) -> Response {
        let flash = match outcome {
            Ok(message) => Flash { ok: true, message },
            Err(ControlError::Store(error)) => {
                tracing::error!(%error, "history database");
                Flash {
                    ok: false,
                    message: "The history database failed; see dockhook's log.".into(),
                }
            }
            Err(error) => Flash {
                ok: false,
                message: error.to_string(),
            },
        };
        self.sessions.set_flash(session, flash);
        Redirect::to("/").into_response()
    }
}

async fn status<E: Engine>(
    State(page): Shared<E>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let (session, flash) = page.viewer(&headers)?;
    let targets = page.app.control.targets().await.map_err(|e| match e {
        ControlError::Store(error) => {
            tracing::error!(%error, "history database");
            "the history database failed; see dockhook's log".to_string()
        }
        other => other.to_string(),
    });
    let history = page
        .app
        .store
        .call(|store| {
            let mut history = Vec::new();
            for d in store.list(view::HISTORY)? {
                history.extend(store.get(d.id)?);
            }
            Ok(history)
        })
        .await;
    Ok(match history {
        Ok(history) => {
            let ctx = Ctx {
                csrf: &session.csrf,
                flash,
                read_only: session.role < Role::Admin,
            };
            html(StatusCode::OK, view::status(&ctx, &targets, &history))
        }
        Err(error) => store_failed(error),
    })
}

async fn deployment<E: Engine>(
    State(page): Shared<E>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, Refusal> {
    let (session, flash) = page.viewer(&headers)?;
    let Ok(Path(id)) = id else {
        return Ok(html(
            StatusCode::NOT_FOUND,
            view::refused("Not found", "A deployment's number is a whole number."),
        ));
    };
    let found = page.app.store.call(move |store| store.get(id)).await;
    Ok(match found {
        Ok(Some((d, steps))) => {
            let ctx = Ctx {
                csrf: &session.csrf,
                flash,
                read_only: session.role < Role::Admin,
            };
            html(StatusCode::OK, view::deployment(&ctx, &d, &steps))
        }
        Ok(None) => html(
            StatusCode::NOT_FOUND,
            view::refused("Not found", &format!("There is no deployment {id}.")),
        ),
        Err(error) => store_failed(error),
    })
}

async fn login_form() -> Response {
    html(StatusCode::OK, view::login(None))
}

#[derive(Deserialize, Default)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login<E: Engine>(
    State(page): Shared<E>,
    client: Option<axum::Extension<crate::abuse::ClientAddr>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, Refusal> {
    if !session::same_origin(&headers) {
        return Err(Refusal::Forbidden("This login was sent from another site."));
    }
    let given = form.map(|Form(form)| form.token).unwrap_or_default();
    let given = given.trim();
    let _turn = page.logins.lock().await;
    let role = page.app.tokens.role(given).filter(|_| !given.is_empty());
    let Some(role) = role else {
        let failed = page.failed_logins.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(
            client = client.map(|c| tracing::field::display(c.0 .0)),
            failed_logins = failed,
            "refused a login to the status page: wrong token"
        );
        tokio::time::sleep(FAILED_LOGIN_DELAY).await;
        return Ok(html(
            StatusCode::UNAUTHORIZED,
            view::login(Some(
                "Wrong token: you are not logged in. Use the API token (api_token), or the \
                 read-only token to look only.",
            )),
        ));
    };
    let id = page.sessions.open(role);
    let cookie = session::set_cookie(&id, session::over_https(&headers));
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}

#[derive(Deserialize, Default)]
struct CsrfForm {
    csrf: Option<String>,
}

#[derive(Deserialize, Default)]
struct UpdateForm {
    csrf: Option<String>,
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize, Default)]
struct RollbackForm {
    csrf: Option<String>,
    to: Option<i64>,
}

/// A form's fields; a form that does not parse has none, so it is refused
/// for its missing CSRF token and nothing is done.
fn fields<T: Default>(form: Result<Form<T>, FormRejection>) -> T {
    form.map(|Form(form)| form).unwrap_or_default()
}

async fn logout<E: Engine>(
    State(page): Shared<E>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let session = page.poster(&headers, fields(form).csrf.as_deref())?;
    page.sessions.close(&session);
    let clear = [(header::SET_COOKIE, session::clear_cookie())];
    Ok((clear, Redirect::to("/login")).into_response())
}

async fn update<E: Engine>(
    State(page): Shared<E>,
    headers: HeaderMap,
    Path(name): Path<String>,
    form: Result<Form<UpdateForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let form = fields(form);
    let session = page.actor(&headers, form.csrf.as_deref())?;
    let outcome = page
        .app
        .control
        .update(&name, form.force, Actor::Page)
        .await;
    let what = if form.force {
        "Forced update"
    } else {
        "Update"
    };
    Ok(page.queued(&session, what, &name, outcome))
}

async fn rollback<E: Engine>(
    State(page): Shared<E>,
    headers: HeaderMap,
    Path(name): Path<String>,
    form: Result<Form<RollbackForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let form = fields(form);
    let session = page.actor(&headers, form.csrf.as_deref())?;
    let outcome = page.app.control.rollback(&name, form.to, Actor::Page).await;
    Ok(page.queued(&session, "Rollback", &name, outcome))
}

/// Approve or reject: which, and how the page says it was done.
#[derive(Clone, Copy)]
enum Decision {
    Approve,
    Reject,
}

async fn decide<E: Engine>(
    decision: Decision,
    page: Arc<Page<E>>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let form = fields(form);
    let session = page.actor(&headers, form.csrf.as_deref())?;
    let Ok(Path(id)) = id else {
        let error = ControlError::Invalid("a deployment's number is a whole number".into());
        return Ok(page.done(&session, Err(error)));
    };
    let control = &page.app.control;
    let outcome = match decision {
        Decision::Approve => control.approve(id, Actor::Page).await,
        Decision::Reject => control.reject(id, Actor::Page).await,
    };
    let verb = match decision {
        Decision::Approve => "approved",
        Decision::Reject => "rejected",
    };
    Ok(page.done(
        &session,
        outcome.map(|d| format!("Deployment #{} of {} {verb}.", d.id, d.target)),
    ))
}

async fn approve<E: Engine>(
    State(page): Shared<E>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Refusal> {
    decide(Decision::Approve, page, headers, id, form).await
}

async fn reject<E: Engine>(
    State(page): Shared<E>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Refusal> {
    decide(Decision::Reject, page, headers, id, form).await
}

/// The deployment stream for the page's script, behind the session. It
/// ends when the session does (logout, or pushed out), and after
/// [`session::IDLE`] at the latest: the browser then connects again, which
/// needs the session to be open still.
async fn events<E: Engine>(State(page): Shared<E>, headers: HeaderMap) -> Response {
    let Some(session) = page.sessions.find(&headers) else {
        return (StatusCode::UNAUTHORIZED, "log in at /login first").into_response();
    };
    let ended = async move {
        tokio::select! {
            () = session.ended.cancelled() => {}
            () = tokio::time::sleep(session::IDLE) => {}
        }
    };
    let (parts, body) = crate::events::sse(&page.app.store)
        .into_response()
        .into_parts();
    let body = axum::body::Body::from_stream(body.into_data_stream().take_until(ended));
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests;
