//! Microsoft Teams: `teams://GROUP@TENANT/ALT_ID/GROUP_OWNER?host=ORG.webhook.office.com`,
//! the parts of the incoming webhook
//! `https://ORG.webhook.office.com/webhookb2/GROUP@TENANT/IncomingWebhook/ALT_ID/GROUP_OWNER`.
//! Parameters: `host` (default the legacy `outlook.office.com`), `title`,
//! `color`.

use futures_util::future::BoxFuture;
use serde_json::json;
use url::Url;

use super::url_parts::{first, host, query, segments, user};
use super::{Http, Message, Parsed, Service, ServiceKind};

pub const KIND: ServiceKind = ServiceKind {
    name: "teams",
    schemes: &["teams"],
    parse,
};

const LEGACY_HOST: &str = "outlook.office.com";

struct Teams {
    /// The webhook's URL.
    webhook: String,
    title: Option<String>,
    color: Option<String>,
}

fn parse(url: &Url) -> Result<Parsed, String> {
    let query = query(url);
    let (group, tenant) = (user(url), host(url));
    let (alt_id, owner) = match segments(url).as_slice() {
        [alt_id, owner] => (alt_id.clone(), owner.clone()),
        _ => return Err("expected teams://GROUP@TENANT/ALT_ID/GROUP_OWNER?host=…".into()),
    };
    if group.is_empty() || tenant.is_empty() {
        return Err("expected teams://GROUP@TENANT/ALT_ID/GROUP_OWNER?host=…".into());
    }
    let server = first(&query, &["host"]).unwrap_or_else(|| LEGACY_HOST.into());
    let path = if server == LEGACY_HOST { "webhook" } else { "webhookb2" };
    let webhook =
        format!("https://{server}/{path}/{group}@{tenant}/IncomingWebhook/{alt_id}/{owner}");
    Ok(Parsed {
        service: Box::new(Teams {
            webhook,
            title: first(&query, &["title"]),
            color: first(&query, &["color"]),
        }),
        secrets: vec![group, tenant, alt_id, owner],
    })
}

impl Service for Teams {
    fn send<'a>(&'a self, http: &'a Http, message: &'a Message) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let title = self.title.clone().unwrap_or_else(|| message.title());
            let color = self
                .color
                .clone()
                .unwrap_or_else(|| message.level().color().trim_start_matches('#').into());
            // A MessageCard section per line keeps the lines apart.
            let sections: Vec<_> = message
                .text()
                .lines()
                .map(|line| json!({ "text": line.replace('\t', "    ") }))
                .collect();
            let payload = json!({
                "@type": "MessageCard",
                "@context": "http://schema.org/extensions",
                "summary": title,
                "title": title,
                "themeColor": color,
                "markdown": false,
                "sections": sections,
            });
            http.post_json(&self.webhook, &payload, &[]).await.map(drop)
        })
    }
}
