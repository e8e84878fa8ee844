//! Gemini SSE stream (`streamGenerateContent?alt=sse`) → OpenAI `chat.completion.chunk`s. The
//! SSE framing is the eventsource-stream crate's; [`Translator`] turns each event's payload (a
//! whole `GenerateContentResponse`) into chunks and is pure, so transcripts replay without
//! HTTP. This file decides when a stream is broken (idle, cut, malformed, error event); it
//! never retries or sees routing.
//!
//! Gemini sends no end marker: the stream is complete when the body ends after a candidate
//! reported a `finishReason`. Some models repeat `finishReason` on every event, so the finish
//! chunks (and the usage chunk, from the latest `usageMetadata`, which is cumulative) are sent
//! when the body ends, not when a reason first appears.

use bytes::Bytes;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt, TryStreamExt};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use super::convert::{fallback_id, finish_reason, tool_call, usage};
use super::wire::{GenerateContentResponse, UsageMetadata};
use crate::providers::canonical::{Chunk, ChunkChoice, Delta, OaUsage};
use crate::providers::{ChatStream, ProviderError, StreamChunk};

/// Turn an upstream response body into chunks. `idle` bounds the wait for each event; `model`
/// names the chunks until Gemini reports its `modelVersion`; `created` is stamped on each.
pub fn chunks(resp: reqwest::Response, idle: Duration, model: &str, created: u64) -> ChatStream {
    let bytes = resp
        .bytes_stream()
        .map_err(|e| crate::providers::short_cause(&e));
    chunks_from(bytes, idle, model, created)
}

/// [`chunks`] over any byte stream: the adapter feeds it a response body, tests a transcript.
pub(super) fn chunks_from<S>(bytes: S, idle: Duration, model: &str, created: u64) -> ChatStream
where
    S: Stream<Item = Result<Bytes, String>> + Send + 'static,
{
    let state = State {
        events: Box::pin(bytes.eventsource()),
        translator: Translator::new(model, created),
        pending: VecDeque::new(),
        finished: false,
        idle,
    };
    futures::stream::unfold(state, next).boxed()
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<String>>> + Send>>;

struct State {
    events: Events,
    translator: Translator,
    /// Chunks made but not yet yielded: one event can make several.
    pending: VecDeque<StreamChunk>,
    /// No more events are read: the body ended or something failed.
    finished: bool,
    idle: Duration,
}

type Next = Option<(Result<StreamChunk, ProviderError>, State)>;

impl State {
    /// Yield `e` and end the stream: nothing after a failure is trustworthy.
    fn fail(mut self, e: ProviderError) -> Next {
        self.finished = true;
        self.pending.clear();
        Some((Err(e), self))
    }
}

async fn next(mut st: State) -> Next {
    loop {
        if let Some(chunk) = st.pending.pop_front() {
            return Some((Ok(chunk), st));
        }
        if st.finished {
            return None;
        }
        let Ok(item) = tokio::time::timeout(st.idle, st.events.next()).await else {
            return st.fail(ProviderError::Timeout {
                phase: "stream_idle",
            });
        };
        let made = match item {
            None => {
                st.finished = true;
                st.translator.end()
            }
            Some(Err(e)) => return st.fail(ProviderError::StreamCut(e.to_string())),
            Some(Ok(ev)) if ev.data.is_empty() => continue,
            Some(Ok(ev)) => st.translator.event(&ev.data),
        };
        match made {
            Ok(chunks) => st.pending.extend(chunks),
            Err(e) => return st.fail(e),
        }
    }
}

/// Where one candidate (one OpenAI choice) stands.
#[derive(Debug)]
struct Choice {
    index: u32,
    /// Function calls so far: they are numbered per choice, and turn `STOP` into `tool_calls`.
    calls: u32,
    /// The latest reason reported; sent when the stream ends.
    finish: Option<String>,
}

/// The per-stream state the translation needs: the identity every chunk repeats, each choice's
/// progress, and the latest usage.
#[derive(Debug)]
pub(super) struct Translator {
    /// `responseId` of the first event, or a fallback drawn once for the whole stream.
    id: String,
    /// Whether the first event was seen (and `id` settled).
    named: bool,
    model: String,
    created: u64,
    choices: Vec<Choice>,
    /// A prompt blocked outright: one choice, finished by the filter.
    blocked: bool,
    /// `None` until the stream reports some.
    usage: Option<UsageMetadata>,
}

impl Translator {
    pub(super) fn new(model: &str, created: u64) -> Self {
        Self {
            id: fallback_id(),
            named: false,
            model: model.to_owned(),
            created,
            choices: Vec::new(),
            blocked: false,
            usage: None,
        }
    }

    /// Translate one `data:` payload into the chunks it makes (none, or one per candidate).
    pub(super) fn event(&mut self, data: &str) -> Result<Vec<StreamChunk>, ProviderError> {
        let ev: GenerateContentResponse<'_> =
            serde_json::from_str(data).map_err(|e| ProviderError::MalformedChunk(e.to_string()))?;
        if let Some(error) = ev.error {
            return Err(ProviderError::StreamCut(format!(
                "provider reported an error mid-stream: {}: {}",
                error.status.as_deref().unwrap_or("error"),
                error.message.as_deref().unwrap_or("(no message)")
            )));
        }
        if !self.named {
            self.named = true;
            if let Some(id) = ev.response_id.as_deref() {
                id.clone_into(&mut self.id);
            }
        }
        if let Some(version) = ev.model_version.as_deref()
            && version != self.model
        {
            version.clone_into(&mut self.model);
        }
        if ev.usage_metadata.is_some() {
            // Cumulative: the latest wins.
            self.usage = ev.usage_metadata;
        }
        let mut out = Vec::new();
        let blocked = ev
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some());
        if ev.candidates.is_empty() && blocked && !self.blocked && self.choices.is_empty() {
            self.blocked = true;
            let delta = Delta {
                role: Some("assistant"),
                content: Some(""),
                ..Delta::default()
            };
            out.push(self.chunk(0, delta, None)?);
        }
        for (pos, candidate) in ev.candidates.iter().enumerate() {
            let index = candidate
                .index
                .unwrap_or_else(|| u32::try_from(pos).unwrap_or(u32::MAX));
            let (slot, first) = match self.choices.iter().position(|c| c.index == index) {
                Some(slot) => (slot, false),
                None => {
                    self.choices.push(Choice {
                        index,
                        calls: 0,
                        finish: None,
                    });
                    (self.choices.len() - 1, true)
                }
            };
            let mut text: Option<Cow<'_, str>> = None;
            let mut tool_calls = Vec::new();
            for part in candidate.content.iter().flat_map(|c| &c.parts) {
                if let Some(t) = part
                    .text
                    .as_deref()
                    .filter(|t| !t.is_empty() && !part.thought)
                {
                    match &mut text {
                        None => text = Some(Cow::Borrowed(t)),
                        Some(all) => all.to_mut().push_str(t),
                    }
                }
                if let Some(call) = &part.function_call {
                    let ordinal = self.choices[slot].calls;
                    self.choices[slot].calls += 1;
                    let signature = part.thought_signature.as_deref();
                    tool_calls.push(tool_call(ordinal, call, signature, Some(ordinal)));
                }
            }
            if let Some(reason) = candidate.finish_reason.as_deref() {
                self.choices[slot].finish = Some(reason.to_owned());
            }
            if !first && text.is_none() && tool_calls.is_empty() {
                continue;
            }
            let delta = Delta {
                role: first.then_some("assistant"),
                // The role chunk carries `content` even when empty, as OpenAI's first chunk does.
                content: text.as_deref().or(first.then_some("")),
                tool_calls,
            };
            out.push(self.chunk(index, delta, None)?);
        }
        Ok(out)
    }

    /// The body ended: the finish chunk of every choice and the usage chunk, or a cut if no
    /// candidate ever finished.
    pub(super) fn end(&mut self) -> Result<Vec<StreamChunk>, ProviderError> {
        let mut out = Vec::with_capacity(self.choices.len() + 1);
        if self.blocked {
            out.push(self.chunk(0, Delta::default(), Some("content_filter"))?);
        }
        for choice in &self.choices {
            if let Some(reason) = choice.finish.as_deref() {
                let reason = finish_reason(reason, choice.calls > 0);
                out.push(self.chunk(choice.index, Delta::default(), Some(reason))?);
            }
        }
        if out.is_empty() {
            return Err(ProviderError::StreamCut(
                "stream ended before any candidate finished".into(),
            ));
        }
        if let Some(reported) = &self.usage {
            let (usage, oa_usage) = usage(reported);
            out.push(StreamChunk {
                data: self.serialize(&[], Some(oa_usage))?,
                usage: Some(usage),
                finish_reason: None,
                usage_only: true,
            });
        }
        Ok(out)
    }

    fn chunk(
        &self,
        index: u32,
        delta: Delta<'_>,
        finish_reason: Option<&'static str>,
    ) -> Result<StreamChunk, ProviderError> {
        let choice = ChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason,
        };
        Ok(StreamChunk {
            data: self.serialize(std::slice::from_ref(&choice), None)?,
            usage: None,
            finish_reason: finish_reason.map(str::to_owned),
            usage_only: false,
        })
    }

    fn serialize(
        &self,
        choices: &[ChunkChoice<'_>],
        usage: Option<OaUsage>,
    ) -> Result<Bytes, ProviderError> {
        Chunk::encode(&self.id, self.created, &self.model, choices, usage)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const TEXT: &[u8] = include_bytes!("../../../tests/fixtures/gemini/stream_text.sse");
    const CALLS: &[u8] = include_bytes!("../../../tests/fixtures/gemini/stream_function_call.sse");

    /// Feed `body` in pieces of `piece` bytes, so events straddle reads as they do on a socket.
    async fn replay(body: &'static [u8], piece: usize) -> Vec<Result<StreamChunk, ProviderError>> {
        let pieces: Vec<Result<Bytes, String>> = body
            .chunks(piece)
            .map(|p| Ok(Bytes::from_static(p)))
            .collect();
        chunks_from(
            futures::stream::iter(pieces),
            Duration::from_secs(5),
            "requested",
            42,
        )
        .collect()
        .await
    }

    async fn replay_ok(body: &'static [u8], piece: usize) -> Vec<StreamChunk> {
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
        for piece in [TEXT.len(), 7] {
            let out = replay_ok(TEXT, piece).await;
            let vs: Vec<Value> = out.iter().map(json).collect();
            assert_eq!(vs.len(), 5, "3 texts, finish, usage: {vs:?}");
            for v in &vs {
                assert_eq!(v["id"], "yWuYaPPCFvbbnsEPz7TR-A4");
                assert_eq!(v["model"], "gemini-2.5-flash");
                assert_eq!(v["created"], 42);
                assert_eq!(v["object"], "chat.completion.chunk");
            }
            assert_eq!(
                delta(&vs[0]),
                &json!({"role": "assistant", "content": "AI learns patterns"})
            );
            assert_eq!(
                delta(&vs[1]),
                &json!({"content": " from data to make predictions"})
            );
            assert_eq!(delta(&vs[2]), &json!({"content": " or decisions."}));
            assert!(
                vs[..3]
                    .iter()
                    .all(|v| v["choices"][0]["finish_reason"].is_null())
            );
            assert_eq!(delta(&vs[3]), &json!({}));
            assert_eq!(vs[3]["choices"][0]["finish_reason"], "stop");
            assert_eq!(out[3].finish_reason.as_deref(), Some("stop"));
            assert_eq!(vs[4]["choices"], json!([]));
            assert_eq!(
                vs[4]["usage"],
                json!({"prompt_tokens": 8, "completion_tokens": 568, "total_tokens": 576,
                       "prompt_tokens_details": {"cached_tokens": 0},
                       "completion_tokens_details": {"reasoning_tokens": 556}})
            );
            assert!(out[4].usage_only && !out[3].usage_only);
            let usage = out[4].usage.unwrap();
            assert_eq!(
                (
                    usage.input_tokens,
                    usage.output_tokens,
                    usage.reasoning_tokens
                ),
                (8, 568, 556)
            );
            assert!(out[..4].iter().all(|c| c.usage.is_none()));
        }
    }

    #[tokio::test]
    async fn parallel_calls_arrive_whole_with_their_signature() {
        let out = replay_ok(CALLS, 11).await;
        let vs: Vec<Value> = out.iter().map(json).collect();
        assert_eq!(vs.len(), 4, "text, calls, finish, usage: {vs:?}");
        assert_eq!(
            delta(&vs[0]),
            &json!({"role": "assistant", "content": "Let me check both."})
        );
        assert_eq!(
            delta(&vs[1]),
            &json!({"tool_calls": [
                {"index": 0, "id": "call_0_ts_Cp8BAdHtim-9x_5kYwQ1Zx2dZ3RvIGJlIA", "type": "function",
                 "function": {"name": "get_current_temperature", "arguments": "{\"location\":\"London\"}"}},
                {"index": 1, "id": "call_1", "type": "function",
                 "function": {"name": "get_current_temperature", "arguments": "{\"location\":\"Paris\"}"}}
            ]})
        );
        assert_eq!(vs[2]["choices"][0]["finish_reason"], "tool_calls");
        let usage = out[3].usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (118, 133));
    }

    /// gemini-pro sent `finishReason: STOP` on every event (the REST streaming quickstart of
    /// Google's cookbook shows it): one finish chunk, at the end, and no usage chunk.
    #[tokio::test]
    async fn a_finish_reason_on_every_event_finishes_once() {
        const BODY: &[u8] = b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"In the quaint\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}]}\r\n\r\n\
data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" cottage\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}]}\r\n\r\n";
        let out = replay_ok(BODY, 9).await;
        let vs: Vec<Value> = out.iter().map(json).collect();
        assert_eq!(vs.len(), 3, "{vs:?}");
        let id = vs[0]["id"].as_str().unwrap();
        assert!(id.starts_with("chatcmpl-") && id.len() > 20, "{id}");
        assert!(vs.iter().all(|v| v["id"] == id), "one id for the stream");
        let again: Vec<Value> = replay_ok(BODY, 9).await.iter().map(json).collect();
        assert_ne!(again[0]["id"], id, "each stream draws its own id");
        assert_eq!(vs[0]["model"], "requested");
        let finishes: Vec<Option<&str>> = out.iter().map(|c| c.finish_reason.as_deref()).collect();
        assert_eq!(finishes, [None, None, Some("stop")]);
        assert!(out.iter().all(|c| c.usage.is_none() && !c.usage_only));
    }

    #[tokio::test]
    async fn a_blocked_prompt_streams_an_empty_filtered_answer() {
        const BODY: &[u8] = b"data: {\"promptFeedback\": {\"blockReason\": \"PROHIBITED_CONTENT\"},\"usageMetadata\": {\"promptTokenCount\": 9,\"totalTokenCount\": 9},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"r1\"}\r\n\r\n";
        let out = replay_ok(BODY, BODY.len()).await;
        let vs: Vec<Value> = out.iter().map(json).collect();
        assert_eq!(vs.len(), 3, "{vs:?}");
        assert_eq!(delta(&vs[0]), &json!({"role": "assistant", "content": ""}));
        assert_eq!(vs[1]["choices"][0]["finish_reason"], "content_filter");
        assert!(out[2].usage_only);
        assert_eq!(out[2].usage.unwrap().input_tokens, 9);
    }

    #[tokio::test]
    async fn several_candidates_are_several_choices() {
        let mut t = Translator::new("m", 0);
        let chunks = t
            .event(r#"{"candidates":[{"content":{"parts":[{"text":"a"}]},"index":0},{"content":{"parts":[{"text":"b"}]},"index":1}]}"#)
            .unwrap();
        let vs: Vec<Value> = chunks.iter().map(json).collect();
        assert_eq!(vs[0]["choices"][0]["index"], 0);
        assert_eq!(vs[1]["choices"][0]["index"], 1);
        assert_eq!(vs[1]["choices"][0]["delta"]["role"], "assistant");
        let chunks = t
            .event(r#"{"candidates":[{"content":{"parts":[{"text":"a2"}]},"finishReason":"MAX_TOKENS","index":0},{"content":{"parts":[{"functionCall":{"name":"f"}}]},"finishReason":"STOP","index":1}]}"#)
            .unwrap();
        assert!(
            json(&chunks[0])["choices"][0]["delta"]
                .get("role")
                .is_none()
        );
        let end: Vec<(Value, Option<String>)> = t
            .end()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    json(c)["choices"][0]["index"].clone(),
                    c.finish_reason.clone(),
                )
            })
            .collect();
        assert_eq!(
            end,
            [
                (json!(0), Some("length".to_owned())),
                (json!(1), Some("tool_calls".to_owned()))
            ]
        );
        // Events that add nothing make no chunks.
        let mut t = Translator::new("m", 0);
        t.event(r#"{"candidates":[{"content":{"parts":[{"text":"x"}]}}]}"#)
            .unwrap();
        assert!(
            t.event(r#"{"candidates":[{"content":{"parts":[{"text":"", "thoughtSignature":"c2ln"}]}}],"usageMetadata":{"promptTokenCount":1}}"#)
                .unwrap()
                .is_empty()
        );
        assert!(
            t.event(r#"{"candidates":[{"content":{"parts":[{"text":"hm","thought":true}]}}]}"#)
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn an_error_event_cuts_the_stream_and_nothing_follows() {
        const BODY: &[u8] = b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}],\"role\": \"model\"},\"index\": 0}]}\r\n\r\n\
data: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded.\", \"status\": \"UNAVAILABLE\"}}\r\n\r\n\
data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"!\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}]}\r\n\r\n";
        let out = replay(BODY, BODY.len()).await;
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].is_ok());
        match &out[1] {
            Err(e @ ProviderError::StreamCut(msg)) => {
                assert!(
                    msg.contains("UNAVAILABLE") && msg.contains("overloaded"),
                    "{msg}"
                );
                assert!(e.retryable());
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn malformed_data_and_early_end_are_errors() {
        const MALFORMED: &[u8] = b"data: {\"candidates\": []}\r\n\r\ndata: {not json\r\n\r\ndata: {\"candidates\": []}\r\n\r\n";
        let out = replay(MALFORMED, 5).await;
        assert_eq!(out.len(), 1);
        assert!(matches!(out[0], Err(ProviderError::MalformedChunk(_))));

        // The transcript without its last event: no candidate finished.
        let last = TEXT.windows(6).rposition(|w| w == b"data: ").unwrap();
        let cut: &'static [u8] = &TEXT[..last];
        let out = replay(cut, 64).await;
        match out.last() {
            Some(Err(ProviderError::StreamCut(msg))) => {
                assert_eq!(msg, "stream ended before any candidate finished");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out.len(), 3, "two text chunks, then the cut");
        assert!(out[..2].iter().all(Result::is_ok));

        let broken = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"data: {\"candidates\": [")),
            Err("connection reset".to_owned()),
        ]);
        let out: Vec<_> = chunks_from(broken, Duration::from_secs(1), "m", 0)
            .collect()
            .await;
        assert!(
            matches!(out.as_slice(), [Err(ProviderError::StreamCut(_))]),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_upstream_times_out_as_stream_idle() {
        let silent = futures::stream::pending::<Result<Bytes, String>>();
        let out: Vec<_> = chunks_from(silent, Duration::from_millis(20), "m", 0)
            .collect()
            .await;
        assert_eq!(out.len(), 1);
        assert!(matches!(
            out[0],
            Err(ProviderError::Timeout {
                phase: "stream_idle"
            })
        ));
    }
}
