//! Docker unreachable: a task pings the engine every 5 s; once pings have
//! failed for 30 s in a row it writes a `docker_unreachable` outbox row
//! (with the last error), and a `docker_reachable` one (saying how long it
//! was out) at the first ping that works after that. A blip shorter than
//! 30 s (a daemon restart) is no news. Only the notifier reads these rows.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::message::Kind;
use crate::store::Store;

/// How the watcher paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Time between pings.
    pub every: Duration,
    /// How long pings must fail before it is news.
    pub down_after: Duration,
}

pub const PACE: Pace = Pace {
    every: Duration::from_secs(5),
    down_after: Duration::from_secs(30),
};

/// Pings with `ping` until `stop` is cancelled, recording when Docker goes
/// and comes back.
pub async fn watch<F, Fut, E>(ping: F, store: Arc<Store>, pace: Pace, stop: CancellationToken)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut down_since: Option<Instant> = None;
    let mut told = false;
    loop {
        let answer = tokio::time::timeout(pace.every.max(Duration::from_secs(1)), ping()).await;
        let error = match answer {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("Docker did not answer a ping".to_string()),
        };
        let news = match (error, down_since) {
            (None, Some(since)) => {
                down_since = None;
                std::mem::take(&mut told).then(|| {
                    let out = since.elapsed().as_secs();
                    (Kind::DockerReachable, format!("after about {out} s out"))
                })
            }
            (None, None) => None,
            (Some(error), since) => {
                let since = *down_since.get_or_insert(since.unwrap_or_else(Instant::now));
                (!told && since.elapsed() >= pace.down_after).then(|| {
                    told = true;
                    let out = since.elapsed().as_secs();
                    (Kind::DockerUnreachable, format!("for {out} s: {error}"))
                })
            }
        };
        if let Some((kind, detail)) = news {
            tracing::warn!(event = kind.as_str(), "{detail}");
            let recorded = store
                .call(move |s| s.record_notice(kind.as_str(), Some(&detail)))
                .await;
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "cannot record a Docker notification");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pace.every) => {}
        }
    }
}
