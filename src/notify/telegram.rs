//! Telegram: `telegram://BOT_TOKEN@telegram?chats=@channel,CHAT_ID[:THREAD_ID]`
//! (the bot token `123456:ABC…` is the user and password). Parameters:
//! `chats` (or `channels`), `notification=no` (silent), `preview=no`,
//! `title`. Sent as HTML, to each chat in turn.

use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use url::Url;

use super::discord::clip;
use super::url_parts::{first, list, password, query, user, yes};
use super::{Http, Message, Parsed, Service, ServiceKind};

pub const KIND: ServiceKind = ServiceKind {
    name: "telegram",
    schemes: &["telegram"],
    parse,
};

/// Longest message Telegram takes.
const MAX_TEXT: usize = 4096;

struct Telegram {
    token: String,
    chats: Vec<String>,
    notification: bool,
    preview: bool,
    title: Option<String>,
}

fn parse(url: &Url) -> Result<Parsed, String> {
    let query = query(url);
    let (id, secret) = (user(url), password(url));
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || secret.is_empty() {
        return Err("expected telegram://BOT_ID:BOT_SECRET@telegram?chats=…".into());
    }
    let chats = list(&query, &["chats", "channels"]);
    if chats.is_empty() {
        return Err("no `chats`: name the chat IDs or @channels to send to".into());
    }
    Ok(Parsed {
        service: Box::new(Telegram {
            token: format!("{id}:{secret}"),
            chats,
            notification: yes(&query, "notification", true)?,
            preview: yes(&query, "preview", true)?,
            title: first(&query, &["title"]),
        }),
        secrets: vec![secret],
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Service for Telegram {
    fn send<'a>(&'a self, http: &'a Http, message: &'a Message) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let title = self.title.clone().unwrap_or_else(|| message.title());
            let text = format!("<b>{}</b>\n{}", escape(&title), escape(&message.text()));
            let url = format!("https://api.telegram.org/bot{}/sendMessage", self.token);
            for chat in &self.chats {
                let (chat_id, thread) = match chat.split_once(':') {
                    Some((id, thread)) if thread.parse::<i64>().is_ok() => (id, thread.parse::<i64>().ok()),
                    _ => (chat.as_str(), None),
                };
                let mut payload = json!({
                    "chat_id": chat_id,
                    "text": clip(&text, MAX_TEXT),
                    "parse_mode": "HTML",
                    "disable_notification": !self.notification,
                    "link_preview_options": { "is_disabled": !self.preview },
                });
                if let Some(thread) = thread {
                    payload["message_thread_id"] = Value::from(thread);
                }
                let answer = http.post_json(&url, &payload, &[]).await
                    .map_err(|e| format!("chat {chat_id}: {e}"))?;
                let answer: Value = serde_json::from_str(&answer).unwrap_or_default();
                if answer["ok"] != json!(true) {
                    return Err(format!("chat {chat_id}: Telegram refused it: {}", answer["description"]));
                }
            }
            Ok(())
        })
    }
}
