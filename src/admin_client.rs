//! What the admin commands (`switchyard keys`, `switchyard audit`) share: the gateway's address,
//! the admin token, and one call of its admin API.

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;

#[derive(Args)]
pub struct AdminConn {
    /// The gateway to talk to.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// The admin token (the one whose hash is `[admin] token_hash`).
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
}

impl AdminConn {
    /// `method path` with an optional JSON body; the answer's JSON, or the gateway's error
    /// message.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let token = self
            .admin_token
            .as_deref()
            .context("the admin token is required: --admin-token or SWITCHYARD_ADMIN_TOKEN")?;
        let base = self.url.trim_end_matches('/');
        let mut req = reqwest::Client::new()
            .request(method, format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {base}"))?;
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .with_context(|| format!("the gateway answered {status} without JSON"))?;
        if !status.is_success() {
            bail!(
                "{status}: {}",
                v["error"]["message"].as_str().unwrap_or("(no message)")
            );
        }
        Ok(v)
    }
}

/// `s` as one URL query value or path segment.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
