//! A cached answer: one canonical `chat.completion` (OpenAI's shape, whatever the surface or the
//! provider), read from what a request's `ResponseCompleted` recorded, and served back either
//! whole or as the canonical chunks an upstream would have streamed.
//!
//! Three ways in, one shape: a plain OpenAI answer ([`from_plain_openai`]), a plain Anthropic
//! `message` ([`from_plain_messages`]), a stream's chunks ([`from_stream`]). Two ways out: the
//! completion re-stamped for the request it serves ([`with_model`]), then either its body (for
//! `Surface::answer`) or its [`chunks`] (for a surface's framer). Pure: no I/O, no clock.
//!
//! Only answers that replay the same both ways are taken: complete (every choice finished),
//! without logprobs (a replayed stream would lose them), audio or a legacy `function_call`.
//! This module does not decide whether an answer may be cached (status, privacy policy, request
//! options): the cache does.

use bytes::Bytes;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

use crate::events::Usage;
use crate::providers::StreamChunk;

/// A replayed stream's text and tool arguments are cut into pieces of at most this many bytes
/// (at char boundaries): frames stay as small as an upstream's, so a client or SSE parser with
/// a line limit (Go's `bufio.Scanner` stops at 64 KiB) reads a cached answer as it reads a live
/// one, and a stream guard holds back no more than it would upstream. Sending the whole text in
/// one frame would save only a few hundred bytes of chunk envelope per piece.
const PIECE_BYTES: usize = 512;

/// One cached answer in the canonical shape, with what the gateway reads of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    /// A canonical `chat.completion` JSON.
    pub body: Bytes,
    pub usage: Option<Usage>,
    /// The first choice's.
    pub finish_reason: Option<String>,
}

/// A `chat.completion` as a client got it on the OpenAI surface. `None` when it is not a
/// complete completion (a body clipped in an event, which ends with `…[truncated N bytes]`, no
/// longer parses) or does not replay as a stream (see the module docs). The body is kept as it
/// was: fields the stream replay does not carry (`service_tier`, a provider's extensions…)
/// still reach clients that ask for the JSON answer.
pub fn from_plain_openai(body: &str) -> Option<Cached> {
    let completion: InCompletion<'_> = serde_json::from_str(body).ok()?;
    let usage = usage_member(completion.usage)?;
    let first = completion.choices.first()?;
    let finish_reason = first.finish_reason.clone();
    let replayable = completion
        .choices
        .iter()
        .all(|c| c.finish_reason.is_some() && c.logprobs.is_none() && c.message.is_replayable());
    replayable.then(|| Cached {
        body: Bytes::copy_from_slice(body.as_bytes()),
        usage,
        finish_reason,
    })
}

/// An Anthropic `message` body (as a client got it on the Messages surface, or as Anthropic
/// sent it) → the canonical completion the Anthropic adapter makes of it. Its `created` is 0:
/// [`with_model`] stamps the serving request's.
pub fn from_plain_messages(body: &str) -> Option<Cached> {
    let canonical = crate::providers::anthropic::conversions::response(body.as_bytes()).ok()?;
    from_plain_openai(std::str::from_utf8(&canonical).ok()?)
}

/// A stream's canonical chunks (their JSON, one a line, in order, as `ResponseCompleted.body`
/// keeps them) → the one completion they make. Per choice: the role, the concatenated `content`
/// and `refusal` (null when no chunk carried one), tool calls merged by their `index` in index
/// order, the finish reason; `id`, `model`, `created`, `system_fingerprint` from the first chunk
/// that has them; usage from the last chunk that carries it. `None` when a line does not parse
/// (a clipped log's last line never does), a chunk carries an error or logprobs, or a choice
/// never finished (the stream was cut).
pub fn from_stream(log: &str) -> Option<Cached> {
    let mut head = StreamHead::default();
    let mut usage: Option<&RawValue> = None;
    let mut choices: BTreeMap<u32, ChoiceAcc> = BTreeMap::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let chunk: InChunk<'_> = serde_json::from_str(line).ok()?;
        if chunk.error.is_some() {
            return None;
        }
        head.fill(
            chunk.id,
            chunk.model,
            chunk.created,
            chunk.system_fingerprint,
        );
        usage = chunk.usage.or(usage);
        for choice in chunk.choices {
            if choice.logprobs.is_some() {
                return None;
            }
            choices.entry(choice.index).or_default().add(choice)?;
        }
    }
    if choices.is_empty() {
        return None;
    }
    let out_choices = choices
        .iter()
        .map(|(index, acc)| acc.choice(*index))
        .collect::<Option<Vec<_>>>()?;
    let finish_reason = out_choices.first().map(|c| c.finish_reason.to_owned());
    let completion = OutCompletion {
        id: head.id.as_deref().unwrap_or_default(),
        object: "chat.completion",
        created: head.created.unwrap_or_default(),
        model: head.model.as_deref().unwrap_or_default(),
        choices: out_choices,
        usage,
        system_fingerprint: head.system_fingerprint.as_deref(),
    };
    let body = serde_json::to_vec(&completion).ok()?;
    Some(Cached {
        body: Bytes::from(body),
        usage: usage_member(usage)?,
        finish_reason,
    })
}

/// The canonical chunks that replay `cached` as a stream, in the order an upstream sends them.
/// For each choice in turn: a first chunk with the role and the first piece of the content
/// (none when the content is null), the rest of the content, the refusal, each tool call (its
/// id, type and name, then its arguments in pieces), then an empty delta with the finish reason.
/// Last, when the answer has usage, the usage-only chunk. Every chunk carries the completion's
/// `id`, `model`, `created` (and `system_fingerprint`): re-stamp with [`with_model`] first.
/// Empty only when `cached.body` is not a completion (a `Cached` not made by this module).
pub fn chunks(cached: &Cached) -> Vec<StreamChunk> {
    let Ok(body) = std::str::from_utf8(&cached.body) else {
        return Vec::new();
    };
    let Ok(completion) = serde_json::from_str::<InCompletion<'_>>(body) else {
        return Vec::new();
    };
    replay(&completion).unwrap_or_default()
}

/// `cached` as a new response: its completion with the serving request's `id`, the `model` to
/// name and `created`; every other member kept as stored, in its place and byte for byte. `None`
/// when the body is not a JSON object (a `Cached` not made by this module).
pub fn with_model(cached: &Cached, id: &str, model: &str, created: u64) -> Option<Cached> {
    let body = std::str::from_utf8(&cached.body).ok()?;
    let Members(members) = serde_json::from_str(body).ok()?;
    let stamped = Restamped {
        members: &members,
        id,
        model,
        created,
    };
    Some(Cached {
        body: Bytes::from(serde_json::to_vec(&stamped).ok()?),
        usage: cached.usage,
        finish_reason: cached.finish_reason.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// Reading a completion and its usage.
// ---------------------------------------------------------------------------------------------

/// What is read of a `chat.completion`; members not named here are kept in the stored body.
#[derive(Deserialize)]
struct InCompletion<'a> {
    #[serde(default)]
    id: String,
    #[serde(default)]
    created: u64,
    #[serde(default)]
    model: String,
    #[serde(default)]
    system_fingerprint: Option<String>,
    choices: Vec<InChoice>,
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InChoice {
    #[serde(default)]
    index: u32,
    message: InMessage,
    #[serde(default)]
    logprobs: Option<IgnoredAny>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct InMessage {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<InToolCall>>,
    #[serde(default)]
    annotations: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    audio: Option<IgnoredAny>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
}

impl InMessage {
    /// Whether a stream of content, refusal and tool calls says all this message says.
    fn is_replayable(&self) -> bool {
        self.audio.is_none()
            && self.function_call.is_none()
            && self.annotations.as_ref().is_none_or(Vec::is_empty)
            && self
                .tool_calls
                .iter()
                .flatten()
                .all(|c| !c.function.name.is_empty())
    }
}

#[derive(Deserialize)]
struct InToolCall {
    #[serde(default)]
    id: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    function: InFunction,
}

#[derive(Deserialize)]
struct InFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

/// OpenAI's usage figures, as the OpenAI adapter reads them.
#[derive(Deserialize)]
struct InUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<InPromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<InCompletionDetails>,
}

#[derive(Deserialize)]
struct InPromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct InCompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// The gateway's usage for a completion's `usage` member: `Some(None)` when there is none,
/// `None` when it is not a usage object.
fn usage_member(raw: Option<&RawValue>) -> Option<Option<Usage>> {
    match raw {
        Some(raw) => usage_of(raw).map(Some),
        None => Some(None),
    }
}

/// The gateway's usage for an OpenAI `usage` member; `None` when it is not one.
fn usage_of(raw: &RawValue) -> Option<Usage> {
    let u: InUsage = serde_json::from_str(raw.get()).ok()?;
    Some(Usage {
        input_tokens: u.prompt_tokens,
        output_tokens: u.completion_tokens,
        cached_input_tokens: u
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0),
        reasoning_tokens: u
            .completion_tokens_details
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0),
        estimated: false,
    })
}

// ---------------------------------------------------------------------------------------------
// Reading a stream.
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct InChunk<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    created: Option<u64>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    system_fingerprint: Option<String>,
    #[serde(default)]
    choices: Vec<InChunkChoice>,
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
    /// Some servers report a failure inside a stream as `{"error": {...}}`.
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct InChunkChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: InDelta,
    #[serde(default)]
    logprobs: Option<IgnoredAny>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct InDelta {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<InDeltaCall>>,
    #[serde(default)]
    annotations: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    audio: Option<IgnoredAny>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct InDeltaCall {
    /// Absent at a few servers that send each call whole: its place in the delta then.
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    function: Option<InDeltaFunction>,
}

#[derive(Deserialize)]
struct InDeltaFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// The completion-wide members of a stream: the first non-empty value of each.
#[derive(Default)]
struct StreamHead {
    id: Option<String>,
    model: Option<String>,
    created: Option<u64>,
    system_fingerprint: Option<String>,
}

impl StreamHead {
    fn fill(
        &mut self,
        id: Option<String>,
        model: Option<String>,
        created: Option<u64>,
        fingerprint: Option<String>,
    ) {
        let first = |slot: &mut Option<String>, v: Option<String>| {
            if slot.is_none() {
                *slot = v.filter(|s| !s.is_empty());
            }
        };
        first(&mut self.id, id);
        first(&mut self.model, model);
        first(&mut self.system_fingerprint, fingerprint);
        self.created = self.created.or(created);
    }
}

/// One choice of a stream, as far as it has come.
#[derive(Default)]
struct ChoiceAcc {
    role: Option<String>,
    content: Option<String>,
    refusal: Option<String>,
    calls: BTreeMap<u32, CallAcc>,
    finish_reason: Option<String>,
}

#[derive(Default)]
struct CallAcc {
    id: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    arguments: String,
}

impl ChoiceAcc {
    /// Add one chunk's part of this choice; `None` for what a replay could not say.
    fn add(&mut self, choice: InChunkChoice) -> Option<()> {
        let delta = choice.delta;
        if delta.audio.is_some()
            || delta.function_call.is_some()
            || delta.annotations.is_some_and(|a| !a.is_empty())
        {
            return None;
        }
        if self.role.is_none() {
            self.role = delta.role;
        }
        if let Some(text) = delta.content {
            self.content.get_or_insert_default().push_str(&text);
        }
        if let Some(text) = delta.refusal {
            self.refusal.get_or_insert_default().push_str(&text);
        }
        for (position, call) in delta.tool_calls.into_iter().flatten().enumerate() {
            let index = call.index.unwrap_or(position as u32);
            let acc = self.calls.entry(index).or_default();
            if acc.id.is_none() {
                acc.id = call.id.filter(|s| !s.is_empty());
            }
            if acc.kind.is_none() {
                acc.kind = call.kind.filter(|s| !s.is_empty());
            }
            if let Some(function) = call.function {
                if acc.name.is_none() {
                    acc.name = function.name.filter(|s| !s.is_empty());
                }
                if let Some(arguments) = function.arguments {
                    acc.arguments.push_str(&arguments);
                }
            }
        }
        if choice.finish_reason.is_some() {
            self.finish_reason = choice.finish_reason;
        }
        Some(())
    }

    /// The finished choice as a completion's; `None` if it never finished or names no tool.
    fn choice(&self, index: u32) -> Option<OutChoice<'_>> {
        let tool_calls = self
            .calls
            .values()
            .map(|c| {
                Some(OutToolCall {
                    id: c.id.as_deref().unwrap_or_default(),
                    kind: c.kind.as_deref().unwrap_or("function"),
                    function: OutFunction {
                        name: c.name.as_deref()?,
                        arguments: &c.arguments,
                    },
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(OutChoice {
            index,
            message: OutMessage {
                role: self.role.as_deref().unwrap_or("assistant"),
                content: self.content.as_deref(),
                refusal: self.refusal.as_deref(),
                tool_calls,
            },
            logprobs: None,
            finish_reason: self.finish_reason.as_deref()?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Writing a completion and its chunks.
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct OutCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<OutChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_fingerprint: Option<&'a str>,
}

#[derive(Serialize)]
struct OutChoice<'a> {
    index: u32,
    message: OutMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    role: &'a str,
    content: Option<&'a str>,
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OutToolCall<'a>>,
}

#[derive(Serialize)]
struct OutToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    function: OutFunction<'a>,
}

#[derive(Serialize)]
struct OutFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// A `chat.completion.chunk`, members in OpenAI's order.
#[derive(Serialize)]
struct OutChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_fingerprint: Option<&'a str>,
    choices: &'a [OutChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct OutChunkChoice<'a> {
    index: u32,
    delta: OutDelta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct OutDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OutDeltaCall<'a>>,
}

#[derive(Serialize)]
struct OutDeltaCall<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    function: OutDeltaFunction<'a>,
}

#[derive(Serialize)]
struct OutDeltaFunction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// Writes one completion's chunks.
struct Replay<'a> {
    completion: &'a InCompletion<'a>,
    out: Vec<StreamChunk>,
}

impl Replay<'_> {
    /// One chunk: of a choice, or (no choice) the usage-only chunk with `usage`, its JSON and
    /// what the gateway reads of it.
    fn push(
        &mut self,
        choice: Option<OutChunkChoice<'_>>,
        usage: Option<(&RawValue, Option<Usage>)>,
    ) -> serde_json::Result<()> {
        let c = self.completion;
        let finish_reason = choice
            .as_ref()
            .and_then(|ch| ch.finish_reason.map(str::to_owned));
        let usage_only = choice.is_none();
        let chunk = OutChunk {
            id: &c.id,
            object: "chat.completion.chunk",
            created: c.created,
            model: &c.model,
            system_fingerprint: c.system_fingerprint.as_deref(),
            choices: choice.as_slice(),
            usage: usage.map(|(json, _)| json),
        };
        self.out.push(StreamChunk {
            data: Bytes::from(serde_json::to_vec(&chunk)?),
            usage: usage.and_then(|(_, u)| u),
            finish_reason,
            usage_only,
        });
        Ok(())
    }

    /// A chunk of choice `index` with `delta` and no finish reason.
    fn delta(&mut self, index: u32, delta: OutDelta<'_>) -> serde_json::Result<()> {
        let choice = OutChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason: None,
        };
        self.push(Some(choice), None)
    }

    fn choice(&mut self, choice: &InChoice) -> serde_json::Result<()> {
        let index = choice.index;
        let message = &choice.message;
        let mut content = message
            .content
            .as_deref()
            .map(pieces)
            .unwrap_or_default()
            .into_iter();
        let first = content.next();
        let role = message.role.as_deref().unwrap_or("assistant");
        self.delta(
            index,
            OutDelta {
                role: Some(role),
                content: first,
                ..OutDelta::default()
            },
        )?;
        for piece in content {
            self.delta(index, text_delta(Some(piece), None))?;
        }
        for piece in message.refusal.as_deref().map(pieces).unwrap_or_default() {
            self.delta(index, text_delta(None, Some(piece)))?;
        }
        for (k, call) in message.tool_calls.iter().flatten().enumerate() {
            let k = k as u32;
            let head = OutDeltaCall {
                index: k,
                id: Some(&call.id),
                kind: Some(call.kind.as_deref().unwrap_or("function")),
                function: OutDeltaFunction {
                    name: Some(&call.function.name),
                    arguments: "",
                },
            };
            self.delta(index, call_delta(head))?;
            if call.function.arguments.is_empty() {
                continue;
            }
            for piece in pieces(&call.function.arguments) {
                let fragment = OutDeltaCall {
                    index: k,
                    id: None,
                    kind: None,
                    function: OutDeltaFunction {
                        name: None,
                        arguments: piece,
                    },
                };
                self.delta(index, call_delta(fragment))?;
            }
        }
        let finish = OutChunkChoice {
            index,
            delta: OutDelta::default(),
            logprobs: None,
            finish_reason: choice.finish_reason.as_deref(),
        };
        self.push(Some(finish), None)
    }
}

fn text_delta<'a>(content: Option<&'a str>, refusal: Option<&'a str>) -> OutDelta<'a> {
    OutDelta {
        content,
        refusal,
        ..OutDelta::default()
    }
}

fn call_delta(call: OutDeltaCall<'_>) -> OutDelta<'_> {
    OutDelta {
        tool_calls: vec![call],
        ..OutDelta::default()
    }
}

fn replay(completion: &InCompletion<'_>) -> serde_json::Result<Vec<StreamChunk>> {
    let mut replay = Replay {
        completion,
        out: Vec::new(),
    };
    for choice in &completion.choices {
        replay.choice(choice)?;
    }
    if let Some(raw) = completion.usage {
        // A stored body may be pretty-printed; a chunk is one SSE `data:` line.
        let json = RawValue::from_string(compact(raw.get()))?;
        replay.push(None, Some((&json, usage_of(raw))))?;
    }
    Ok(replay.out)
}

/// Valid JSON `json` without the whitespace between its tokens.
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for ch in json.chars() {
        if in_string {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
        } else if !matches!(ch, ' ' | '\t' | '\n' | '\r') {
            in_string = ch == '"';
            out.push(ch);
        }
    }
    out
}

/// `text` in pieces of at most [`PIECE_BYTES`] bytes, cut at char boundaries; empty text is one
/// empty piece, so an empty string replays as an empty string, not as null.
fn pieces(mut text: &str) -> Vec<&str> {
    let mut out = Vec::with_capacity(text.len() / PIECE_BYTES + 1);
    while text.len() > PIECE_BYTES {
        // A char is at most 4 bytes, so a boundary lies within the last 4 bytes of the piece.
        let cut = (PIECE_BYTES - 3..=PIECE_BYTES)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(PIECE_BYTES);
        let Some((head, rest)) = text.split_at_checked(cut) else {
            break;
        };
        out.push(head);
        text = rest;
    }
    out.push(text);
    out
}

// ---------------------------------------------------------------------------------------------
// Re-stamping a stored completion.
// ---------------------------------------------------------------------------------------------

/// A JSON object's members in their order, values as written.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

/// A completion's members with `id`, `model` and `created` replaced (added when missing).
struct Restamped<'a> {
    members: &'a [(String, &'a RawValue)],
    id: &'a str,
    model: &'a str,
    created: u64,
}

impl Serialize for Restamped<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        let (mut id, mut model, mut created) = (false, false, false);
        for (key, value) in self.members {
            match key.as_str() {
                "id" => {
                    map.serialize_entry(key, self.id)?;
                    id = true;
                }
                "model" => {
                    map.serialize_entry(key, self.model)?;
                    model = true;
                }
                "created" => {
                    map.serialize_entry(key, &self.created)?;
                    created = true;
                }
                _ => map.serialize_entry(key, value)?,
            }
        }
        if !id {
            map.serialize_entry("id", self.id)?;
        }
        if !created {
            map.serialize_entry("created", &self.created)?;
        }
        if !model {
            map.serialize_entry("model", self.model)?;
        }
        map.end()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The log a stream leaves in `ResponseCompleted.body`: each chunk's JSON and a newline.
    fn log_of<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> String {
        let mut log = String::new();
        for data in chunks {
            log.push_str(std::str::from_utf8(data).unwrap());
            log.push('\n');
        }
        log
    }

    fn json_of(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    /// An OpenAI-style stream of two interleaved choices: text with multi-byte characters, and
    /// text then two tool calls whose arguments come in pieces; then the usage chunk.
    fn two_choice_log() -> String {
        let head = r#""id":"chatcmpl-42","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_1""#;
        let c = |choices: &str| {
            format!(r#"{{{head},"choices":[{choices}],"usage":null,"obfuscation":"xyz"}}"#)
        };
        let lines = [
            c(
                r#"{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}"#,
            ),
            c(
                r#"{"index":1,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}"#,
            ),
            c(
                r#"{"index":0,"delta":{"content":"Grüß dich, "},"logprobs":null,"finish_reason":null}"#,
            ),
            c(
                r#"{"index":0,"delta":{"content":"🌍 — 日本語 \"quoted\"\n"},"logprobs":null,"finish_reason":null}"#,
            ),
            c(
                r#"{"index":1,"delta":{"content":"Checking."},"logprobs":null,"finish_reason":null}"#,
            ),
            c(
                r#"{"index":1,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}"#,
            ),
            c(
                r#"{"index":1,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"loc"}}]},"logprobs":null,"finish_reason":null}"#,
            ),
            c(
                r#"{"index":1,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ation\":\"Zü"}}]},"logprobs":null,"finish_reason":null}"#,
            ),
            c(
                r#"{"index":1,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"rich\"}"}}]},"logprobs":null,"finish_reason":null}"#,
            ),
            c(
                r#"{"index":1,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]},"logprobs":null,"finish_reason":null}"#,
            ),
            c(r#"{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}"#),
            c(r#"{"index":1,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}"#),
            format!(
                r#"{{{head},"choices":[],"usage":{{"prompt_tokens":20,"completion_tokens":30,"total_tokens":50,"prompt_tokens_details":{{"cached_tokens":4,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":2,"audio_tokens":0}}}}}}"#
            ),
        ];
        log_of(lines.iter().map(|l| l.as_bytes()))
    }

    fn replayed_log(cached: &Cached) -> String {
        log_of(chunks(cached).iter().map(|c| &c.data[..]))
    }

    #[test]
    fn a_stream_becomes_one_completion_and_replays_to_the_same() {
        let cached = from_stream(&two_choice_log()).unwrap();
        assert_eq!(
            cached.usage,
            Some(Usage {
                input_tokens: 20,
                output_tokens: 30,
                cached_input_tokens: 4,
                reasoning_tokens: 2,
                estimated: false,
            })
        );
        assert_eq!(cached.finish_reason.as_deref(), Some("stop"));
        let body = json_of(&cached.body);
        assert_eq!(
            body,
            json!({
                "id": "chatcmpl-42", "object": "chat.completion", "created": 1700000000,
                "model": "gpt-4o-2024-08-06",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "Grüß dich, 🌍 — 日本語 \"quoted\"\n", "refusal": null},
                     "logprobs": null, "finish_reason": "stop"},
                    {"index": 1, "message": {"role": "assistant", "content": "Checking.", "refusal": null, "tool_calls": [
                        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Zürich\"}"}},
                        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                     ]}, "logprobs": null, "finish_reason": "tool_calls"}
                ],
                "usage": {"prompt_tokens": 20, "completion_tokens": 30, "total_tokens": 50,
                          "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
                          "completion_tokens_details": {"reasoning_tokens": 2, "audio_tokens": 0}},
                "system_fingerprint": "fp_1"
            })
        );
        let again = from_stream(&replayed_log(&cached)).unwrap();
        assert_eq!(again, cached);
    }

    #[test]
    fn replayed_chunks_are_shaped_like_an_upstream_stream() {
        let cached = from_stream(&two_choice_log()).unwrap();
        let out = chunks(&cached);
        let values: Vec<Value> = out.iter().map(|c| json_of(&c.data)).collect();
        for (c, v) in out.iter().zip(&values) {
            assert!(!c.data.contains(&b'\n'), "one SSE data line per chunk");
            assert_eq!(v["object"], "chat.completion.chunk");
            assert_eq!(v["id"], "chatcmpl-42");
            assert_eq!(v["model"], "gpt-4o-2024-08-06");
            assert_eq!(v["created"], 1700000000);
            let finish = v["choices"][0]["finish_reason"].as_str();
            assert_eq!(c.finish_reason.as_deref(), finish, "flag matches the JSON");
            assert_eq!(c.usage_only, v["choices"] == json!([]));
            assert_eq!(c.usage.is_some(), c.usage_only);
        }
        // Choice 0: role and the whole (short) text, then its finish.
        assert_eq!(
            values[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "Grüß dich, 🌍 — 日本語 \"quoted\"\n"})
        );
        assert_eq!(values[1]["choices"][0]["delta"], json!({}));
        assert_eq!(out[1].finish_reason.as_deref(), Some("stop"));
        // Choice 1: role and text, each call's head then its arguments, then its finish.
        assert_eq!(values[2]["choices"][0]["index"], 1);
        assert_eq!(
            values[3]["choices"][0]["delta"]["tool_calls"],
            json!([{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}])
        );
        assert_eq!(
            values[4]["choices"][0]["delta"]["tool_calls"],
            json!([{"index": 0, "function": {"arguments": "{\"location\":\"Zürich\"}"}}])
        );
        assert_eq!(
            values[5]["choices"][0]["delta"]["tool_calls"][0]["index"],
            1
        );
        assert_eq!(out[7].finish_reason.as_deref(), Some("tool_calls"));
        let last = values.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
        assert_eq!(out.len(), 9);
    }

    #[test]
    fn long_text_and_arguments_replay_in_bounded_pieces_at_char_boundaries() {
        let text = format!("{}{}{}", "a".repeat(511), "é".repeat(400), "🌍".repeat(300));
        let args = json!({"text": "ü".repeat(700)}).to_string();
        let body = json!({
            "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": args}}]},
                "logprobs": null, "finish_reason": "tool_calls"}]
        });
        let cached = from_plain_openai(&body.to_string()).unwrap();
        assert_eq!(cached.usage, None);
        let out = chunks(&cached);
        assert!(
            out.iter().all(|c| !c.usage_only),
            "no usage, no usage chunk"
        );
        for c in &out {
            let v = json_of(&c.data);
            let delta = &v["choices"][0]["delta"];
            let piece = delta["content"]
                .as_str()
                .or(delta["tool_calls"][0]["function"]["arguments"].as_str())
                .unwrap_or_default();
            assert!(piece.len() <= PIECE_BYTES, "{}", piece.len());
        }
        assert!(out.len() > 6, "{}", out.len());
        let streamed = from_stream(&replayed_log(&cached)).unwrap();
        let v = json_of(&streamed.body);
        assert_eq!(v["choices"][0]["message"]["content"], text.as_str());
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            args.as_str()
        );
        assert_eq!(from_stream(&replayed_log(&streamed)).unwrap(), streamed);
    }

    #[test]
    fn compact_drops_whitespace_between_tokens_only() {
        let pretty = "{\n  \"a\": [1, 2],\n\t\"b \\\" c\": \"x \\\\\" }";
        assert_eq!(compact(pretty), r#"{"a":[1,2],"b \" c":"x \\"}"#);
        let v: Value = serde_json::from_str(pretty).unwrap();
        assert_eq!(json_of(compact(pretty).as_bytes()), v);
    }

    #[test]
    fn pieces_cover_the_text_and_keep_empty_text() {
        assert_eq!(pieces(""), [""]);
        let text = "€".repeat(1000);
        let parts = pieces(&text);
        assert!(
            parts
                .iter()
                .all(|p| p.len() <= PIECE_BYTES && !p.is_empty())
        );
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn a_cut_stream_is_not_an_answer() {
        let log = two_choice_log();
        let cut: String = log
            .lines()
            .filter(|l| !l.contains("finish_reason\":\"stop"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(from_stream(&cut), None, "choice 0 never finished");
        let clipped = format!("{}…[truncated 812 bytes]", &log[..log.len() / 2]);
        assert_eq!(from_stream(&clipped), None);
        assert_eq!(from_stream(""), None, "no choice at all");
        let error = format!("{}{}\n", &log, r#"{"error":{"message":"overloaded"}}"#);
        assert_eq!(from_stream(&error), None);
    }

    #[test]
    fn logprobs_are_not_cached() {
        let log = two_choice_log().replacen(
            r#""logprobs":null"#,
            r#""logprobs":{"content":[{"token":"G","logprob":-0.1,"bytes":[71],"top_logprobs":[]}]}"#,
            1,
        );
        assert_eq!(from_stream(&log), None);
        let plain = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"G"},"logprobs":{"content":[]},"finish_reason":"stop"}]}"#;
        assert_eq!(from_plain_openai(plain), None);
    }

    /// A non-stream OpenAI answer as the API reference shows it (with `annotations: []`).
    const PLAIN: &str = r#"{
  "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
  "object": "chat.completion",
  "created": 1741569952,
  "model": "gpt-4.1-2025-04-14",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "Hello! How can I assist you today?",
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 19,
    "completion_tokens": 10,
    "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
  },
  "service_tier": "default"
}"#;

    #[test]
    fn a_plain_answer_is_kept_as_it_was_and_a_clipped_one_is_refused() {
        let cached = from_plain_openai(PLAIN).unwrap();
        assert_eq!(&cached.body[..], PLAIN.as_bytes());
        assert_eq!(cached.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            cached.usage,
            Some(Usage {
                input_tokens: 19,
                output_tokens: 10,
                ..Usage::default()
            })
        );
        let clipped = format!("{}…[truncated 120 bytes]", &PLAIN[..300]);
        assert_eq!(from_plain_openai(&clipped), None);
        let whole_then_marker = format!("{PLAIN}…[truncated 0 bytes]");
        assert_eq!(from_plain_openai(&whole_then_marker), None);
        let unfinished = PLAIN.replace(r#""finish_reason": "stop""#, r#""finish_reason": null"#);
        assert_eq!(from_plain_openai(&unfinished), None);
        assert_eq!(from_plain_openai(r#"{"object":"list","data":[]}"#), None);
        assert_eq!(
            from_plain_openai(r#"{"id":"c","choices":[]}"#),
            None,
            "no choice"
        );
        // Replayed and read back, the stream says what the JSON says, one line a chunk
        // although the stored body is pretty-printed.
        assert!(chunks(&cached).iter().all(|c| !c.data.contains(&b'\n')));
        let streamed = from_stream(&replayed_log(&cached)).unwrap();
        assert_eq!(streamed.usage, cached.usage);
        assert_eq!(streamed.finish_reason, cached.finish_reason);
        let (a, b) = (json_of(&streamed.body), json_of(&cached.body));
        assert_eq!(
            a["choices"][0]["message"]["content"],
            b["choices"][0]["message"]["content"]
        );
        assert_eq!(a["usage"], b["usage"]);
        assert_eq!(a["id"], b["id"]);
    }

    #[test]
    fn what_a_stream_cannot_say_is_not_cached() {
        let audio = PLAIN.replace(
            r#""annotations": []"#,
            r#""audio": {"id": "a", "data": "AAA"}"#,
        );
        assert_eq!(from_plain_openai(&audio), None);
        let cited = PLAIN.replace(
            r#""annotations": []"#,
            r#""annotations": [{"type": "url_citation"}]"#,
        );
        assert_eq!(from_plain_openai(&cited), None);
        let legacy = PLAIN.replace(
            r#""annotations": []"#,
            r#""function_call": {"name": "f", "arguments": "{}"}"#,
        );
        assert_eq!(from_plain_openai(&legacy), None);
    }

    #[test]
    fn an_anthropic_message_becomes_the_canonical_completion() {
        let body = include_str!("../../tests/fixtures/anthropic/messages_tool_use_response.json");
        let cached = from_plain_messages(body).unwrap();
        assert_eq!(cached.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(
            cached.usage,
            Some(Usage {
                input_tokens: 472,
                output_tokens: 65,
                ..Usage::default()
            })
        );
        let v = json_of(&cached.body);
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "claude-sonnet-4-5");
        let message = &v["choices"][0]["message"];
        assert_eq!(
            message["content"],
            "I'll check the current weather in San Francisco for you."
        );
        let call = &message["tool_calls"][0];
        assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(
            args,
            json!({"location": "San Francisco, CA", "unit": "celsius"})
        );
        assert_eq!(from_plain_messages(&body[..body.len() - 20]), None);
    }

    #[test]
    fn an_anthropic_upstream_stream_log_becomes_a_completion() {
        // The chunks the Anthropic adapter makes of a real transcript, as the pipeline logs them.
        let sse = include_str!("../../tests/fixtures/anthropic/stream_tool_use.sse");
        let mut events = crate::providers::anthropic::conversions::StreamEvents::default();
        let mut data = Vec::new();
        for line in sse.lines() {
            if let Some(payload) = line.strip_prefix("data: ")
                && let Some(chunk) = events.event(payload).unwrap()
            {
                data.push(chunk);
            }
        }
        let log = log_of(data.iter().map(|d| &d[..]));
        let cached = from_stream(&log).unwrap();
        assert_eq!(cached.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(cached.usage.map(|u| u.input_tokens), Some(472));
        let v = json_of(&cached.body);
        let message = &v["choices"][0]["message"];
        assert!(
            message["content"]
                .as_str()
                .unwrap()
                .starts_with("Okay, let's check the weather"),
            "{message}"
        );
        let call = &message["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert!(args.is_object(), "{args}");
        assert_eq!(from_stream(&replayed_log(&cached)).unwrap(), cached);
    }

    #[test]
    fn a_hit_is_restamped_and_keeps_everything_else() {
        let cached = from_plain_openai(PLAIN).unwrap();
        let hit = with_model(&cached, "chatcmpl-new", "gpt-4.1", 1800000000).unwrap();
        assert_eq!(hit.usage, cached.usage);
        assert_eq!(hit.finish_reason, cached.finish_reason);
        let text = std::str::from_utf8(&hit.body).unwrap();
        assert!(
            text.starts_with(r#"{"id":"chatcmpl-new","object":"chat.completion","created":1800000000,"model":"gpt-4.1","choices":"#),
            "members keep their order: {text}"
        );
        let (mut a, mut b) = (json_of(&hit.body), json_of(&cached.body));
        for v in [&mut a, &mut b] {
            let o = v.as_object_mut().unwrap();
            for k in ["id", "model", "created"] {
                o.remove(k);
            }
        }
        assert_eq!(a, b, "every other member as stored");
        for c in chunks(&hit) {
            let v = json_of(&c.data);
            assert_eq!(v["id"], "chatcmpl-new");
            assert_eq!(v["model"], "gpt-4.1");
            assert_eq!(v["created"], 1800000000);
        }
        // A completion without those members gets them.
        let bare = Cached {
            body: Bytes::from_static(br#"{"choices":[]}"#),
            usage: None,
            finish_reason: None,
        };
        let stamped = with_model(&bare, "x", "m", 5).unwrap();
        assert_eq!(
            json_of(&stamped.body),
            json!({"choices": [], "id": "x", "created": 5, "model": "m"})
        );
        let broken = Cached {
            body: Bytes::from_static(b"[1]"),
            ..bare
        };
        assert_eq!(with_model(&broken, "x", "m", 5), None);
        assert!(chunks(&broken).is_empty());
    }
}
