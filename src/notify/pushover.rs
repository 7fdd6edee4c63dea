//! Pushover: `pushover://shoutrrr:API_TOKEN@USER_KEY/?devices=a,b`.
//! Parameters: `devices`, `priority` (-2 to 1; by default 1 for a
//! failure), `title`.

use futures_util::future::BoxFuture;
use reqwest::Method;
use url::Url;

use super::message::Level;
use super::url_parts::{first, host, list, password, query};
use super::{http, Http, Message, Parsed, Service, ServiceKind};

pub const KIND: ServiceKind = ServiceKind {
    name: "pushover",
    schemes: &["pushover"],
    parse,
};

/// Longest message Pushover takes.
const MAX_MESSAGE: usize = 1024;

struct Pushover {
    token: String,
    user: String,
    devices: Vec<String>,
    priority: Option<i8>,
    title: Option<String>,
}

fn parse(url: &Url) -> Result<Parsed, String> {
    let query = query(url);
    let (token, user) = (password(url), host(url));
    if token.is_empty() || user.is_empty() {
        return Err("expected pushover://shoutrrr:API_TOKEN@USER_KEY/".into());
    }
    let priority = first(&query, &["priority"])
        .map(|p| match p.parse::<i8>() {
            Ok(n) if (-2..=1).contains(&n) => Ok(n),
            _ => Err("`priority` must be -2, -1, 0 or 1".to_string()),
        })
        .transpose()?;
    Ok(Parsed {
        service: Box::new(Pushover {
            token: token.clone(),
            user: user.clone(),
            devices: list(&query, &["devices"]),
            priority,
            title: first(&query, &["title"]),
        }),
        secrets: vec![token, user],
    })
}

impl Service for Pushover {
    fn send<'a>(&'a self, http: &'a Http, message: &'a Message) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let priority = self
                .priority
                .unwrap_or(if message.level() == Level::Danger { 1 } else { 0 });
            let mut form = vec![
                ("token", self.token.clone()),
                ("user", self.user.clone()),
                ("title", self.title.clone().unwrap_or_else(|| message.title())),
                ("message", super::discord::clip(&message.text(), MAX_MESSAGE)),
                ("priority", priority.to_string()),
            ];
            if !self.devices.is_empty() {
                form.push(("device", self.devices.join(",")));
            }
            let request = http
                .request(Method::POST, "https://api.pushover.net/1/messages.json")?
                .form(&form);
            http::send(request).await.map(drop)
        })
    }
}
