//! `switchyard audit …`: search the audit history of a running gateway. A table on a
//! terminal; one JSON record per line when piped (for `jq` and friends).

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::io::IsTerminal;

use crate::admin_client::{AdminConn, urlencode};

#[derive(Args)]
pub struct AuditCmd {
    #[command(flatten)]
    conn: AdminConn,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Search the audit history, newest first.
    Search(Box<SearchArgs>),
    /// Show one request's whole record.
    Show { request_id: String },
    /// Recompute the audit chain from the stream and compare it with the index and the
    /// anchors; list every record altered, removed or inserted. Exits 1 when anything is wrong.
    Verify {
        /// First stream sequence to check (default: the stream's first).
        #[arg(long)]
        from: Option<u64>,
        /// Last stream sequence to check (default: the stream's last).
        #[arg(long)]
        to: Option<u64>,
    },
}

#[derive(Args)]
struct SearchArgs {
    /// Full-text query over prompts, answers and error messages (tantivy syntax:
    /// `refund AND invoice`, `"exact phrase"`, `model:gpt-4o`).
    query: Option<String>,
    #[arg(long)]
    key: Option<String>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    team: Option<String>,
    #[arg(long)]
    project: Option<String>,
    /// The model as requested.
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    provider: Option<String>,
    /// `completed`, `rejected`, `incomplete` or `admin`.
    #[arg(long)]
    outcome: Option<String>,
    /// Admin records: `key_issued`, `key_rotated`, `key_revoked`, `key_expired`, `limits_set`.
    #[arg(long)]
    action: Option<String>,
    /// Requests in which this guardrail detector found something (`email`, `openai_key`).
    #[arg(long)]
    guardrail: Option<String>,
    /// Error class (`upstream_5xx`) or refusal code (`invalid_api_key`).
    #[arg(long)]
    error: Option<String>,
    /// `chat_completions`, `embeddings` or `messages`.
    #[arg(long)]
    surface: Option<String>,
    #[arg(long)]
    status: Option<u16>,
    /// From this time on (RFC 3339 or ms since the epoch).
    #[arg(long)]
    from: Option<String>,
    /// Before this time.
    #[arg(long)]
    to: Option<String>,
    /// Oldest first.
    #[arg(long)]
    oldest: bool,
    /// Records to print (follows the pages up to this many).
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

/// Records fetched per page.
const PAGE: usize = 500;

impl AuditCmd {
    pub async fn run(self) -> Result<()> {
        let tty = std::io::stdout().is_terminal();
        match self.action {
            Action::Show { request_id } => {
                let path = format!("/admin/audit/{}", urlencode(&request_id));
                let v = self.conn.call(reqwest::Method::GET, &path, None).await?;
                if tty {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    println!("{v}");
                }
            }
            Action::Verify { from, to } => {
                let q: Vec<String> = [("from", from), ("to", to)]
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
                    .collect();
                let path = format!("/admin/audit/verify?{}", q.join("&"));
                let report = self.conn.call(reqwest::Method::GET, &path, None).await?;
                let problems = report["problems"].as_array().map_or(0, Vec::len);
                if tty {
                    print_report(&report);
                } else {
                    println!("{report}");
                }
                if problems > 0 {
                    anyhow::bail!("the audit chain does not verify: {problems} problem(s)");
                }
            }
            Action::Search(args) => {
                let SearchArgs {
                    query,
                    key,
                    user,
                    team,
                    project,
                    model,
                    provider,
                    outcome,
                    action,
                    guardrail,
                    error,
                    surface,
                    status,
                    from,
                    to,
                    oldest,
                    limit,
                } = *args;
                let mut params: Vec<(&str, String)> = [
                    ("q", query),
                    ("key", key),
                    ("user", user),
                    ("team", team),
                    ("project", project),
                    ("model", model),
                    ("provider", provider),
                    ("outcome", outcome),
                    ("action", action),
                    ("guardrail", guardrail),
                    ("error", error),
                    ("surface", surface),
                    ("status", status.map(|s| s.to_string())),
                    ("from", from),
                    ("to", to),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
                if oldest {
                    params.push(("sort", "oldest".into()));
                }
                let mut printed = 0;
                let mut cursor: Option<String> = None;
                if tty {
                    print_header();
                }
                let count = loop {
                    let mut q: Vec<String> = params
                        .iter()
                        .map(|(k, v)| format!("{k}={}", urlencode(v)))
                        .collect();
                    q.push(format!("limit={}", (limit - printed).clamp(1, PAGE)));
                    if let Some(c) = &cursor {
                        q.push(format!("cursor={c}"));
                    }
                    let path = format!("/admin/audit/search?{}", q.join("&"));
                    let page = self.conn.call(reqwest::Method::GET, &path, None).await?;
                    for r in page["records"].as_array().into_iter().flatten() {
                        if tty {
                            print_row(r);
                        } else {
                            println!("{r}");
                        }
                        printed += 1;
                    }
                    cursor = page["next_cursor"].as_str().map(str::to_owned);
                    if cursor.is_none() || printed >= limit {
                        break page["count"].as_u64().unwrap_or(0);
                    }
                };
                if tty {
                    println!("{printed} of {count} matching records");
                }
            }
        }
        Ok(())
    }
}

fn print_header() {
    println!(
        "{:<24}  {:<26}  {:>6}  {:<20}  {:<16}  {:<12}  {:>9}  {:>12}  ERROR",
        "TIME (UTC)", "REQUEST", "STATUS", "MODEL", "KEY", "TEAM", "LATENCY", "COST"
    );
}

fn print_row(r: &Value) {
    let text = |k: &str| r[k].as_str().unwrap_or("-").to_owned();
    let time = r["at_ms"]
        .as_u64()
        .and_then(|ms| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
        })
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into());
    let latency = r["latency_us"]
        .as_u64()
        .map_or("-".into(), |us| format!("{:.1} ms", us as f64 / 1000.0));
    let cost = r["cost_nanos"].as_u64().map_or("-".into(), |n| {
        format!(
            "{:.6} {}",
            n as f64 / 1e9,
            r["currency"].as_str().unwrap_or("")
        )
    });
    println!(
        "{:<24}  {:<26}  {:>6}  {:<20}  {:<16}  {:<12}  {:>9}  {:>12}  {}",
        time,
        text("request_id"),
        r["status"],
        text("model"),
        text("key_id"),
        text("team"),
        latency,
        cost,
        r["error"].as_str().or(r["action"].as_str()).unwrap_or("-")
    );
}

fn print_report(r: &Value) {
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    println!(
        "stream sequences {}..={} checked (stream holds {}..={}; index applied up to {})",
        n("from_seq"),
        n("to_seq"),
        n("stream_first_seq"),
        n("stream_last_seq"),
        n("index_applied")
    );
    println!(
        "records: {} recomputed, {} identical in the index, {} checked by their own hash",
        n("records"),
        n("matched"),
        n("partial")
    );
    println!(
        "anchors: {} of {} agree",
        n("anchors_matched"),
        n("anchors")
    );
    let problems = r["problems"].as_array().cloned().unwrap_or_default();
    if problems.is_empty() {
        println!("ok: the chain, the index and the anchors agree");
    }
    for p in problems {
        let kind = p["kind"].as_str().unwrap_or("?");
        let line = match kind {
            "stream_gap" => format!(
                "sequences {}..={} were deleted from the stream",
                p["from_seq"], p["to_seq"]
            ),
            "altered" => format!(
                "seq {} request {}: the index record differs from the stream ({})",
                p["seq"],
                p["request_id"].as_str().unwrap_or("?"),
                p["fields"].as_array().filter(|f| !f.is_empty()).map_or(
                    "its hash does not cover its content".into(),
                    |f| {
                        f.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                )
            ),
            "missing_from_index" => format!(
                "seq {} request {}: in the stream, not in the index",
                p["seq"],
                p["request_id"].as_str().unwrap_or("?")
            ),
            "not_in_stream" => format!(
                "seq {} request {}: in the index, not in the stream (removed from the stream or inserted into the index)",
                p["seq"],
                p["request_id"].as_str().unwrap_or("?")
            ),
            "chain_break" => format!(
                "seq {} request {}: the index's chain breaks here (a record before it was removed or inserted)",
                p["seq"],
                p["request_id"].as_str().unwrap_or("?")
            ),
            "anchor_mismatch" => format!(
                "anchor at seq {} disagrees with the chain recomputed at seq {}",
                p["anchor_seq"], p["head_seq"]
            ),
            _ => p.to_string(),
        };
        println!("PROBLEM {kind}: {line}");
    }
}
