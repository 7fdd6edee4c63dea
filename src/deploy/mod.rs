//! Deployments: the queue that serialises updates per container (and per
//! repository), the policy for each container, and the update step machine,
//! one file per phase: `plan` (pure), `update` (the flow: pull, create),
//! `cutover` (start-first, stop-first), `gate` (health, hooks), `cleanup`
//! (old container and image, dependents), `undo` (rollback) and `recover`
//! (finishing or undoing what a crash interrupted). `service` updates a
//! Swarm service through Swarm's own rolling update, in the same queue and
//! history.

mod cleanup;
mod cutover;
mod gate;
pub mod mode;
pub mod plan;
pub mod policy;
pub mod queue;
mod recover;
pub mod service;
mod undo;
pub mod update;

/// An in-memory engine for tests; not part of the API.
#[doc(hidden)]
pub mod fake;
#[cfg(test)]
mod tests;

pub use mode::Mode;
pub use policy::{Strategy, StrategySetting};
pub use queue::{Enqueued, Queue, Request};
pub use update::{Job, Outcome, Settings, Updater};
