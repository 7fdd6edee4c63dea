//! Registry credentials from a Docker client configuration (`config.json`),
//! as `docker login` writes it, so dockhook pulls from private registries
//! with the logins the host already has.
//!
//! Only inline `auths` entries are supported: a `credsStore` or
//! `credHelpers` entry names a program to run, and dockhook runs no program
//! on the host, so such a registry is reported as unsupported. The file is
//! read at each pull, so a new `docker login` applies without a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

/// A login for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({}, ****)", self.username)
    }
}

/// What the configuration says about one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Login),
    /// The registry's login is kept by a credential helper.
    Unsupported(String),
    NotFound,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read Docker credentials from {path}: {message}")]
    Read { path: PathBuf, message: String },
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(rename = "credHelpers", default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// Looks up the login for `registry` (`host[:port]`, `docker.io` for Docker
/// Hub) in the `config.json` under `dir`. A missing file means no logins.
pub fn lookup(dir: &Path, registry: &str) -> Result<Lookup, CredentialsError> {
    let path = dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::NotFound),
        Err(e) => {
            return Err(CredentialsError::Read {
                path,
                message: e.to_string(),
            })
        }
    };
    let read_error = |message: String| CredentialsError::Read {
        path: path.clone(),
        message,
    };
    let config: ConfigFile =
        serde_json::from_str(&text).map_err(|e| read_error(format!("not valid JSON: {e}")))?;
    find(&config, registry).map_err(read_error)
}

fn find(config: &ConfigFile, registry: &str) -> Result<Lookup, String> {
    let wanted = normalise(registry);
    if let Some(helper) = config
        .cred_helpers
        .iter()
        .find(|(host, _)| normalise(host) == wanted)
        .map(|(_, helper)| helper)
    {
        return Ok(Lookup::Unsupported(format!(
            "the login for {registry} is kept by credential helper docker-credential-{helper}, \
             which dockhook does not run; add it to \"auths\" instead"
        )));
    }
    let Some(entry) = config
        .auths
        .iter()
        .find(|(host, _)| normalise(host) == wanted)
        .map(|(_, entry)| entry)
    else {
        return Ok(match &config.creds_store {
            Some(store) => Lookup::Unsupported(format!(
                "logins are kept by credential store docker-credential-{store}, which dockhook \
                 does not run; add {registry} to \"auths\" instead"
            )),
            None => Lookup::NotFound,
        });
    };
    if entry
        .identitytoken
        .as_deref()
        .is_some_and(|t| !t.is_empty())
    {
        return Ok(Lookup::Unsupported(format!(
            "the login for {registry} is an identity token, which dockhook does not support"
        )));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Lookup::Found(Login {
            username: username.clone(),
            password: password.clone(),
        }));
    }
    let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(Lookup::NotFound);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| format!("the auth of {registry} is not base64: {e}"))?;
    let decoded =
        String::from_utf8(decoded).map_err(|_| format!("the auth of {registry} is not text"))?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| format!("the auth of {registry} is not user:password"))?;
    Ok(Lookup::Found(Login {
        username: username.to_string(),
        password: password.to_string(),
    }))
}

/// `https://index.docker.io/v1/` and `docker.io` are one registry, and so
/// are `http://127.0.0.1:5000/v2/` and `127.0.0.1:5000`.
fn normalise(host: &str) -> String {
    let host = host
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> ConfigFile {
        serde_json::from_str(json).unwrap()
    }

    fn login(user: &str, password: &str) -> Lookup {
        Lookup::Found(Login {
            username: user.into(),
            password: password.into(),
        })
    }

    #[test]
    fn inline_auth_is_decoded_for_the_matching_host() {
        // "alice:s3cr:et" — a password may contain a colon.
        let c = config(
            r#"{"auths": {
                "http://127.0.0.1:5000/v2/": {"auth": "YWxpY2U6czNjcjpldA=="},
                "https://index.docker.io/v1/": {"username": "bob", "password": "pw"}
            }}"#,
        );
        assert_eq!(
            find(&c, "127.0.0.1:5000").unwrap(),
            login("alice", "s3cr:et")
        );
        assert_eq!(find(&c, "docker.io").unwrap(), login("bob", "pw"));
        assert_eq!(find(&c, "ghcr.io").unwrap(), Lookup::NotFound);
    }

    #[test]
    fn helpers_are_reported_as_unsupported() {
        let c =
            config(r#"{"auths": {}, "credsStore": "desktop", "credHelpers": {"ghcr.io": "gh"}}"#);
        assert!(
            matches!(find(&c, "ghcr.io").unwrap(), Lookup::Unsupported(m) if m.contains("docker-credential-gh"))
        );
        assert!(
            matches!(find(&c, "quay.io").unwrap(), Lookup::Unsupported(m) if m.contains("docker-credential-desktop"))
        );
        let c = config(r#"{"auths": {"quay.io": {"identitytoken": "t"}}}"#);
        assert!(matches!(
            find(&c, "quay.io").unwrap(),
            Lookup::Unsupported(_)
        ));
    }

    #[test]
    fn bad_entries_are_errors_that_name_the_registry() {
        for auth in ["%%%", "bm9jb2xvbg=="] {
            let c = config(&format!(
                r#"{{"auths": {{"r.example.com": {{"auth": "{auth}"}}}}}}"#
            ));
            let error = find(&c, "r.example.com").unwrap_err();
            assert!(error.contains("r.example.com"), "{error}");
        }
    }

    #[test]
    fn files_missing_or_broken() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(lookup(dir.path(), "docker.io").unwrap(), Lookup::NotFound);
        std::fs::write(dir.path().join("config.json"), "{").unwrap();
        let error = lookup(dir.path(), "docker.io").unwrap_err().to_string();
        assert!(
            error.contains("config.json") && error.contains("not valid JSON"),
            "{error}"
        );
        assert_eq!(
            format!(
                "{:?}",
                Login {
                    username: "u".into(),
                    password: "secret".into()
                }
            ),
            "Login(u, ****)"
        );
    }
}
