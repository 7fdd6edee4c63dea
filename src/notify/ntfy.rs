//! ntfy: `ntfy://[USER:PASSWORD@]HOST/TOPIC` (`ntfy://:TOKEN@HOST/TOPIC`
//! for an access token). Parameters: `title`, `priority` (1–5 or
//! min…max; by default high for a failure), `tags`, `click`, `icon`,
//! `scheme=http` for a server without TLS.

use futures_util::future::BoxFuture;
use reqwest::Method;
use url::Url;

use super::message::Level;
use super::url_parts::{first, host, password, query, segments, user};
use super::{http, Http, Message, Parsed, Service, ServiceKind};

pub const KIND: ServiceKind = ServiceKind {
    name: "ntfy",
    schemes: &["ntfy"],
    parse,
};

struct Ntfy {
    topic_url: String,
    user: String,
    password: String,
    title: Option<String>,
    priority: Option<String>,
    tags: Option<String>,
    click: Option<String>,
    icon: Option<String>,
}

fn parse(url: &Url) -> Result<Parsed, String> {
    let query = query(url);
    let server = match host(url) {
        h if h.is_empty() => "ntfy.sh".to_string(),
        h => h,
    };
    let topic = segments(url).join("/");
    if topic.is_empty() {
        return Err("no topic: ntfy://[USER:PASSWORD@]HOST/TOPIC".into());
    }
    let scheme = first(&query, &["scheme"]).unwrap_or_else(|| "https".into());
    if scheme != "http" && scheme != "https" {
        return Err("`scheme` must be http or https".into());
    }
    let secret = password(url);
    Ok(Parsed {
        service: Box::new(Ntfy {
            topic_url: format!("{scheme}://{server}/{topic}"),
            user: user(url),
            password: secret.clone(),
            title: first(&query, &["title"]),
            priority: first(&query, &["priority"]),
            tags: first(&query, &["tags"]),
            click: first(&query, &["click"]),
            icon: first(&query, &["icon"]),
        }),
        secrets: vec![secret],
    })
}

impl Service for Ntfy {
    fn send<'a>(&'a self, http: &'a Http, message: &'a Message) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let level = message.level();
            let (priority, tags) = match level {
                Level::Danger => ("high", "rotating_light"),
                Level::Warning => ("default", "warning"),
                Level::Good => ("default", "white_check_mark"),
                Level::Info => ("default", "information_source"),
            };
            let mut request = http
                .request(Method::POST, &self.topic_url)?
                .header("Title", self.title.clone().unwrap_or_else(|| message.title()))
                .header("Priority", self.priority.as_deref().unwrap_or(priority))
                .header("Tags", self.tags.as_deref().unwrap_or(tags))
                .body(message.text());
            for (name, value) in [("Click", &self.click), ("Icon", &self.icon)] {
                if let Some(value) = value {
                    request = request.header(name, value);
                }
            }
            if !self.password.is_empty() {
                request = if self.user.is_empty() {
                    request.bearer_auth(&self.password)
                } else {
                    request.basic_auth(&self.user, Some(&self.password))
                };
            }
            http::send(request).await.map(drop)
        })
    }
}
