//! The OpenAI shapes the converting adapters (anthropic, gemini, bedrock) share, both ways: the
//! chat request as they read it (borrowed serde mirrors of the fields they act on, deserialized
//! from `ChatRequest::rest`), and the completion, stream chunk and embeddings list they write.
//! Types (and the one way a tool call's arguments are read and a chunk is encoded), no decisions:
//! what each field becomes is every adapter's own `convert.rs`; the OpenAI adapter forwards bodies
//! verbatim and never touches these.
//!
//! Strings borrow from `ChatRequest::rest`: deserializing from a `&serde_json::Value` hands out
//! borrowed strings, so a conversion copies no text. Fields a converter does not act on are
//! simply absent here, so an unknown or newer field never fails a request.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

use crate::events::Usage;
use crate::providers::ProviderError;

/// The fields of an OpenAI chat request the conversion acts on; all others are dropped.
#[derive(Debug, Deserialize)]
pub struct OaRequest<'a> {
    #[serde(borrow)]
    pub messages: Vec<OaMessage<'a>>,
    #[serde(default, borrow)]
    pub tools: Option<Vec<OaTool<'a>>>,
    #[serde(default, borrow)]
    pub tool_choice: Option<OaToolChoice<'a>>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default, borrow)]
    pub stop: Option<OaStop<'a>>,
    #[serde(default, borrow)]
    pub user: Option<&'a str>,
    #[serde(default)]
    pub n: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct OaMessage<'a> {
    pub role: &'a str,
    #[serde(default, borrow)]
    pub content: Option<OaContent<'a>>,
    #[serde(default, borrow)]
    pub tool_calls: Option<Vec<OaToolCall<'a>>>,
    #[serde(default, borrow)]
    pub tool_call_id: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OaContent<'a> {
    Text(&'a str),
    Parts(#[serde(borrow)] Vec<OaPart<'a>>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OaPart<'a> {
    Text {
        text: &'a str,
    },
    ImageUrl {
        #[serde(borrow)]
        image_url: OaImageUrl<'a>,
    },
    /// An assistant's refusal, sent back in a later turn.
    Refusal {
        refusal: &'a str,
    },
    InputAudio {},
    File {},
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
pub struct OaImageUrl<'a> {
    pub url: &'a str,
}

#[derive(Debug, Deserialize)]
pub struct OaToolCall<'a> {
    pub id: &'a str,
    #[serde(borrow)]
    pub function: OaFunctionCall<'a>,
}

#[derive(Debug, Deserialize)]
pub struct OaFunctionCall<'a> {
    pub name: &'a str,
    #[serde(default)]
    pub arguments: &'a str,
}

impl OaFunctionCall<'_> {
    /// The arguments as the JSON object every other wire format wants; an empty string (a call
    /// without arguments, as some clients send it) is `{}`. `None` when they are not an object.
    pub fn arguments_object(&self) -> Option<serde_json::Value> {
        if self.arguments.trim().is_empty() {
            return Some(serde_json::Value::Object(serde_json::Map::new()));
        }
        serde_json::from_str::<serde_json::Value>(self.arguments)
            .ok()
            .filter(serde_json::Value::is_object)
    }
}

#[derive(Debug, Deserialize)]
pub struct OaTool<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(default, borrow)]
    pub function: Option<OaFunctionDef<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct OaFunctionDef<'a> {
    pub name: &'a str,
    #[serde(default, borrow)]
    pub description: Option<&'a str>,
    /// Owned: a schema is forwarded whole, and a `Value` cannot be borrowed out of another.
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OaToolChoice<'a> {
    Mode(&'a str),
    Named {
        #[serde(borrow)]
        function: OaNamedFunction<'a>,
    },
}

#[derive(Debug, Deserialize)]
pub struct OaNamedFunction<'a> {
    pub name: &'a str,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OaStop<'a> {
    One(&'a str),
    Many(#[serde(borrow)] Vec<&'a str>),
}

// ---------------------------------------------------------------------------------------------
// OpenAI answers, as written.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OaUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: OaPromptDetails,
    /// Only from providers that report reasoning tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<OaCompletionDetails>,
}

impl OaUsage {
    /// The OpenAI figures for the gateway's normalised usage; `reasoning` says whether the
    /// provider reports reasoning tokens at all (then they are written, zero or not).
    pub fn from_usage(u: &Usage, reasoning: bool) -> Self {
        Self {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.input_tokens + u.output_tokens,
            prompt_tokens_details: OaPromptDetails {
                cached_tokens: u.cached_input_tokens,
            },
            completion_tokens_details: reasoning.then_some(OaCompletionDetails {
                reasoning_tokens: u.reasoning_tokens,
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OaPromptDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OaCompletionDetails {
    pub reasoning_tokens: u64,
}

/// A complete answer converted into the canonical shape: the `chat.completion` JSON and what
/// the gateway reads of it.
pub struct Converted {
    pub body: Vec<u8>,
    pub usage: Option<Usage>,
    pub finish_reason: Option<&'static str>,
}

impl From<Converted> for super::ChatResponse {
    fn from(c: Converted) -> Self {
        super::ChatResponse {
            body: bytes::Bytes::from(c.body),
            usage: c.usage,
            finish_reason: c.finish_reason.map(str::to_owned),
        }
    }
}

impl<'a> Completion<'a> {
    /// A `chat.completion` of `choices`, encoded with the usage the adapter read (in the
    /// gateway's terms and in OpenAI's). The first choice's finish reason is the answer's.
    pub fn encode(
        id: &'a str,
        created: u64,
        model: &'a str,
        choices: Vec<CompletionChoice<'a>>,
        usage: Option<(Usage, OaUsage)>,
    ) -> Result<Converted, ProviderError> {
        let finish_reason = choices.first().and_then(|c| c.finish_reason);
        let (usage, oa_usage) = usage.unzip();
        let completion = Completion {
            id,
            object: "chat.completion",
            created,
            model,
            choices,
            usage: oa_usage,
        };
        let body =
            serde_json::to_vec(&completion).map_err(|e| ProviderError::Decode(e.to_string()))?;
        Ok(Converted {
            body,
            usage,
            finish_reason,
        })
    }
}

impl<'a> CompletionChoice<'a> {
    /// The assistant's message as choice `index`.
    pub fn assistant(
        index: u32,
        content: Option<String>,
        tool_calls: Vec<OaOutToolCall<'a>>,
        finish_reason: Option<&'static str>,
    ) -> Self {
        CompletionChoice {
            index,
            message: OaOutMessage {
                role: "assistant",
                content,
                refusal: None,
                tool_calls,
            },
            logprobs: None,
            finish_reason,
        }
    }
}

/// A `chat.completion`.
#[derive(Debug, Serialize)]
pub struct Completion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<CompletionChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<OaUsage>,
}

#[derive(Debug, Serialize)]
pub struct CompletionChoice<'a> {
    pub index: u32,
    pub message: OaOutMessage<'a>,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct OaOutMessage<'a> {
    pub role: &'static str,
    pub content: Option<String>,
    pub refusal: Option<()>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<OaOutToolCall<'a>>,
}

/// A tool call, whole (in a message, or a stream delta of a provider that sends calls whole)
/// or in pieces (a stream's first delta names the call, later ones carry argument fragments).
#[derive(Debug, Serialize)]
pub struct OaOutToolCall<'a> {
    /// The call's position among the choice's calls; stream deltas only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Cow<'a, str>>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: OaOutFunction<'a>,
}

impl<'a> OaOutToolCall<'a> {
    /// A complete call; `index` only inside a stream delta.
    pub fn whole(
        index: Option<u32>,
        id: impl Into<Cow<'a, str>>,
        name: &'a str,
        arguments: impl Into<Cow<'a, str>>,
    ) -> Self {
        Self {
            index,
            id: Some(id.into()),
            kind: Some("function"),
            function: OaOutFunction {
                name: Some(name),
                arguments: arguments.into(),
            },
        }
    }

    /// A stream delta carrying the next fragment of the arguments of call `index`.
    pub fn fragment(index: u32, arguments: &'a str) -> Self {
        Self {
            index: Some(index),
            id: None,
            kind: None,
            function: OaOutFunction {
                name: None,
                arguments: Cow::Borrowed(arguments),
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct OaOutFunction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: Cow<'a, str>,
}

/// A `chat.completion.chunk`.
#[derive(Debug, Serialize)]
pub struct Chunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: &'a [ChunkChoice<'a>],
    /// Only on the trailing usage chunk; the gateway drops that chunk unless the client asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<OaUsage>,
}

impl Chunk<'_> {
    /// The JSON of one chunk, ready for an SSE `data:` line.
    pub fn encode(
        id: &str,
        created: u64,
        model: &str,
        choices: &[ChunkChoice<'_>],
        usage: Option<OaUsage>,
    ) -> Result<bytes::Bytes, ProviderError> {
        let chunk = Chunk {
            id,
            object: "chat.completion.chunk",
            created,
            model,
            choices,
            usage,
        };
        serde_json::to_vec(&chunk)
            .map(bytes::Bytes::from)
            .map_err(|e| ProviderError::Decode(e.to_string()))
    }
}

#[derive(Debug, Serialize)]
pub struct ChunkChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Default, Serialize)]
pub struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<OaOutToolCall<'a>>,
}

/// An embeddings `list`.
#[derive(Debug, Serialize)]
pub struct EmbeddingList<'a> {
    pub object: &'static str,
    pub data: Vec<EmbeddingItem>,
    pub model: &'a str,
    pub usage: EmbeddingUsage,
}

#[derive(Debug, Serialize)]
pub struct EmbeddingItem {
    pub object: &'static str,
    pub index: usize,
    pub embedding: Vector,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Vector {
    Floats(Vec<f32>),
    /// Little-endian f32s in base64, for `encoding_format: "base64"`.
    Base64(String),
}

impl Vector {
    /// `values` as the client asked for them: floats, or base64 when `base64`.
    pub fn new(values: Vec<f32>, base64: bool) -> Self {
        if base64 {
            Vector::Base64(base64_f32(&values))
        } else {
            Vector::Floats(values)
        }
    }
}

/// Little-endian f32s in standard base64, as OpenAI encodes `encoding_format: "base64"`.
pub fn base64_f32(v: &[f32]) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[derive(Debug, Serialize)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors_are_little_endian_f32s_with_padding() {
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, 0.0]), "AACAPwAAAAA=");
    }

    #[test]
    fn tool_call_pieces_serialize_like_openai() {
        let whole = OaOutToolCall::whole(None, "call_1", "f", "{}");
        assert_eq!(
            serde_json::to_value(&whole).unwrap(),
            serde_json::json!({"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}})
        );
        let piece = OaOutToolCall::fragment(2, "{\"a\"");
        assert_eq!(
            serde_json::to_value(&piece).unwrap(),
            serde_json::json!({"index": 2, "function": {"arguments": "{\"a\""}})
        );
    }
}
