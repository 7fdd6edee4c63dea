//! Mattermost: `mattermost://[USERNAME@]HOST[:PORT]/TOKEN[/CHANNEL]`, the
//! incoming webhook `https://HOST/hooks/TOKEN`. Parameters: `icon` (an
//! emoji or a URL), `title`; `disabletls=yes` (dockhook's own) for a server
//! without TLS.

use futures_util::future::BoxFuture;
use serde_json::json;
use url::Url;

use super::url_parts::{first, host, query, segments, user, yes};
use super::{Http, Message, Parsed, Service, ServiceKind};

pub const KIND: ServiceKind = ServiceKind {
    name: "mattermost",
    schemes: &["mattermost"],
    parse,
};

struct Mattermost {
    hook: String,
    username: Option<String>,
    channel: Option<String>,
    icon: Option<String>,
    title: Option<String>,
}

fn parse(url: &Url) -> Result<Parsed, String> {
    let query = query(url);
    let server = host(url);
    let (token, channel) = match segments(url).as_slice() {
        [token] => (token.clone(), None),
        [token, channel] => (token.clone(), Some(channel.clone())),
        _ => return Err("expected mattermost://[USER@]HOST/TOKEN[/CHANNEL]".into()),
    };
    if server.is_empty() {
        return Err("no host: mattermost://[USER@]HOST/TOKEN[/CHANNEL]".into());
    }
    let scheme = if yes(&query, "disabletls", false)? { "http" } else { "https" };
    let username = user(url);
    Ok(Parsed {
        service: Box::new(Mattermost {
            hook: format!("{scheme}://{server}/hooks/{token}"),
            username: (!username.is_empty()).then_some(username),
            channel,
            icon: first(&query, &["icon", "icon_emoji", "icon_url"]),
            title: first(&query, &["title"]),
        }),
        secrets: vec![token],
    })
}

impl Service for Mattermost {
    fn send<'a>(&'a self, http: &'a Http, message: &'a Message) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let title = self.title.clone().unwrap_or_else(|| message.title());
            let mut payload = json!({
                "text": format!("#### {title}\n```\n{}\n```", message.text()),
            });
            if let Some(username) = &self.username {
                payload["username"] = json!(username);
            }
            if let Some(channel) = &self.channel {
                payload["channel"] = json!(channel);
            }
            if let Some(icon) = &self.icon {
                let key = if icon.starts_with("http") { "icon_url" } else { "icon_emoji" };
                payload[key] = json!(icon);
            }
            http.post_json(&self.hook, &payload, &[]).await.map(drop)
        })
    }
}
