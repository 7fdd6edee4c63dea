//! The live stream of deployment state changes, as Server-Sent Events: one
//! `deployment` event per state a deployment enters, its data the JSON of
//! a [`Change`]. The API (`GET /api/events`) and the status page serve it.
//!
//! A client that falls behind by more than the store's buffer is sent a
//! `lagged` event with how many changes it missed, and should read the
//! history again. Comments keep idle connections alive through proxies.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use crate::store::{Change, Store};

/// The stream of changes from now on.
pub fn sse(store: &Store) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = store.subscribe();
    let stream = futures_util::stream::unfold(changes, |mut changes| async move {
        let event = match changes.recv().await {
            Ok(change) => event(&change),
            Err(RecvError::Lagged(missed)) => Event::default()
                .event("lagged")
                .data(format!("{{\"missed\":{missed}}}")),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), changes))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn event(change: &Change) -> Event {
    let data = serde_json::to_string(change).expect("changes serialise");
    Event::default()
        .event("deployment")
        .id(change.deployment.to_string())
        .data(data)
}
