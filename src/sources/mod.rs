//! Webhook sources: one module per registry payload format.
//!
//! A source turns a raw request body into an [`ImageEvent`](crate::event::ImageEvent)
//! and decides whether the sender is allowed to say it. It knows payload
//! formats and nothing else: no Docker calls, no HTTP framework types.

pub mod dockerhub;

/// Why a webhook body was refused. Each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The body is not the JSON the source expects (400).
    #[error("{0}")]
    Malformed(String),
    /// The sender may not trigger updates for this image (403).
    #[error("{0}")]
    Forbidden(String),
}
