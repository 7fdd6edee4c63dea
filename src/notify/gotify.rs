//! Gotify: `gotify://HOST[:PORT][/PATH]/TOKEN` (an application token).
//! Parameters: `priority` (by default 8 for a failure, 5 for a rollback,
//! 2 otherwise), `title`, `disabletls=yes` for a server without TLS. The
//! token goes in the `X-Gotify-Key` header, not the URL.

use futures_util::future::BoxFuture;
use serde_json::json;
use url::Url;

use super::message::Level;
use super::url_parts::{first, host, query, segments, yes};
use super::{Http, Message, Parsed, Service, ServiceKind};

pub const KIND: ServiceKind = ServiceKind {
    name: "gotify",
    schemes: &["gotify"],
    parse,
};

struct Gotify {
    endpoint: String,
    token: String,
    priority: Option<i64>,
    title: Option<String>,
}

fn parse(url: &Url) -> Result<Parsed, String> {
    let query = query(url);
    let mut path = segments(url);
    let token = path.pop().ok_or("no token: gotify://HOST[/PATH]/TOKEN")?;
    let server = host(url);
    if server.is_empty() {
        return Err("no host: gotify://HOST[/PATH]/TOKEN".into());
    }
    let scheme = if yes(&query, "disabletls", false)? { "http" } else { "https" };
    let prefix: String = path.iter().map(|p| format!("/{p}")).collect();
    let priority = first(&query, &["priority"])
        .map(|p| p.parse::<i64>().map_err(|_| "`priority` must be a number".to_string()))
        .transpose()?;
    Ok(Parsed {
        service: Box::new(Gotify {
            endpoint: format!("{scheme}://{server}{prefix}/message"),
            token: token.clone(),
            priority,
            title: first(&query, &["title"]),
        }),
        secrets: vec![token],
    })
}

impl Service for Gotify {
    fn send<'a>(&'a self, http: &'a Http, message: &'a Message) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let priority = self.priority.unwrap_or(match message.level() {
                Level::Danger => 8,
                Level::Warning => 5,
                Level::Good | Level::Info => 2,
            });
            let payload = json!({
                "title": self.title.clone().unwrap_or_else(|| message.title()),
                "message": message.text(),
                "priority": priority,
                "extras": { "client::display": { "contentType": "text/plain" } },
            });
            http.post_json(&self.endpoint, &payload, &[("X-Gotify-Key", &self.token)])
                .await
                .map(drop)
        })
    }
}
