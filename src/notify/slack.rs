//! Slack: `slack://hook:A-B-C@webhook` (an incoming webhook,
//! `https://hooks.slack.com/services/A/B/C`), `slack://xoxb:TOKEN@CHANNEL`
//! (the bot API, `chat.postMessage`), and the older
//! `slack://[botname@]A/B/C`. Parameters: `botname`, `icon` (an emoji or a
//! URL), `color`, `title`, `thread_ts`.

use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use url::Url;

use super::url_parts::{first, host, password, query, segments, user};
use super::{Http, Message, Parsed, Service, ServiceKind};

pub const KIND: ServiceKind = ServiceKind {
    name: "slack",
    schemes: &["slack"],
    parse,
};

enum Token {
    /// The three parts of an incoming webhook's path.
    Webhook([String; 3]),
    /// A bot or user token (`xoxb-…`), and the channel.
    Api { token: String, channel: String },
}

struct Slack {
    token: Token,
    botname: Option<String>,
    icon: Option<String>,
    color: Option<String>,
    title: Option<String>,
    thread_ts: Option<String>,
}

fn webhook_parts(text: &str) -> Result<[String; 3], String> {
    let parts: Vec<&str> = text.split(['-', '/', ',']).filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [a, b, c] => Ok([a.to_string(), b.to_string(), c.to_string()]),
        _ => Err("the webhook token must have three parts (hook:A-B-C@webhook)".into()),
    }
}

fn parse(url: &Url) -> Result<Parsed, String> {
    let query = query(url);
    let path = segments(url);
    let (token, botname, secrets) = if !path.is_empty() {
        // slack://[botname@]A/B/C
        let mut parts = vec![host(url)];
        parts.extend(path);
        let parts = webhook_parts(&parts.join("/"))?;
        let secrets = vec![parts[1].clone(), parts[2].clone()];
        let name = user(url);
        (Token::Webhook(parts), (!name.is_empty()).then_some(name), secrets)
    } else {
        let kind = user(url);
        let secret = password(url);
        if secret.is_empty() {
            return Err("no token: use slack://hook:A-B-C@webhook or slack://xoxb:TOKEN@CHANNEL".into());
        }
        let token = match kind.as_str() {
            "hook" | "" => Token::Webhook(webhook_parts(&secret)?),
            kind if kind.starts_with("xox") => Token::Api {
                token: format!("{kind}-{secret}"),
                channel: host(url),
            },
            other => return Err(format!("unknown token type `{other}`; expected hook or xoxb")),
        };
        if let Token::Api { channel, .. } = &token {
            if channel.is_empty() {
                return Err("no channel: slack://xoxb:TOKEN@CHANNEL".into());
            }
        }
        (token, None, vec![secret])
    };
    Ok(Parsed {
        service: Box::new(Slack {
            token,
            botname: first(&query, &["botname", "username"]).or(botname),
            icon: first(&query, &["icon", "icon_emoji", "icon_url"]),
            color: first(&query, &["color"]),
            title: first(&query, &["title"]),
            thread_ts: first(&query, &["thread_ts"]),
        }),
        secrets,
    })
}

impl Slack {
    fn payload(&self, message: &Message) -> Value {
        let title = self.title.clone().unwrap_or_else(|| message.title());
        let color = self.color.clone().unwrap_or_else(|| message.level().color().into());
        let mut payload = json!({
            "text": title,
            "attachments": [{
                "fallback": title,
                "color": color,
                "text": message.text(),
            }],
        });
        let fields = [
            ("username", self.botname.clone()),
            ("thread_ts", self.thread_ts.clone()),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                payload[key] = json!(value);
            }
        }
        if let Some(icon) = &self.icon {
            let key = if icon.starts_with("http://") || icon.starts_with("https://") {
                "icon_url"
            } else {
                "icon_emoji"
            };
            payload[key] = json!(icon);
        }
        if let Token::Api { channel, .. } = &self.token {
            payload["channel"] = json!(channel);
        }
        payload
    }
}

impl Service for Slack {
    fn send<'a>(&'a self, http: &'a Http, message: &'a Message) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let payload = self.payload(message);
            match &self.token {
                Token::Webhook([a, b, c]) => {
                    let url = format!("https://hooks.slack.com/services/{a}/{b}/{c}");
                    let answer = http.post_json(&url, &payload, &[]).await?;
                    match answer.trim() {
                        "" | "ok" => Ok(()),
                        other => Err(format!("Slack answered {}", super::http::excerpt(other))),
                    }
                }
                Token::Api { token, .. } => {
                    let auth = format!("Bearer {token}");
                    let answer = http
                        .post_json(
                            "https://slack.com/api/chat.postMessage",
                            &payload,
                            &[("Authorization", &auth)],
                        )
                        .await?;
                    let answer: Value = serde_json::from_str(&answer)
                        .map_err(|_| format!("Slack answered {}", super::http::excerpt(&answer)))?;
                    if answer["ok"] == json!(true) {
                        Ok(())
                    } else {
                        Err(format!("Slack refused it: {}", answer["error"]))
                    }
                }
            }
        })
    }
}
