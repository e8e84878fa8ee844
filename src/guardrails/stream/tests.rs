use super::*;
use crate::config::{GuardrailsConfig, PrivacyConfig};

fn policy(actions: &[(&str, GuardrailAction)], restore: bool) -> Arc<Policy> {
    let cfg = GuardrailsConfig {
        actions: actions.iter().map(|(k, a)| ((*k).to_owned(), *a)).collect(),
        restore,
        ..GuardrailsConfig::default()
    };
    Arc::new(Policy::new(&cfg, &PrivacyConfig::default()).unwrap())
}

fn guard(policy: &Arc<Policy>, asked: &[(String, String)]) -> AnswerGuard {
    AnswerGuard::new(Arc::clone(policy), &Principal::default(), "m", asked).unwrap()
}

/// `text` in pieces of `n` characters.
fn pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(n).map(|c| c.iter().collect()).collect()
}

/// Stream `text` in pieces of `n` through a fresh guard: what the client got, and whether it
/// was cut by a block.
fn stream(policy: &Arc<Policy>, text: &str, n: usize) -> (String, bool) {
    let mut g = guard(policy, &[]);
    let mut out = String::new();
    for p in pieces(text, n) {
        match g.push((0, None), &p, false) {
            Ok(r) => out.push_str(&r.forward),
            Err(Withheld) => return (out, true),
        }
    }
    match g.push((0, None), "", true) {
        Ok(r) => out.push_str(&r.forward),
        Err(Withheld) => return (out, true),
    }
    (out, false)
}

#[test]
fn a_secret_split_over_chunks_is_caught_at_every_split() {
    let p = policy(&[("secrets", GuardrailAction::Block)], false);
    let key = "sk-proj-Qm7vT2xZ9LpR4kWc8YbN1sDf6Hj3Ga5Ue0Ko";
    let text = format!("Sure, the key is {key} and it works.");
    for n in 1..=12 {
        let (got, blocked) = stream(&p, &text, n);
        assert!(blocked, "pieces of {n}: not blocked, sent {got:?}");
        assert!(
            !got.contains("sk-"),
            "pieces of {n}: part of the key went out: {got:?}"
        );
        assert!(got.starts_with("Sure, the key"), "{n}: {got:?}");
    }
}

#[test]
fn a_redacted_value_split_over_chunks_gets_its_placeholder() {
    let p = policy(&[("pii", GuardrailAction::Redact)], false);
    let text = "Write to ana.lopez@northwind-traders.com or call +44 20 7946 0958 today.";
    for n in 1..=9 {
        let (got, blocked) = stream(&p, text, n);
        assert!(!blocked);
        assert_eq!(
            got, "Write to [EMAIL_1] or call [PHONE_1] today.",
            "pieces of {n}"
        );
    }
}

#[test]
fn prose_is_held_one_word_at_most() {
    let p = policy(&[("secrets", GuardrailAction::Block)], false);
    let text = "The invoice for November still does not match the dashboard, and the \
                difference seems to come from the shipping line of the second delivery.";
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    let mut g = guard(&p, &[]);
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        out.push_str(&g.push((0, None), w, false).unwrap().forward);
        if i > 0 {
            let before: String = words[..i].concat();
            assert!(
                out.starts_with(&before),
                "after word {i} the words before it are out: {out:?}"
            );
        }
    }
    out.push_str(&g.push((0, None), "", true).unwrap().forward);
    assert_eq!(out, text);
    assert!(g.findings().is_empty());
}

#[test]
fn placeholders_split_over_chunks_are_restored() {
    let p = policy(&[("email", GuardrailAction::Redact)], true);
    let asked = vec![("[EMAIL_1]".to_owned(), "ana@corp-mail.io".to_owned())];
    for n in 1..=6 {
        let mut g = guard(&p, &asked);
        let mut out = String::new();
        for piece in pieces("I wrote to [EMAIL_1] and bo@corp-mail.io.", n) {
            out.push_str(&g.push((0, None), &piece, false).unwrap().forward);
        }
        out.push_str(&g.push((0, None), "", true).unwrap().forward);
        assert_eq!(
            out, "I wrote to ana@corp-mail.io and [EMAIL_2].",
            "pieces of {n}"
        );
    }
}

#[test]
fn a_private_key_block_is_held_whole() {
    let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKB\n\
                xIuOAiAGyJhZ2Yk0Q7xZ6yLkVjHsE3mB1cT2pQ9rW8sN4fG0hJ5kL7zX3vY6aD1\n";
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}-----END PRIVATE KEY-----");
    let text = format!("Here it is:\n{pem}\nKeep it safe.");
    let p = policy(&[("secrets", GuardrailAction::Log)], false);
    let mut g = guard(&p, &[]);
    let mut out = String::new();
    for piece in pieces(&text, 7) {
        let r = g.push((0, None), &piece, false).unwrap();
        assert!(
            r.masked.is_empty() || !r.masked.contains("MIIE"),
            "the block went out in pieces: {:?}",
            r.masked
        );
        out.push_str(&r.forward);
    }
    assert!(out.contains(&pem), "let through (logged) once complete");
    assert_eq!(g.findings()[0].detector, "private_key");
    let p = policy(&[("secrets", GuardrailAction::Block)], false);
    let (got, blocked) = stream(&p, &text, 7);
    assert!(blocked && !got.contains("BEGIN"), "{got:?}");
}

fn chunk(content: Option<&str>, finish: Option<&str>) -> Bytes {
    let mut choice = serde_json::json!({"index": 0, "delta": {}, "logprobs": null,
        "finish_reason": finish});
    if let Some(c) = content {
        choice["delta"]["content"] = c.into();
    }
    Bytes::from(format!(
        "{{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{choice}],\"usage\":null}}"
    ))
}

fn sent(step: Step) -> Vec<String> {
    match step {
        Step::Send { send, .. } => send
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect(),
        Step::Blocked => panic!("blocked"),
    }
}

#[test]
fn chunks_are_rewritten_in_place_held_ones_skipped_and_flushed_before_the_finish() {
    let p = policy(&[("pii", GuardrailAction::Redact)], false);
    let mut g = ChunkGuard::new(guard(&p, &[]));
    let first = sent(g.chunk(&chunk(Some("Mail ana.lo"), None)));
    assert_eq!(first.len(), 1);
    assert!(
        first[0].contains(r#""content":"Mail ""#) && first[0].ends_with(r#","usage":null}"#),
        "only the content changes: {}",
        first[0]
    );
    // Nothing of this chunk can go yet: it is not sent.
    assert!(sent(g.chunk(&chunk(Some("pez@corp-mail"), None))).is_empty());
    // Unless it carries something besides its text.
    let with_logprobs = Bytes::from(
        String::from_utf8(chunk(Some(""), None).to_vec())
            .unwrap()
            .replace(r#""logprobs":null"#, r#""logprobs":{"content":[]}"#),
    );
    assert_eq!(sent(g.chunk(&with_logprobs)).len(), 1);
    let last = sent(g.chunk(&chunk(Some(".io"), Some("stop"))));
    assert_eq!(last.len(), 1, "{last:?}");
    let v: serde_json::Value = serde_json::from_str(&last[0]).unwrap();
    assert_eq!(v["choices"][0]["delta"]["content"], "[EMAIL_1]");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[test]
fn a_stream_that_stops_without_a_finish_gets_what_was_held() {
    let p = policy(&[("pii", GuardrailAction::Redact)], false);
    let mut g = ChunkGuard::new(guard(&p, &[]));
    sent(g.chunk(&chunk(Some("call +44 20 7946 0958"), None)));
    let rest = sent(g.end());
    let v: serde_json::Value = serde_json::from_str(&rest[0]).unwrap();
    assert_eq!(v["choices"][0]["delta"]["content"], "[PHONE_1]");
    assert_eq!(v["id"], "c1");
}
