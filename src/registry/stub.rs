//! A stub registry for tests: axum on a loopback port, answering as a test
//! tells it, recording every request it gets.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method};
use axum::response::Response;

use crate::image_ref::ImageRef;

/// A request the stub got.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub at: Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

pub type Answer = dyn Fn(&Seen, usize) -> Response + Send + Sync;

/// The stub: its host (`127.0.0.1:PORT`) and what it got.
pub struct Stub {
    pub host: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Stub {
    /// Serves `answer(request, how many requests came before)` for every
    /// request; `answer` gets the stub's host through `host`.
    pub async fn start(answer: impl Fn(&str) -> Box<Answer>) -> Stub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let answer: Arc<Answer> = Arc::from(answer(&host));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let (answer, log) = (answer.clone(), log.clone());
            async move {
                let request = Seen {
                    method: request.method().clone(),
                    uri: request.uri().to_string(),
                    headers: request.headers().clone(),
                    at: Instant::now(),
                };
                let before = {
                    let mut log = log.lock().unwrap();
                    log.push(request.clone());
                    log.len() - 1
                };
                answer(&request, before)
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Stub { host, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn image(&self, reference: &str) -> ImageRef {
        ImageRef::parse(&format!("{}/{reference}", self.host)).unwrap()
    }
}

/// A response with `status`, `headers` and `body`.
pub fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    response.body(Body::from(body.to_string())).unwrap()
}
