//! The outbox worker: from outbox rows to delivered messages.
//!
//! Every half second it groups the events that are ready into messages
//! ([`super::message::batches`]; one SQLite transaction makes the message
//! and its deliveries and takes the events), then starts every delivery
//! that is due, each on its own task with a timeout, so a slow or dead
//! service holds up no other. An attempt that fails is tried again after
//! 5 s, doubling up to an hour; a delivery still failing a day after its
//! message was made is given up, and that is recorded. At start, every
//! delivery not yet made is due at once: a restart resends what was not
//! delivered. A crash between a send and its record sends it again on
//! restart (at least once; receivers can deduplicate on the message id).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::message::{batches, Grouping, Message, Notice};
use super::{mask, Endpoint, Http, Settings, SEND_TIMEOUT};
use crate::store::{DueDelivery, Store, StoreError};
use crate::timing;

/// How the worker groups events: a push's deployments recorded within
/// 10 s of each other; each event waits 2 s for the others, and at most
/// 10 minutes for the rest of its push to end.
pub const GROUPING: Grouping = Grouping {
    push_window: Duration::from_secs(10),
    wait: Duration::from_secs(2),
    hold: Duration::from_secs(600),
};

/// How often the worker looks at the outbox.
const TICK: Duration = Duration::from_millis(500);
/// The first retry's delay, doubled after each failure…
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// …up to this.
const MAX_RETRY: Duration = Duration::from_secs(60 * 60);
/// A delivery still failing this long after its message was made is given up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The delay before attempt `attempts + 1`, after `attempts` failed ones.
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(20);
    (FIRST_RETRY * 2u32.pow(doublings)).min(MAX_RETRY)
}

/// Delivers the outbox to the configured URLs.
pub struct Outbox {
    store: Arc<Store>,
    http: Http,
    endpoints: Vec<Endpoint>,
    grouping: Grouping,
    /// Deliveries being attempted now, by message and URL key.
    in_flight: Arc<Mutex<HashSet<(i64, String)>>>,
}

impl Outbox {
    pub fn new(store: Arc<Store>, settings: &Settings, http: Http) -> Self {
        Self {
            store,
            http,
            endpoints: settings.endpoints.clone(),
            grouping: GROUPING,
            in_flight: Arc::default(),
        }
    }

    /// With another grouping, for tests.
    pub fn with_grouping(mut self, grouping: Grouping) -> Self {
        self.grouping = grouping;
        self
    }

    /// Runs until `stop` is cancelled. Deliveries under way then are
    /// dropped; the next start makes them again.
    pub async fn run(self, stop: CancellationToken) {
        let keys: Vec<String> = self.endpoints.iter().map(|e| e.key.clone()).collect();
        match self.store.call(move |s| s.resume_deliveries(&keys)).await {
            Ok((0, 0)) => {}
            Ok((due, dropped)) => tracing::info!(
                due,
                dropped,
                "notifications not delivered before the restart are due again; those to URLs \
                 no longer configured are dropped"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot resume notification deliveries"),
        }
        if self.endpoints.is_empty() {
            return;
        }
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "notification outbox pass failed; trying again");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// Groups what is ready into messages and starts what is due.
    pub async fn pass(&self) -> Result<(), StoreError> {
        let window = self.grouping.push_window;
        let pending = self.store.call(move |s| s.pending_notices(window)).await?;
        for batch in batches(&pending, timing::now(), self.grouping) {
            let urls: Vec<String> = self
                .endpoints
                .iter()
                .filter(|e| e.filter(&batch.notice).is_some())
                .map(|e| e.key.clone())
                .collect();
            let body = serde_json::to_string(&batch.notice).expect("a notice serialises");
            let events = batch.events;
            self.store
                .call(move |s| s.queue_message(&events, &body, &urls))
                .await?;
        }
        for due in self.store.call(|s| s.due_deliveries()).await? {
            let Some(endpoint) = self.endpoints.iter().find(|e| e.key == due.url) else {
                continue; // dropped at the next start
            };
            let slot = (due.message_id, due.url.clone());
            if !self
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(slot.clone())
            {
                continue;
            }
            let delivery = Delivery {
                store: self.store.clone(),
                http: self.http.clone(),
                endpoint: endpoint.clone(),
                due,
            };
            let in_flight = self.in_flight.clone();
            tokio::spawn(async move {
                delivery.attempt().await;
                in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&slot);
            });
        }
        Ok(())
    }
}

/// One attempt to deliver one message to one URL.
struct Delivery {
    store: Arc<Store>,
    http: Http,
    endpoint: Endpoint,
    due: DueDelivery,
}

impl Delivery {
    async fn attempt(self) {
        let message_id = self.due.message_id;
        let outcome = match serde_json::from_str::<Notice>(&self.due.body) {
            Ok(notice) => match self.endpoint.filter(&notice) {
                Some(notice) => {
                    let message = Message {
                        id: message_id,
                        notice,
                    };
                    send(&self.http, &self.endpoint, &message).await
                }
                None => Ok(()),
            },
            Err(e) => Err(format!(
                "the outbox holds a message this build cannot read: {e}"
            )),
        };
        let service = self.endpoint.service;
        let url = self.endpoint.masked.clone();
        let key = self.due.url.clone();
        let attempts = self.due.attempts + 1;
        let recorded = match outcome {
            Ok(()) => {
                crate::metrics::notification(service, "sent");
                tracing::info!(message = message_id, %url, attempts, "notification delivered");
                self.store
                    .call(move |s| s.delivery_sent(message_id, &key))
                    .await
            }
            Err(error) => {
                let age = timing::parse(&self.due.created_at)
                    .map(|at| Duration::from_millis(timing::now().saturating_sub(at)));
                let retry_in = (age.unwrap_or_default() < GIVE_UP_AFTER).then(|| backoff(attempts));
                match retry_in {
                    Some(delay) => {
                        crate::metrics::notification(service, "retrying");
                        tracing::warn!(
                            message = message_id, %url, attempts, %error,
                            "notification delivery failed; trying again in {delay:?}"
                        );
                    }
                    None => {
                        crate::metrics::notification(service, "failed");
                        tracing::error!(
                            message = message_id, %url, attempts, %error,
                            "notification delivery failed for a day; giving up"
                        );
                    }
                }
                self.store
                    .call(move |s| s.delivery_failed(message_id, &key, &error, retry_in))
                    .await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "cannot record a notification delivery");
        }
    }
}

/// Sends `message` to `endpoint` within [`SEND_TIMEOUT`]; an error never
/// shows the URL's secrets, even if a service echoed one.
pub async fn send(http: &Http, endpoint: &Endpoint, message: &Message) -> Result<(), String> {
    tokio::time::timeout(
        SEND_TIMEOUT + Duration::from_secs(5),
        endpoint.send(http, message),
    )
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {SEND_TIMEOUT:?}")))
    .map_err(|error| mask(&error, &endpoint.secrets))
}

/// `dockhook notify-test`: sends a test message to every URL at once and
/// returns, per URL (masked), what happened.
pub async fn test_all(settings: &Settings, http: &Http) -> Vec<(String, Result<(), String>)> {
    let message = Message {
        id: 0,
        notice: Notice::test(),
    };
    let sends = settings.endpoints.iter().map(|endpoint| {
        let message = &message;
        async move {
            let outcome = send(http, endpoint, message).await;
            crate::metrics::notification(
                endpoint.service,
                if outcome.is_ok() { "sent" } else { "failed" },
            );
            (endpoint.masked.clone(), outcome)
        }
    });
    futures_util::future::join_all(sends).await
}
