//! `switchyard keys …`: the admin key API of a running gateway, from the command line.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use crate::admin_client::{AdminConn, urlencode};

#[derive(Args)]
pub struct KeysCmd {
    #[command(flatten)]
    conn: AdminConn,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Issue a key; prints it once (it cannot be shown again).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        project: Option<String>,
        /// A model the key may call (repeat; none: every model).
        #[arg(long = "model")]
        models: Vec<String>,
        /// Lifetime, e.g. `15m`, `24h`.
        #[arg(long, conflicts_with = "expires_at")]
        ttl: Option<String>,
        /// Expiry as RFC 3339, e.g. `2026-12-31T00:00:00Z`.
        #[arg(long)]
        expires_at: Option<String>,
        /// A budget as PERIOD=AMOUNT, with optional alert thresholds: `daily=5.00`,
        /// `monthly=100@50,80` (repeat).
        #[arg(long = "budget")]
        budgets: Vec<String>,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens per minute.
        #[arg(long)]
        tpm: Option<u64>,
        /// Metadata as KEY=VALUE (repeat).
        #[arg(long = "meta")]
        metadata: Vec<String>,
    },
    /// List keys (never their secrets).
    List {
        /// Only keys with this status: active, expired or revoked.
        #[arg(long)]
        status: Option<String>,
    },
    /// Show one key.
    Show { id: String },
    /// Give a key a new secret; the old one keeps working for the grace period.
    Rotate {
        id: String,
        /// e.g. `1h`; `0s` ends the old secret at once (default: `[admin] rotation_grace`).
        #[arg(long)]
        grace: Option<String>,
    },
    /// Revoke a key everywhere, for good.
    Revoke {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

/// `daily=5.00` or `monthly=100@50,80`.
fn budget(spec: &str) -> Result<Value> {
    let (period, rest) = spec
        .split_once('=')
        .with_context(|| format!("--budget {spec:?}: expected PERIOD=AMOUNT[@PCT,PCT…]"))?;
    let (amount, alerts) = rest.split_once('@').unwrap_or((rest, ""));
    let alerts: Vec<u8> = alerts
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse::<u8>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--budget {spec:?}: alert thresholds are whole percentages"))?;
    Ok(json!({"period": period, "limit": amount, "alert_at_percent": alerts}))
}

impl KeysCmd {
    pub async fn run(self) -> Result<()> {
        let (method, path, body) = match self.action {
            Action::Create {
                name,
                user,
                team,
                project,
                models,
                ttl,
                expires_at,
                budgets,
                rpm,
                tpm,
                metadata,
            } => {
                let mut meta = Map::new();
                for m in metadata {
                    let (k, v) = m
                        .split_once('=')
                        .with_context(|| format!("--meta {m:?}: expected KEY=VALUE"))?;
                    meta.insert(k.to_owned(), json!(v));
                }
                let mut body = json!({
                    "name": name, "user": user, "team": team, "project": project,
                    "models": models, "ttl": ttl, "expires_at": expires_at,
                    "budgets": budgets.iter().map(|b| budget(b)).collect::<Result<Vec<_>>>()?,
                    "metadata": meta,
                });
                if rpm.is_some() || tpm.is_some() {
                    body["rate_limit"] =
                        json!({"requests_per_minute": rpm, "tokens_per_minute": tpm});
                }
                (reqwest::Method::POST, "/admin/keys".to_owned(), Some(body))
            }
            Action::List { status } => {
                let q = status.map(|s| format!("?status={s}")).unwrap_or_default();
                (reqwest::Method::GET, format!("/admin/keys{q}"), None)
            }
            Action::Show { id } => (reqwest::Method::GET, format!("/admin/keys/{id}"), None),
            Action::Rotate { id, grace } => (
                reqwest::Method::POST,
                format!("/admin/keys/{id}/rotate"),
                Some(json!({"grace": grace})),
            ),
            Action::Revoke { id, reason } => {
                let q = reason
                    .map(|r| format!("?reason={}", urlencode(&r)))
                    .unwrap_or_default();
                (
                    reqwest::Method::DELETE,
                    format!("/admin/keys/{id}{q}"),
                    None,
                )
            }
        };
        let v = self.conn.call(method, &path, body).await?;
        if v["object"] == "list" {
            print_table(&v);
        } else {
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Ok(())
    }
}

fn print_table(v: &Value) {
    let rows = v["data"].as_array().cloned().unwrap_or_default();
    let cell = |r: &Value, k: &str| r[k].as_str().unwrap_or("-").to_owned();
    println!(
        "{:<26}  {:<20}  {:<8}  {:<12}  {:<12}  EXPIRES",
        "ID", "NAME", "STATUS", "USER", "TEAM"
    );
    for r in &rows {
        println!(
            "{:<26}  {:<20}  {:<8}  {:<12}  {:<12}  {}",
            cell(r, "id"),
            cell(r, "name"),
            cell(r, "status"),
            cell(r, "user"),
            cell(r, "team"),
            cell(r, "expires_at"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_specs() {
        assert_eq!(
            budget("monthly=100@50,80").unwrap(),
            json!({"period": "monthly", "limit": "100", "alert_at_percent": [50, 80]})
        );
        assert_eq!(budget("daily=5.00").unwrap()["alert_at_percent"], json!([]));
        assert!(budget("daily").is_err() && budget("daily=1@x").is_err());
        assert_eq!(urlencode("a b/é"), "a%20b%2F%C3%A9");
    }
}
