//! `ImageEvent`: the one thing every webhook source produces.
//!
//! An event only says "this repository and tag changed". It never names a
//! container or a command: which containers it touches is decided later, from
//! what is already running on the host, and what runs is decided by the pull.

use crate::image_ref::ImageRef;

/// A registry said that `image` (repository and tag) now points at new content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEvent {
    /// Which source parsed it (`dockerhub`, …), for history and logs.
    pub source: &'static str,
    /// The pushed repository and tag, normalised.
    pub image: ImageRef,
    /// Who pushed, as the payload claims it (informational only).
    pub pusher: Option<String>,
    /// The manifest digest the payload names, if any: the pulled image must
    /// have it.
    pub digest: Option<String>,
}
