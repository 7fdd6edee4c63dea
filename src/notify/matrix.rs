//! Matrix: `matrix://USER:PASSWORD@HOST[:PORT]/?rooms=!ROOM_ID,#alias:server`
//! (`matrix://:ACCESS_TOKEN@HOST` with a token instead of a login).
//! Without `rooms`, every room the user has joined. `disableTLS=yes` for a
//! server without TLS. With a password, each send logs in and out again.

use futures_util::future::BoxFuture;
use reqwest::Method;
use serde_json::{json, Value};
use url::Url;

use super::url_parts::{host, list, password, query, user, yes};
use super::{http, Http, Message, Parsed, Service, ServiceKind};

pub const KIND: ServiceKind = ServiceKind {
    name: "matrix",
    schemes: &["matrix"],
    parse,
};

const API: &str = "/_matrix/client/v3";

struct Matrix {
    server: String,
    user: String,
    password: String,
    rooms: Vec<String>,
}

fn parse(url: &Url) -> Result<Parsed, String> {
    let query = query(url);
    let secret = password(url);
    let server = host(url);
    if secret.is_empty() || server.is_empty() {
        return Err("expected matrix://USER:PASSWORD@HOST/?rooms=… or matrix://:TOKEN@HOST".into());
    }
    let scheme = if yes(&query, "disabletls", false)? { "http" } else { "https" };
    let rooms = list(&query, &["rooms", "room"])
        .into_iter()
        .map(|room| {
            if room.starts_with('!') || room.starts_with('#') {
                room
            } else {
                format!("#{room}")
            }
        })
        .collect();
    Ok(Parsed {
        service: Box::new(Matrix {
            server: format!("{scheme}://{server}"),
            user: user(url),
            password: secret.clone(),
            rooms,
        }),
        secrets: vec![secret],
    })
}

/// A path segment, percent-encoded (room IDs and aliases hold `!`, `#`, `:`).
fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Matrix {
    async fn call(
        &self,
        http: &Http,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut request = http.request(method, &format!("{}{API}{path}", self.server))?;
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = http::send(request).await?;
        serde_json::from_str(&answer)
            .map_err(|_| format!("the server answered {}", http::excerpt(&answer)))
    }

    async fn deliver(&self, http: &Http, token: &str, message: &Message) -> Result<(), String> {
        let rooms: Vec<String> = if self.rooms.is_empty() {
            let joined = self.call(http, Method::GET, "/joined_rooms", Some(token), None).await?;
            joined["joined_rooms"]
                .as_array()
                .map(|rooms| rooms.iter().filter_map(|r| r.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        } else {
            let mut ids = Vec::new();
            for room in &self.rooms {
                let path = format!("/join/{}", segment(room));
                let joined = self.call(http, Method::POST, &path, Some(token), Some(json!({}))).await
                    .map_err(|e| format!("cannot join {room}: {e}"))?;
                ids.push(joined["room_id"].as_str().unwrap_or(room).to_string());
            }
            ids
        };
        if rooms.is_empty() {
            return Err("the user is in no room; name one with `rooms`".into());
        }
        let body = json!({ "msgtype": "m.text", "body": message.plain() });
        for room in rooms {
            let txn = format!("dockhook.{}.{}", message.id, crate::timing::now());
            let path = format!("/rooms/{}/send/m.room.message/{txn}", segment(&room));
            self.call(http, Method::PUT, &path, Some(token), Some(body.clone()))
                .await
                .map_err(|e| format!("room {room}: {e}"))?;
        }
        Ok(())
    }
}

impl Service for Matrix {
    fn send<'a>(&'a self, http: &'a Http, message: &'a Message) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if self.user.is_empty() {
                return self.deliver(http, &self.password, message).await;
            }
            let login = json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": self.user },
                "password": self.password,
                "initial_device_display_name": "dockhook",
            });
            let session = self.call(http, Method::POST, "/login", None, Some(login)).await
                .map_err(|e| format!("cannot log in: {e}"))?;
            let token = session["access_token"]
                .as_str()
                .ok_or("the login answer has no access token")?
                .to_string();
            let sent = self.deliver(http, &token, message).await;
            // The session (a device) is not needed again.
            let _ = self.call(http, Method::POST, "/logout", Some(&token), Some(json!({}))).await;
            sent
        })
    }
}
