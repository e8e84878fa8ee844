//! Anthropic SSE stream → OpenAI `chat.completion.chunk`s. The SSE framing is the
//! eventsource-stream crate's; [`Translator`] turns each event's payload into at most one chunk
//! and is pure, so transcripts can be replayed without HTTP. This file decides when a stream is
//! broken (idle, cut, malformed, error event); it never retries or sees routing.

use bytes::Bytes;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt, TryStreamExt};
use std::pin::Pin;
use std::time::Duration;

use super::convert::{finish_reason, usage};
use super::wire::{AnUsage, BlockDelta, StartBlock, StreamEvent};
use crate::providers::canonical::{Chunk, ChunkChoice, Delta, OaOutToolCall, OaUsage};
use crate::providers::{ChatStream, ProviderError, StreamChunk};

/// Turn an upstream response body into chunks. `idle` bounds the wait for each event;
/// `created` is stamped on every chunk.
pub fn chunks(resp: reqwest::Response, idle: Duration, created: u64) -> ChatStream {
    let bytes = resp
        .bytes_stream()
        .map_err(|e| crate::providers::short_cause(&e));
    chunks_from(bytes, idle, created)
}

/// [`chunks`] over any byte stream: the adapter feeds it a response body, tests a transcript.
pub(super) fn chunks_from<S>(bytes: S, idle: Duration, created: u64) -> ChatStream
where
    S: Stream<Item = Result<Bytes, String>> + Send + 'static,
{
    let state = State {
        events: Box::pin(bytes.eventsource()),
        translator: Translator::new(created),
        finished: false,
        idle,
    };
    futures::stream::unfold(state, next).boxed()
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<String>>> + Send>>;

struct State {
    events: Events,
    translator: Translator,
    finished: bool,
    idle: Duration,
}

impl State {
    /// Yield `e` and end the stream: nothing after a failure is trustworthy.
    fn fail(mut self, e: ProviderError) -> Option<(Result<StreamChunk, ProviderError>, State)> {
        self.finished = true;
        Some((Err(e), self))
    }
}

async fn next(mut st: State) -> Option<(Result<StreamChunk, ProviderError>, State)> {
    if st.finished {
        return None;
    }
    loop {
        let Ok(item) = tokio::time::timeout(st.idle, st.events.next()).await else {
            return st.fail(ProviderError::Timeout {
                phase: "stream_idle",
            });
        };
        let ev = match item {
            None => {
                return st.fail(ProviderError::StreamCut(
                    "stream ended before message_stop".into(),
                ));
            }
            Some(Err(e)) => return st.fail(ProviderError::StreamCut(e.to_string())),
            Some(Ok(ev)) => ev,
        };
        if ev.data.is_empty() {
            continue;
        }
        match st.translator.event(&ev.data) {
            Ok(Step::Skip) => continue,
            Ok(Step::Chunk(chunk)) => return Some((Ok(chunk), st)),
            Ok(Step::Last(chunk)) => {
                st.finished = true;
                return Some((Ok(chunk), st));
            }
            Ok(Step::End) => return None,
            Err(e) => return st.fail(e),
        }
    }
}

/// What one event amounts to.
#[derive(Debug)]
pub(super) enum Step {
    /// Nothing for the client (ping, block stop, thinking, unknown event types).
    Skip,
    Chunk(StreamChunk),
    /// The usage chunk sent for `message_stop`; the stream is complete after it.
    Last(StreamChunk),
    /// `message_stop` of a stream that reported no usage: complete, and the gateway counts
    /// the tokens itself.
    End,
}

/// The per-stream state the translation needs: the identity every chunk repeats, which content
/// blocks are tool calls, and the usage so far.
#[derive(Debug)]
pub(super) struct Translator {
    id: String,
    model: String,
    created: u64,
    /// (content block index, OpenAI tool-call index) of each `tool_use` block so far: OpenAI
    /// numbers tool calls from 0, Anthropic numbers all blocks, text included.
    tools: Vec<(u64, u32)>,
    /// `None` until the stream reports some.
    usage: Option<AnUsage>,
}

impl Translator {
    pub(super) fn new(created: u64) -> Self {
        Self {
            id: String::new(),
            model: String::new(),
            created,
            tools: Vec::new(),
            usage: None,
        }
    }

    /// Translate one `data:` payload.
    pub(super) fn event(&mut self, data: &str) -> Result<Step, ProviderError> {
        let ev: StreamEvent<'_> =
            serde_json::from_str(data).map_err(|e| ProviderError::MalformedChunk(e.to_string()))?;
        match ev {
            StreamEvent::MessageStart { message } => {
                self.id = message.id.into_owned();
                self.model = message.model.into_owned();
                self.usage = message.usage;
                let delta = Delta {
                    role: Some("assistant"),
                    content: Some(""),
                    tool_calls: Vec::new(),
                };
                self.chunk(delta, None)
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block: StartBlock::ToolUse { id, name },
            } => {
                // invariant: a message has far fewer than 2^32 content blocks.
                let ordinal = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                self.tools.push((index, ordinal));
                let call = OaOutToolCall::whole(Some(ordinal), &*id, &name, "");
                self.chunk(
                    Delta {
                        tool_calls: vec![call],
                        ..Delta::default()
                    },
                    None,
                )
            }
            StreamEvent::ContentBlockDelta {
                delta: BlockDelta::TextDelta { text },
                ..
            } if !text.is_empty() => self.chunk(
                Delta {
                    content: Some(&text),
                    ..Delta::default()
                },
                None,
            ),
            StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::InputJsonDelta { partial_json },
            } if !partial_json.is_empty() => {
                // Input deltas of blocks that are not client tool calls (server tools) have no
                // place in the OpenAI shape.
                let Some(&(_, ordinal)) = self.tools.iter().find(|(i, _)| *i == index) else {
                    return Ok(Step::Skip);
                };
                let call = OaOutToolCall::fragment(ordinal, &partial_json);
                self.chunk(
                    Delta {
                        tool_calls: vec![call],
                        ..Delta::default()
                    },
                    None,
                )
            }
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    // Cumulative counts: the latest wins. Input counts appear here only when
                    // they changed during the turn.
                    let total = self.usage.get_or_insert_default();
                    total.output_tokens = u.output_tokens.unwrap_or(total.output_tokens);
                    total.input_tokens = u.input_tokens.unwrap_or(total.input_tokens);
                    total.cache_read_input_tokens =
                        u.cache_read_input_tokens.or(total.cache_read_input_tokens);
                    total.cache_creation_input_tokens = u
                        .cache_creation_input_tokens
                        .or(total.cache_creation_input_tokens);
                }
                match delta.stop_reason.as_deref().map(finish_reason) {
                    Some(reason) => self.chunk(Delta::default(), Some(reason)),
                    None => Ok(Step::Skip),
                }
            }
            StreamEvent::MessageStop => {
                let Some(reported) = &self.usage else {
                    return Ok(Step::End);
                };
                let (usage, oa_usage) = usage(reported);
                let data = self.serialize(&[], Some(oa_usage))?;
                Ok(Step::Last(StreamChunk {
                    data,
                    usage: Some(usage),
                    finish_reason: None,
                    usage_only: true,
                }))
            }
            StreamEvent::Error { error } => Err(ProviderError::StreamCut(format!(
                "provider reported an error mid-stream: {}: {}",
                error.error_type.as_deref().unwrap_or("error"),
                error.message.as_deref().unwrap_or("(no message)")
            ))),
            StreamEvent::ContentBlockStart { .. }
            | StreamEvent::ContentBlockDelta { .. }
            | StreamEvent::Ping
            | StreamEvent::Other => Ok(Step::Skip),
        }
    }

    fn chunk(
        &self,
        delta: Delta<'_>,
        finish_reason: Option<&'static str>,
    ) -> Result<Step, ProviderError> {
        let choice = ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        };
        let data = self.serialize(std::slice::from_ref(&choice), None)?;
        Ok(Step::Chunk(StreamChunk {
            data,
            usage: None,
            finish_reason: finish_reason.map(str::to_owned),
            usage_only: false,
        }))
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

    const TEXT: &[u8] = include_bytes!("../../../tests/fixtures/anthropic/stream_text.sse");
    const TOOL: &[u8] = include_bytes!("../../../tests/fixtures/anthropic/stream_tool_use.sse");

    /// Feed `body` in pieces of `piece` bytes, so events straddle reads as they do on a socket.
    async fn replay(body: &'static [u8], piece: usize) -> Vec<Result<StreamChunk, ProviderError>> {
        let pieces: Vec<Result<Bytes, String>> = body
            .chunks(piece)
            .map(|p| Ok(Bytes::from_static(p)))
            .collect();
        chunks_from(futures::stream::iter(pieces), Duration::from_secs(5), 42)
            .collect()
            .await
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
            let out: Vec<StreamChunk> = replay(TEXT, piece)
                .await
                .into_iter()
                .collect::<Result<_, _>>()
                .unwrap();
            let vs: Vec<Value> = out.iter().map(json).collect();
            assert_eq!(vs.len(), 5, "role, 2 texts, finish, usage: {vs:?}");
            for v in &vs {
                assert_eq!(v["id"], "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY");
                assert_eq!(v["model"], "claude-opus-4-6");
                assert_eq!(v["created"], 42);
                assert_eq!(v["object"], "chat.completion.chunk");
            }
            assert_eq!(delta(&vs[0]), &json!({"role": "assistant", "content": ""}));
            assert_eq!(vs[0]["choices"][0]["finish_reason"], Value::Null);
            assert!(vs[0].get("usage").is_none());
            assert_eq!(delta(&vs[1]), &json!({"content": "Hello"}));
            assert_eq!(delta(&vs[2]), &json!({"content": "!"}));
            assert_eq!(delta(&vs[3]), &json!({}));
            assert_eq!(vs[3]["choices"][0]["finish_reason"], "stop");
            assert_eq!(out[3].finish_reason.as_deref(), Some("stop"));
            assert_eq!(vs[4]["choices"], json!([]));
            assert_eq!(
                vs[4]["usage"],
                json!({"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40,
                       "prompt_tokens_details": {"cached_tokens": 0}})
            );
            assert!(out[4].usage_only && !out[3].usage_only);
            let usage = out[4].usage.unwrap();
            assert_eq!((usage.input_tokens, usage.output_tokens), (25, 15));
            assert!(out[..4].iter().all(|c| c.usage.is_none()));
        }
    }

    #[tokio::test]
    async fn tool_use_transcript_becomes_text_then_one_tool_call() {
        let out: Vec<StreamChunk> = replay(TOOL, 13)
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        let vs: Vec<Value> = out.iter().map(json).collect();
        let text: String = vs
            .iter()
            .filter_map(|v| delta(v)["content"].as_str())
            .collect();
        assert_eq!(text, "Okay, let's check the weather for San Francisco, CA:");
        let calls: Vec<&Value> = vs
            .iter()
            .filter_map(|v| delta(v).get("tool_calls"))
            .map(|c| &c[0])
            .collect();
        assert_eq!(
            calls[0],
            &json!({"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}})
        );
        assert!(
            calls[1..]
                .iter()
                .all(|c| c["index"] == 0 && c.get("id").is_none())
        );
        let args: String = calls
            .iter()
            .map(|c| c["function"]["arguments"].as_str().unwrap())
            .collect();
        let args: Value = serde_json::from_str(&args).unwrap();
        assert_eq!(
            args,
            json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
        );
        // role + 13 text deltas + tool start + 8 non-empty argument deltas + finish + usage.
        assert_eq!(vs.len(), 1 + 13 + 1 + 8 + 1 + 1);
        let finish = &vs[vs.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        let last = out.last().unwrap();
        assert!(last.usage_only);
        let usage = last.usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (472, 89));
    }

    #[tokio::test]
    async fn an_error_event_cuts_the_stream_and_nothing_follows() {
        const BODY: &[u8] = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n\
event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let out = replay(BODY, BODY.len()).await;
        assert_eq!(out.len(), 2);
        assert!(out[0].is_ok());
        match &out[1] {
            Err(e @ ProviderError::StreamCut(msg)) => {
                assert!(
                    msg.contains("overloaded_error") && msg.contains("Overloaded"),
                    "{msg}"
                );
                assert!(e.retryable());
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn malformed_data_and_early_end_are_errors() {
        const MALFORMED: &[u8] = b"event: ping\ndata: {\"type\":\"ping\"}\n\ndata: {not json\n\ndata: {\"type\":\"message_stop\"}\n\n";
        let out = replay(MALFORMED, 5).await;
        assert_eq!(out.len(), 1);
        assert!(matches!(out[0], Err(ProviderError::MalformedChunk(_))));

        let cut = &TEXT[..TEXT.len() / 2];
        let out = replay(cut, 64).await;
        match out.last() {
            Some(Err(ProviderError::StreamCut(msg))) => {
                assert_eq!(msg, "stream ended before message_stop");
            }
            other => panic!("{other:?}"),
        }
        assert!(out[..out.len() - 1].iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn a_silent_upstream_times_out_as_stream_idle() {
        let silent = futures::stream::pending::<Result<Bytes, String>>();
        let out: Vec<_> = chunks_from(silent, Duration::from_millis(20), 0)
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

    #[tokio::test]
    async fn a_stream_without_usage_ends_without_a_usage_chunk() {
        // The documented extended-thinking transcript carries no usage at all.
        const BODY: &[u8] = b"event: message_start\ndata: {\"type\": \"message_start\", \"message\": {\"id\": \"msg_01\", \"type\": \"message\", \"role\": \"assistant\", \"content\": [], \"model\": \"claude-opus-4-6\", \"stop_reason\": null, \"stop_sequence\": null}}\n\n\
event: message_delta\ndata: {\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"end_turn\", \"stop_sequence\": null}}\n\n\
event: message_stop\ndata: {\"type\": \"message_stop\"}\n\n";
        let out: Vec<StreamChunk> = replay(BODY, BODY.len())
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(out.len(), 2, "role and finish");
        assert!(out.iter().all(|c| c.usage.is_none() && !c.usage_only));
    }

    #[test]
    fn later_usage_and_unknown_events() {
        let mut t = Translator::new(0);
        t.event(r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":10,"cache_read_input_tokens":100,"cache_creation_input_tokens":5,"output_tokens":1}}}"#).unwrap();
        for skipped in [
            r#"{"type":"ping"}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"s"}}"#,
            r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"a_future_event","x":1}"#,
        ] {
            assert!(matches!(t.event(skipped), Ok(Step::Skip)), "{skipped}");
        }
        let Step::Chunk(finish) = t
            .event(r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":7,"input_tokens":12}}"#)
            .unwrap()
        else {
            panic!("expected a finish chunk");
        };
        assert_eq!(finish.finish_reason.as_deref(), Some("length"));
        let Step::Last(last) = t.event(r#"{"type":"message_stop"}"#).unwrap() else {
            panic!("expected the last chunk");
        };
        let usage = last.usage.unwrap();
        assert_eq!(
            (
                usage.input_tokens,
                usage.cached_input_tokens,
                usage.output_tokens
            ),
            (12 + 100 + 5, 100, 7)
        );
    }
}
