//! E-mail: `smtp://[USER:PASSWORD@]HOST[:PORT]/?from=ADDRESS&to=ADDRESS[,ADDRESS…]`,
//! sent with lettre. Parameters: `from` (or `fromaddress`), `fromname`,
//! `to` (or `toaddresses`), `subject` (or `title`; by default the message's
//! title), `encryption=None|ExplicitTLS|ImplicitTLS|Auto` (Auto: implicit
//! TLS on port 465, else STARTTLS when the server offers it),
//! `usestarttls=no` (under Auto: never STARTTLS),
//! `auth=None|Plain|Login|OAuth2|Unknown` (Unknown: whichever the server
//! offers; CRAMMD5 is not supported), `clienthost` (the HELO name). The
//! port defaults to 25.

use std::time::Duration;

use futures_util::future::BoxFuture;
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use url::Url;

use super::url_parts::{first, list, password, query, user, yes};
use super::{Http, Message, Parsed, Service, ServiceKind};

pub const KIND: ServiceKind = ServiceKind {
    name: "smtp",
    schemes: &["smtp"],
    parse,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encryption {
    None,
    ExplicitTls,
    ImplicitTls,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    None,
    /// Whatever the server offers (PLAIN or LOGIN).
    Unknown,
    Mechanism(Mechanism),
}

struct Smtp {
    host: String,
    port: u16,
    user: String,
    password: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject: Option<String>,
    encryption: Encryption,
    starttls: bool,
    auth: Auth,
    client_host: Option<String>,
}

fn mailbox(address: &str, name: Option<String>) -> Result<Mailbox, String> {
    let address = address.replace(' ', "+");
    let parsed = address
        .parse()
        .map_err(|e| format!("{address:?} is not an e-mail address: {e}"))?;
    Ok(Mailbox::new(name, parsed))
}

fn parse(url: &Url) -> Result<Parsed, String> {
    let query = query(url);
    let host = url.host_str().unwrap_or_default().to_string();
    if host.is_empty() {
        return Err("no host: smtp://[USER:PASSWORD@]HOST[:PORT]/?from=…&to=…".into());
    }
    let from = first(&query, &["from", "fromaddress"]).ok_or("no `from` address")?;
    let to = list(&query, &["to", "toaddresses"]);
    if to.is_empty() {
        return Err("no `to` address".into());
    }
    let encryption = match first(&query, &["encryption"]).map(|e| e.to_ascii_lowercase()).as_deref() {
        None | Some("auto") => Encryption::Auto,
        Some("none") => Encryption::None,
        Some("explicittls") => Encryption::ExplicitTls,
        Some("implicittls") => Encryption::ImplicitTls,
        Some(other) => {
            return Err(format!(
                "encryption {other:?}: expected None, ExplicitTLS, ImplicitTLS or Auto"
            ))
        }
    };
    let auth = match first(&query, &["auth"]).map(|a| a.to_ascii_lowercase()).as_deref() {
        None | Some("unknown") => Auth::Unknown,
        Some("none") => Auth::None,
        Some("plain") => Auth::Mechanism(Mechanism::Plain),
        Some("login") => Auth::Mechanism(Mechanism::Login),
        Some("oauth2") => Auth::Mechanism(Mechanism::Xoauth2),
        Some("crammd5") => return Err("auth CRAMMD5 is not supported: use Plain or Login".into()),
        Some(other) => {
            return Err(format!("auth {other:?}: expected None, Plain, Login, OAuth2 or Unknown"))
        }
    };
    let secret = password(url);
    Ok(Parsed {
        service: Box::new(Smtp {
            host,
            port: url.port().unwrap_or(25),
            user: user(url),
            password: secret.clone(),
            from: mailbox(&from, first(&query, &["fromname"]))?,
            to: to.iter().map(|a| mailbox(a, None)).collect::<Result<_, _>>()?,
            subject: first(&query, &["subject", "title"]),
            encryption,
            starttls: yes(&query, "usestarttls", true)? && yes(&query, "starttls", true)?,
            auth,
            client_host: first(&query, &["clienthost"]),
        }),
        secrets: vec![secret],
    })
}

impl Smtp {
    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let tls = || {
            TlsParameters::new(self.host.clone()).map_err(|e| format!("cannot set up TLS: {e}"))
        };
        let tls = match self.encryption {
            Encryption::None => Tls::None,
            Encryption::ExplicitTls => Tls::Required(tls()?),
            Encryption::ImplicitTls => Tls::Wrapper(tls()?),
            Encryption::Auto if self.port == 465 => Tls::Wrapper(tls()?),
            Encryption::Auto if self.starttls => Tls::Opportunistic(tls()?),
            Encryption::Auto => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(20)));
        if let Some(name) = &self.client_host {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        let has_credentials = !self.user.is_empty() || !self.password.is_empty();
        match self.auth {
            Auth::None => {}
            _ if !has_credentials => {}
            Auth::Unknown => {
                builder = builder
                    .credentials(Credentials::new(self.user.clone(), self.password.clone()));
            }
            Auth::Mechanism(mechanism) => {
                builder = builder
                    .credentials(Credentials::new(self.user.clone(), self.password.clone()))
                    .authentication(vec![mechanism]);
            }
        }
        Ok(builder.build())
    }
}

impl Service for Smtp {
    fn send<'a>(&'a self, _: &'a Http, message: &'a Message) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut mail = lettre::Message::builder()
                .from(self.from.clone())
                .subject(self.subject.clone().unwrap_or_else(|| message.title()))
                .header(ContentType::TEXT_PLAIN);
            for to in &self.to {
                mail = mail.to(to.clone());
            }
            let mail = mail
                .body(message.text())
                .map_err(|e| format!("cannot make the e-mail: {e}"))?;
            self.transport()?
                .send(mail)
                .await
                .map(drop)
                .map_err(|e| format!("SMTP: {e}"))
        })
    }
}
