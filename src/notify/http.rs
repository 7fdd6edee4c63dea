//! The HTTP client every web service sends with: one connection pool,
//! timeouts, and errors that never quote a URL (a URL can hold a token).

use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use url::Url;

/// The client, and where tests send what would go to the services.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    /// Tests only: every request goes to this scheme, host and port
    /// instead, path and query kept.
    base: Option<Url>,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(super::SEND_TIMEOUT)
            .user_agent(concat!("dockhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the TLS backend is compiled in");
        Self { client, base: None }
    }

    /// A client that sends every request to `base` (`http://127.0.0.1:PORT`)
    /// instead of the service's host, for tests of the request formats.
    #[doc(hidden)]
    pub fn with_base(base: &str) -> Self {
        Self {
            base: Some(Url::parse(base).expect("a valid base URL")),
            ..Self::new()
        }
    }

    /// A request to `url`.
    pub fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, String> {
        let mut url = Url::parse(url).map_err(|e| format!("cannot make the request URL: {e}"))?;
        if let Some(base) = &self.base {
            // Cannot fail: both are http(s) URLs with a host.
            let _ = url.set_scheme(base.scheme());
            let _ = url.set_host(base.host_str());
            let _ = url.set_port(base.port());
        }
        Ok(self.client.request(method, url))
    }

    /// POSTs `body` as JSON to `url` with `headers`; the answer's body on
    /// success.
    pub async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> Result<String, String> {
        let mut request = self.request(Method::POST, url)?.json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request).await
    }
}

/// Sends `request`; the answer's body if its status is a success, else
/// an error with the status and the start of the body.
pub async fn send(request: RequestBuilder) -> Result<String, String> {
    let response = request.send().await.map_err(describe)?;
    let status = response.status();
    let body = response.text().await.map_err(describe)?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("the service answered {status}: {}", excerpt(&body)))
    }
}

/// A reqwest error without its URL, with its causes.
pub fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The start of an answer's body, on one line.
pub fn excerpt(body: &str) -> String {
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 200 {
        format!("{}…", line.chars().take(200).collect::<String>())
    } else if line.is_empty() {
        "(empty body)".into()
    } else {
        line
    }
}
