//! Discord: `discord://TOKEN@WEBHOOK_ID` (the webhook
//! `https://discord.com/api/webhooks/WEBHOOK_ID/TOKEN`). Parameters:
//! `username`, `avatar` (a URL), `color` (hex), `title`.

use futures_util::future::BoxFuture;
use serde_json::json;
use url::Url;

use super::url_parts::{first, host, query, user};
use super::{Http, Message, Parsed, Service, ServiceKind};

pub const KIND: ServiceKind = ServiceKind {
    name: "discord",
    schemes: &["discord"],
    parse,
};

/// Longest embed description Discord takes.
const MAX_DESCRIPTION: usize = 4096;

struct Discord {
    id: String,
    token: String,
    username: Option<String>,
    avatar: Option<String>,
    color: Option<u32>,
    title: Option<String>,
}

fn parse(url: &Url) -> Result<Parsed, String> {
    let query = query(url);
    let token = user(url);
    let id = host(url);
    if token.is_empty() || id.is_empty() {
        return Err("expected discord://TOKEN@WEBHOOK_ID".into());
    }
    let color = first(&query, &["color"])
        .map(|c| {
            let hex = c.trim_start_matches('#').trim_start_matches("0x");
            u32::from_str_radix(hex, 16).map_err(|_| format!("`color` {c:?} is not a hex colour"))
        })
        .transpose()?;
    Ok(Parsed {
        service: Box::new(Discord {
            id,
            token: token.clone(),
            username: first(&query, &["username"]),
            avatar: first(&query, &["avatar", "avatarurl"]),
            color,
            title: first(&query, &["title"]),
        }),
        secrets: vec![token],
    })
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut clipped: String = text.chars().take(max - 1).collect();
    clipped.push('…');
    clipped
}

impl Service for Discord {
    fn send<'a>(&'a self, http: &'a Http, message: &'a Message) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut payload = json!({
                "embeds": [{
                    "title": clip(&self.title.clone().unwrap_or_else(|| message.title()), 256),
                    "description": clip(&message.text(), MAX_DESCRIPTION),
                    "color": self.color.unwrap_or_else(|| message.level().color_number()),
                }],
            });
            if let Some(username) = &self.username {
                payload["username"] = json!(username);
            }
            if let Some(avatar) = &self.avatar {
                payload["avatar_url"] = json!(avatar);
            }
            let url = format!("https://discord.com/api/webhooks/{}/{}", self.id, self.token);
            http.post_json(&url, &payload, &[]).await.map(drop)
        })
    }
}
