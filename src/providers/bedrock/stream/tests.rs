//! Tests of the ConverseStream translation: transcripts (`tests/fixtures/bedrock/*.jsonl`, one
//! event per line) encoded into event-stream frames here, replayed in pieces of every size.

use super::*;
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue};
use proptest::prelude::*;
use serde_json::{Value, json};

const TEXT: &str = include_str!("../../../../tests/fixtures/bedrock/converse_stream_text.jsonl");
const TOOL: &str =
    include_str!("../../../../tests/fixtures/bedrock/converse_stream_tool_use.jsonl");

/// One event-stream message with string headers, as Bedrock frames it.
pub(in crate::providers::bedrock) fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let headers = headers
        .iter()
        .map(|(name, value)| {
            Header::new(
                name.to_string(),
                HeaderValue::String(value.to_string().into()),
            )
        })
        .collect();
    let message = Message::new_from_parts(headers, Bytes::copy_from_slice(payload));
    let mut out = Vec::new();
    write_message_to(&message, &mut out).unwrap();
    out
}

pub(in crate::providers::bedrock) fn event(event_type: &str, payload: &Value) -> Vec<u8> {
    frame(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// A transcript's events as one body.
pub(in crate::providers::bedrock) fn transcript(jsonl: &str) -> Vec<u8> {
    jsonl
        .lines()
        .filter(|l| !l.trim().is_empty())
        .flat_map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            event(v["event"].as_str().unwrap(), &v["payload"])
        })
        .collect()
}

/// Feed `body` in pieces of `piece` bytes, so frames straddle reads as they do on a socket.
async fn replay(body: Vec<u8>, piece: usize) -> Vec<Result<StreamChunk, ProviderError>> {
    let pieces: Vec<Result<Bytes, String>> = body
        .chunks(piece)
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    chunks_from(
        futures::stream::iter(pieces),
        Duration::from_secs(5),
        "chatcmpl-req-1".into(),
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        42,
    )
    .collect()
    .await
}

async fn replay_ok(body: Vec<u8>, piece: usize) -> Vec<StreamChunk> {
    replay(body, piece)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn json(chunk: &StreamChunk) -> Value {
    serde_json::from_slice(&chunk.data).unwrap()
}

fn delta(v: &Value) -> &Value {
    &v["choices"][0]["delta"]
}

#[tokio::test]
async fn text_transcript_becomes_openai_chunks() {
    let body = transcript(TEXT);
    for piece in [body.len(), 7, 1] {
        let out = replay_ok(body.clone(), piece).await;
        let vs: Vec<Value> = out.iter().map(json).collect();
        assert_eq!(vs.len(), 6, "role, 3 texts, finish, usage: {vs:?}");
        for v in &vs {
            assert_eq!(v["id"], "chatcmpl-req-1");
            assert_eq!(v["model"], "anthropic.claude-3-5-haiku-20241022-v1:0");
            assert_eq!(v["created"], 42);
            assert_eq!(v["object"], "chat.completion.chunk");
        }
        assert_eq!(delta(&vs[0]), &json!({"role": "assistant", "content": ""}));
        assert_eq!(
            delta(&vs[1]),
            &json!({"content": "Here is a list of 3 pop songs"})
        );
        assert_eq!(
            delta(&vs[3]),
            &json!({"content": "\n\n1. \"Wannabe\" by Spice Girls"})
        );
        assert!(
            vs[..4]
                .iter()
                .all(|v| v["choices"][0]["finish_reason"].is_null())
        );
        assert_eq!(delta(&vs[4]), &json!({}));
        assert_eq!(vs[4]["choices"][0]["finish_reason"], "stop");
        assert_eq!(out[4].finish_reason.as_deref(), Some("stop"));
        assert_eq!(vs[5]["choices"], json!([]));
        assert_eq!(
            vs[5]["usage"],
            json!({"prompt_tokens": 2173, "completion_tokens": 60, "total_tokens": 2233,
                   "prompt_tokens_details": {"cached_tokens": 2048}})
        );
        assert!(out[5].usage_only && !out[4].usage_only);
        assert_eq!(out[5].usage.unwrap().input_tokens, 2173);
        assert!(out[..5].iter().all(|c| c.usage.is_none()));
    }
}

#[tokio::test]
async fn tool_deltas_concatenate_to_the_input_json() {
    let out = replay_ok(transcript(TOOL), 13).await;
    let vs: Vec<Value> = out.iter().map(json).collect();
    assert_eq!(
        vs.len(),
        8,
        "role, 2 texts, call, 2 fragments, finish, usage: {vs:?}"
    );
    assert_eq!(
        delta(&vs[3]),
        &json!({"tool_calls": [{"index": 0, "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
                                "function": {"name": "top_song", "arguments": ""}}]})
    );
    let arguments: String = vs[4..6]
        .iter()
        .map(|v| {
            let call = &delta(v)["tool_calls"][0];
            assert_eq!(call["index"], 0);
            assert!(call.get("id").is_none());
            call["function"]["arguments"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"sign": "WZPZ"})
    );
    assert_eq!(out[6].finish_reason.as_deref(), Some("tool_calls"));
    assert!(out[7].usage_only);
}

#[tokio::test]
async fn padding_unknown_events_and_reasoning_are_ignored() {
    let mut body = Vec::new();
    body.extend(event(
        "messageStart",
        &json!({"role": "assistant", "p": "abcdefghij"}),
    ));
    body.extend(event("somethingAddedLater", &json!({"x": 1})));
    body.extend(event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 0,
        "delta": {"reasoningContent": {"text": "thinking…"}}, "p": "abc"}),
    ));
    body.extend(frame(&[(":message-type", "newKind")], b"{}"));
    body.extend(event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 1, "delta": {"text": "Hi"}, "p": "xyz"}),
    ));
    body.extend(event(
        "messageStop",
        &json!({"stopReason": "end_turn", "p": "q"}),
    ));
    let out = replay_ok(body, 5).await;
    let vs: Vec<Value> = out.iter().map(json).collect();
    assert_eq!(
        vs.len(),
        3,
        "role, text, finish (no metadata, no usage): {vs:?}"
    );
    assert_eq!(delta(&vs[1]), &json!({"content": "Hi"}));
    assert!(out.iter().all(|c| c.usage.is_none() && !c.usage_only));
}

#[tokio::test]
async fn usage_reported_before_message_stop_still_comes_last() {
    let mut body = Vec::new();
    body.extend(event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
    ));
    body.extend(event(
        "metadata",
        &json!({"usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}}),
    ));
    body.extend(event("messageStop", &json!({"stopReason": "max_tokens"})));
    let out = replay_ok(body, 64).await;
    let vs: Vec<Value> = out.iter().map(json).collect();
    assert_eq!(
        delta(&vs[0]),
        &json!({"role": "assistant", "content": "Hi"}),
        "the first chunk carries the role"
    );
    assert_eq!(out[1].finish_reason.as_deref(), Some("length"));
    assert!(out[2].usage_only);
    assert_eq!(out.len(), 3);
}

#[tokio::test]
async fn exception_messages_become_typed_errors() {
    for (exception, status, retryable) in [
        ("throttlingException", 429, true),
        ("validationException", 400, false),
        ("modelStreamErrorException", 502, true),
        ("internalServerException", 500, true),
        ("serviceUnavailableException", 503, true),
    ] {
        let mut body = transcript(TEXT.lines().take(2).collect::<Vec<_>>().join("\n").as_str());
        body.extend(frame(
            &[
                (":exception-type", exception),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"message":"Too many tokens, please wait before trying again."}"#,
        ));
        body.extend(transcript(TEXT));
        let out = replay(body, 9).await;
        assert_eq!(
            out.len(),
            3,
            "role, text, then the error and nothing after: {out:?}"
        );
        match &out[2] {
            Err(
                e @ ProviderError::Status {
                    status: got,
                    error_type,
                    message,
                    ..
                },
            ) => {
                assert_eq!(*got, status, "{exception}");
                let want = format!("{}{}", exception[..1].to_uppercase(), &exception[1..]);
                assert_eq!(error_type.as_deref(), Some(want.as_str()));
                assert_eq!(message, "Too many tokens, please wait before trying again.");
                assert_eq!(e.retryable(), retryable, "{exception}");
            }
            other => panic!("{exception}: {other:?}"),
        }
    }
    let body = frame(
        &[
            (":error-code", "InternalFailure"),
            (":error-message", "boom"),
            (":message-type", "error"),
        ],
        b"",
    );
    let out = replay(body, 100).await;
    match out.as_slice() {
        [
            Err(ProviderError::Status {
                status: 502,
                error_type,
                message,
                ..
            }),
        ] => {
            assert_eq!(error_type.as_deref(), Some("InternalFailure"));
            assert_eq!(message, "boom");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_bad_crc_or_a_payload_that_is_not_json_is_a_malformed_chunk() {
    let mut body = transcript(TEXT);
    // A bit flipped in the header of the second frame.
    let second = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
    body[second + 20] ^= 0x20;
    let out = replay(body, 11).await;
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        matches!(&out[1], Err(ProviderError::MalformedChunk(m)) if m.contains("checksum")),
        "{out:?}"
    );

    let mut body = event("messageStart", &json!({"role": "assistant"}));
    body.extend(frame(
        &[
            (":event-type", "contentBlockDelta"),
            (":message-type", "event"),
        ],
        b"{not json",
    ));
    let out = replay(body, 100).await;
    assert!(
        matches!(out.last(), Some(Err(ProviderError::MalformedChunk(_)))),
        "{out:?}"
    );

    let mut huge = vec![0xFF, 0xFF, 0xFF, 0xF0];
    huge.extend([0; 20]);
    let out = replay(huge, 3).await;
    assert!(
        matches!(out.as_slice(), [Err(ProviderError::MalformedChunk(_))]),
        "{out:?}"
    );

    let orphan = event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 3, "delta": {"toolUse": {"input": "{}"}}}),
    );
    let out = replay(orphan, 100).await;
    assert!(
        matches!(out.as_slice(), [Err(ProviderError::MalformedChunk(_))]),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_body_that_ends_early_is_a_cut() {
    // Without messageStop, between frames.
    let events: Vec<&str> = TEXT.lines().collect();
    let out = replay(transcript(&events[..4].join("\n")), 10).await;
    match out.last() {
        Some(Err(ProviderError::StreamCut(m))) => assert_eq!(m, "stream ended before messageStop"),
        other => panic!("{other:?}"),
    }
    assert_eq!(out.len(), 5, "role and three texts, then the cut");

    // Inside a frame.
    let body = transcript(TEXT);
    let out = replay(body[..body.len() - 10].to_vec(), 32).await;
    match out.last() {
        Some(Err(ProviderError::StreamCut(m))) => {
            assert!(m.contains("inside an event stream frame"), "{m}")
        }
        other => panic!("{other:?}"),
    }

    // The connection breaks.
    let broken = futures::stream::iter(vec![
        Ok(Bytes::from(event(
            "messageStart",
            &json!({"role": "assistant"}),
        ))),
        Err("connection reset".to_owned()),
    ]);
    let out: Vec<_> = chunks_from(broken, Duration::from_secs(1), "i".into(), "m", 0)
        .collect()
        .await;
    assert!(
        matches!(out.as_slice(), [Ok(_), Err(ProviderError::StreamCut(_))]),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_silent_upstream_times_out_as_stream_idle() {
    let started = futures::stream::iter(vec![Ok(Bytes::from(event("messageStart", &json!({}))))])
        .chain(futures::stream::pending());
    let out: Vec<_> = chunks_from(started, Duration::from_millis(30), "i".into(), "m", 0)
        .collect()
        .await;
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(
        out[1],
        Err(ProviderError::Timeout {
            phase: "stream_idle"
        })
    ));
}

proptest! {
    /// However a tool's input is cut into deltas, and however the body is cut into reads, the
    /// fragments join to exactly the input.
    #[test]
    fn tool_input_fragments_join_to_the_input(input in "[ -~]{0,60}", cuts in proptest::collection::vec(0usize..60, 0..6), piece in 1usize..64) {
        let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c < input.len()).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut body = event("messageStart", &json!({"role": "assistant"}));
        body.extend(event("contentBlockStart", &json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t", "name": "f"}}})));
        let mut from = 0;
        for to in cuts.into_iter().chain([input.len()]) {
            body.extend(event("contentBlockDelta", &json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": &input[from..to]}}})));
            from = to;
        }
        body.extend(event("messageStop", &json!({"stopReason": "tool_use"})));
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let out = rt.block_on(replay_ok(body, piece));
        let joined: String = out
            .iter()
            .map(json)
            .filter_map(|v| v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str().map(str::to_owned))
            .collect();
        prop_assert_eq!(joined, input);
        prop_assert_eq!(out.last().unwrap().finish_reason.as_deref(), Some("tool_calls"));
    }
}
