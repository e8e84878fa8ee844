//! `vault` references: HashiCorp Vault's KV version 2 read API, `GET
//! {addr}/v1/{mount}/data/{path}` with `X-Vault-Token` (and `X-Vault-Namespace`), answered with
//! `{"data":{"data":{field: value, …},"metadata":{"version":N,…}}}`. The token is read from its
//! `env`/`file` reference at every fetch. Failures name the mount, path and field and quote
//! Vault's `errors` list; a body is never quoted, nor serde's reading of it (which can quote
//! values).

use reqwest::header::HeaderValue;
use serde::Deserialize;
use std::collections::HashMap;

use super::credential::Fetched;
use super::{FetchError, local};
use crate::config::{Secret, SecretRef};

/// A KV v2 read answer; only what the gateway reads.
#[derive(Deserialize)]
struct Read {
    data: Option<Versioned>,
    #[serde(default)]
    errors: Vec<String>,
}

#[derive(Deserialize)]
struct Versioned {
    /// `null` when the version was deleted or destroyed.
    data: Option<HashMap<String, serde_json::Value>>,
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    version: Option<u64>,
    #[serde(default)]
    deletion_time: String,
    #[serde(default)]
    destroyed: bool,
}

/// The most of Vault's `errors` quoted in a failure.
const QUOTED_ERROR_CHARS: usize = 200;

pub async fn fetch(
    http: &reqwest::Client,
    url: &reqwest::Url,
    token: &SecretRef,
    namespace: Option<&str>,
    field: &str,
    at: &str,
) -> Result<Fetched, FetchError> {
    let fail = |reason: String| FetchError::Vault {
        at: at.to_owned(),
        reason,
    };
    let token = local(token)
        .await
        .map_err(|e| fail(format!("the token: {e}")))?;
    let mut token = HeaderValue::from_str(token.expose())
        .map_err(|_| fail("the token is not a valid header value".to_owned()))?;
    token.set_sensitive(true);
    let mut request = http.get(url.clone()).header("x-vault-token", token);
    if let Some(ns) = namespace {
        request = request.header("x-vault-namespace", ns);
    }
    let (status, body) = super::answer(request.send()).await.map_err(fail)?;
    read(status, &body, field).map_err(fail)
}

/// The value of `field` in a KV v2 answer with `status`, or why there is none.
fn read(status: u16, body: &[u8], field: &str) -> Result<Fetched, String> {
    let parsed = serde_json::from_slice::<Read>(body);
    let said = match &parsed {
        Ok(r) if !r.errors.is_empty() => {
            let joined = r.errors.join("; ");
            format!(
                ": {}",
                joined.chars().take(QUOTED_ERROR_CHARS).collect::<String>()
            )
        }
        _ => String::new(),
    };
    match status {
        200 => {}
        403 => return Err(format!("Vault refused the token (403){said}")),
        404 => {
            let deleted = parsed
                .as_ref()
                .ok()
                .and_then(|r| r.data.as_ref()?.metadata.as_ref())
                .filter(|m| m.destroyed || !m.deletion_time.is_empty());
            return Err(match deleted.and_then(|m| m.version) {
                Some(v) => format!("its current version ({v}) is deleted"),
                None => format!("no secret there (404){said}"),
            });
        }
        s => return Err(format!("Vault answered {s}{said}")),
    }
    let read = parsed.map_err(|e| {
        format!(
            "the answer is not KV v2 JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let versioned = read
        .data
        .ok_or("the answer has no `data`: is the mount a KV version 2 engine?")?;
    let version = versioned.metadata.and_then(|m| m.version);
    let data = versioned.data.ok_or_else(|| match version {
        Some(v) => format!("its current version ({v}) is deleted"),
        None => "its current version is deleted".to_owned(),
    })?;
    let value = match data.get(field) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(format!("the field {field:?} is not a string")),
        None => return Err(format!("the secret has no field {field:?}")),
    };
    Ok(Fetched {
        value: Secret::new(value),
        version: version.map(|v| v.to_string()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_field_of_the_latest_version() {
        let body = br#"{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,
            "data":{"data":{"api_key":"sk-vault-1","n":3},
                    "metadata":{"created_time":"2018-03-22T02:24:06.945319214Z","custom_metadata":null,
                                "deletion_time":"","destroyed":false,"version":2}},
            "wrap_info":null,"warnings":null,"auth":null}"#;
        let f = read(200, body, "api_key").unwrap();
        assert_eq!(f.value.expose(), "sk-vault-1");
        assert_eq!(f.version.as_deref(), Some("2"));
        assert_eq!(
            read(200, body, "n").unwrap_err(),
            "the field \"n\" is not a string"
        );
        assert_eq!(
            read(200, body, "x").unwrap_err(),
            "the secret has no field \"x\""
        );
    }

    #[test]
    fn failures_say_what_vault_said_and_never_quote_a_body() {
        let denied = read(403, br#"{"errors":["permission denied"]}"#, "f").unwrap_err();
        assert_eq!(denied, "Vault refused the token (403): permission denied");
        assert_eq!(
            read(404, br#"{"errors":[]}"#, "f").unwrap_err(),
            "no secret there (404)"
        );
        let deleted = br#"{"data":{"data":null,"metadata":{"deletion_time":"2018-03-22T02:24:06Z","destroyed":false,"version":5}}}"#;
        assert_eq!(
            read(404, deleted, "f").unwrap_err(),
            "its current version (5) is deleted"
        );
        assert_eq!(
            read(503, br#"{"errors":["Vault is sealed"]}"#, "f").unwrap_err(),
            "Vault answered 503: Vault is sealed"
        );
        let garbled = read(200, br#"{"data":{"data":{"f":"sk-secret-9"}"#, "f").unwrap_err();
        assert!(
            garbled.starts_with("the answer is not KV v2 JSON"),
            "{garbled}"
        );
        let mistyped = read(200, br#"{"data":"sk-secret-9"}"#, "f").unwrap_err();
        assert!(!mistyped.contains("sk-secret-9"), "{mistyped}");
    }
}
