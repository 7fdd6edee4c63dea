//! Deployments: planning a replacement, running it step by step, and the
//! queue that serialises updates per container.

pub mod plan;
pub mod queue;
pub mod update;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use queue::{Queue, Request};
pub use update::{Job, Outcome, Updater};
