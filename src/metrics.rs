//! Prometheus metrics, served at `/metrics`.
//!
//! The metrics are process-wide, so they live in one registry in a
//! `static`: any module counts with a free function ([`webhook`],
//! [`notification`]) and nothing has to carry a handle around. Every label
//! value comes from a fixed list (the sources, the outcomes, the states),
//! never from a request, so no client can grow the number of series.
//!
//! | family | type | what |
//! |---|---|---|
//! | `dockhook_webhooks_total{source,outcome}` | counter | webhook requests by source and how they ended |
//! | `dockhook_deployments_total{state}` | counter | deployments that reached a final state |
//! | `dockhook_deployment_duration_seconds` | histogram | record to end of deployments that ran |
//! | `dockhook_push_to_serving_seconds` | histogram | webhook to the new container serving |
//! | `dockhook_downtime_seconds` | histogram | how long the target served nothing |
//! | `dockhook_rollbacks_total` | counter | updates undone: the old container serves again |
//! | `dockhook_queue_depth` | gauge | updates running or waiting in the queue |
//! | `dockhook_docker_up` | gauge | 1 when the Docker engine answered the scrape's ping |
//! | `dockhook_notifications_total{service,outcome}` | counter | notification attempts |
//! | `dockhook_auth_blocked_total` | counter | failed authentications answered 429: the client failed too often ([`crate::abuse`]) |
//! | `dockhook_connections_evicted_total` | counter | connections closed before sending a request, to make room for a new one |
//! | `dockhook_build_info{version}` | gauge (info) | always 1 |
//!
//! The deployment families are fed by [`watch`], which listens to the
//! store's change broadcast and reads a finished deployment's timings with
//! [`Timings::of`], the one definition the API and the page use too.
//!
//! A scrape gets the Prometheus text format (0.0.4), which `promtool check
//! metrics` reads, unless its `Accept` header prefers OpenMetrics (as
//! Prometheus itself does).
//!
//! A labelled family is written once it has a series: the webhook and
//! notification families from their first count (their labels are not
//! known in advance), the deployment states from the start, all at 0.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::settings::Secret;
use crate::store::{Change, Deployment, State, Step, Store};
use crate::timing::Timings;

/// Who may read `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// A token that reads the metrics and nothing else; the main token
    /// reads them too.
    pub token: Option<Secret>,
    /// Anyone may read them, without a token.
    pub public: bool,
}

/// How a webhook request ended: the `outcome` label of
/// `dockhook_webhooks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Updates were queued (202).
    Accepted,
    /// Authentic, but nothing to update (200).
    Ignored,
    /// A delivery already received, or being handled (200, 409).
    Duplicate,
    /// Bad token, signature or secret header, or the source is off (401).
    Unauthorized,
    /// A namespace not in `OWNER` (403).
    Forbidden,
    /// Malformed body or header (400).
    BadRequest,
    /// Body over `max_body` (413).
    TooLarge,
    /// Docker did not answer; the sender should retry (503).
    Unavailable,
    /// Anything else dockhook answered with an error (500, 408, …).
    Error,
    /// The request ended before an answer: the client went away.
    Dropped,
}

impl WebhookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Ignored => "ignored",
            Self::Duplicate => "duplicate",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::BadRequest => "bad_request",
            Self::TooLarge => "too_large",
            Self::Unavailable => "unavailable",
            Self::Error => "error",
            Self::Dropped => "dropped",
        }
    }

    /// The outcome an answer with `status` stands for.
    pub fn of_status(status: http::StatusCode) -> Self {
        match status.as_u16() {
            202 => Self::Accepted,
            200 => Self::Ignored,
            409 => Self::Duplicate,
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            400 => Self::BadRequest,
            413 => Self::TooLarge,
            503 => Self::Unavailable,
            _ => Self::Error,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    source: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    service: String,
    outcome: String,
}

/// Every metric, and the registry that encodes them.
struct Metrics {
    registry: Registry,
    webhooks: Family<WebhookLabels, Counter>,
    deployments: Family<StateLabels, Counter>,
    duration: Histogram,
    to_serving: Histogram,
    downtime: Histogram,
    rollbacks: Counter,
    queue_depth: Gauge,
    docker_up: Gauge,
    notifications: Family<NotificationLabels, Counter>,
    auth_blocked: Counter,
    evicted: Counter,
}

/// Seconds: from a quick pull to a slow health gate.
const DURATION_BUCKETS: [f64; 11] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Seconds; `0` is its own bucket, so the share of updates without any
/// downtime (start-first) reads straight off it.
const DOWNTIME_BUCKETS: [f64; 10] = [0.0, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let webhooks = Family::<WebhookLabels, Counter>::default();
    registry.register(
        "dockhook_webhooks",
        "Webhook requests, by source and by how they ended",
        webhooks.clone(),
    );
    let deployments = Family::<StateLabels, Counter>::default();
    // Each final state is shown from the first scrape on, at 0.
    for state in State::ALL.into_iter().filter(|s| s.is_final()) {
        drop(deployments.get_or_create(&StateLabels {
            state: state.as_str(),
        }));
    }
    registry.register(
        "dockhook_deployments",
        "Deployments that reached a final state, by that state",
        deployments.clone(),
    );
    let duration = Histogram::new(DURATION_BUCKETS);
    registry.register(
        "dockhook_deployment_duration_seconds",
        "From a deployment's record to its end, for deployments that ran \
         (succeeded, failed, rolled_back, rollback_failed)",
        duration.clone(),
    );
    let to_serving = Histogram::new(DURATION_BUCKETS);
    registry.register(
        "dockhook_push_to_serving_seconds",
        "From the webhook (or request) to the new container serving",
        to_serving.clone(),
    );
    let downtime = Histogram::new(DOWNTIME_BUCKETS);
    registry.register(
        "dockhook_downtime_seconds",
        "How long no container of the target served, per deployment that ran",
        downtime.clone(),
    );
    let rollbacks = Counter::default();
    registry.register(
        "dockhook_rollbacks",
        "Updates undone because the new container failed: the old one serves again",
        rollbacks.clone(),
    );
    let queue_depth = Gauge::default();
    registry.register(
        "dockhook_queue_depth",
        "Updates running or waiting in the deploy queue, recoveries included",
        queue_depth.clone(),
    );
    let docker_up = Gauge::default();
    registry.register(
        "dockhook_docker_up",
        "1 when the Docker engine answered a ping at this scrape, else 0",
        docker_up.clone(),
    );
    let notifications = Family::<NotificationLabels, Counter>::default();
    registry.register(
        "dockhook_notifications",
        "Attempts to deliver a notification, by service and outcome",
        notifications.clone(),
    );
    let auth_blocked = Counter::default();
    registry.register(
        "dockhook_auth_blocked",
        "Failed authentications answered 429, because their client failed too often",
        auth_blocked.clone(),
    );
    let evicted = Counter::default();
    registry.register(
        "dockhook_connections_evicted",
        "Connections closed before they sent a whole request, to make room for a new one",
        evicted.clone(),
    );
    registry.register(
        "dockhook_build",
        "The running dockhook's version",
        Info::new([("version", env!("CARGO_PKG_VERSION"))]),
    );
    Metrics {
        registry,
        webhooks,
        deployments,
        duration,
        to_serving,
        downtime,
        rollbacks,
        queue_depth,
        docker_up,
        notifications,
        auth_blocked,
        evicted,
    }
});

/// Counts one webhook request of `source` (a name from
/// [`crate::sources::ALL`]) that ended `outcome`.
pub fn webhook(source: &'static str, outcome: WebhookOutcome) {
    METRICS
        .webhooks
        .get_or_create(&WebhookLabels {
            source,
            outcome: outcome.as_str(),
        })
        .inc();
}

/// Counts a failed authentication answered 429 ([`crate::abuse`]).
pub fn auth_blocked() {
    METRICS.auth_blocked.inc();
}

/// Counts a waiting connection closed to make room for a new one.
pub fn connection_evicted() {
    METRICS.evicted.inc();
}

/// Counts one attempt to deliver a notification to `service` (`slack`,
/// `smtp`, …) that ended `outcome` (`sent`, `failed`, `retrying`).
pub fn notification(service: &str, outcome: &str) {
    METRICS
        .notifications
        .get_or_create(&NotificationLabels {
            service: service.to_string(),
            outcome: outcome.to_string(),
        })
        .inc();
}

/// Counts a deployment that reached its final state, with its timings.
pub fn deployment_ended(deployment: &Deployment, steps: &[Step]) {
    let state = deployment.state;
    if !state.is_final() {
        return;
    }
    let metrics = &*METRICS;
    metrics
        .deployments
        .get_or_create(&StateLabels {
            state: state.as_str(),
        })
        .inc();
    if state == State::RolledBack {
        metrics.rollbacks.inc();
    }
    // Skipped, available and rejected deployments end by bookkeeping (a
    // newer push, a mode, a person), not by running an update: their
    // times would say how long they waited.
    let ran = matches!(
        state,
        State::Succeeded | State::Failed | State::RolledBack | State::RollbackFailed
    );
    if !ran {
        return;
    }
    let timings = Timings::of(deployment, steps);
    let observe = |histogram: &Histogram, value: Option<Duration>| {
        if let Some(value) = value {
            histogram.observe(value.as_secs_f64());
        }
    };
    observe(&metrics.duration, timings.total);
    observe(&metrics.to_serving, timings.to_serving);
    observe(&metrics.downtime, timings.downtime);
}

/// Feeds the deployment metrics from `changes` (subscribe before any
/// deployment can end, so none is missed) until `stop`.
pub async fn watch(
    store: Arc<Store>,
    mut changes: tokio::sync::broadcast::Receiver<Change>,
    stop: CancellationToken,
) {
    loop {
        let change = tokio::select! {
            change = changes.recv() => change,
            () = stop.cancelled() => return,
        };
        match change {
            Ok(change) if change.state.is_final() => {
                let id = change.deployment;
                match store.call(move |store| store.get(id)).await {
                    Ok(Some((deployment, steps))) => deployment_ended(&deployment, &steps),
                    // Pruned already: nothing to count.
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(deployment = id, %error, "metrics cannot read a finished deployment")
                    }
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "metrics fell behind the deployment changes; some are not counted"
                )
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// A scrape's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4.
    Text,
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a weight at least that of any
    /// text format it also takes; the text format otherwise.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let (mut openmetrics, mut text) = (0.0_f32, 0.0_f32);
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let weight = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, q)| q.trim().parse::<f32>().ok())
                .unwrap_or(0.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(weight),
                "text/plain" | "text/*" | "*/*" => text = text.max(weight),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Self::OpenMetrics
        } else {
            Self::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// What the scrape found out at its own moment.
#[derive(Debug, Clone, Copy)]
pub struct Scrape {
    pub queue_depth: usize,
    pub docker_up: bool,
}

/// Every metric in `format`, with the gauges read at this scrape.
pub fn render(format: Format, now: Scrape) -> String {
    let metrics = &*METRICS;
    metrics
        .queue_depth
        .set(i64::try_from(now.queue_depth).unwrap_or(i64::MAX));
    metrics.docker_up.set(i64::from(now.docker_up));
    let mut out = String::with_capacity(4096);
    let encoded = match format {
        Format::Text => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &metrics.registry)
        }
        Format::OpenMetrics => {
            prometheus_client::encoding::text::encode(&mut out, &metrics.registry)
        }
    };
    encoded.expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_follows_the_accept_header() {
        // What Prometheus 2.42 sends.
        let prometheus = "application/openmetrics-text;version=1.0.0,\
            application/openmetrics-text;version=0.0.1;q=0.75,\
            text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        for text in [
            None,
            Some(""),
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain;version=0.0.4"),
            Some("application/openmetrics-text;q=0"),
            Some("application/openmetrics-text;q=0.2, text/plain;q=0.9"),
            Some("application/json"),
            Some("application/openmetrics-text;q=nonsense"),
        ] {
            assert_eq!(Format::negotiate(text), Format::Text, "{text:?}");
        }
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.5, Application/OpenMetrics-Text")),
            Format::OpenMetrics
        );
    }

    #[test]
    fn every_family_has_help_and_type_in_both_formats() {
        webhook("dockerhub", WebhookOutcome::Ignored);
        notification("slack", "sent");
        let now = Scrape {
            queue_depth: 3,
            docker_up: true,
        };
        let text = render(Format::Text, now);
        for (family, kind) in [
            ("dockhook_webhooks_total", "counter"),
            ("dockhook_deployments_total", "counter"),
            ("dockhook_deployment_duration_seconds", "histogram"),
            ("dockhook_push_to_serving_seconds", "histogram"),
            ("dockhook_downtime_seconds", "histogram"),
            ("dockhook_rollbacks_total", "counter"),
            ("dockhook_queue_depth", "gauge"),
            ("dockhook_docker_up", "gauge"),
            ("dockhook_notifications_total", "counter"),
            ("dockhook_build_info", "gauge"),
        ] {
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "{family}:\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {family} {kind}\n")),
                "{family}:\n{text}"
            );
        }
        assert!(text.contains("dockhook_queue_depth 3\n"), "{text}");
        assert!(text.contains("dockhook_docker_up 1\n"), "{text}");
        assert!(
            text.contains(&format!(
                "dockhook_build_info{{version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(
            text.contains("dockhook_deployments_total{state=\"rollback_failed\"} "),
            "every final state from the start: {text}"
        );
        assert!(
            text.contains("dockhook_downtime_seconds_bucket{le=\"0\"} "),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");

        let openmetrics = render(
            Format::OpenMetrics,
            Scrape {
                queue_depth: 0,
                docker_up: false,
            },
        );
        assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
        assert!(
            openmetrics.contains("# TYPE dockhook_webhooks counter\n"),
            "{openmetrics}"
        );
        assert!(
            openmetrics.contains("# TYPE dockhook_build info\n"),
            "{openmetrics}"
        );
        assert!(
            openmetrics.contains("dockhook_docker_up 0\n"),
            "{openmetrics}"
        );
    }

    /// The value of the sample `name` (with its labels, as written).
    fn sample(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn a_finished_deployment_counts_with_its_timings() {
        let store = Store::in_memory().unwrap();
        let id = store
            .create(&crate::store::NewDeployment {
                target: "metrics-test".into(),
                image: "alice/site:latest".into(),
                ..Default::default()
            })
            .unwrap();
        store
            .transition(id, State::RolledBack, Some("test"))
            .unwrap();
        let (deployment, steps) = store.get(id).unwrap().unwrap();
        let now = Scrape {
            queue_depth: 0,
            docker_up: true,
        };
        let counted = |text: &str| {
            (
                sample(text, "dockhook_deployments_total{state=\"rolled_back\"}"),
                sample(text, "dockhook_rollbacks_total"),
                sample(text, "dockhook_deployment_duration_seconds_count"),
                sample(text, "dockhook_downtime_seconds_count"),
            )
        };
        let before = counted(&render(Format::Text, now));
        deployment_ended(&deployment, &steps);
        let after = counted(&render(Format::Text, now));
        assert_eq!(
            after,
            (
                before.0 + 1.0,
                before.1 + 1.0,
                before.2 + 1.0,
                before.3 + 1.0
            )
        );
    }
}
