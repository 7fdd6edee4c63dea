//! Deployments: the policy for each container, planning its replacement,
//! running the update step by step (and recovering an interrupted one), and
//! the queue that serialises updates per container.

mod cleanup;
mod cutover;
mod gate;
pub mod plan;
pub mod policy;
pub mod queue;
mod recover;
mod undo;
pub mod update;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

pub use policy::{Strategy, StrategySetting};
pub use queue::{Queue, Request};
pub use update::{Job, Outcome, Settings, Updater};
