//! # dockhook
//!
//! Keeps Docker containers up to date the moment a registry says a new image
//! is out. A registry (Docker Hub, a distribution registry, GitHub, Gitea,
//! GitLab, Harbor, Quay, ACR, a CI job) POSTs a webhook; dockhook
//! authenticates it, finds the running containers whose image and tag policy
//! take that repository and tag, pulls the image, and replaces each container
//! with an identical one on the new image (beside it first where it can),
//! rolling back if the new one is not healthy, and finishing or undoing an
//! update a crash interrupted. On a Swarm manager, services are targets too:
//! Swarm rolls the pinned digest out, and dockhook follows the rollout to
//! its end, asking Swarm for the rollback when it fails.
//!
//! ## The flow
//!
//! ```text
//! HTTP request ─► source parser ─► ImageEvent ─► gate (token or signature,
//!     owner, replay) ─► targets (inventory + tag policies) ─► deploy queue
//!     ─► update (policy, plan, engine: Docker API) ─► store (history, steps,
//!     notification outbox) ─► notify (grouped messages, retried deliveries)
//! ```
//!
//! Data flows one way; nothing downstream reaches back upstream.
//!
//! ## The modules
//!
//! - [`config`]: the one typed configuration (file, then environment); the
//!   only module that reads the environment. One table defines every
//!   setting once; loading, `check-config` and the README's table come from
//!   it. It assembles the settings types the other modules own.
//! - [`settings`]: what settings are made of (secrets, durations, sizes). A
//!   leaf, so no module needs to import [`config`].
//! - [`credentials`]: registry logins from a Docker `config.json`.
//! - [`image_ref`]: parsing and normalising image references. Pure.
//! - [`events`]: the live stream of deployment changes (Server-Sent
//!   Events) for the API and the status page.
//! - [`event`]: [`event::ImageEvent`], what every source produces.
//! - [`sources`]: one module per webhook format; parse and gate, no Docker.
//! - [`server`]: the axum router, limits and JSON errors.
//! - [`tokens`]: who may do what: per-source hook tokens derived from one
//!   secret, the API and read-only tokens, rotation with a grace period.
//! - [`abuse`]: client addresses (trusted proxies), the limit on failed
//!   authentication, and the connection slots that slow clients cannot
//!   exhaust.
//! - [`inventory`]: the running containers (and Swarm services), kept
//!   current from Docker's events so a webhook costs no Docker call.
//! - [`targets`]: which running containers and services an event selects.
//!   Pure.
//! - [`tags`]: tag policies (`exact`, `semver:…`, `glob:…`). Pure.
//! - [`deploy`]: the per-container queue (bursts folded, replicas of one
//!   repository serialised, interrupted deployments resumed, panics
//!   contained), the policy (strategy, health gate, hooks), and the update
//!   step machine split by phase: plan (pure), update (pull, create),
//!   cutover (start-first / stop-first), gate, clean-up and dependents,
//!   undo, and crash recovery; and a Swarm service's update (Swarm's
//!   rolling update, followed and rolled back when it fails).
//! - [`control`]: what a person sees and does (targets, update now,
//!   rollback, approve, reject), shared by the API and the status page.
//! - [`page`]: the status page at `/`: server-rendered HTML with login,
//!   CSRF-checked forms for the [`control`] actions, live updates from
//!   [`events`]; its stylesheet and script compiled in.
//! - [`cli`]: the client commands (`dockhook status`, `update`, ...),
//!   which talk to a running dockhook over its HTTP API only.
//! - [`reconcile`]: a source on a timer: asks the registries for the
//!   digest of every watched image and hands a change on as a webhook
//!   would, for the pushes whose webhook was lost.
//! - [`registry`]: a small client of the registry HTTP API (manifest
//!   digests by `HEAD`, tag lists, the token flow, rate limits).
//! - [`metrics`]: Prometheus metrics.
//! - [`tls`]: HTTPS on the listener: certificate files reloaded when
//!   they change, or certificates over ACME; plain HTTP by default.
//! - [`notify`]: notifications: service URLs in shoutrrr's formats, one
//!   module per service; a persisted outbox (written with the step that
//!   makes the news) delivered with retries, never blocking a deployment.
//! - [`engine`]: the only module that talks to Docker (bollard), behind a
//!   small trait.
//! - [`store`]: the only module with SQL: deployments and their steps, each
//!   step written in one transaction, on a blocking thread;
//!   delivery IDs.
//! - [`timing`]: time to serving and downtime, read from a deployment's
//!   steps: one definition for the API, the page, notifications, metrics.
//! - [`retention`]: prunes the history and removes failed deployments'
//!   images, so nothing grows without bound.
//! - [`app`]: wiring, start-up and graceful shutdown.
//! - [`logging`]: the log subscriber, which never shows a secret.
//! - `fuzzing` (hidden): the checks the fuzz targets under `fuzz/` run,
//!   which `tests/fuzz_corpus.rs` replays on the committed corpus.

pub mod abuse;
pub mod app;
pub mod cli;
pub mod config;
pub mod control;
pub mod credentials;
pub mod deploy;
pub mod engine;
pub mod event;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod image_ref;
pub mod inventory;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod page;
pub mod reconcile;
pub mod registry;
pub mod retention;
pub mod server;
pub mod settings;
pub mod sources;
pub mod store;
pub mod tags;
pub mod targets;
pub mod timing;
pub mod tls;
pub mod tokens;
