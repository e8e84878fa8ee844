//! The audit index over real NATS: records appear for every kind of request (answered,
//! streamed, refused), the search API filters, searches text, pages and facets; a restart
//! adds nothing twice; a second instance builds the same index from the stream; and no key is
//! in the index files.

use crate::harness::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use switchyard::events::Event;
use switchyard::projections::audit::AuditIndex;
use switchyard_mock::MockConfig;

async fn search(gw_url: &str, query: &str) -> Value {
    let r = admin(Method::GET, format!("{gw_url}/admin/audit/search?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{query}");
    r.json().await.unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Wait until the index holds `n` records.
async fn wait_records(gw_url: &str, n: u64) {
    wait_for("audit records", Duration::from_secs(15), || async {
        let page = search(gw_url, "limit=1").await;
        (page["count"].as_u64() == Some(n)).then_some(())
    })
    .await;
}

/// Every search the test compares between the live index and a rebuilt one.
const QUERIES: [&str; 8] = [
    "limit=100",
    "q=elephant",
    "outcome=rejected",
    "error=invalid_api_key",
    "model=gpt-4o-mini&status=200",
    "team=platform&sort=oldest",
    "q=fox%20AND%20quick",
    "surface=messages",
];

/// `switchyard replay audit` on `cfg`'s config file (written into `dir`), as a user runs it.
fn replay_audit(cfg: &TestConfig, dir: &std::path::Path) -> std::process::Output {
    let config_file = dir.join("switchyard.toml");
    std::fs::write(&config_file, cfg.toml()).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["replay", "audit", "--config"])
        .arg(&config_file)
        .output()
        .unwrap()
}

fn files_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    let mut found = false;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found |= files_contain(&path, needle);
        } else if let Ok(bytes) = std::fs::read(&path) {
            found |= bytes.windows(needle.len()).any(|w| w == needle);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_searchable_and_a_rebuilt_index_answers_the_same() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = TestConfig::new(&nats, &mock, dir.path());
    let gw = Gateway::start(cfg.build()).await;
    let url = gw.url("");

    // Answered: two chats (one streamed) for alice, one for bob.
    let r = post_chat(
        &gw,
        KEY,
        &chat_body("gpt-4o-mini", "the quick brown fox", false),
    )
    .await;
    assert_eq!(r.status(), 200);
    let fox = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let r = post_chat(
        &gw,
        KEY,
        &chat_body("gpt-4o-mini", "a purple elephant", true),
    )
    .await;
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await.unwrap();
    let r = post_chat(&gw, KEY2, &chat_body("gpt-4o-mini", "hello there", false)).await;
    assert_eq!(r.status(), 200);
    // Refused: an unknown model, a bad key on the Messages surface.
    let r = post_chat(&gw, KEY, &chat_body("gpt-9-ultra", "hi", false)).await;
    assert_eq!(r.status(), 404);
    let r = client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", "sk-not-a-key-SECRET")
        .json(&json!({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    wait_records(&url, 5).await;

    // Full text, filters, facets.
    let page = search(&url, "q=elephant").await;
    assert_eq!(page["count"], 1, "{page}");
    assert_eq!(page["records"][0]["stream"], true);
    let page = search(&url, "q=fox%20AND%20quick").await;
    assert_eq!(ids(&page), std::slice::from_ref(&fox));
    let page = search(&url, "outcome=rejected").await;
    assert_eq!(page["count"], 2, "{page}");
    let page = search(&url, "error=model_not_found").await;
    assert_eq!(page["records"][0]["model"], "gpt-9-ultra");
    assert_eq!(page["records"][0]["key_id"], "alice-key");
    let page = search(&url, "error=invalid_api_key").await;
    let refused = &page["records"][0];
    assert_eq!(refused["endpoint"], "messages");
    assert_eq!(refused["status"], 401);
    assert_eq!(refused["key_id"], Value::Null);
    assert_eq!(refused["key_fingerprint"].as_str().unwrap().len(), 8);
    let page = search(&url, "team=research").await;
    assert_eq!(page["count"], 1);
    assert_eq!(page["records"][0]["user"], "bob");
    let page = search(&url, "model=gpt-4o-mini&status=200").await;
    assert_eq!(page["count"], 3);
    let facets = &search(&url, "limit=1").await["facets"];
    assert!(
        facets["model"]
            .as_array()
            .unwrap()
            .contains(&json!(["gpt-4o-mini", 3])),
        "{facets}"
    );
    assert!(
        facets["status"]
            .as_array()
            .unwrap()
            .contains(&json!(["200", 3])),
        "{facets}"
    );

    // Pages: newest first, two at a time, every record once.
    let all = search(&url, "limit=100").await;
    let newest_first: Vec<u64> = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["at_ms"].as_u64().unwrap())
        .collect();
    assert!(
        newest_first.windows(2).all(|w| w[0] >= w[1]),
        "{newest_first:?}"
    );
    let mut paged = Vec::new();
    let mut cursor = String::new();
    for _ in 0..5 {
        let page = search(&url, &format!("limit=2&cursor={cursor}")).await;
        paged.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(paged, ids(&all), "pages cover every record once, in order");

    // One whole record: attempts, tokens, cost, prompt and answer.
    let r = admin(Method::GET, format!("{url}/admin/audit/{fox}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["attempts"].as_array().unwrap().len(), 1, "{rec}");
    assert!(rec["cost_nanos"].as_u64().unwrap() > 0, "{rec}");
    assert!(rec["input_tokens"].as_u64().unwrap() > 0, "{rec}");
    assert!(rec["prompt"].as_str().unwrap().contains("quick brown fox"));
    assert_eq!(rec["hash"].as_str().unwrap().len(), 64);
    let r = admin(
        Method::GET,
        format!("{url}/admin/audit/01J00000000000000000000000"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    let r = admin(
        Method::GET,
        format!("{url}/admin/audit/search?sort=sideways"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let r = client()
        .get(format!("{url}/admin/audit/search"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the admin token is required");

    // The CLI: JSON lines when piped, following pages up to --limit.
    let cli = |args: &[&str]| -> Vec<Value> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("audit")
            .args(args)
            .env("SWITCHYARD_URL", &url)
            .env("SWITCHYARD_ADMIN_TOKEN", ADMIN)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "audit {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    assert_eq!(
        cli(&["search", "--model", "gpt-4o-mini", "--status", "200"]).len(),
        3
    );
    let found = cli(&["search", "quick brown"]);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["request_id"], fox.as_str());
    assert_eq!(cli(&["search", "--limit", "4"]).len(), 4);
    assert_eq!(
        cli(&["search", "--outcome", "rejected", "--oldest"]).len(),
        2
    );
    let shown = cli(&["show", &fox]);
    assert_eq!(shown[0]["request_id"], fox.as_str());

    let live: Vec<Value> = {
        let mut out = Vec::new();
        for q in QUERIES {
            out.push(search(&url, q).await);
        }
        out
    };
    gw.stop().await;

    // `switchyard replay audit` rebuilds the index from the stream, refusing while the
    // gateway that writes it runs.
    let replay = || replay_audit(&cfg, dir.path());
    let gw = Gateway::start(cfg.build()).await;
    let busy = replay();
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("is open in another process"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    gw.stop().await;
    let out = replay();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(": 5 records"), "{said}");

    // A restart on the replayed index re-reads from its checkpoint, adds nothing twice and
    // answers like the live index did.
    let gw = Gateway::start(cfg.build()).await;
    let url = gw.url("");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(search(&url, "limit=1").await["count"], 5);
    for (q, want) in QUERIES.iter().zip(&live) {
        let got = search(&url, q).await;
        assert_eq!(
            &got, want,
            "{q}: the replayed index answers like the live one"
        );
    }

    // A second instance with its own data directory, started beside the first, builds the same
    // index from the stream.
    let dir2 = tempfile::tempdir().unwrap();
    let gw2 = Gateway::start(TestConfig::new(&nats, &mock, dir2.path()).build()).await;
    let url2 = gw2.url("");
    wait_records(&url2, 5).await;
    for (q, want) in QUERIES.iter().zip(&live) {
        let got = search(&url2, q).await;
        assert_eq!(
            &got, want,
            "{q}: the rebuilt index answers like the live one"
        );
    }
    // Each instance's index has a consumer of its own: requests through either one are in both
    // (a shared consumer would hand each event to one of them).
    for i in 0..8 {
        let through = if i % 2 == 0 { &gw } else { &gw2 };
        let r = post_chat(
            through,
            KEY,
            &chat_body("gpt-4o-mini", "both see it", false),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    wait_records(&url2, 13).await;
    wait_records(&url, 13).await;
    gw2.stop().await;
    gw.stop().await;

    // No presented or provider key is in the index files.
    let index_dir = dir.path().join("audit");
    assert!(index_dir.exists());
    for secret in [KEY, KEY2, "sk-not-a-key-SECRET", UPSTREAM_SECRET] {
        assert!(
            !files_contain(&index_dir, secret.as_bytes()),
            "{secret} is in the audit index"
        );
    }
    let ids: BTreeSet<String> = ids(&live[0]).into_iter().collect();
    assert_eq!(ids.len(), 5);
}

async fn verify_api(gw_url: &str, query: &str) -> Value {
    let r = admin(Method::GET, format!("{gw_url}/admin/audit/verify?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn kinds(report: &Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// `switchyard audit verify` as a user runs it: (exit status success, stdout).
fn verify_cli(url: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["audit", "verify"])
        .args(args)
        .env("SWITCHYARD_URL", url)
        .env("SWITCHYARD_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Admin changes are audit records; the chain is anchored in the stream; `verify` finds a
/// message deleted from the stream, a record altered in the index and one inserted into it; and
/// an index rebuilt after the deletion cannot hide it from the anchors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_tampering_with_the_stream_and_the_index() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = "[projections.audit]\nanchor_every = \"100ms\"\n".into();
    let gw = Gateway::start(cfg.build()).await;
    let url = gw.url("");

    // An admin change, six answered chats and a refusal.
    let r = admin(Method::POST, format!("{url}/admin/keys"))
        .json(&json!({"name": "auditor", "team": "risk", "models": ["gpt-4o-mini"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut chats = Vec::new();
    for i in 0..6 {
        let r = post_chat(
            &gw,
            KEY,
            &chat_body("gpt-4o-mini", &format!("note {i}"), false),
        )
        .await;
        assert_eq!(r.status(), 200);
        chats.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    assert_eq!(
        post_chat(&gw, "sk-wrong", &chat_body("gpt-4o-mini", "x", false))
            .await
            .status(),
        401
    );
    wait_records(&url, 8).await;
    let admin_page = search(&url, "outcome=admin&action=key_issued").await;
    assert_eq!(admin_page["count"], 1, "{admin_page}");
    assert_eq!(admin_page["records"][0]["team"], "risk");
    assert!(
        admin_page["records"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("auditor")
    );

    // The chain's head is anchored in the stream.
    let events = wait_for(
        "an anchor of the whole chain",
        Duration::from_secs(10),
        || async {
            let events = read_events(&nats.url()).await;
            events
                .iter()
                .any(|(_, e, _)| matches!(&e.event, Event::AuditAnchored(a) if a.length == 8))
                .then_some(events)
        },
    )
    .await;
    let report = verify_api(&url, "").await;
    assert_eq!(kinds(&report), Vec::<String>::new(), "{report}");
    assert_eq!(report["matched"], 8, "{report}");
    assert!(report["anchors"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["anchors"], report["anchors_matched"]);
    let (ok, said) = verify_cli(&url, &[]);
    assert!(ok, "{said}");

    // Delete the closing event (its SpendRecorded) of the third chat from the stream.
    let victim = &chats[2];
    let spend_seq = events
        .iter()
        .find(|(_, e, _)| {
            e.request_id.to_string() == *victim && matches!(e.event, Event::SpendRecorded(_))
        })
        .map(|(seq, _, _)| *seq)
        .unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let stream = js.get_stream("SWITCHYARD").await.unwrap();
    assert!(stream.delete_message(spend_seq).await.unwrap());
    let report = verify_api(&url, "").await;
    let found = kinds(&report);
    assert_eq!(found[0], "stream_gap", "{report}");
    assert_eq!(report["problems"][0]["from_seq"], spend_seq);
    assert!(found.contains(&"not_in_stream".to_owned()), "{report}");
    assert!(found.contains(&"chain_break".to_owned()), "{report}");
    assert!(found.contains(&"anchor_mismatch".to_owned()), "{report}");
    let gone = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "not_in_stream")
        .unwrap();
    assert_eq!(gone["request_id"], victim.as_str());
    let (ok, said) = verify_cli(&url, &[]);
    assert!(!ok, "a deletion fails verify");
    let piped: Value = serde_json::from_str(said.trim()).unwrap();
    assert_eq!(piped["problems"][0]["kind"], "stream_gap", "{said}");
    assert_eq!(piped["problems"][0]["to_seq"], spend_seq);
    // Before the deletion, everything still verifies.
    let (ok, said) = verify_cli(&url, &["--to", &(spend_seq - 1).to_string()]);
    assert!(ok, "{said}");
    gw.stop().await;

    // Alter one record in the index and insert a forged one.
    {
        let index = AuditIndex::open(&dir.path().join("audit")).unwrap();
        let payload = index.payload().unwrap().unwrap();
        let mut altered = index.get(&chats[4]).unwrap().unwrap();
        altered.cost_nanos = Some(1);
        altered.status = 500;
        let mut forged = altered.clone();
        forged.request_id = "01KFORGED0000000000000000A".into();
        index.delete_request(&chats[4]);
        index.add(&[altered, forged]).unwrap();
        index.commit(&payload).unwrap();
    }
    let gw = Gateway::start(cfg.build()).await;
    let url = gw.url("");
    let report = verify_api(&url, "").await;
    let problems = report["problems"].as_array().unwrap();
    let altered = problems
        .iter()
        .find(|p| p["kind"] == "altered")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(altered["request_id"], chats[4].as_str());
    assert_eq!(altered["fields"], json!(["cost_nanos", "status"]));
    assert!(
        problems.iter().any(
            |p| p["kind"] == "not_in_stream" && p["request_id"] == "01KFORGED0000000000000000A"
        ),
        "{report}"
    );
    gw.stop().await;

    // Rebuild the index from the tampered stream: it now agrees with the stream, but the gap
    // and the anchors made before the deletion still tell.
    let out = replay_audit(&cfg, dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gw = Gateway::start(cfg.build()).await;
    let url = gw.url("");
    let report = verify_api(&url, "").await;
    let found: BTreeSet<String> = kinds(&report).into_iter().collect();
    assert_eq!(
        found,
        ["anchor_mismatch", "stream_gap"].map(String::from).into(),
        "{report}"
    );
    gw.stop().await;
}
