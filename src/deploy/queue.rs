//! The deploy queue: one worker per target, bursts folded into one job.
//!
//! Updates of one container never overlap: each target has at most one job
//! running and one waiting. A push that is already in flight for the target
//! (running, or waiting with the same image and digest) is the same job:
//! Docker Hub sends several webhooks for one multi-arch push, and a push can
//! arrive through several sources. Nothing else is suppressed: a tag moved
//! back to an image it held before deploys again. A newer push replaces the
//! one that waits, but an older version never replaces a newer one under a
//! semver policy.
//!
//! The queue also runs the recovery of deployments a crash interrupted, in
//! the target's slot, so no new job for that container starts before the
//! host is put right. A worker that panics does not take its queue with it:
//! the deployment is recovered from the store like a crashed one, and the
//! next job runs.
//!
//! No lock is held across SQL: the bookkeeping is decided under the lock,
//! the history written after it. A submission whose row is being written is
//! claimed under the lock first, so copies of one push that arrive at once
//! take its id rather than write rows of their own.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use std::time::Duration;

use super::mode::Mode;
use super::update::{Job, Updater};
use crate::engine::Engine;
use crate::image_ref::ImageRef;
use crate::store::{Deployment, Facts, NewDeployment, State, Store, StoreError};
use crate::tags::TagPolicy;

/// Per-target bookkeeping.
#[derive(Default)]
struct Slot {
    /// A worker owns the target (running a job or a recovery).
    worker: bool,
    running: Option<Job>,
    waiting: Option<Job>,
    /// Submissions whose deployment row is being written: a copy of the
    /// same push arriving meanwhile takes its id instead of a row of its
    /// own.
    pending: Vec<Pending>,
}

/// A submission between the lock and its row.
struct Pending {
    image: ImageRef,
    digest: Option<String>,
    /// The deployment id, once written; dropped unset if writing failed.
    id: watch::Receiver<Option<i64>>,
}

/// What a submission found under the lock.
enum Claim {
    /// The same push is in flight as this deployment.
    Existing(i64),
    /// The same push is being written; its id comes through this.
    Follow(watch::Receiver<Option<i64>>),
    /// This submission writes the row, then says its id here.
    Write(watch::Sender<Option<i64>>),
}

/// What a worker does next.
enum Work {
    Update(Job),
    /// Finish or undo the deployments of one target that a crash
    /// interrupted, oldest first.
    Recover(Vec<Deployment>),
}

/// Hands jobs to per-target workers.
pub struct Queue<E> {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    updater: Arc<Updater<E>>,
    store: Arc<Store>,
    tracker: TaskTracker,
    /// Recoveries not finished yet; `/healthz` is not ready until none is.
    recovering: Arc<AtomicUsize>,
    /// Shutdown began: jobs that wait are left queued for the next start.
    closing: Arc<AtomicBool>,
    /// Serialises the pushes parked for a person or a time, so copies of
    /// one push park once.
    parking: Arc<tokio::sync::Mutex<()>>,
}

impl<E> Clone for Queue<E> {
    fn clone(&self) -> Self {
        Self {
            slots: self.slots.clone(),
            updater: self.updater.clone(),
            store: self.store.clone(),
            tracker: self.tracker.clone(),
            recovering: self.recovering.clone(),
            closing: self.closing.clone(),
            parking: self.parking.clone(),
        }
    }
}

/// A request to update one container.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub target: &'a str,
    pub container_id: &'a str,
    pub image: &'a ImageRef,
    pub source: &'a str,
    pub pusher: Option<&'a str>,
    /// The digest the webhook named: the pulled image must have it.
    pub digest: Option<&'a str>,
    /// Why this container takes this image (its tag policy's decision).
    pub reason: &'a str,
    /// The container's tag policy, to order the pushes that wait.
    pub policy: &'a TagPolicy,
    /// What the push does to the container: deploy, wait for approval, or
    /// only be recorded.
    pub mode: Mode,
    /// How long the digest must stay the newest before it is deployed.
    pub delay: Duration,
    /// A person's request: [`super::update::KIND_MANUAL`] or
    /// [`super::update::KIND_ROLLBACK`].
    pub kind: Option<&'static str>,
    pub force: bool,
    /// For a rollback: the image to deploy again, and the deployment that
    /// deployed it, if dockhook did.
    pub rollback: Option<(&'a str, Option<i64>)>,
    /// The target is a Swarm service.
    pub service: bool,
}

impl<'a> Request<'a> {
    /// A webhook's request in mode `auto` with no delay.
    pub fn push(
        target: &'a str,
        container_id: &'a str,
        image: &'a ImageRef,
        source: &'a str,
        reason: &'a str,
        policy: &'a TagPolicy,
    ) -> Self {
        Self {
            target,
            container_id,
            image,
            source,
            pusher: None,
            digest: None,
            reason,
            policy,
            mode: Mode::Auto,
            delay: Duration::ZERO,
            kind: None,
            force: false,
            rollback: None,
            service: false,
        }
    }
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// This deployment was recorded for it.
    New(i64),
    /// The same push was already in flight as this deployment: nothing
    /// changed.
    InFlight(i64),
}

impl Enqueued {
    pub fn id(self) -> i64 {
        match self {
            Self::New(id) | Self::InFlight(id) => id,
        }
    }
}

/// Where a request goes, decided under the lock.
enum Placement {
    /// The same push is in flight as this deployment.
    Duplicate(i64),
    /// A newer version waits: this older one is not deployed.
    Older { waiting: i64, tag: String },
    Queued {
        superseded: Option<i64>,
        start_worker: bool,
    },
}

impl<E: Engine> Queue<E> {
    pub fn new(updater: Arc<Updater<E>>, store: Arc<Store>) -> Self {
        Self {
            slots: Arc::default(),
            updater,
            store,
            tracker: TaskTracker::new(),
            recovering: Arc::default(),
            closing: Arc::default(),
            parking: Arc::default(),
        }
    }

    /// Handles a request by its mode: queues an update, or parks it for a
    /// person (`approve`) or a time (a delay), or records it (`monitor`).
    /// Returns its deployment id, or the id of the deployment that already
    /// stands for the same push.
    pub async fn submit(&self, request: &Request<'_>) -> Result<i64, StoreError> {
        self.enqueue(request).await.map(Enqueued::id)
    }

    /// [`Queue::submit`], telling whether the request was new.
    pub async fn enqueue(&self, request: &Request<'_>) -> Result<Enqueued, StoreError> {
        let parked = match request.mode {
            Mode::Auto if request.delay.is_zero() => None,
            Mode::Auto => Some(State::Delayed),
            Mode::Approve => Some(State::AwaitingApproval),
            Mode::Monitor => Some(State::Available),
        };
        match parked {
            None => self.submit_now(request).await,
            Some(state) => self.park(request, state).await,
        }
    }

    /// Records a push that waits for a person or a time, or is only
    /// recorded. A copy of the same push (same image and digest) is the
    /// same deployment; a newer one supersedes the one that waits and
    /// restarts a delay; an older one under a semver policy is skipped.
    async fn park(&self, request: &Request<'_>, state: State) -> Result<Enqueued, StoreError> {
        let _parking = self.parking.lock().await;
        let target = request.target.to_string();
        let parked = self.store.call(move |store| store.parked(&target)).await?;
        let image = request.image.to_string();
        // Without a digest, a push is known only by its tag: a copy folds
        // into the approval that waits (which deploys the newest anyway),
        // but restarts a delay, since it may be a newer push.
        let same = |d: &&Deployment| {
            d.state == state
                && d.image == image
                && d.digest.as_deref() == request.digest
                && (request.digest.is_some() || state != State::Delayed)
        };
        if let Some(same) = parked.iter().find(same) {
            return Ok(Enqueued::InFlight(same.id));
        }
        if let Some(digest) = request.digest {
            if self
                .updater
                .runs_digest(request.target, request.service, request.image, digest)
                .await
            {
                let id = self.write(request).await?;
                let note = format!("{} already runs {digest}", request.target);
                self.end(id, State::Skipped, note).await?;
                return Ok(Enqueued::New(id));
            }
        }
        let waiting: Vec<&Deployment> = parked.iter().filter(|d| d.state.is_waiting()).collect();
        let id = self.write(request).await?;
        for older in &waiting {
            let tag = ImageRef::parse(&older.image)
                .map(|i| i.tag)
                .unwrap_or_default();
            if tag != request.image.tag && request.policy.decide(&tag, &request.image.tag).is_err()
            {
                let note = format!(
                    "{} is older than {tag}, which waits in deployment {}",
                    request.image.tag, older.id
                );
                self.end(id, State::Skipped, note).await?;
                return Ok(Enqueued::New(id));
            }
        }
        let due = (state == State::Delayed).then(|| crate::timing::now() + millis(request.delay));
        let detail = match state {
            State::Delayed => format!(
                "deployed once it has been the newest for {} (due {})",
                crate::settings::show_duration(request.delay),
                crate::timing::format(due.unwrap_or_default())
            ),
            State::AwaitingApproval => "waits for a person to approve or reject it".to_string(),
            _ => "a newer image is available; monitor mode deploys nothing".to_string(),
        };
        let facts = Facts {
            due_at: due.map(crate::timing::format),
            ..Facts::default()
        };
        self.store
            .call(move |store| store.step(id, state, Some(&detail), &facts))
            .await?;
        for older in waiting {
            let (older, note) = (older.id, format!("superseded by deployment {id}"));
            self.store
                .call(move |store| {
                    store.step_if(
                        older,
                        &[State::AwaitingApproval, State::Delayed],
                        State::Skipped,
                        Some(&note),
                        &Facts::default(),
                    )
                })
                .await?;
        }
        if let Some(due) = due {
            self.arm(id, due);
        }
        Ok(Enqueued::New(id))
    }

    /// Starts deployment `id` when its delay is over, unless it was
    /// superseded or rejected meanwhile. Not tracked: shutdown does not wait
    /// for a delay; the next start arms it again from `due_at`.
    fn arm(&self, id: i64, due: u64) {
        let queue = self.clone();
        tokio::spawn(async move {
            let wait = due.saturating_sub(crate::timing::now());
            tokio::time::sleep(Duration::from_millis(wait)).await;
            if let Err(e) = queue
                .release(id, State::Delayed, "the delay is over".into())
                .await
            {
                tracing::error!(deployment = id, error = %e, "cannot start a delayed deployment");
            }
        });
    }

    /// Moves a deployment that waits (`from`) to `queued` and hands it to
    /// its target's worker; `None` when it no longer waits (superseded,
    /// rejected, approved twice).
    pub async fn release(
        &self,
        id: i64,
        from: State,
        note: String,
    ) -> Result<Option<Deployment>, StoreError> {
        if self.closing.load(Ordering::Acquire) {
            // Left as it is: the next start arms it again.
            return Ok(None);
        }
        let moved = self
            .store
            .call(move |store| {
                store.step_if(id, &[from], State::Queued, Some(&note), &Facts::default())
            })
            .await?;
        if !moved {
            return Ok(None);
        }
        let Some((deployment, _)) = self.store.call(move |store| store.get(id)).await? else {
            return Ok(None);
        };
        match Job::of(&deployment) {
            Some(job) => self.hand_over(job).await?,
            None => {
                let note = format!("image reference {} no longer parses", deployment.image);
                self.end(id, State::Failed, note).await?;
            }
        }
        Ok(Some(deployment))
    }

    /// Hands a recorded job to its target's worker: it runs now, or next,
    /// superseding the job that waits.
    async fn hand_over(&self, job: Job) -> Result<(), StoreError> {
        let superseded = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let slot = slots.entry(job.target.clone()).or_default();
            if slot.worker {
                slot.waiting.replace(job.clone()).map(|j| j.deployment)
            } else {
                slot.worker = true;
                slot.running = Some(job.clone());
                drop(slots);
                self.spawn_worker(Work::Update(job.clone()));
                None
            }
        };
        if let Some(replaced) = superseded {
            let note = format!("superseded by deployment {}", job.deployment);
            self.end(replaced, State::Skipped, note).await?;
        }
        Ok(())
    }

    /// Queues an update now: its new deployment, or the one in flight for
    /// the same push.
    async fn submit_now(&self, request: &Request<'_>) -> Result<Enqueued, StoreError> {
        let announce = match self.claim(request) {
            Claim::Existing(id) => return Ok(Enqueued::InFlight(id)),
            Claim::Follow(mut id) => {
                let written = id.wait_for(Option::is_some).await.map(|id| *id);
                return match written {
                    Ok(Some(id)) => Ok(Enqueued::InFlight(id)),
                    _ => Err(StoreError::Background(
                        "the same push could not be recorded".into(),
                    )),
                };
            }
            Claim::Write(announce) => announce,
        };
        // Placed before the claim goes, so a copy arriving in between finds
        // it in flight; a copy that followed the claim gets the same id.
        let queued = match self.write(request).await {
            Ok(deployment) => self.queue(deployment, request).await,
            Err(e) => Err(e),
        };
        self.unclaim(request.target, &announce);
        if let Ok(queued) = queued {
            announce.send_replace(Some(queued.id()));
        }
        queued
    }

    /// Under the lock: the deployment in flight for the same push, or the
    /// one being written for it, or a claim to write it.
    fn claim(&self, request: &Request<'_>) -> Claim {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = in_flight(&slots, request) {
            return Claim::Existing(id);
        }
        let slot = slots.entry(request.target.to_string()).or_default();
        let same = slot.pending.iter().find(|p| {
            !is_fresh(request)
                && &p.image == request.image
                && (request.digest.is_none() || p.digest.as_deref() == request.digest)
        });
        if let Some(pending) = same {
            return Claim::Follow(pending.id.clone());
        }
        let (announce, id) = watch::channel(None);
        slot.pending.push(Pending {
            image: request.image.clone(),
            digest: request.digest.map(str::to_string),
            id,
        });
        Claim::Write(announce)
    }

    /// Forgets a pending submission once its row is written (or failed).
    fn unclaim(&self, target: &str, announce: &watch::Sender<Option<i64>>) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get_mut(target) {
            slot.pending
                .retain(|p| !p.id.same_channel(&announce.subscribe()));
            if !slot.worker && slot.pending.is_empty() {
                slots.remove(target);
            }
        }
    }

    /// Writes the deployment's row, off the async threads.
    async fn write(&self, request: &Request<'_>) -> Result<i64, StoreError> {
        let new = NewDeployment {
            target: request.target.to_string(),
            container_id: request.container_id.to_string(),
            image: request.image.to_string(),
            source: request.source.to_string(),
            pusher: request.pusher.map(str::to_string),
            digest: request.digest.map(str::to_string),
            reason: Some(request.reason.to_string()),
            kind: request.kind.map(str::to_string),
            force: request.force,
            rollback_to: request.rollback.and_then(|(_, from)| from),
            image_id: request.rollback.map(|(image, _)| image.to_string()),
            service: request.service,
        };
        self.store.call(move |store| store.create(&new)).await
    }

    /// Hands a written deployment to the target's worker.
    async fn queue(&self, deployment: i64, request: &Request<'_>) -> Result<Enqueued, StoreError> {
        let job = Job {
            deployment,
            target: request.target.to_string(),
            image: request.image.clone(),
            digest: request.digest.map(str::to_string),
            force: request.force,
            rollback: request.rollback.map(|(image, _)| image.to_string()),
            service: request.service,
        };
        let placement = self.place(job.clone(), request);
        match placement {
            Placement::Duplicate(existing) => {
                let note = format!("the same push is deployment {existing}");
                self.end(deployment, State::Skipped, note).await?;
                Ok(Enqueued::InFlight(existing))
            }
            Placement::Older { waiting, tag } => {
                let note = format!(
                    "{} is older than {tag}, which waits in deployment {waiting}",
                    request.image.tag
                );
                self.end(deployment, State::Skipped, note).await?;
                Ok(Enqueued::New(deployment))
            }
            Placement::Queued {
                superseded,
                start_worker,
            } => {
                if start_worker {
                    self.spawn_worker(Work::Update(job));
                }
                if let Some(replaced) = superseded {
                    let note = format!("superseded by deployment {deployment}");
                    self.end(replaced, State::Skipped, note).await?;
                }
                Ok(Enqueued::New(deployment))
            }
        }
    }

    fn place(&self, job: Job, request: &Request<'_>) -> Placement {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        // The in-flight check again, now that the row exists: a duplicate
        // may have been placed meanwhile.
        if let Some(existing) = in_flight(&slots, request) {
            return Placement::Duplicate(existing);
        }
        let slot = slots.entry(job.target.clone()).or_default();
        if !slot.worker {
            slot.worker = true;
            slot.running = Some(job);
            return Placement::Queued {
                superseded: None,
                start_worker: true,
            };
        }
        if let Some(waiting) = slot.waiting.as_ref().filter(|_| !is_fresh(request)) {
            let (waits, pushed) = (&waiting.image.tag, &job.image.tag);
            if waits != pushed && request.policy.decide(waits, pushed).is_err() {
                return Placement::Older {
                    waiting: waiting.deployment,
                    tag: waits.clone(),
                };
            }
        }
        // A worker is busy with this target and will pick the job up.
        let superseded = slot.waiting.replace(job).map(|j| j.deployment);
        Placement::Queued {
            superseded,
            start_worker: false,
        }
    }

    /// Hands the deployments a previous run left unfinished to the workers:
    /// those under way are recovered (finished or undone) first, those that
    /// never started are run again. Call before taking new requests.
    pub fn resume(&self, unfinished: Vec<Deployment>) {
        let mut under_way: HashMap<String, Vec<Deployment>> = HashMap::new();
        let mut queued = Vec::new();
        for deployment in unfinished {
            if deployment.state == State::Queued {
                queued.extend(Job::of(&deployment));
            } else if deployment.state == State::AwaitingApproval {
                // Still waits for a person.
            } else if deployment.state == State::Delayed {
                let due = deployment.due_at.as_deref().and_then(crate::timing::parse);
                self.arm(deployment.id, due.unwrap_or_default());
            } else {
                under_way
                    .entry(deployment.target.clone())
                    .or_default()
                    .push(deployment);
            }
        }
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for (target, deployments) in under_way {
            self.recovering
                .fetch_add(deployments.len(), Ordering::AcqRel);
            slots.insert(
                target,
                Slot {
                    worker: true,
                    ..Slot::default()
                },
            );
            self.spawn_worker(Work::Recover(deployments));
        }
        let mut superseded = Vec::new();
        for job in queued {
            match slots.get_mut(&job.target) {
                Some(slot) => superseded.extend(slot.waiting.replace(job)),
                None => {
                    slots.insert(
                        job.target.clone(),
                        Slot {
                            worker: true,
                            running: Some(job.clone()),
                            ..Slot::default()
                        },
                    );
                    self.spawn_worker(Work::Update(job));
                }
            }
        }
        drop(slots);
        for job in superseded {
            let queue = self.clone();
            self.tracker.spawn(async move {
                let note = "superseded by a newer push that was queued too".to_string();
                if let Err(e) = queue.end(job.deployment, State::Skipped, note).await {
                    tracing::error!(deployment = job.deployment, error = %e, "cannot record a skipped deployment");
                }
            });
        }
    }

    /// How many interrupted deployments are still being recovered.
    pub fn recovering(&self) -> usize {
        self.recovering.load(Ordering::Acquire)
    }

    /// Updates running or waiting, and deployments being recovered: the
    /// work the queue has in hand.
    pub fn depth(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let jobs: usize = slots
            .values()
            .map(|slot| usize::from(slot.running.is_some()) + usize::from(slot.waiting.is_some()))
            .sum();
        jobs + self.recovering()
    }

    async fn end(&self, deployment: i64, state: State, note: String) -> Result<(), StoreError> {
        self.store
            .call(move |store| store.transition(deployment, state, Some(&note)))
            .await
    }

    fn spawn_worker(&self, first: Work) {
        let queue = self.clone();
        self.tracker.spawn(async move {
            let mut work = first;
            loop {
                let target = queue.perform(work).await;
                let mut slots = queue.slots.lock().unwrap_or_else(|e| e.into_inner());
                let Some(slot) = slots.get_mut(&target) else {
                    break;
                };
                let closing = queue.closing.load(Ordering::Acquire);
                match slot.waiting.take().filter(|_| !closing) {
                    Some(next) => {
                        slot.running = Some(next.clone());
                        work = Work::Update(next);
                    }
                    None => {
                        slot.worker = false;
                        slot.running = None;
                        if slot.pending.is_empty() {
                            slots.remove(&target);
                        }
                        break;
                    }
                }
            }
        });
    }

    /// Does one piece of work and returns its target. A panic in an update
    /// is caught and the deployment recovered like a crashed one.
    async fn perform(&self, work: Work) -> String {
        match work {
            Work::Update(job) => {
                let target = job.target.clone();
                let updater = self.updater.clone();
                let done = AssertUnwindSafe(async move { updater.run(&job).await })
                    .catch_unwind()
                    .await;
                if let Err(panic) = done {
                    let deployment = self.running_deployment(&target);
                    self.after_panic(deployment, panic_message(&panic)).await;
                }
                target
            }
            Work::Recover(deployments) => {
                let target = deployments[0].target.clone();
                for deployment in deployments {
                    let cause =
                        format!("dockhook stopped during step {}", deployment.state.as_str());
                    let done = AssertUnwindSafe(self.updater.recover(&deployment, &cause))
                        .catch_unwind()
                        .await;
                    self.recovering.fetch_sub(1, Ordering::AcqRel);
                    if let Err(panic) = done {
                        self.after_panic(Some(deployment.id), panic_message(&panic))
                            .await;
                    }
                }
                target
            }
        }
    }

    fn running_deployment(&self, target: &str) -> Option<i64> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .get(target)
            .and_then(|slot| slot.running.as_ref())
            .map(|job| job.deployment)
    }

    async fn after_panic(&self, deployment: Option<i64>, message: String) {
        let Some(deployment) = deployment else {
            return;
        };
        tracing::error!(deployment, %message, "a deployment worker panicked; recovering the deployment");
        let cause = format!("an internal error stopped the deployment (panic: {message})");
        let loaded = self.store.call(move |store| store.get(deployment)).await;
        let recovered = match loaded {
            Ok(Some((d, _))) if !d.state.is_final() => {
                AssertUnwindSafe(self.updater.recover_only(&d, &cause))
                    .catch_unwind()
                    .await
                    .is_ok()
            }
            _ => true,
        };
        if !recovered {
            let note = format!("{cause}; recovering it panicked too");
            if let Err(e) = self.end(deployment, State::Failed, note).await {
                tracing::error!(deployment, error = %e, "cannot record a failed deployment");
            }
        }
    }

    /// Waits for every job, those that wait too (for tests).
    #[cfg(test)]
    pub(crate) async fn finish_all(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Stops taking work and waits for the jobs that run; those that wait
    /// stay queued in the history, for the next start.
    pub async fn drain(&self) {
        self.closing.store(true, Ordering::Release);
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// A request that must not be folded into another: a forced update or a
/// rollback.
fn is_fresh(request: &Request<'_>) -> bool {
    request.force || request.rollback.is_some()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The deployment in `slots` already running or waiting for the same push.
fn in_flight(slots: &HashMap<String, Slot>, request: &Request<'_>) -> Option<i64> {
    if is_fresh(request) {
        return None;
    }
    let slot = slots.get(request.target)?;
    let same_digest = |job: &&Job| {
        &job.image == request.image
            && request.digest.is_some()
            && job.digest.as_deref() == request.digest
    };
    // Without a digest a push is known only by its tag: one that waits takes
    // it, one that runs may have pulled before it.
    let same_waiting = |job: &&Job| {
        &job.image == request.image
            && (request.digest.is_none() || job.digest.as_deref() == request.digest)
    };
    slot.running
        .as_ref()
        .filter(same_digest)
        .or(slot.waiting.as_ref().filter(same_waiting))
        .map(|job| job.deployment)
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".into())
}
