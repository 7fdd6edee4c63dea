//! Deployment history in SQLite: the only module that writes SQL.
//!
//! One row per deployment (what was asked, what ran before, what runs now,
//! how it ended) and one row per step it went through, so the API can show
//! both the summary and the story. Timestamps are UTC RFC 3339, made by
//! SQLite itself.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

/// Where a deployment is in its life. Final states are the last four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Queued,
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
}

impl State {
    const ALL: [State; 13] = [
        State::Queued,
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
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
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
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the deployment is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Succeeded | State::Skipped | State::Failed | State::RolledBack
        )
    }
}

/// One deployment as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

/// A state a deployment entered, when, and an optional note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub state: State,
    pub at: String,
    pub detail: Option<String>,
}

/// What a new deployment is about.
#[derive(Debug, Clone)]
pub struct NewDeployment<'a> {
    pub target: &'a str,
    pub container_id: &'a str,
    pub image: &'a str,
    pub source: &'a str,
    pub pusher: Option<&'a str>,
    /// The digest the webhook named, if any.
    pub digest: Option<&'a str>,
    /// Why it was queued, for its first step.
    pub reason: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("history database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("history database holds an unknown state {0:?}")]
    UnknownState(String),
}

/// The history database.
pub struct Store {
    conn: Mutex<Connection>,
}

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA foreign_keys = ON;
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
        digest           TEXT
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
    CREATE TABLE IF NOT EXISTS deliveries (
        source      TEXT NOT NULL,
        delivery    TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (source, delivery)
    ) WITHOUT ROWID;
";

const COLUMNS: &str = "id, target, image, source, pusher, state, old_container_id, \
    new_container_id, old_image_id, new_image_id, error, created_at, updated_at, finished_at, \
    digest";

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
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        // Databases made before deployments recorded digests.
        let has_digest: bool = conn.query_row(
            "SELECT COUNT(*) FROM pragma_table_info('deployments') WHERE name = 'digest'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !has_digest {
            conn.execute_batch("ALTER TABLE deployments ADD COLUMN digest TEXT")?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        // A panic while holding the lock cannot leave SQLite half-written, so
        // a poisoned lock is still safe to use.
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        Ok(f(&conn)?)
    }

    /// Records a new deployment in state `queued` and returns its id.
    pub fn create(&self, new: &NewDeployment<'_>) -> Result<i64, StoreError> {
        self.with(|conn| {
            conn.execute(
                &format!(
                    "INSERT INTO deployments (target, image, source, pusher, state, \
                     old_container_id, digest, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, {NOW}, {NOW})"
                ),
                params![
                    new.target,
                    new.image,
                    new.source,
                    new.pusher,
                    new.container_id,
                    new.digest,
                ],
            )?;
            let id = conn.last_insert_rowid();
            insert_step(conn, id, State::Queued, new.reason)?;
            Ok(id)
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
        let error = matches!(state, State::Failed | State::RolledBack)
            .then_some(detail)
            .flatten();
        self.with(|conn| {
            conn.execute(
                &format!(
                    "UPDATE deployments SET state = ?2, updated_at = {NOW}, \
                     error = COALESCE(?3, error), \
                     finished_at = CASE WHEN ?4 THEN {NOW} ELSE finished_at END \
                     WHERE id = ?1"
                ),
                params![id, state.as_str(), error, state.is_final()],
            )?;
            insert_step(conn, id, state, detail)
        })
    }

    /// Records the image the target ran before the update.
    pub fn set_old_image(&self, id: i64, image_id: &str) -> Result<(), StoreError> {
        self.set_column(id, "old_image_id", image_id)
    }

    /// Records the image that was pulled.
    pub fn set_new_image(&self, id: i64, image_id: &str) -> Result<(), StoreError> {
        self.set_column(id, "new_image_id", image_id)
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
        let rows = self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM deployments ORDER BY id DESC LIMIT ?1"
            ))?;
            let rows = stmt.query_map([limit], RawDeployment::from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(RawDeployment::into_deployment)
            .collect()
    }

    /// One deployment with its steps, oldest step first.
    pub fn get(&self, id: i64) -> Result<Option<(Deployment, Vec<Step>)>, StoreError> {
        let found = self.with(|conn| {
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
            Ok(Some((row, steps)))
        })?;
        let Some((row, steps)) = found else {
            return Ok(None);
        };
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
        Ok(Some((row.into_deployment()?, steps)))
    }

    /// The newest deployment of `target` for `digest` that did not fail:
    /// the same push arriving again, through another source or delivery.
    pub fn deployment_of_digest(
        &self,
        target: &str,
        digest: &str,
    ) -> Result<Option<i64>, StoreError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT id FROM deployments WHERE target = ?1 AND digest = ?2 \
                 AND state NOT IN ('failed', 'rolled_back') ORDER BY id DESC LIMIT 1",
                params![target, digest],
                |r| r.get(0),
            )
            .optional()
        })
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

    fn new<'a>(target: &'a str) -> NewDeployment<'a> {
        NewDeployment {
            target,
            container_id: "c0ffee",
            image: "docker.io/alice/site:latest",
            source: "dockerhub",
            pusher: Some("alice"),
            digest: None,
            reason: None,
        }
    }

    #[test]
    fn deployment_lifecycle_is_recorded_with_steps() {
        let store = Store::in_memory().unwrap();
        let id = store.create(&new("site")).unwrap();
        store.set_old_image(id, "sha256:old").unwrap();
        store.transition(id, State::Pulling, None).unwrap();
        store.set_new_image(id, "sha256:new").unwrap();
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
                State::Starting,
                State::RolledBack
            ]
        );
        assert_eq!(steps[2].detail.as_deref(), Some("container abc"));
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
    fn the_same_digest_is_found_unless_it_failed() {
        let store = Store::in_memory().unwrap();
        let digest = format!("sha256:{}", "d".repeat(64));
        let first = store
            .create(&NewDeployment {
                digest: Some(&digest),
                ..new("site")
            })
            .unwrap();
        assert_eq!(
            store.deployment_of_digest("site", &digest).unwrap(),
            Some(first)
        );
        assert_eq!(store.deployment_of_digest("other", &digest).unwrap(), None);
        store
            .transition(first, State::Failed, Some("pull failed"))
            .unwrap();
        assert_eq!(store.deployment_of_digest("site", &digest).unwrap(), None);
        assert_eq!(
            store.get(first).unwrap().unwrap().0.digest.as_deref(),
            Some(digest.as_str())
        );
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
