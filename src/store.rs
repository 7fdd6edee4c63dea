//! Deployment history in SQLite: the only module that writes SQL.
//!
//! One row per deployment (what was asked, what ran before, what runs now,
//! how it ended) and one row per step it went through, so the API can show
//! both the summary and the story; one row per handled webhook delivery ID.
//! Timestamps are UTC RFC 3339, made by SQLite itself. What retention asks
//! for is here too: pruning old rows, and the images failed deployments
//! left behind. Pruned rows' pages are reused by SQLite, so the file stops
//! growing once the retention is reached.
//!
//! The notification outbox is here too: a step into a state people are told
//! about writes its outbox row in the step's own transaction, so no
//! notification is lost to a crash and none is made twice for one change.
//! The notifier ([`crate::notify`]) groups those rows into messages, each
//! with one delivery per service URL, and records every attempt.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

/// Where a deployment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Queued,
    /// Mode `approve`: waits for a person to approve or reject it.
    AwaitingApproval,
    /// The container's delay: deployed once the digest has been the newest
    /// for that long (`due_at`).
    Delayed,
    Pulling,
    PreUpdate,
    Creating,
    Stopping,
    Starting,
    Verifying,
    CleaningUp,
    PostUpdate,
    Succeeded,
    Skipped,
    Failed,
    RolledBack,
    /// Undoing a failed update failed too: the host needs a person.
    RollbackFailed,
    /// Mode `monitor`: a newer image is out; nothing is deployed.
    Available,
    /// A person rejected it; the container was not touched.
    Rejected,
}

impl State {
    /// Every state, in the order a deployment can pass them.
    pub const ALL: [State; 18] = [
        State::Queued,
        State::AwaitingApproval,
        State::Delayed,
        State::Pulling,
        State::PreUpdate,
        State::Creating,
        State::Stopping,
        State::Starting,
        State::Verifying,
        State::CleaningUp,
        State::PostUpdate,
        State::Succeeded,
        State::Skipped,
        State::Failed,
        State::RolledBack,
        State::RollbackFailed,
        State::Available,
        State::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::AwaitingApproval => "awaiting_approval",
            State::Delayed => "delayed",
            State::Pulling => "pulling",
            State::PreUpdate => "pre_update",
            State::Creating => "creating",
            State::Stopping => "stopping",
            State::Starting => "starting",
            State::Verifying => "verifying",
            State::CleaningUp => "cleaning_up",
            State::PostUpdate => "post_update",
            State::Succeeded => "succeeded",
            State::Skipped => "skipped",
            State::Failed => "failed",
            State::RolledBack => "rolled_back",
            State::RollbackFailed => "rollback_failed",
            State::Available => "available",
            State::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the deployment is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Succeeded
                | State::Skipped
                | State::Failed
                | State::RolledBack
                | State::RollbackFailed
                | State::Available
                | State::Rejected
        )
    }

    /// Whether entering this state is news people are told about (a
    /// notification): an update's outcome, a wait for approval, an image
    /// available in monitor mode.
    pub fn is_notified(self) -> bool {
        matches!(
            self,
            State::Succeeded
                | State::RolledBack
                | State::Failed
                | State::RollbackFailed
                | State::AwaitingApproval
                | State::Available
        )
    }

    /// Whether the deployment waits for a person or a time, not for a
    /// worker: nothing on the host has been touched yet.
    pub fn is_waiting(self) -> bool {
        matches!(self, State::AwaitingApproval | State::Delayed)
    }
}

/// A target's newest deployment, and those that wait for a person or a
/// time.
pub type TargetHistory = (Option<Deployment>, Vec<Deployment>);

/// A deployment entered a state: what the event stream, notifications and
/// metrics hear, published once the step is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub deployment: i64,
    pub target: String,
    pub state: State,
    pub detail: Option<String>,
}

/// One deployment as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: i64,
    /// Name of the container being updated.
    pub target: String,
    /// The image reference the event named.
    pub image: String,
    pub source: String,
    pub pusher: Option<String>,
    /// The digest the webhook named, if any.
    pub digest: Option<String>,
    pub state: State,
    pub old_container_id: Option<String>,
    pub new_container_id: Option<String>,
    pub old_image_id: Option<String>,
    pub new_image_id: Option<String>,
    /// `start-first` or `stop-first`, once chosen.
    pub strategy: Option<String>,
    /// The old container's network endpoints (JSON, as Docker inspects
    /// them), recorded before it leaves its networks, so undoing puts it
    /// back on each with its aliases and addresses.
    #[serde(skip)]
    pub old_networks: Option<String>,
    pub error: Option<String>,
    /// When a `delayed` deployment is due (UTC RFC 3339).
    pub due_at: Option<String>,
    /// `manual` (a person asked through the API), `rollback` (to an earlier
    /// deployment's image), or absent for a webhook's push.
    pub kind: Option<String>,
    /// For a rollback, the deployment whose image it deploys again.
    pub rollback_to: Option<i64>,
    /// Deploy even if the image is the one that runs.
    pub force: bool,
    /// The target is a Swarm service, updated by Swarm: `old_image_id` and
    /// `new_image_id` hold the spec's pinned image references, and
    /// `old_container_id` the service's ID.
    #[serde(default)]
    pub service: bool,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

/// A state a deployment entered, when, and an optional note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub state: State,
    pub at: String,
    pub detail: Option<String>,
}

/// What a deployment learnt on its way, recorded with a step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub old_container_id: Option<String>,
    pub old_image_id: Option<String>,
    pub new_image_id: Option<String>,
    pub new_container_id: Option<String>,
    pub strategy: Option<String>,
    pub old_networks: Option<String>,
    /// When a `delayed` deployment is due.
    pub due_at: Option<String>,
}

/// What a new deployment is about.
#[derive(Debug, Clone, Default)]
pub struct NewDeployment {
    pub target: String,
    /// The container the event selected; the update records the one it
    /// finds when it runs.
    pub container_id: String,
    pub image: String,
    pub source: String,
    pub pusher: Option<String>,
    /// The digest the webhook named, if any.
    pub digest: Option<String>,
    /// Why it was queued, for its first step.
    pub reason: Option<String>,
    /// See [`Deployment::kind`].
    pub kind: Option<String>,
    pub rollback_to: Option<i64>,
    pub force: bool,
    /// For a rollback, the image it deploys again (kept on the host).
    pub image_id: Option<String>,
    /// See [`Deployment::service`].
    pub service: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("history database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("history database holds an unknown state {0:?}")]
    UnknownState(String),
    #[error("history database thread failed: {0}")]
    Background(String),
}

/// The history database.
pub struct Store {
    conn: Mutex<Connection>,
    changes: tokio::sync::broadcast::Sender<Change>,
    /// Whether steps write notification outbox rows: only when some
    /// notification URL is configured.
    notify: std::sync::atomic::AtomicBool,
}

/// How many changes a slow subscriber may fall behind before it misses some
/// (it is told how many it missed).
const CHANGES_BUFFER: usize = 1024;

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA foreign_keys = ON;
    -- Sorts and statement journals that outgrow memory stay there: in the
    -- read-only FROM scratch image there is no directory for temp files.
    PRAGMA temp_store = MEMORY;
    CREATE TABLE IF NOT EXISTS deployments (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        target           TEXT NOT NULL,
        image            TEXT NOT NULL,
        source           TEXT NOT NULL,
        pusher           TEXT,
        state            TEXT NOT NULL,
        old_container_id TEXT,
        new_container_id TEXT,
        old_image_id     TEXT,
        new_image_id     TEXT,
        error            TEXT,
        created_at       TEXT NOT NULL,
        updated_at       TEXT NOT NULL,
        finished_at      TEXT,
        digest           TEXT,
        strategy         TEXT,
        old_networks     TEXT,
        due_at           TEXT,
        kind             TEXT,
        rollback_to      INTEGER,
        force            INTEGER NOT NULL DEFAULT 0,
        service          INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS deployments_target ON deployments (target, id);
    CREATE TABLE IF NOT EXISTS steps (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        deployment_id INTEGER NOT NULL REFERENCES deployments (id),
        state         TEXT NOT NULL,
        at            TEXT NOT NULL,
        detail        TEXT
    );
    CREATE INDEX IF NOT EXISTS steps_deployment ON steps (deployment_id, id);
    CREATE TABLE IF NOT EXISTS notify_events (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        kind          TEXT NOT NULL,
        deployment_id INTEGER,
        detail        TEXT,
        created_at    TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS notify_messages (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        body       TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS notify_deliveries (
        message_id      INTEGER NOT NULL REFERENCES notify_messages (id),
        url             TEXT NOT NULL,
        state           TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error      TEXT,
        done_at         TEXT,
        PRIMARY KEY (message_id, url)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS notify_due ON notify_deliveries (state, next_attempt_at);
    CREATE TABLE IF NOT EXISTS deliveries (
        source      TEXT NOT NULL,
        delivery    TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (source, delivery)
    ) WITHOUT ROWID;
";

const COLUMNS: &str = "id, target, image, source, pusher, state, old_container_id, \
    new_container_id, old_image_id, new_image_id, error, created_at, updated_at, finished_at, \
    digest, strategy, old_networks, due_at, kind, rollback_to, force, service";

/// Columns added after the first release, for databases made before them,
/// with their types.
const ADDED_COLUMNS: [(&str, &str); 8] = [
    ("digest", "TEXT"),
    ("strategy", "TEXT"),
    ("old_networks", "TEXT"),
    ("due_at", "TEXT"),
    ("kind", "TEXT"),
    ("rollback_to", "INTEGER"),
    ("force", "INTEGER NOT NULL DEFAULT 0"),
    ("service", "INTEGER NOT NULL DEFAULT 0"),
];

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::init(Connection::open(path)?)
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        for (column, kind) in ADDED_COLUMNS {
            let present: bool = conn.query_row(
                "SELECT COUNT(*) FROM pragma_table_info('deployments') WHERE name = ?1",
                [column],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )?;
            if !present {
                conn.execute_batch(&format!(
                    "ALTER TABLE deployments ADD COLUMN {column} {kind}"
                ))?;
            }
        }
        Ok(Self {
            conn: Mutex::new(conn),
            changes: tokio::sync::broadcast::channel(CHANGES_BUFFER).0,
            notify: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// From now on, steps into a notified state (and [`Store::record_notice`])
    /// write notification outbox rows.
    pub fn enable_notifications(&self) {
        self.notify
            .store(true, std::sync::atomic::Ordering::Release);
    }

    fn notifying(&self) -> bool {
        self.notify.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Every state a deployment enters from now on, once it is written.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn publish(&self, deployment: i64, target: String, state: State, detail: Option<&str>) {
        // Nobody listening is fine.
        let _ = self.changes.send(Change {
            deployment,
            target,
            state,
            detail: detail.map(str::to_string),
        });
    }

    /// Runs `f` on a blocking thread: SQLite never holds up the async
    /// threads that serve requests and drive deployments.
    pub async fn call<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Background(e.to_string()))?
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        // A panic while holding the lock cannot leave SQLite half-written, so
        // a poisoned lock is still safe to use.
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        Ok(f(&conn)?)
    }

    /// Records a new deployment in state `queued` and returns its id.
    pub fn create(&self, new: &NewDeployment) -> Result<i64, StoreError> {
        self.with(|conn| {
            conn.execute(
                &format!(
                    "INSERT INTO deployments (target, image, source, pusher, state, \
                     old_container_id, digest, kind, rollback_to, force, new_image_id, \
                     service, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7, ?8, ?9, ?10, ?11, {NOW}, {NOW})"
                ),
                params![
                    new.target,
                    new.image,
                    new.source,
                    new.pusher,
                    new.container_id,
                    new.digest,
                    new.kind,
                    new.rollback_to,
                    new.force,
                    new.image_id,
                    new.service,
                ],
            )?;
            let id = conn.last_insert_rowid();
            insert_step(conn, id, State::Queued, new.reason.as_deref())?;
            Ok(id)
        })
        .inspect(|&id| {
            self.publish(id, new.target.clone(), State::Queued, new.reason.as_deref());
        })
    }

    /// Moves a deployment to `state`, with a note for its step log. A final
    /// state also sets `finished_at`, and `error` when `detail` explains a
    /// failure.
    pub fn transition(
        &self,
        id: i64,
        state: State,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.step(id, state, detail, &Facts::default())
    }

    /// [`Store::transition`], recording `facts` in the same transaction:
    /// a step and what was learnt on the way to it are written together or
    /// not at all.
    pub fn step(
        &self,
        id: i64,
        state: State,
        detail: Option<&str>,
        facts: &Facts,
    ) -> Result<(), StoreError> {
        self.write_step(id, None, state, detail, facts).map(drop)
    }

    /// Puts an interrupted deployment, whose changes were undone, back to
    /// `queued`, forgetting what its first attempt learnt (containers,
    /// images, strategy), so the next attempt and its recovery start from
    /// the host as it is. Returns `false`, and changes nothing, for a
    /// deployment that was queued again before: it gets one more attempt,
    /// not a loop of them.
    pub fn requeue(&self, id: i64, detail: &str) -> Result<bool, StoreError> {
        let requeued = self.with(|conn| {
            let tx = conn.unchecked_transaction()?;
            let (target, queued): (String, i64) = tx.query_row(
                "SELECT target, (SELECT COUNT(*) FROM steps WHERE deployment_id = ?1 \
                 AND state = 'queued') FROM deployments WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if queued > 1 {
                return Ok(None);
            }
            tx.execute(
                &format!(
                    "UPDATE deployments SET state = 'queued', updated_at = {NOW}, error = NULL, \
                     old_container_id = NULL, old_image_id = NULL, new_image_id = NULL, \
                     new_container_id = NULL, strategy = NULL, old_networks = NULL \
                     WHERE id = ?1"
                ),
                [id],
            )?;
            insert_step(&tx, id, State::Queued, Some(detail))?;
            tx.commit()?;
            Ok(Some(target))
        })?;
        Ok(match requeued {
            Some(target) => {
                self.publish(id, target, State::Queued, Some(detail));
                true
            }
            None => false,
        })
    }

    /// [`Store::step`] only if the deployment is in one of `from` now, in
    /// the same transaction; whether it was. Settles races between a
    /// person and the queue (approving what a newer push just superseded).
    pub fn step_if(
        &self,
        id: i64,
        from: &[State],
        state: State,
        detail: Option<&str>,
        facts: &Facts,
    ) -> Result<bool, StoreError> {
        self.write_step(id, Some(from), state, detail, facts)
    }

    fn write_step(
        &self,
        id: i64,
        from: Option<&[State]>,
        state: State,
        detail: Option<&str>,
        facts: &Facts,
    ) -> Result<bool, StoreError> {
        let error = matches!(
            state,
            State::Failed | State::RolledBack | State::RollbackFailed
        )
        .then_some(detail)
        .flatten();
        let notify = self.notifying() && state.is_notified();
        let written = self.with(|conn| {
            let tx = conn.unchecked_transaction()?;
            let (target, current): (String, String) = tx.query_row(
                "SELECT target, state FROM deployments WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if from.is_some_and(|from| !from.iter().any(|s| s.as_str() == current)) {
                return Ok(None);
            }
            tx.execute(
                &format!(
                    "UPDATE deployments SET state = ?2, updated_at = {NOW}, \
                     error = COALESCE(?3, error), \
                     finished_at = CASE WHEN ?4 THEN {NOW} ELSE finished_at END, \
                     old_container_id = COALESCE(?5, old_container_id), \
                     old_image_id = COALESCE(?6, old_image_id), \
                     new_image_id = COALESCE(?7, new_image_id), \
                     new_container_id = COALESCE(?8, new_container_id), \
                     strategy = COALESCE(?9, strategy), \
                     old_networks = COALESCE(?10, old_networks), \
                     due_at = CASE WHEN ?2 = 'delayed' THEN COALESCE(?11, due_at) ELSE NULL END \
                     WHERE id = ?1"
                ),
                params![
                    id,
                    state.as_str(),
                    error,
                    state.is_final(),
                    facts.old_container_id,
                    facts.old_image_id,
                    facts.new_image_id,
                    facts.new_container_id,
                    facts.strategy,
                    facts.old_networks,
                    facts.due_at,
                ],
            )?;
            insert_step(&tx, id, state, detail)?;
            // One message per real change: writing the state it is already
            // in (recovery does) is no news.
            if notify && current != state.as_str() {
                insert_notice(&tx, state.as_str(), Some(id), None)?;
            }
            tx.commit()?;
            Ok(Some(target))
        })?;
        Ok(match written {
            Some(target) => {
                self.publish(id, target, state, detail);
                true
            }
            None => false,
        })
    }

    /// The deployments of `target` that wait for a person or a time, and
    /// its newest `available` one (monitor mode), oldest first.
    pub fn parked(&self, target: &str) -> Result<Vec<Deployment>, StoreError> {
        let rows = self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM deployments WHERE target = ?1 AND \
                 (state IN ('awaiting_approval', 'delayed') OR id = (SELECT MAX(id) \
                  FROM deployments WHERE target = ?1 AND state = 'available')) ORDER BY id"
            ))?;
            let rows = stmt.query_map([target], RawDeployment::from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(RawDeployment::into_deployment)
            .collect()
    }

    /// The deployment that put image `image_id` of `target` in quarantine,
    /// if it is: it rolled that image back (or a person rolled back from
    /// it), and no deployment of `target` since, before `before`, brought
    /// another new image.
    pub fn quarantined(
        &self,
        target: &str,
        image_id: &str,
        before: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT r.id FROM deployments r WHERE r.target = ?1 AND r.id < ?3 AND \
                 ((r.state = 'rolled_back' AND r.new_image_id = ?2) OR \
                  (r.kind = 'rollback' AND r.state = 'succeeded' AND r.old_image_id = ?2)) \
                 AND NOT EXISTS (SELECT 1 FROM deployments n WHERE n.target = ?1 \
                     AND n.id > r.id AND n.id < ?3 AND COALESCE(n.kind, '') <> 'rollback' \
                     AND n.new_image_id IS NOT NULL AND n.new_image_id <> ?2) \
                 ORDER BY r.id DESC LIMIT 1",
                params![target, image_id, before],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// The images `target` ran before its successful deployments, newest
    /// first, each once: those a rollback may return to.
    pub fn previous_images(&self, target: &str) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT old_image_id FROM deployments WHERE target = ?1 AND \
                 state = 'succeeded' AND old_image_id IS NOT NULL AND old_image_id <> '' \
                 ORDER BY id DESC LIMIT 100",
            )?;
            let rows = stmt.query_map([target], |r| r.get(0))?;
            rows.collect()
        })?;
        let mut seen = std::collections::HashSet::new();
        Ok(ids
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect())
    }

    /// The newest successful deployment of `target`.
    pub fn last_succeeded(&self, target: &str) -> Result<Option<Deployment>, StoreError> {
        let row = self.with(|conn| {
            conn.query_row(
                &format!(
                    "SELECT {COLUMNS} FROM deployments WHERE target = ?1 AND state = 'succeeded' \
                     ORDER BY id DESC LIMIT 1"
                ),
                [target],
                RawDeployment::from_row,
            )
            .optional()
        })?;
        row.map(RawDeployment::into_deployment).transpose()
    }

    /// Records the container that replaces the old one.
    pub fn set_new_container(&self, id: i64, container_id: &str) -> Result<(), StoreError> {
        self.set_column(id, "new_container_id", container_id)
    }

    fn set_column(&self, id: i64, column: &'static str, value: &str) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                &format!("UPDATE deployments SET {column} = ?2, updated_at = {NOW} WHERE id = ?1"),
                params![id, value],
            )
            .map(drop)
        })
    }

    /// The newest deployments first, at most `limit`.
    pub fn list(&self, limit: u32) -> Result<Vec<Deployment>, StoreError> {
        self.list_of(None, limit)
    }

    /// [`Store::list`], of one target only when `target` is given.
    pub fn list_of(&self, target: Option<&str>, limit: u32) -> Result<Vec<Deployment>, StoreError> {
        let rows = self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM deployments WHERE ?2 IS NULL OR target = ?2 \
                 ORDER BY id DESC LIMIT ?1"
            ))?;
            let rows = stmt.query_map(params![limit, target], RawDeployment::from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(RawDeployment::into_deployment)
            .collect()
    }

    /// One deployment with its steps, oldest step first.
    pub fn get(&self, id: i64) -> Result<Option<(Deployment, Vec<Step>)>, StoreError> {
        self.with(|conn| load(conn, id))?
            .map(RawStory::into_story)
            .transpose()
    }

    /// For each of `targets`: its newest deployment, and those that wait
    /// for a person or a time (oldest first).
    pub fn latest_by_target(
        &self,
        targets: &[String],
    ) -> Result<std::collections::HashMap<String, TargetHistory>, StoreError> {
        let mut out = std::collections::HashMap::new();
        for target in targets {
            let rows = self.with(|conn| {
                let mut newest = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM deployments WHERE target = ?1 ORDER BY id DESC LIMIT 1"
                ))?;
                let newest = newest
                    .query_map([target], RawDeployment::from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let mut waiting = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM deployments WHERE target = ?1 \
                     AND state IN ('awaiting_approval', 'delayed') ORDER BY id"
                ))?;
                let waiting = waiting
                    .query_map([target], RawDeployment::from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((newest, waiting))
            })?;
            let (newest, waiting) = rows;
            let newest = newest
                .into_iter()
                .next()
                .map(RawDeployment::into_deployment)
                .transpose()?;
            let waiting = waiting
                .into_iter()
                .map(RawDeployment::into_deployment)
                .collect::<Result<_, _>>()?;
            out.insert(target.clone(), (newest, waiting));
        }
        Ok(out)
    }

    /// Whether a webhook delivery ID was remembered: the delivery was
    /// handled, and this is a replay (or the sender's retry of a delivery
    /// whose answer it did not get).
    pub fn delivery_seen(&self, source: &str, delivery: &str) -> Result<bool, StoreError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM deliveries WHERE source = ?1 AND delivery = ?2)",
                params![source, delivery],
                |r| r.get(0),
            )
        })
    }

    /// Remembers a handled webhook delivery; false when it already was.
    /// [`Store::prune`] forgets it after the replay window.
    pub fn remember_delivery(&self, source: &str, delivery: &str) -> Result<bool, StoreError> {
        self.with(|conn| {
            let inserted = conn.execute(
                &format!("INSERT OR IGNORE INTO deliveries (source, delivery, received_at) VALUES (?1, ?2, {NOW})"),
                params![source, delivery],
            )?;
            Ok(inserted == 1)
        })
    }

    /// Forgets what retention no longer needs: finished deployments (and
    /// their steps) that ended more than `history` ago, except the newest
    /// `keep` of each target, and delivery IDs older than `replay_window`.
    /// A deployment under way is never pruned, however old.
    pub fn prune(
        &self,
        history: Duration,
        keep: u32,
        replay_window: Duration,
    ) -> Result<Pruned, StoreError> {
        let doomed = format!(
            "SELECT id FROM (SELECT id, finished_at, \
             ROW_NUMBER() OVER (PARTITION BY target ORDER BY id DESC) AS newest \
             FROM deployments) \
             WHERE finished_at IS NOT NULL AND finished_at < {} AND newest > ?2",
            ago("?1")
        );
        self.with(|conn| {
            let tx = conn.unchecked_transaction()?;
            let history = params![seconds(history), keep];
            let steps = tx.execute(
                &format!("DELETE FROM steps WHERE deployment_id IN ({doomed})"),
                history,
            )?;
            let deployments = tx.execute(
                &format!("DELETE FROM deployments WHERE id IN ({doomed})"),
                history,
            )?;
            let deliveries = tx.execute(
                &format!("DELETE FROM deliveries WHERE received_at < {}", ago("?1")),
                [seconds(replay_window)],
            )?;
            tx.commit()?;
            Ok(Pruned {
                deployments,
                steps,
                deliveries,
            })
        })
    }

    /// Images pulled for deployments that failed or were rolled back and
    /// ended more than `age` ago, that no other deployment ran or runs:
    /// kept, untagged, for inspection, and now due for removal. Whether
    /// Docker still has them, and whether anything uses or names them, is
    /// for the caller to ask.
    pub fn failed_images(&self, age: Duration) -> Result<Vec<String>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT DISTINCT new_image_id FROM deployments \
                 WHERE state IN ('failed', 'rolled_back') AND new_image_id <> '' \
                 AND finished_at < {} \
                 AND new_image_id NOT IN (SELECT new_image_id FROM deployments \
                     WHERE state NOT IN ('failed', 'rolled_back') AND new_image_id IS NOT NULL) \
                 AND new_image_id NOT IN (SELECT old_image_id FROM deployments \
                     WHERE old_image_id IS NOT NULL) \
                 ORDER BY new_image_id",
                ago("?1")
            ))?;
            let rows = stmt.query_map([seconds(age)], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// Moves a deployment's timestamps `days` into the past, for tests of
    /// retention.
    #[cfg(test)]
    pub(crate) fn backdate(&self, id: i64, days: u32) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE deployments SET \
                 created_at = strftime('%Y-%m-%dT%H:%M:%fZ', created_at, ?2), \
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', updated_at, ?2), \
                 finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', finished_at, ?2) \
                 WHERE id = ?1",
                params![id, format!("-{days} days")],
            )
            .map(drop)
        })
    }

    /// Moves a delivery's arrival `days` into the past, for tests.
    #[cfg(test)]
    fn backdate_delivery(&self, source: &str, delivery: &str, days: u32) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE deliveries \
                 SET received_at = strftime('%Y-%m-%dT%H:%M:%fZ', received_at, ?3) \
                 WHERE source = ?1 AND delivery = ?2",
                params![source, delivery, format!("-{days} days")],
            )
            .map(drop)
        })
    }

    /// Deployments that were under way when dockhook last stopped.
    pub fn unfinished(&self) -> Result<Vec<Deployment>, StoreError> {
        let rows = self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM deployments WHERE finished_at IS NULL ORDER BY id"
            ))?;
            let rows = stmt.query_map([], RawDeployment::from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(RawDeployment::into_deployment)
            .collect()
    }
}

/// A notification event not yet grouped into a message.
#[derive(Debug, Clone)]
pub struct PendingNotice {
    pub id: i64,
    /// A notified state's name, or the notifier's own kind (`docker_unreachable`, …).
    pub kind: String,
    pub detail: Option<String>,
    pub created_at: String,
    /// The deployment it is about, with its steps: none for the notifier's
    /// own events, or when the history no longer has it.
    pub deployment: Option<(Deployment, Vec<Step>)>,
    /// Whether every deployment of the same push (same source, image and
    /// digest, recorded within the push window of this one) has ended or
    /// waits for a person or a time.
    pub push_settled: bool,
}

/// A notification delivery to one service URL that is due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub message_id: i64,
    /// The URL's key, never the URL.
    pub url: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// The message, as the notifier froze it.
    pub body: String,
    pub created_at: String,
}

/// One delivery's record, for tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub message_id: i64,
    pub url: String,
    /// `pending`, `sent`, `gave_up` or `dropped`.
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// The notification outbox.
impl Store {
    /// Writes a notification event that no deployment step makes (Docker
    /// unreachable, say). Nothing when notifications are off.
    pub fn record_notice(&self, kind: &str, detail: Option<&str>) -> Result<(), StoreError> {
        if !self.notifying() {
            return Ok(());
        }
        self.with(|conn| insert_notice(conn, kind, None, detail))
    }

    /// The events not yet grouped into a message, oldest first, each with
    /// its deployment and whether that deployment's push has settled.
    /// Read under one lock, so a step cannot slip in between.
    pub fn pending_notices(&self, push_window: Duration) -> Result<Vec<PendingNotice>, StoreError> {
        let rows = self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, kind, deployment_id, detail, created_at FROM notify_events ORDER BY id",
            )?;
            let events = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut siblings = conn.prepare_cached(
                "SELECT state FROM deployments WHERE source = ?1 AND image = ?2 AND digest IS ?3 \
                 AND abs(julianday(created_at) - julianday(?4)) * 86400.0 <= ?5",
            )?;
            let mut rows = Vec::with_capacity(events.len());
            for (id, kind, deployment, detail, created_at) in events {
                let story = match deployment {
                    Some(deployment) => load(conn, deployment)?,
                    None => None,
                };
                let states = match &story {
                    Some(RawStory(RawDeployment(d, _), _)) => siblings
                        .query_map(
                            params![
                                d.source,
                                d.image,
                                d.digest,
                                d.created_at,
                                push_window.as_secs_f64()
                            ],
                            |r| r.get::<_, String>(0),
                        )?
                        .collect::<rusqlite::Result<Vec<_>>>()?,
                    None => Vec::new(),
                };
                rows.push((id, kind, detail, created_at, story, states));
            }
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|(id, kind, detail, created_at, story, states)| {
                let push_settled = states
                    .into_iter()
                    .map(parse_state)
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .all(|s| s.is_final() || s.is_waiting());
                Ok(PendingNotice {
                    id,
                    kind,
                    detail,
                    created_at,
                    deployment: story.map(RawStory::into_story).transpose()?,
                    push_settled,
                })
            })
            .collect()
    }

    /// Turns the events `events` into one message with `body`, due now at
    /// each of `urls` (keys), in one transaction: the events are gone once
    /// the message and its deliveries exist. Returns the message's id.
    pub fn queue_message(
        &self,
        events: &[i64],
        body: &str,
        urls: &[String],
    ) -> Result<i64, StoreError> {
        self.with(|conn| {
            let tx = conn.unchecked_transaction()?;
            tx.execute(
                &format!("INSERT INTO notify_messages (body, created_at) VALUES (?1, {NOW})"),
                [body],
            )?;
            let message = tx.last_insert_rowid();
            for url in urls {
                tx.execute(
                    &format!(
                        "INSERT INTO notify_deliveries (message_id, url, state, next_attempt_at) \
                         VALUES (?1, ?2, 'pending', {NOW})"
                    ),
                    params![message, url],
                )?;
            }
            for event in events {
                tx.execute("DELETE FROM notify_events WHERE id = ?1", [event])?;
            }
            tx.commit()?;
            Ok(message)
        })
    }

    /// The pending deliveries whose next attempt is due, oldest first.
    pub fn due_deliveries(&self) -> Result<Vec<DueDelivery>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT d.message_id, d.url, d.attempts, m.body, m.created_at \
                 FROM notify_deliveries d JOIN notify_messages m ON m.id = d.message_id \
                 WHERE d.state = 'pending' AND d.next_attempt_at <= {NOW} \
                 ORDER BY d.message_id, d.url"
            ))?;
            let rows = stmt.query_map([], |r| {
                Ok(DueDelivery {
                    message_id: r.get(0)?,
                    url: r.get(1)?,
                    attempts: r.get(2)?,
                    body: r.get(3)?,
                    created_at: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Records a delivery's attempt that worked.
    pub fn delivery_sent(&self, message_id: i64, url: &str) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                &format!(
                    "UPDATE notify_deliveries SET state = 'sent', attempts = attempts + 1, \
                     done_at = {NOW} WHERE message_id = ?1 AND url = ?2"
                ),
                params![message_id, url],
            )
            .map(drop)
        })
    }

    /// Records a delivery's attempt that failed with `error`: tried again
    /// in `retry_in`, or, without one, given up.
    pub fn delivery_failed(
        &self,
        message_id: i64,
        url: &str,
        error: &str,
        retry_in: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                &format!(
                    "UPDATE notify_deliveries SET attempts = attempts + 1, last_error = ?3, \
                     state = CASE WHEN ?4 IS NULL THEN 'gave_up' ELSE 'pending' END, \
                     done_at = CASE WHEN ?4 IS NULL THEN {NOW} END, \
                     next_attempt_at = CASE WHEN ?4 IS NULL THEN next_attempt_at \
                         ELSE strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ?4 || ' seconds') END \
                     WHERE message_id = ?1 AND url = ?2"
                ),
                params![message_id, url, error, retry_in.map(|d| d.as_secs_f64())],
            )
            .map(drop)
        })
    }

    /// At start: pending deliveries to the configured `urls` (keys) are due
    /// now, whatever their backoff said; those to URLs no longer
    /// configured are dropped. Returns how many are due and how many were
    /// dropped.
    pub fn resume_deliveries(&self, urls: &[String]) -> Result<(usize, usize), StoreError> {
        self.with(|conn| {
            let tx = conn.unchecked_transaction()?;
            let pending: Vec<String> = {
                let mut stmt = tx.prepare(
                    "SELECT DISTINCT url FROM notify_deliveries WHERE state = 'pending'",
                )?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let (mut due, mut dropped) = (0, 0);
            for url in pending {
                if urls.contains(&url) {
                    due += tx.execute(
                        &format!(
                            "UPDATE notify_deliveries SET next_attempt_at = {NOW} \
                             WHERE state = 'pending' AND url = ?1"
                        ),
                        [&url],
                    )?;
                } else {
                    dropped += tx.execute(
                        &format!(
                            "UPDATE notify_deliveries SET state = 'dropped', done_at = {NOW}, \
                             last_error = 'the URL is no longer configured' \
                             WHERE state = 'pending' AND url = ?1"
                        ),
                        [&url],
                    )?;
                }
            }
            tx.commit()?;
            Ok((due, dropped))
        })
    }

    /// Forgets messages at least `age` old that no delivery waits for any
    /// more (sent, given up or dropped). Returns how many.
    pub fn prune_notifications(&self, age: Duration) -> Result<usize, StoreError> {
        let doomed = format!(
            "SELECT id FROM notify_messages WHERE created_at <= {} AND NOT EXISTS \
             (SELECT 1 FROM notify_deliveries d WHERE d.message_id = notify_messages.id AND d.state = 'pending')",
            ago("?1")
        );
        self.with(|conn| {
            let tx = conn.unchecked_transaction()?;
            tx.execute(
                &format!("DELETE FROM notify_deliveries WHERE message_id IN ({doomed})"),
                [seconds(age)],
            )?;
            let messages = tx.execute(
                &format!("DELETE FROM notify_messages WHERE id IN ({doomed})"),
                [seconds(age)],
            )?;
            tx.commit()?;
            Ok(messages)
        })
    }

    /// Every delivery on record, by message and URL.
    pub fn notify_deliveries(&self) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT message_id, url, state, attempts, last_error FROM notify_deliveries \
                 ORDER BY message_id, url",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(DeliveryRecord {
                    message_id: r.get(0)?,
                    url: r.get(1)?,
                    state: r.get(2)?,
                    attempts: r.get(3)?,
                    last_error: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }
}

/// A deployment and its steps as SQLite gives them, before the states are
/// checked.
struct RawStory(RawDeployment, Vec<(String, String, Option<String>)>);

impl RawStory {
    fn into_story(self) -> Result<(Deployment, Vec<Step>), StoreError> {
        let Self(row, steps) = self;
        let steps = steps
            .into_iter()
            .map(|(state, at, detail)| {
                Ok(Step {
                    state: parse_state(state)?,
                    at,
                    detail,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((row.into_deployment()?, steps))
    }
}

/// One deployment with its steps, oldest step first.
fn load(conn: &Connection, id: i64) -> rusqlite::Result<Option<RawStory>> {
    let row = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM deployments WHERE id = ?1"),
            [id],
            RawDeployment::from_row,
        )
        .optional()?;
    let Some(row) = row else { return Ok(None) };
    let mut stmt = conn.prepare_cached(
        "SELECT state, at, detail FROM steps WHERE deployment_id = ?1 ORDER BY id",
    )?;
    let steps = stmt
        .query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<(String, String, Option<String>)>>>()?;
    Ok(Some(RawStory(row, steps)))
}

fn insert_notice(
    conn: &Connection,
    kind: &str,
    deployment: Option<i64>,
    detail: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        &format!(
            "INSERT INTO notify_events (kind, deployment_id, detail, created_at) \
             VALUES (?1, ?2, ?3, {NOW})"
        ),
        params![kind, deployment, detail],
    )
    .map(drop)
}

/// What [`Store::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deployments: usize,
    pub steps: usize,
    pub deliveries: usize,
}

/// SQL for the timestamp the number of seconds in parameter `param` ago,
/// in the format the rows are written in, so text comparison orders them.
fn ago(param: &str) -> String {
    format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || {param} || ' seconds')")
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

fn insert_step(
    conn: &Connection,
    id: i64,
    state: State,
    detail: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        &format!("INSERT INTO steps (deployment_id, state, at, detail) VALUES (?1, ?2, {NOW}, ?3)"),
        params![id, state.as_str(), detail],
    )
    .map(drop)
}

fn parse_state(text: String) -> Result<State, StoreError> {
    State::parse(&text).ok_or(StoreError::UnknownState(text))
}

/// A row as SQLite gives it, before the state text is checked.
struct RawDeployment(Deployment, String);

impl RawDeployment {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self(
            Deployment {
                id: r.get(0)?,
                target: r.get(1)?,
                image: r.get(2)?,
                source: r.get(3)?,
                pusher: r.get(4)?,
                state: State::Queued,
                old_container_id: r.get(6)?,
                new_container_id: r.get(7)?,
                old_image_id: r.get(8)?,
                new_image_id: r.get(9)?,
                error: r.get(10)?,
                created_at: r.get(11)?,
                updated_at: r.get(12)?,
                finished_at: r.get(13)?,
                digest: r.get(14)?,
                strategy: r.get(15)?,
                old_networks: r.get(16)?,
                due_at: r.get(17)?,
                kind: r.get(18)?,
                rollback_to: r.get(19)?,
                force: r.get(20)?,
                service: r.get(21)?,
            },
            r.get(5)?,
        ))
    }

    fn into_deployment(self) -> Result<Deployment, StoreError> {
        let Self(mut deployment, state) = self;
        deployment.state = parse_state(state)?;
        Ok(deployment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(target: &str) -> NewDeployment {
        NewDeployment {
            target: target.into(),
            container_id: "c0ffee".into(),
            image: "docker.io/alice/site:latest".into(),
            source: "dockerhub".into(),
            pusher: Some("alice".into()),
            digest: None,
            reason: None,
            ..NewDeployment::default()
        }
    }

    #[test]
    fn deployment_lifecycle_is_recorded_with_steps() {
        let store = Store::in_memory().unwrap();
        let id = store.create(&new("site")).unwrap();
        let facts = Facts {
            old_image_id: Some("sha256:old".into()),
            strategy: Some("stop-first".into()),
            ..Facts::default()
        };
        store.step(id, State::Pulling, None, &facts).unwrap();
        let facts = Facts {
            new_image_id: Some("sha256:new".into()),
            ..Facts::default()
        };
        store.step(id, State::Creating, None, &facts).unwrap();
        store
            .transition(id, State::Starting, Some("container abc"))
            .unwrap();
        let (deployment, _) = store.get(id).unwrap().unwrap();
        assert_eq!(deployment.state, State::Starting);
        assert_eq!(deployment.finished_at, None);
        store
            .transition(id, State::RolledBack, Some("exited with code 1"))
            .unwrap();

        let (deployment, steps) = store.get(id).unwrap().unwrap();
        assert_eq!(deployment.state, State::RolledBack);
        assert_eq!(deployment.error.as_deref(), Some("exited with code 1"));
        assert_eq!(deployment.old_image_id.as_deref(), Some("sha256:old"));
        assert_eq!(deployment.new_image_id.as_deref(), Some("sha256:new"));
        assert_eq!(deployment.old_container_id.as_deref(), Some("c0ffee"));
        assert!(deployment.finished_at.is_some());
        assert!(deployment.created_at.ends_with('Z'));
        let states: Vec<_> = steps.iter().map(|s| s.state).collect();
        assert_eq!(
            states,
            [
                State::Queued,
                State::Pulling,
                State::Creating,
                State::Starting,
                State::RolledBack
            ]
        );
        assert_eq!(steps[3].detail.as_deref(), Some("container abc"));
    }

    #[test]
    fn list_is_newest_first_and_limited() {
        let store = Store::in_memory().unwrap();
        let ids: Vec<_> = (0..5)
            .map(|_| store.create(&new("site")).unwrap())
            .collect();
        let listed: Vec<_> = store.list(3).unwrap().into_iter().map(|d| d.id).collect();
        assert_eq!(listed, [ids[4], ids[3], ids[2]]);
        assert!(store.get(9999).unwrap().is_none());
    }

    #[test]
    fn unfinished_lists_only_deployments_in_progress() {
        let store = Store::in_memory().unwrap();
        let done = store.create(&new("a")).unwrap();
        store
            .transition(done, State::Skipped, Some("image unchanged"))
            .unwrap();
        let open = store.create(&new("b")).unwrap();
        store.transition(open, State::Pulling, None).unwrap();
        let unfinished: Vec<_> = store
            .unfinished()
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(unfinished, [open]);
        // A skip is not an error.
        assert_eq!(store.get(done).unwrap().unwrap().0.error, None);
    }

    #[test]
    fn history_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let id = Store::open(&path).unwrap().create(&new("site")).unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.get(id).unwrap().unwrap().0.target, "site");
    }

    #[test]
    fn temporary_data_never_needs_a_temp_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.db")).unwrap();
        let conn = store.conn.lock().unwrap();
        let temp_store: i64 = conn
            .query_row("PRAGMA temp_store", [], |r| r.get(0))
            .unwrap();
        assert_eq!(temp_store, 2, "MEMORY");
    }

    #[test]
    fn a_database_from_before_the_new_columns_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE deployments (id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, \
             image TEXT NOT NULL, source TEXT NOT NULL, pusher TEXT, state TEXT NOT NULL, \
             old_container_id TEXT, new_container_id TEXT, old_image_id TEXT, new_image_id TEXT, \
             error TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, finished_at TEXT);
             INSERT INTO deployments (target, image, source, state, created_at, updated_at) \
             VALUES ('site', 'alice/site:latest', 'dockerhub', 'pulling', 'x', 'x');",
        )
        .unwrap();
        drop(conn);
        let store = Store::open(&path).unwrap();
        let unfinished = store.unfinished().unwrap();
        assert_eq!(unfinished.len(), 1);
        assert_eq!(unfinished[0].strategy, None);
        assert!(!unfinished[0].service, "an old row is a container's");
        let facts = Facts {
            strategy: Some("start-first".into()),
            old_networks: Some("{}".into()),
            ..Facts::default()
        };
        store
            .step(unfinished[0].id, State::Stopping, None, &facts)
            .unwrap();
        let (d, _) = store.get(unfinished[0].id).unwrap().unwrap();
        assert_eq!(d.strategy.as_deref(), Some("start-first"));
        assert_eq!(d.old_networks.as_deref(), Some("{}"));
    }

    #[test]
    fn a_service_deployment_says_so() {
        let store = Store::in_memory().unwrap();
        let id = store
            .create(&NewDeployment {
                service: true,
                ..new("web")
            })
            .unwrap();
        assert!(store.get(id).unwrap().unwrap().0.service);
        assert!(store.unfinished().unwrap()[0].service);
        let other = store.create(&new("site")).unwrap();
        assert!(!store.get(other).unwrap().unwrap().0.service);
    }

    #[test]
    fn deliveries_are_remembered_per_source() {
        let store = Store::in_memory().unwrap();
        assert!(!store.delivery_seen("github", "d-1").unwrap());
        assert!(store.remember_delivery("github", "d-1").unwrap());
        assert!(store.delivery_seen("github", "d-1").unwrap());
        assert!(
            !store.remember_delivery("github", "d-1").unwrap(),
            "a replay"
        );
        assert!(!store.delivery_seen("gitea", "d-1").unwrap());
        assert!(store.remember_delivery("gitea", "d-1").unwrap());
    }

    const DAY: Duration = Duration::from_secs(86_400);

    /// A deployment of `target` ended in `state`, `days` ago.
    fn ended(store: &Store, target: &str, state: State, days: u32) -> i64 {
        let id = store.create(&new(target)).unwrap();
        store.transition(id, State::Pulling, None).unwrap();
        if state != State::Pulling {
            store.transition(id, state, Some("the end")).unwrap();
        }
        store.backdate(id, days).unwrap();
        id
    }

    fn ids(store: &Store) -> Vec<i64> {
        let mut ids: Vec<_> = store.list(1000).unwrap().iter().map(|d| d.id).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn old_history_is_pruned_but_the_newest_of_each_target_and_unfinished_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.db")).unwrap();
        let stuck = ended(&store, "a", State::Pulling, 400);
        let old_a: Vec<_> = (0..25)
            .map(|_| ended(&store, "a", State::Succeeded, 100))
            .collect();
        let recent_a: Vec<_> = (0..2)
            .map(|_| ended(&store, "a", State::Failed, 1))
            .collect();
        let old_b: Vec<_> = (0..3)
            .map(|_| ended(&store, "b", State::RolledBack, 100))
            .collect();

        let pruned = store.prune(90 * DAY, 20, 7 * DAY).unwrap();
        // a's newest 20 are its 2 recent and its 18 newest old ones.
        assert_eq!(pruned.deployments, 7, "{pruned:?}");
        assert_eq!(pruned.steps, 7 * 3, "{pruned:?}");
        let mut kept = vec![stuck];
        kept.extend(&old_a[7..]);
        kept.extend(&recent_a);
        kept.extend(&old_b);
        assert_eq!(ids(&store), kept);
        assert!(store.get(old_a[0]).unwrap().is_none());
        assert_eq!(
            store.get(old_a[7]).unwrap().unwrap().1.len(),
            3,
            "steps kept"
        );
        assert_eq!(store.unfinished().unwrap()[0].id, stuck);

        // Nothing younger than the retention goes, whatever `keep` says.
        store.prune(90 * DAY, 0, 7 * DAY).unwrap();
        assert_eq!(ids(&store), [vec![stuck], recent_a].concat());
        assert_eq!(
            store.prune(90 * DAY, 0, 7 * DAY).unwrap(),
            Pruned::default()
        );
    }

    #[test]
    fn deliveries_are_forgotten_after_the_replay_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.db")).unwrap();
        store.remember_delivery("github", "old").unwrap();
        store.remember_delivery("github", "new").unwrap();
        store.backdate_delivery("github", "old", 8).unwrap();
        let pruned = store.prune(90 * DAY, 20, 7 * DAY).unwrap();
        assert_eq!(pruned.deliveries, 1);
        assert!(!store.delivery_seen("github", "old").unwrap());
        assert!(store.delivery_seen("github", "new").unwrap());
    }

    #[test]
    fn failed_images_are_due_once_old_and_never_ran() {
        let store = Store::in_memory().unwrap();
        let with_images = |state, days, old: &str, new: &str| {
            let id = ended(&store, "site", state, 0);
            let facts = Facts {
                old_image_id: Some(old.into()),
                new_image_id: Some(new.into()),
                ..Facts::default()
            };
            store.step(id, state, None, &facts).unwrap();
            store.backdate(id, days).unwrap();
        };
        with_images(State::RolledBack, 8, "sha256:v1", "sha256:bad");
        with_images(State::Failed, 8, "sha256:v1", "sha256:wrong-digest");
        with_images(State::RolledBack, 1, "sha256:v1", "sha256:recent");
        // Failed once, then deployed after all: it runs.
        with_images(State::RolledBack, 8, "sha256:v1", "sha256:flaky");
        with_images(State::Succeeded, 3, "sha256:v1", "sha256:flaky");
        // Failed here, but what another target ran before its update.
        with_images(State::RolledBack, 8, "sha256:v1", "sha256:elsewhere");
        let other = ended(&store, "other", State::Succeeded, 0);
        let facts = Facts {
            old_image_id: Some("sha256:elsewhere".into()),
            ..Facts::default()
        };
        store.step(other, State::Succeeded, None, &facts).unwrap();
        // Failed before the pull: no image.
        ended(&store, "site", State::Failed, 8);

        assert_eq!(
            store.failed_images(7 * DAY).unwrap(),
            ["sha256:bad", "sha256:wrong-digest"]
        );
        assert_eq!(store.failed_images(30 * DAY).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn state_names_round_trip() {
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Some(state));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::Value::String(state.as_str().into())
            );
        }
    }
}
