//! Google Chat: `googlechat://chat.googleapis.com/v1/spaces/FOO/messages?key=KEY&token=TOKEN`,
//! the incoming webhook's URL with `https` replaced by `googlechat`
//! (`hangouts://` too, as shoutrrr still takes it).

use futures_util::future::BoxFuture;
use serde_json::json;
use url::Url;

use super::url_parts::{first, host, query};
use super::{Http, Message, Parsed, Service, ServiceKind};

pub const KIND: ServiceKind = ServiceKind {
    name: "googlechat",
    schemes: &["googlechat", "hangouts"],
    parse,
};

struct GoogleChat {
    webhook: String,
}

fn parse(url: &Url) -> Result<Parsed, String> {
    let query = query(url);
    let key = first(&query, &["key"]).ok_or("no `key` parameter")?;
    let token = first(&query, &["token"]).ok_or("no `token` parameter")?;
    let server = host(url);
    if server.is_empty() || url.path().len() <= 1 {
        return Err("expected googlechat://chat.googleapis.com/v1/spaces/…/messages?key=…&token=…".into());
    }
    let mut webhook = Url::parse(&format!("https://{server}{}", url.path()))
        .map_err(|e| format!("bad URL: {e}"))?;
    webhook
        .query_pairs_mut()
        .append_pair("key", &key)
        .append_pair("token", &token);
    Ok(Parsed {
        service: Box::new(GoogleChat {
            webhook: webhook.into(),
        }),
        secrets: vec![key, token],
    })
}

impl Service for GoogleChat {
    fn send<'a>(&'a self, http: &'a Http, message: &'a Message) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let payload = json!({ "text": format!("*{}*\n{}", message.title(), message.text()) });
            http.post_json(&self.webhook, &payload, &[]).await.map(drop)
        })
    }
}
