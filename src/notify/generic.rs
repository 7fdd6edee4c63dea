//! Any webhook: `generic://host/path` (HTTPS; `disabletls=yes` for HTTP),
//! `generic+https://host/path` and `generic+http://host/path`. The body is
//! JSON: the title, the text, the level and each event's fields. With
//! `secret=…` the body is signed, `X-Dockhook-Signature: sha256=<hex
//! HMAC-SHA256 of the body>`, so the receiver can trust it.
//!
//! Like shoutrrr: `@Name=value` adds a header, `$key=value` a field to the
//! JSON, `titlekey`/`messagekey` rename the title and text fields,
//! `contenttype` and `method` change those; other parameters are passed on
//! to the receiver (prefix a reserved name with `_` to pass it on).

use futures_util::future::BoxFuture;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Map, Value};
use sha2::Sha256;
use url::Url;

use super::url_parts::{first, password, yes};
use super::{http, Http, Message, Parsed, Service, ServiceKind};

pub const KIND: ServiceKind = ServiceKind {
    name: "generic",
    schemes: &["generic", "generic+https", "generic+http"],
    parse,
};

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Dockhook-Signature";
/// The header that carries the message's id (the same on every retry).
pub const DELIVERY_HEADER: &str = "X-Dockhook-Delivery";

/// Parameters dockhook reads itself rather than passing them on.
const RESERVED: [&str; 7] = [
    "secret",
    "disabletls",
    "titlekey",
    "messagekey",
    "contenttype",
    "method",
    "template",
];

struct Generic {
    /// Where to send, with the parameters passed on.
    target: Url,
    method: Method,
    content_type: String,
    title_key: String,
    message_key: String,
    secret: Option<String>,
    headers: Vec<(String, String)>,
    fields: Vec<(String, String)>,
}

fn parse(url: &Url) -> Result<Parsed, String> {
    let query = super::url_parts::query(url);
    let scheme = match url.scheme() {
        "generic+http" => "http",
        "generic+https" => "https",
        _ if yes(&query, "disabletls", false)? => "http",
        _ => "https",
    };
    // The url crate refuses to change a non-special scheme into a special
    // one, so the target is made anew from the text.
    let rest = &url.as_str()[url.scheme().len()..];
    let mut target = Url::parse(&format!("{scheme}{rest}")).map_err(|e| format!("bad URL: {e}"))?;
    if target.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    let mut passed = Vec::new();
    let mut headers = Vec::new();
    let mut fields = Vec::new();
    for (key, value) in url.query_pairs() {
        let (key, value) = (key.into_owned(), value.into_owned());
        if let Some(name) = key.strip_prefix('@') {
            headers.push((header_name(name), value));
        } else if let Some(name) = key.strip_prefix('$') {
            fields.push((name.to_string(), value));
        } else if RESERVED.contains(&key.to_ascii_lowercase().as_str()) {
            continue;
        } else if let Some(name) = key.strip_prefix('_') {
            passed.push((name.to_string(), value));
        } else {
            passed.push((key, value));
        }
    }
    if passed.is_empty() {
        target.set_query(None);
    } else {
        target.query_pairs_mut().clear().extend_pairs(&passed);
    }
    let method = first(&query, &["method"]).unwrap_or_else(|| "POST".into());
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("`method` {method:?} is not an HTTP method"))?;
    let secret = first(&query, &["secret"]);
    let secrets = secret.iter().cloned().chain([password(url)]).collect();
    Ok(Parsed {
        service: Box::new(Generic {
            target,
            method,
            content_type: first(&query, &["contenttype"])
                .unwrap_or_else(|| "application/json".into()),
            title_key: first(&query, &["titlekey"]).unwrap_or_else(|| "title".into()),
            message_key: first(&query, &["messagekey"]).unwrap_or_else(|| "message".into()),
            secret,
            headers,
            fields,
        }),
        secrets,
    })
}

/// `acceptLanguage` → `Accept-Language`, as shoutrrr writes header names.
fn header_name(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 && !out.ends_with('-') {
            out.push('-');
        }
        if i == 0 || out.ends_with('-') {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `sha256=<hex>` of `body` under `secret`: what [`SIGNATURE_HEADER`] carries.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", super::hex(&mac.finalize().into_bytes()))
}

impl Generic {
    fn body(&self, message: &Message) -> Vec<u8> {
        let mut body = Map::new();
        body.insert("id".into(), json!(message.id));
        body.insert(self.title_key.clone(), json!(message.title()));
        body.insert(self.message_key.clone(), json!(message.text()));
        body.insert("level".into(), json!(message.level()));
        body.insert("events".into(), json!(message.notice.items));
        for (key, value) in &self.fields {
            body.insert(key.clone(), Value::String(value.clone()));
        }
        serde_json::to_vec(&Value::Object(body)).expect("JSON serialises")
    }
}

impl Service for Generic {
    fn send<'a>(&'a self, http: &'a Http, message: &'a Message) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let body = self.body(message);
            let mut request = http
                .request(self.method.clone(), self.target.as_str())?
                .header("Content-Type", &self.content_type)
                .header(DELIVERY_HEADER, message.id.to_string());
            for (name, value) in &self.headers {
                request = request.header(name.as_str(), value.as_str());
            }
            if let Some(secret) = &self.secret {
                request = request.header(SIGNATURE_HEADER, signature(secret, &body));
            }
            http::send(request.body(body)).await.map(drop)
        })
    }
}
