//! Wiring: from a [`Config`] to a running server, and back down.
//!
//! Start-up resolves the secret, opens the history, connects to Docker,
//! closes the books on deployments a previous run left open, starts the
//! background tasks (the container inventory, retention, the notification
//! outbox, the Docker watch and reconcile), then serves HTTP (or HTTPS, see
//! [`crate::tls`]), on one single-threaded runtime per core, until the
//! shutdown signal. Shutdown stops accepting requests first and
//! lets queued deployments finish, so a restart of dockhook never leaves a
//! container half-replaced.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::response::IntoResponse;
use tokio_util::sync::CancellationToken;

use crate::abuse::slots::Slots;
use crate::config::{Config, ConfigError};
use crate::deploy::{Queue, Updater};
use crate::engine::{self, DockerEngine, Engine};
use crate::inventory::Inventory;
use crate::notify::{self, outbox::Outbox, Http};
use crate::retention;
use crate::server::{router, AppState};
use crate::sources;
use crate::store::{Store, StoreError};
use crate::targets::TargetRules;
use crate::tokens::{Kind, Tokens};

/// Why dockhook could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    EngineTls(#[from] crate::engine::TlsError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Tokens(#[from] crate::tokens::TokenError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// One webhook endpoint, as a user sets it up in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub source: &'static str,
    /// The path, with its token as `token_of` showed it.
    pub path: String,
    /// How the sender proves itself.
    pub auth: &'static str,
    /// Whether the source is on: signed sources need their secret.
    pub enabled: bool,
}

/// Every webhook endpoint, with each source's token as `token_of` shows
/// it (whole, masked, a placeholder).
pub fn hooks(config: &Config, token_of: impl Fn(&'static str) -> String) -> Vec<Hook> {
    sources::ALL
        .iter()
        .map(|source| Hook {
            source: source.title,
            path: source.hook_path(&token_of(source.name)),
            auth: source.help,
            enabled: (source.enabled)(&config.sources),
        })
        .collect()
}

/// The name of every source, as the hook tokens are derived for them.
pub fn source_names() -> Vec<&'static str> {
    sources::ALL.iter().map(|source| source.name).collect()
}

/// Runs dockhook until `shutdown` resolves, then drains the queue.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (tokens, generated) = Tokens::load(&config.tokens, &config.data_dir, &source_names())?;
    redact_secrets(&config, &tokens);
    for kind in generated {
        tracing::info!(
            "generated the {} and kept it in {}",
            match kind {
                Kind::Hook => "hook secret",
                Kind::Api => "API token (the CLI on this host reads it there)",
                Kind::Read => "read-only token",
            },
            config.token_path(kind).display(),
        );
    }
    let dockerhub = sources::dockerhub::SOURCE.name;
    let url = format!(
        "{}{}",
        config.base_url(),
        sources::dockerhub::SOURCE.hook_path(&tokens.hook_token(dockerhub).masked())
    );
    tracing::info!("Docker Hub webhook URL: {url}. {SHOW_TOKEN}");
    let tokens = Arc::new(tokens);

    std::fs::create_dir_all(&config.data_dir).map_err(|source| ConfigError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    // Before anything else starts: a certificate that does not load stops
    // dockhook here, with the reason.
    let stop_tls = CancellationToken::new();
    let (tls, tls_task) = crate::tls::Acceptor::start(
        &config.tls.mode().map_err(ConfigError::from)?,
        &config.acme_cache_dir(),
        stop_tls.clone(),
    )?;
    let store = Arc::new(Store::open(&config.database_path())?);
    if !config.notify.endpoints.is_empty() {
        store.enable_notifications();
        for endpoint in &config.notify.endpoints {
            tracing::info!(url = %endpoint.masked, "notifications go to {}", endpoint.service);
        }
    }
    let engine = Arc::new(match config.docker_tls_dir() {
        Some(dir) if config.docker_tls_verify => DockerEngine::with_tls(&config.docker_host, &dir)?,
        _ => DockerEngine::new(&config.docker_host),
    });
    if let Err(e) = engine.ping().await {
        tracing::warn!("{e}; serving anyway, /healthz answers 503 until it does");
    }

    let own_container_id = engine::own_container_id();
    if let Some(id) = &own_container_id {
        tracing::info!(container = %&id[..12], "running in a container; it will never update itself");
    }
    let updater = Arc::new(Updater::new(
        engine.clone(),
        store.clone(),
        config.update_settings(),
    ));
    let queue = Queue::new(updater, store.clone());
    // Before any request is taken: the interrupted deployments hold their
    // targets' slots, so no new update of those containers starts before
    // the host is put right. They run in the background; `/healthz` says
    // not ready until they are done.
    let unfinished = store.call(|store| store.unfinished()).await?;
    for deployment in unfinished.iter().filter(|d| !d.state.is_waiting()) {
        tracing::warn!(
            deployment = deployment.id,
            target = %deployment.target,
            step = deployment.state.as_str(),
            "resuming a deployment interrupted by a restart"
        );
    }
    // Subscribed before anything can end, so the metrics miss no deployment.
    let changes = store.subscribe();
    queue.resume(unfinished);
    let inventory = Arc::new(Inventory::new(engine.clone()));
    let stop_background = CancellationToken::new();
    let watcher = tokio::spawn(inventory.clone().watch(stop_background.clone()));
    let sweeper = tokio::spawn(retention::run(
        store.clone(),
        engine.clone(),
        config.retention,
        stop_background.clone(),
    ));
    // Stopped after the queue drained, so the deployments finishing then
    // are sent too, if their messages are ready by then.
    let stop_notifier = CancellationToken::new();
    let notifier = tokio::spawn(
        Outbox::new(store.clone(), &config.notify, Http::new()).run(stop_notifier.clone()),
    );
    let docker_watch = {
        let engine = engine.clone();
        let watch = notify::docker::watch(
            move || {
                let engine = engine.clone();
                async move { engine.ping().await }
            },
            store.clone(),
            notify::docker::PACE,
            stop_background.clone(),
        );
        tokio::spawn(watch)
    };
    let counter = tokio::spawn(crate::metrics::watch(
        store.clone(),
        changes,
        stop_background.clone(),
    ));
    let rules = TargetRules {
        label_enable: config.label_enable,
        own_container_id,
    };
    let state = Arc::new(AppState {
        tokens,
        sources: config.sources.clone(),
        rules: rules.clone(),
        max_body: config.max_body,
        control: crate::control::Control {
            engine: engine.clone(),
            inventory: inventory.clone(),
            store: store.clone(),
            queue: queue.clone(),
            rules,
            default_mode: config.update.mode,
            default_delay: config.update.delay,
        },
        engine,
        inventory,
        store,
        queue: queue.clone(),
        deliveries: Default::default(),
        main: tokio::runtime::Handle::current(),
        metrics: config.metrics.clone(),
        abuse: crate::abuse::Guard::new(config.abuse.clone()),
    });

    let reconciler = tokio::spawn(crate::reconcile::run(
        state.clone(),
        crate::registry::RegistryClient::new(config.update.docker_config.clone()),
        config.reconcile,
        stop_background.clone(),
    ));

    let listeners = bind(config.listen, http_threads())?;
    let addr = listeners[0].local_addr().map_err(Error::Serve)?;
    let scheme = if tls.is_tls() { "https" } else { "http" };
    tracing::info!("listening on {addr} ({scheme})");
    serve_http(listeners, router(state), tls, shutdown).await?;
    stop_tls.cancel();
    if let Some(task) = tls_task {
        let _ = task.await;
    }
    stop_background.cancel();
    let _ = tokio::join!(watcher, sweeper, docker_watch, counter, reconciler);
    tracing::info!("stopped accepting requests; waiting for deployments in progress");
    let limit = config.shutdown_timeout;
    let drained = tokio::time::timeout(limit, queue.drain()).await;
    // What is not delivered now is delivered at the next start.
    stop_notifier.cancel();
    let _ = notifier.await;
    if drained.is_err() {
        // Every step is on record: the next start finishes or undoes what
        // is under way and runs what is still queued.
        tracing::warn!(
            "deployments still running after {limit:?}; stopping anyway, the next start \
             finishes or undoes them"
        );
        return Ok(());
    }
    tracing::info!("all deployments finished; bye");
    Ok(())
}

/// How to see the token, which the log never shows whole: the same command
/// on the host or, for dockhook in a container named `dockhook`, through
/// `docker exec`.
const SHOW_TOKEN: &str = "Print every hook URL and token whole with `dockhook check-config \
     --show-token` (in a container: `docker exec dockhook dockhook check-config --show-token`).";

/// Registers every secret with the log, so no library's debug output can
/// show one.
fn redact_secrets(config: &Config, tokens: &Tokens) {
    for token in tokens.all() {
        crate::logging::redact(token.expose());
    }
    let sources = &config.sources;
    let secrets = [
        sources.github_secret.as_ref(),
        sources.gitea_secret.as_ref(),
        sources.gitlab_token.as_ref(),
        sources.harbor_auth.as_ref(),
        config.metrics.token.as_ref(),
    ];
    for secret in secrets.into_iter().flatten() {
        crate::logging::redact(secret.expose());
    }
    for secret in config.notify.secrets() {
        crate::logging::redact(secret);
    }
}

/// How long a client may take to send a request's headers, and how long an
/// idle keep-alive connection is kept: a client that trickles bytes cannot
/// hold a connection for ever.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once. When all are taken, the one that has waited
/// longest on its client is closed to make room; when all have a request
/// being answered, new ones wait to be accepted (see `Slots`).
const MAX_CONNECTIONS: usize = 1024;
/// How long requests in flight may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How many threads serve HTTP: one per core, as nginx's `worker_processes
/// auto`.
fn http_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Binds `addr` once and hands each of `count` HTTP threads its own handle
/// on that one socket: they all accept from it. Not `SO_REUSEPORT`, which
/// would let a second dockhook started on the same port by mistake share
/// the webhooks with this one, both deploying to the same engine: the second
/// one must fail with "address in use".
fn bind(addr: SocketAddr, count: usize) -> Result<Vec<std::net::TcpListener>, Error> {
    let error = |source| Error::Listen { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(error)?;
    listener.set_nonblocking(true).map_err(error)?;
    let mut listeners = Vec::with_capacity(count);
    for _ in 1..count {
        listeners.push(listener.try_clone().map_err(error)?);
    }
    listeners.push(listener);
    Ok(listeners)
}

/// Serves HTTP/1.1 on `listeners`, each on a thread of its own with a
/// single-threaded runtime (nginx's model: no work stealing, no hand-over
/// between threads for a request), until `shutdown` resolves; then lets the
/// requests in flight finish.
///
/// Only webhooks are handled on those threads, and only as far as the
/// answer to one that changes nothing: whatever touches Docker, the history
/// or the queue runs on the main runtime (see [`crate::server`]), and so do
/// all other routes, so nothing long-lived is ever tied to an HTTP thread.
async fn serve_http(
    listeners: Vec<std::net::TcpListener>,
    router: axum::Router,
    tls: crate::tls::Acceptor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let stop = CancellationToken::new();
    // Also stops the threads already started if starting another fails.
    let stopping = stop.clone().drop_guard();
    let slots = Slots::new(MAX_CONNECTIONS);
    let main = tokio::runtime::Handle::current();
    let mut finished = Vec::with_capacity(listeners.len());
    for (i, listener) in listeners.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Serve)?;
        let (done, finished_one) = tokio::sync::oneshot::channel::<()>();
        let service = Front {
            router: router.clone(),
            main: main.clone(),
            connection: None,
        };
        let (stop, slots, tls) = (stop.clone(), slots.clone(), tls.clone());
        std::thread::Builder::new()
            .name(format!("dockhook-http-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            let stop = stop.cancelled_owned();
                            serve_connections(listener, service, slots, tls, stop).await
                        }
                        Err(e) => tracing::error!(error = %e, "cannot serve HTTP on this thread"),
                    }
                });
                drop(done);
            })
            .map_err(Error::Serve)?;
        finished.push(finished_one);
    }
    shutdown.await;
    drop(stopping);
    for thread in finished {
        let _ = thread.await;
    }
    Ok(())
}

/// The service on the HTTP threads: webhooks are handled there, every
/// other request on the main runtime.
#[derive(Clone)]
struct Front {
    router: axum::Router,
    main: tokio::runtime::Handle,
    /// The connection's peer and slot, once it has one.
    connection: Option<(SocketAddr, crate::abuse::slots::Requests)>,
}

impl Front {
    /// The service of one connection.
    fn connection(&self, peer: SocketAddr, slot: &crate::abuse::slots::Slot) -> Self {
        Self {
            connection: Some((peer, slot.requests())),
            ..self.clone()
        }
    }
}

impl tower_service::Service<axum::http::Request<hyper::body::Incoming>> for Front {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        use futures_util::FutureExt;
        // In progress from the end of its body until its answer's body is
        // sent or dropped: the connection is not closed to make room
        // meanwhile (see `Slots`).
        let mark = self.connection.as_ref().map(|(peer, requests)| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(*peer));
            requests.request()
        });
        let is_hook = request.uri().path().starts_with("/hooks/");
        let request = request.map(|body| match &mark {
            Some(mark) => axum::body::Body::new(mark.body(body)),
            None => axum::body::Body::new(body),
        });
        // A Router is always ready.
        let handling = tower_service::Service::call(&mut self.router, request);
        let handled = if is_hook {
            handling.boxed()
        } else {
            let handled = self.main.spawn(handling);
            async move {
                handled.await.unwrap_or_else(|e| {
                    tracing::error!(error = %e, "a request's handler failed");
                    Ok(axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response())
                })
            }
            .boxed()
        };
        let Some(mark) = mark else {
            return handled;
        };
        handled
            .map(|response| {
                Ok(response?.map(|body| {
                    use http_body_util::BodyExt;
                    // The closure owns the mark, so it drops with the body.
                    axum::body::Body::new(body.map_frame(move |frame| {
                        let _ = &mark;
                        frame
                    }))
                }))
            })
            .boxed()
    }
}

/// Serves HTTP/1.1 connections from `listener` until `shutdown` resolves,
/// then lets the requests in flight finish. Unlike `axum::serve`, it bounds
/// the time to read request headers and the number of connections (shared
/// by every listener through `slots`, which slow clients cannot exhaust),
/// and hands each request its peer's address. With TLS on, `tls` does the
/// handshake first, in the connection's own task.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    service: Front,
    slots: Arc<Slots>,
    tls: crate::tls::Acceptor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Taken once there is a connection to serve, since it may close
        // the longest-waiting one (see `Slots`).
        let slot = tokio::select! {
            slot = slots.acquire() => slot,
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(service.connection(peer, &slot));
        let (tls, watcher) = (tls.clone(), graceful.watcher());
        tokio::spawn(async move {
            let serve = async {
                if let Some(stream) = tls.accept(stream).await {
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(connection).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
            };
            // A handshake still under way is waiting on the client too.
            tokio::select! {
                () = serve => {}
                () = slot.closed() => {
                    tracing::debug!("closed a connection that sent no request, to make room");
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}; closing them");
    }
}

/// Resolves on SIGINT or SIGTERM (what `docker stop` sends).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received");
}

/// Asks a running dockhook's `/healthz` (for Docker's `HEALTHCHECK` in an
/// image with no shell or curl), over TLS when `tls` (its own listener: any
/// certificate will do). Returns whether it answered 200.
pub async fn probe_health(addr: SocketAddr, tls: bool) -> std::io::Result<bool> {
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    async fn ask(mut stream: impl AsyncRead + AsyncWrite + Unpin) -> std::io::Result<bool> {
        stream
            .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
    }
    let addr = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let exchange = async {
        if tls {
            ask(crate::tls::connect_for_probe(addr).await?).await
        } else {
            ask(tokio::net::TcpStream::connect(addr).await?).await
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_use_is_refused_and_every_thread_shares_one_socket() {
        let listeners = bind("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let addr = listeners[0].local_addr().unwrap();
        assert_eq!(listeners.len(), 3);
        assert!(listeners.iter().all(|l| l.local_addr().unwrap() == addr));
        // A second dockhook on the same port must not share its webhooks.
        match bind(addr, 2) {
            Err(Error::Listen { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse)
            }
            other => panic!("a second bind to {addr} was not refused: {other:?}"),
        }
    }
}
