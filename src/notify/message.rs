//! What a notification says: the events ([`Item`]) of one message
//! ([`Notice`]), how outbox rows become them (grouping the deployments of
//! one push), and how they read as text. Pure: no I/O.
//!
//! A notice is frozen (as JSON, in the outbox) when it is made, so a
//! retry a day later says what was true then, even if the history has been
//! pruned since.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{Deployment, PendingNotice, State, Step};
use crate::timing::{self, Timings};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Succeeded,
    RolledBack,
    Failed,
    RollbackFailed,
    AwaitingApproval,
    Available,
    DockerUnreachable,
    DockerReachable,
    /// `dockhook notify-test`.
    Test,
}

impl Kind {
    /// The kinds a URL's `events` parameter can name.
    pub const NAMED: [Kind; 8] = [
        Kind::Succeeded,
        Kind::RolledBack,
        Kind::Failed,
        Kind::RollbackFailed,
        Kind::AwaitingApproval,
        Kind::Available,
        Kind::DockerUnreachable,
        Kind::DockerReachable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Succeeded => "succeeded",
            Kind::RolledBack => "rolled_back",
            Kind::Failed => "failed",
            Kind::RollbackFailed => "rollback_failed",
            Kind::AwaitingApproval => "awaiting_approval",
            Kind::Available => "available",
            Kind::DockerUnreachable => "docker_unreachable",
            Kind::DockerReachable => "docker_reachable",
            Kind::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::NAMED.into_iter().find(|k| k.as_str() == text)
    }

    /// `failed,rolled_back`; `docker` names both Docker kinds.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        let mut kinds = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let name = name.to_ascii_lowercase();
            let named: Vec<Kind> = if name == "docker" {
                vec![Kind::DockerUnreachable, Kind::DockerReachable]
            } else {
                vec![Kind::parse(&name).ok_or_else(|| {
                    format!(
                        "events: unknown event `{name}`; known: {}, docker",
                        Self::NAMED.map(Kind::as_str).join(", ")
                    )
                })?]
            };
            for kind in named {
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
        }
        if kinds.is_empty() {
            return Err("events is empty; leave it out to hear about everything".into());
        }
        Ok(kinds)
    }

    /// The kind a deployment's state makes, if people hear about it.
    pub fn of_state(state: State) -> Option<Self> {
        Some(match state {
            State::Succeeded => Kind::Succeeded,
            State::RolledBack => Kind::RolledBack,
            State::Failed => Kind::Failed,
            State::RollbackFailed => Kind::RollbackFailed,
            State::AwaitingApproval => Kind::AwaitingApproval,
            State::Available => Kind::Available,
            _ => return None,
        })
    }

    /// How an item of this kind reads after its container's name.
    fn verb(self) -> &'static str {
        match self {
            Kind::Succeeded => "updated",
            Kind::RolledBack => "rolled back",
            Kind::Failed => "update failed",
            Kind::RollbackFailed => "update and rollback failed (needs a person)",
            Kind::AwaitingApproval => "waits for approval",
            Kind::Available => "new image available (monitor mode)",
            Kind::DockerUnreachable => "Docker is unreachable",
            Kind::DockerReachable => "Docker answers again",
            Kind::Test => "test message",
        }
    }

    /// How a message about one event of this kind is titled.
    fn headline(self, container: Option<&str>) -> String {
        let Some(c) = container else {
            return self.verb().to_string();
        };
        match self {
            Kind::Succeeded | Kind::RolledBack => format!("{c} {}", self.verb()),
            Kind::Available => format!("{c}: new image available"),
            _ => format!("{c}: {}", self.verb()),
        }
    }

    fn level(self) -> Level {
        match self {
            Kind::Succeeded | Kind::DockerReachable => Level::Good,
            Kind::AwaitingApproval | Kind::Available | Kind::Test => Level::Info,
            Kind::RolledBack => Level::Warning,
            Kind::Failed | Kind::RollbackFailed | Kind::DockerUnreachable => Level::Danger,
        }
    }
}

/// How bad the news is, for colours and priorities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Good,
    Info,
    Warning,
    Danger,
}

impl Level {
    /// `#rrggbb`.
    pub fn color(self) -> &'static str {
        match self {
            Level::Good => "#2eb67d",
            Level::Info => "#2488ff",
            Level::Warning => "#ecb22e",
            Level::Danger => "#d60510",
        }
    }

    pub fn color_number(self) -> u32 {
        u32::from_str_radix(&self.color()[1..], 16).unwrap_or(0)
    }
}

/// One event of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub event: Kind,
    /// When it happened (UTC RFC 3339).
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<i64>,
    /// The container's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The image reference the event named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The image that ran before, short (12 hex characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_digest: Option<String>,
    /// The image deployed (or available), short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_digest: Option<String>,
    /// What triggered it: a webhook source, or `manual`/`rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pusher: Option<String>,
    /// Seconds from the webhook to the new container serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_serving_s: Option<f64>,
    /// Seconds no container of the target served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_s: Option<f64>,
    /// Why it failed or was rolled back; for Docker, what it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The new container's last log lines, for a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_lines: Option<String>,
}

/// The events of one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub items: Vec<Item>,
}

/// A notice on its way: the outbox message's id, for receivers that
/// deduplicate, and its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: i64,
    pub notice: Notice,
}

impl Message {
    pub fn title(&self) -> String {
        self.notice.title()
    }

    pub fn text(&self) -> String {
        self.notice.text()
    }

    pub fn level(&self) -> Level {
        self.notice.level()
    }

    /// The title, a blank line, the text.
    pub fn plain(&self) -> String {
        format!("{}\n\n{}", self.title(), self.text())
    }
}

/// The marker undo writes before the new container's log lines in a
/// deployment's error (src/deploy/undo.rs).
const LOG_MARKER: &str = "; its last log lines:\n";
/// Log lines a message carries at most.
const LOG_LINES: usize = 20;

/// Short form of an image ID or digest: its first 12 hex characters.
pub fn short(digest: &str) -> String {
    let hex = digest.rsplit(':').next().unwrap_or(digest);
    hex.chars().take(12).collect()
}

fn seconds(duration: Option<Duration>) -> Option<f64> {
    duration.map(|d| (d.as_millis() as f64) / 1000.0)
}

impl Item {
    /// The item a deployment that entered `kind`'s state makes.
    pub fn of_deployment(kind: Kind, at: &str, deployment: &Deployment, steps: &[Step]) -> Self {
        let timings = Timings::of(deployment, steps);
        let (reason, log_lines) = match kind {
            Kind::RolledBack | Kind::Failed | Kind::RollbackFailed => {
                split_error(deployment.error.as_deref())
            }
            _ => (None, None),
        };
        let failed = matches!(kind, Kind::RolledBack | Kind::Failed | Kind::RollbackFailed);
        // Nothing was deployed yet: no figures to tell.
        let deployed = !matches!(kind, Kind::AwaitingApproval | Kind::Available);
        let source = match &deployment.kind {
            Some(kind) => format!("{} ({kind})", deployment.source),
            None => deployment.source.clone(),
        };
        Self {
            event: kind,
            at: at.to_string(),
            deployment: Some(deployment.id),
            container: Some(deployment.target.clone()),
            image: Some(deployment.image.clone()),
            old_digest: deployment.old_image_id.as_deref().map(short),
            new_digest: deployment
                .new_image_id
                .as_deref()
                .or(deployment.digest.as_deref())
                .map(short),
            source: Some(source),
            pusher: deployment.pusher.clone(),
            to_serving_s: (deployed && !failed)
                .then(|| seconds(timings.to_serving))
                .flatten(),
            downtime_s: deployed.then(|| seconds(timings.downtime)).flatten(),
            reason,
            log_lines,
        }
    }

    /// A Docker event.
    pub fn docker(kind: Kind, at: &str, detail: Option<&str>) -> Self {
        Self {
            event: kind,
            at: at.to_string(),
            deployment: None,
            container: None,
            image: None,
            old_digest: None,
            new_digest: None,
            source: None,
            pusher: None,
            to_serving_s: None,
            downtime_s: None,
            reason: detail.map(str::to_string),
            log_lines: None,
        }
    }

    /// One line (and, for a failure, the reason and log lines under it).
    fn render(&self, out: &mut String) {
        let mut line = match &self.container {
            Some(container) => format!("- {container}: {}", self.event.verb()),
            None => format!("- {}", self.event.verb()),
        };
        match (&self.old_digest, &self.new_digest) {
            (Some(old), Some(new)) => line.push_str(&format!(", {old} → {new}")),
            (None, Some(new)) => line.push_str(&format!(", → {new}")),
            (Some(old), None) => line.push_str(&format!(", {old} → ?")),
            (None, None) => {}
        }
        let mut figures = Vec::new();
        if let Some(s) = self.to_serving_s {
            figures.push(format!("serving after {s:.1} s"));
        }
        if let Some(s) = self.downtime_s {
            figures.push(format!("downtime {s:.1} s"));
        }
        if !figures.is_empty() {
            line.push_str(&format!("; {}", figures.join(", ")));
        }
        if self.container.is_none() {
            if let Some(reason) = &self.reason {
                line.push_str(&format!(": {reason}"));
            }
        }
        out.push_str(&line);
        out.push('\n');
        if self.container.is_some() {
            if let Some(reason) = &self.reason {
                out.push_str(&format!("  reason: {reason}\n"));
            }
        }
        if let Some(logs) = &self.log_lines {
            out.push_str("  last log lines:\n");
            for l in logs.lines() {
                out.push_str(&format!("    {l}\n"));
            }
        }
    }
}

/// A deployment's error split into the reason and the new container's last
/// log lines (at most [`LOG_LINES`]), as undo wrote them.
fn split_error(error: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(error) = error.filter(|e| !e.trim().is_empty()) else {
        return (None, None);
    };
    match error.split_once(LOG_MARKER) {
        Some((reason, rest)) => {
            // Undo writes the logs, a newline, then how the undo went
            // ("; site runs its previous container and image again").
            let (logs, outcome) = match rest.rsplit_once("\n; ") {
                Some((logs, outcome)) => (logs, Some(outcome.trim())),
                None => (rest, None),
            };
            let reason = match outcome {
                Some(outcome) => format!("{}; {outcome}", reason.trim()),
                None => reason.trim().to_string(),
            };
            let lines: Vec<&str> = logs.trim_end().lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_LINES)..].join("\n");
            (Some(reason), (!tail.is_empty()).then_some(tail))
        }
        None => (Some(error.trim().to_string()), None),
    }
}

impl Notice {
    /// The message `dockhook notify-test` sends.
    pub fn test() -> Self {
        Self {
            items: vec![Item {
                reason: Some(
                    "dockhook can reach this service URL; this is how its messages arrive".into(),
                ),
                ..Item::docker(Kind::Test, &timing::format(timing::now()), None)
            }],
        }
    }

    /// The items `wanted` keeps, if any.
    pub fn only(&self, wanted: impl Fn(Kind) -> bool) -> Option<Notice> {
        let items: Vec<Item> = self
            .items
            .iter()
            .filter(|i| wanted(i.event))
            .cloned()
            .collect();
        (!items.is_empty()).then_some(Notice { items })
    }

    /// The worst level among the items.
    pub fn level(&self) -> Level {
        self.items
            .iter()
            .map(|i| i.event.level())
            .max()
            .unwrap_or(Level::Info)
    }

    /// One line: what happened to which container, or how a push went.
    pub fn title(&self) -> String {
        let headline = match self.items.as_slice() {
            [] => "nothing".to_string(),
            [item] => item.event.headline(item.container.as_deref()),
            items => {
                let mut counts: Vec<(Kind, usize)> = Vec::new();
                for item in items {
                    match counts.iter_mut().find(|(k, _)| *k == item.event) {
                        Some((_, n)) => *n += 1,
                        None => counts.push((item.event, 1)),
                    }
                }
                // The worst news first, whatever order the containers ran in.
                counts.sort_by_key(|(kind, _)| std::cmp::Reverse(kind.level()));
                let counts = counts
                    .iter()
                    .map(|(kind, n)| format!("{n} {}", kind.verb()))
                    .collect::<Vec<_>>()
                    .join(", ");
                match &items[0].image {
                    Some(image) => format!("{image} on {} containers: {counts}", items.len()),
                    None => counts,
                }
            }
        };
        format!("dockhook: {headline}")
    }

    /// The body: what triggered it, then one line per event.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if let Some(first) = self.items.iter().find(|i| i.image.is_some()) {
            let mut origin = first.image.clone().unwrap_or_default();
            if let Some(source) = &first.source {
                origin.push_str(&format!(", from {source}"));
            }
            if let Some(pusher) = &first.pusher {
                origin.push_str(&format!(" (pushed by {pusher})"));
            }
            out.push_str(&origin);
            out.push('\n');
        }
        for item in &self.items {
            item.render(&mut out);
        }
        out.trim_end().to_string()
    }
}

/// Events ready to go out as one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The outbox rows it takes.
    pub events: Vec<i64>,
    pub notice: Notice,
}

/// How the outbox groups events.
#[derive(Debug, Clone, Copy)]
pub struct Grouping {
    /// Deployments of one push are recorded within this of each other.
    pub push_window: Duration,
    /// An event waits at least this long for others of its push.
    pub wait: Duration,
    /// …and at most this long for the rest of its push to end.
    pub hold: Duration,
}

/// The events of `pending` (oldest first) that are ready at `now` (ms since
/// the epoch), grouped: the deployments of one push (same source, image
/// and digest, recorded within the push window) in one batch, sent once
/// each of them has ended or waits (or once the oldest has been held for
/// `hold`) and the oldest is `wait` old; anything else alone.
pub fn batches(pending: &[PendingNotice], now: u64, grouping: Grouping) -> Vec<Batch> {
    let mut groups: Vec<Vec<&PendingNotice>> = Vec::new();
    for notice in pending {
        let same_push = |other: &&PendingNotice| match (&notice.deployment, &other.deployment) {
            (Some((a, _)), Some((b, _))) => {
                a.source == b.source
                    && a.image == b.image
                    && a.digest == b.digest
                    && within(&a.created_at, &b.created_at, grouping.push_window)
            }
            _ => false,
        };
        match groups.iter_mut().find(|g| same_push(&g[0])) {
            Some(group) => group.push(notice),
            None => groups.push(vec![notice]),
        }
    }
    groups
        .into_iter()
        .filter(|group| {
            let age = age(&group[0].created_at, now);
            let settled = group.iter().all(|n| n.push_settled);
            age >= grouping.wait && (settled || age >= grouping.hold)
                || group[0].deployment.is_none()
        })
        .map(|group| Batch {
            events: group.iter().map(|n| n.id).collect(),
            notice: Notice {
                items: group.iter().filter_map(|n| item(n)).collect(),
            },
        })
        .collect()
}

/// The item an outbox row makes; `None` for one whose deployment is gone
/// or whose kind this build does not know.
fn item(notice: &PendingNotice) -> Option<Item> {
    match &notice.deployment {
        Some((deployment, steps)) => {
            let kind = Kind::of_state(State::parse(&notice.kind)?)?;
            Some(Item::of_deployment(
                kind,
                &notice.created_at,
                deployment,
                steps,
            ))
        }
        None => {
            let kind = Kind::parse(&notice.kind)?;
            matches!(kind, Kind::DockerUnreachable | Kind::DockerReachable)
                .then(|| Item::docker(kind, &notice.created_at, notice.detail.as_deref()))
        }
    }
}

fn age(at: &str, now: u64) -> Duration {
    Duration::from_millis(timing::parse(at).map_or(u64::MAX, |t| now.saturating_sub(t)))
}

fn within(a: &str, b: &str, window: Duration) -> bool {
    match (timing::parse(a), timing::parse(b)) {
        (Some(a), Some(b)) => Duration::from_millis(a.abs_diff(b)) <= window,
        _ => false,
    }
}
