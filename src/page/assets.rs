//! The page's stylesheet and script, compiled into the binary and served
//! by dockhook itself (the Content-Security-Policy allows nothing else).
//! Their URLs carry a digest of their contents, so a browser may cache
//! them for a year and still gets the new ones after an upgrade.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// A file the page loads.
pub struct Asset {
    pub path: &'static str,
    body: &'static str,
    content_type: &'static str,
}

pub static CSS: Asset = Asset {
    path: "/assets/app.css",
    body: include_str!("app.css"),
    content_type: "text/css; charset=utf-8",
};

pub static JS: Asset = Asset {
    path: "/assets/app.js",
    body: include_str!("app.js"),
    content_type: "text/javascript; charset=utf-8",
};

/// The first 16 hex digits of the SHA-256 of both files.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(CSS.body)
        .chain_update(JS.body)
        .finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
});

impl Asset {
    /// The URL the page links, which changes with the files.
    pub fn url(&self) -> String {
        format!("{}?v={}", self.path, *VERSION)
    }

    pub fn response(&self) -> Response {
        (
            [
                (header::CONTENT_TYPE, self.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            self.body,
        )
            .into_response()
    }
}
