//! Deployments: the policy for each container, planning its replacement,
//! running the update step by step (and recovering an interrupted one), and
//! the queue that serialises updates per container.

pub mod plan;
pub mod policy;
pub mod queue;
mod recover;
pub mod update;

/// An in-memory engine for tests; not part of the API.
#[doc(hidden)]
pub mod fake;
#[cfg(test)]
mod tests;

pub use policy::{Strategy, StrategySetting};
pub use queue::{Queue, Request};
pub use update::{Job, Outcome, Settings, Updater};
