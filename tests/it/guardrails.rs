//! Request guardrails through the gateway over real NATS: redaction reaches the upstream (the
//! mock echoes what it got), blocking refuses with a clear error that echoes nothing, rules per
//! team override the defaults, every surface is covered, findings are in the events and the
//! audit index, and the privacy setting decides what the stream keeps of bodies.

use crate::harness::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use switchyard::events::{Event, FindingLocation, GuardrailAction};
use switchyard_mock::MockConfig;

const EMAIL: &str = "ana.lopez@corp-mail.io";
const PHONE: &str = "+44 20 7946 0958";
/// An OpenAI-shaped key, random: what a user pastes by mistake.
const LEAKED: &str = "sk-proj-Qm7vT2xZ9LpR4kWc8YbN1sDf6Hj3Ga5Ue0Ko";

const POLICY: &str = r#"
[guardrails.actions]
email = "redact"
phone = "log"
secrets = "block"
codename = "redact"

[[guardrails.rules]]
team = "research"
actions = { email = "block" }

[[guardrails.custom]]
name = "codename"
words = ["Project Falcon"]
"#;

/// A mock whose answers are long enough to echo the whole prompt.
async fn echoing_mock() -> Mock {
    Mock::start(MockConfig {
        stream_words: 40,
        ..MockConfig::default()
    })
    .await
}

fn text(r: &Value) -> String {
    r["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_redacted_blocked_and_recorded_on_every_surface() {
    let nats = Nats::start();
    let mock = echoing_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = POLICY.into();
    let gw = Gateway::start(cfg.build()).await;

    // Redact: the upstream (which echoes the last user message) sees placeholders, the same one
    // for the same address; a `log` finding goes through untouched.
    let prompt = format!("write to {EMAIL} about Project Falcon, cc {EMAIL}, call {PHONE}");
    let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", &prompt, false)).await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let answer = text(&r.json().await.unwrap());
    assert!(answer.contains("[EMAIL_1]"), "{answer}");
    assert!(
        !answer.contains("[EMAIL_2]"),
        "one address, one placeholder: {answer}"
    );
    assert!(answer.contains("[CODENAME_1]"), "{answer}");
    assert!(!answer.contains(EMAIL), "{answer}");
    assert!(answer.contains("7946"), "a logged phone goes on: {answer}");

    // Block: 400 naming the detector, the value never echoed.
    let r = post_chat(
        &gw,
        KEY,
        &chat_body("gpt-4o-mini", &format!("my key is {LEAKED}"), false),
    )
    .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "guardrail_blocked", "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("openai_key"), "{message}");
    assert!(!e.to_string().contains(LEAKED));

    // A value written with JSON escapes is seen as the provider would read it.
    let escaped = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"key {}"}}]}}"#,
        LEAKED.replacen('-', "\\u002d", 1)
    );
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(escaped)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "an escaped key is blocked too");

    // A rule: bob's team blocks what alice's redacts.
    let r = post_chat(
        &gw,
        KEY2,
        &chat_body("gpt-4o-mini", &format!("mail {EMAIL}"), false),
    )
    .await;
    assert_eq!(r.status(), 400);

    // The Anthropic surface and embeddings are scanned the same way.
    let r = client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", KEY)
        .json(&json!({"model": "gpt-4o-mini", "max_tokens": 50,
            "messages": [{"role": "user", "content": format!("reach me at {EMAIL}")}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m: Value = r.json().await.unwrap();
    let said = m["content"][0]["text"].as_str().unwrap();
    assert!(
        said.contains("[EMAIL_1]") && !said.contains(EMAIL),
        "{said}"
    );
    let r = client()
        .post(gw.url("/v1/embeddings"))
        .bearer_auth(KEY)
        .json(&json!({"model": "text-embedding-3-small", "input": [format!("{LEAKED}")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "a secret in an embeddings input is blocked too"
    );

    // The events: findings without values; bodies kept redacted (the default privacy), the
    // logged phone masked as well; the blocked key nowhere.
    wait_drained(&gw).await;
    let events = read_events(&nats.url()).await;
    let mine = for_request(&events, &id);
    let Event::RequestAccepted(a) = &mine[0].event else {
        panic!("{:?}", mine[0])
    };
    let email = a
        .guardrail_findings
        .iter()
        .find(|f| f.detector == "email")
        .unwrap();
    assert_eq!(
        (email.action, email.count, email.location, email.message),
        (
            GuardrailAction::Redact,
            2,
            FindingLocation::Request,
            Some(1)
        )
    );
    let phone = a
        .guardrail_findings
        .iter()
        .find(|f| f.detector == "phone")
        .unwrap();
    assert_eq!(phone.action, GuardrailAction::Log);
    assert!(
        a.body.contains("[EMAIL_1]") && a.body.contains("[PHONE_1]"),
        "{}",
        a.body
    );
    let Event::ResponseCompleted(c) = &mine[1].event else {
        panic!("{:?}", mine[1])
    };
    let stored = c.body.as_deref().unwrap();
    assert!(
        !stored.contains("7946 0958"),
        "the echoed phone is masked: {stored}"
    );
    // The answer was scanned too: the echoed phone is a (logged) response finding.
    let echoed = c
        .guardrail_findings
        .iter()
        .find(|f| f.detector == "phone")
        .unwrap_or_else(|| panic!("{:?}", c.guardrail_findings));
    assert_eq!(
        (echoed.location, echoed.action, echoed.message),
        (FindingLocation::Response, GuardrailAction::Log, None)
    );
    for (_, _, raw) in &events {
        for value in [EMAIL, LEAKED] {
            assert!(
                !raw.windows(value.len()).any(|w| w == value.as_bytes()),
                "{value} reached the stream"
            );
        }
    }
    let refusals = count(
        &events,
        |e| matches!(e, Event::RequestRejected(r) if r.code == "guardrail_blocked"),
    );
    assert_eq!(refusals, 4);

    // The audit index: by detector.
    let url = gw.url("");
    let page = wait_for("audit records", Duration::from_secs(15), || async {
        let r = admin(
            Method::GET,
            format!("{url}/admin/audit/search?guardrail=email"),
        )
        .send()
        .await
        .unwrap();
        let page: Value = r.json().await.unwrap();
        (page["count"].as_u64() == Some(2)).then_some(page)
    })
    .await;
    let rec = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["request_id"] == id.as_str())
        .unwrap();
    assert_eq!(
        rec["guardrail_findings"].as_array().unwrap().len(),
        4,
        "email, phone, codename in the request; the echoed phone in the answer: {rec}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_metadata_privacy_no_body_reaches_the_stream_or_the_outbox() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = "[privacy]\nbodies = \"metadata\"\n".into();
    let gw = Gateway::start(cfg.build()).await;
    let marker = "zebra-quartz-umbrella";
    let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", marker, false)).await;
    assert_eq!(r.status(), 200);
    assert!(
        text(&r.json().await.unwrap()).contains(marker),
        "the client still gets its answer"
    );
    let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", marker, true)).await;
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await.unwrap();
    wait_drained(&gw).await;
    gw.stop().await;
    let events = read_events(&nats.url()).await;
    assert!(events.len() >= 6, "{}", events.len());
    for (_, env, raw) in &events {
        assert!(
            !raw.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "a body reached the stream: {env:?}"
        );
    }
    let outbox = dir.path().join("outbox.redb");
    let bytes = std::fs::read(&outbox).unwrap();
    assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()));
}

/// `restore`: the provider sees placeholders, the caller gets its own values back where the
/// model repeated them; the stream keeps neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redacted_values_are_restored_in_the_answer_for_the_caller_only() {
    let nats = Nats::start();
    let mock = echoing_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    cfg.extra = format!("[guardrails]\nrestore = true\n{POLICY}");
    let gw = Gateway::start(cfg.build()).await;
    let r = post_chat(
        &gw,
        KEY,
        &chat_body(
            "gpt-4o-mini",
            &format!("summarise the mail from {EMAIL}"),
            false,
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let answer = text(&r.json().await.unwrap());
    assert!(answer.contains(EMAIL), "restored for the caller: {answer}");
    assert!(!answer.contains("[EMAIL_1]"), "{answer}");
    wait_drained(&gw).await;
    let events = read_events(&nats.url()).await;
    for env in for_request(&events, &id) {
        let raw = switchyard::events::encode(&env);
        assert!(
            !raw.windows(EMAIL.len()).any(|w| w == EMAIL.as_bytes()),
            "the stream keeps the redacted form: {env:?}"
        );
    }
    gw.stop().await;
}

/// Streamed answers are guarded across chunk boundaries: the mock streams three-character
/// pieces, so every value the answer carries is split over chunks. A placeholder is restored,
/// a logged phone number is recorded (and masked in the stream), and a blocked phrase ends the
/// stream with an error before any of it is sent; on both surfaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_answers_are_guarded_across_chunk_boundaries() {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig {
        stream_words: 40,
        token_chars: 3,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    // The mock cycles the prompt's words: "omega alpha" is in the answer, never in the prompt.
    let policy = POLICY.replace(
        "codename = \"redact\"",
        "codename = \"redact\"\nwraparound = \"block\"",
    );
    cfg.extra = format!(
        "[guardrails]\nrestore = true\n{policy}\n[[guardrails.custom]]\n\
         name = \"wraparound\"\nwords = [\"omega alpha\"]\n"
    );
    let gw = Gateway::start(cfg.build()).await;

    let prompt = format!("mail {EMAIL} or call {PHONE}");
    let r = post_chat(&gw, KEY, &chat_body("gpt-4o-mini", &prompt, true)).await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (chunks, done) = sse_chunks(&r.text().await.unwrap());
    assert!(done);
    let said = streamed_text(&chunks);
    assert_eq!(said.matches(EMAIL).count(), 5, "restored: {said}");
    assert!(!said.contains("[EMAIL_"), "{said}");
    assert_eq!(said.matches(PHONE).count(), 5, "logged, sent: {said}");

    // The Anthropic surface gets the same text, translated from the guarded chunks.
    let r = client()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", KEY)
        .json(
            &json!({"model": "gpt-4o-mini", "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": prompt}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let deltas: String = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(deltas, said, "{body}");

    // A blocked phrase split over chunks ends the stream with an error, none of it sent.
    let r = post_chat(
        &gw,
        KEY,
        &chat_body("gpt-4o-mini", "alpha beta omega", true),
    )
    .await;
    assert_eq!(r.status(), 200);
    let blocked_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (chunks, done) = sse_chunks(&r.text().await.unwrap());
    assert!(!done, "a withheld stream does not end with [DONE]");
    let last = chunks.last().unwrap();
    assert_eq!(last["error"]["code"], "guardrail_blocked", "{last}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wraparound")
    );
    let said = streamed_text(&chunks);
    assert_eq!(said, "alpha beta ", "nothing of the phrase went out");

    // The same answer not streamed is withheld whole, and the stream keeps it masked.
    let r = post_chat(
        &gw,
        KEY,
        &chat_body("gpt-4o-mini", "alpha beta omega", false),
    )
    .await;
    assert_eq!(r.status(), 502);
    let plain_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "guardrail_blocked", "{e}");

    wait_drained(&gw).await;
    let events = read_events(&nats.url()).await;
    let done_event = |rid: &str| {
        for_request(&events, rid)
            .into_iter()
            .find_map(|e| match e.event {
                Event::ResponseCompleted(c) => Some(c),
                _ => None,
            })
            .unwrap()
    };
    let c = done_event(&id);
    let phone = c
        .guardrail_findings
        .iter()
        .find(|f| f.detector == "phone")
        .unwrap_or_else(|| panic!("{:?}", c.guardrail_findings));
    assert_eq!(
        (phone.action, phone.count, phone.location),
        (GuardrailAction::Log, 5, FindingLocation::Response)
    );
    let stored = c.body.as_deref().unwrap();
    assert!(
        !stored.contains("7946") && !stored.contains(EMAIL),
        "the stream keeps the answer masked: {stored}"
    );
    assert!(stored.contains("[PHONE_1]"), "{stored}");
    let c = done_event(&blocked_id);
    assert_eq!(c.error.as_ref().unwrap().class, "guardrail_blocked");
    let w = &c.guardrail_findings[0];
    assert_eq!(
        (w.detector.as_str(), w.action),
        ("wraparound", GuardrailAction::Block)
    );
    let c = done_event(&plain_id);
    assert_eq!(c.error.as_ref().unwrap().class, "guardrail_blocked");
    let kept = c.body.as_deref().unwrap();
    assert!(
        kept.contains("[WRAPAROUND_1]") && !kept.contains("omega alpha"),
        "{kept}"
    );
    gw.stop().await;
}
