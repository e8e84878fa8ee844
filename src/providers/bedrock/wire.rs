//! serde mirrors of the Amazon Bedrock runtime API for the Bedrock adapter: the Converse request
//! it writes, the Converse answer, ConverseStream event payloads, error bodies it reads, and
//! the InvokeModel bodies of the two embedding families it speaks (Amazon Titan, Cohere Embed).
//! The OpenAI shapes on the other side are `providers::canonical`. Types only: what maps to what
//! is decided in `convert/`, `stream/` and `embed.rs`.
//!
//! Bedrock's JSON is camelCase; a content block is a union written as an object with exactly one
//! key (`{"text": …}`, `{"toolUse": …}`), so the write side uses externally tagged enums and the
//! read side structs whose every member is optional (a member added later is simply ignored).

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

// ---------------------------------------------------------------------------------------------
// Converse / ConverseStream request, as written.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest<'a> {
    pub messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemBlock<'a>>,
    #[serde(skip_serializing_if = "InferenceConfig::is_empty")]
    pub inference_config: InferenceConfig<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Serialize)]
pub struct Message<'a> {
    pub role: Role,
    pub content: Vec<Block<'a>>,
}

/// One content block: a union, so exactly one key.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Block<'a> {
    Text(&'a str),
    Image(Image<'a>),
    ToolUse(ToolUse<'a>),
    ToolResult(ToolResult<'a>),
}

#[derive(Debug, Serialize)]
pub struct Image<'a> {
    /// `png`, `jpeg`, `gif` or `webp`.
    pub format: &'static str,
    pub source: ImageSource<'a>,
}

/// `bytes` is a blob: base64 in JSON, so the data URL's payload is forwarded as it came.
#[derive(Debug, Serialize)]
pub struct ImageSource<'a> {
    pub bytes: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUse<'a> {
    pub tool_use_id: &'a str,
    pub name: &'a str,
    pub input: serde_json::Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult<'a> {
    pub tool_use_id: &'a str,
    pub content: Vec<ToolResultContent<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolResultContent<'a> {
    Text(&'a str),
}

#[derive(Debug, Serialize)]
pub struct SystemBlock<'a> {
    pub text: Cow<'a, str>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<&'a str>>,
}

impl InferenceConfig<'_> {
    pub fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_none()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig<'a> {
    pub tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool<'a> {
    pub tool_spec: ToolSpec<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    pub input_schema: InputSchema,
}

#[derive(Debug, Serialize)]
pub struct InputSchema {
    pub json: serde_json::Value,
}

/// A union: `{"any": {}}` or `{"tool": {"name": …}}`. Bedrock's third member, `{"auto": {}}`,
/// is its default and is never written: not every model takes an explicit `toolChoice`.
#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolChoice<'a> {
    Any(Empty),
    Tool { name: &'a str },
}

/// Serializes as `{}`.
#[derive(Debug, PartialEq, Serialize)]
pub struct Empty {}

// ---------------------------------------------------------------------------------------------
// Converse answers, as read.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse<'a> {
    #[serde(default, borrow)]
    pub output: Option<Output<'a>>,
    #[serde(default, borrow)]
    pub stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub usage: Option<TokenUsage>,
}

#[derive(Debug, Deserialize)]
pub struct Output<'a> {
    #[serde(default, borrow)]
    pub message: Option<OutMessage<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct OutMessage<'a> {
    #[serde(default, borrow)]
    pub content: Vec<OutBlock<'a>>,
}

/// A block of an answer. Kinds the OpenAI shape has no place for (`reasoningContent`, images,
/// citations…) leave both fields empty and are dropped.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutBlock<'a> {
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tool_use: Option<OutToolUse<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutToolUse<'a> {
    #[serde(borrow)]
    pub tool_use_id: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(default)]
    pub input: Option<serde_json::Value>,
}

/// Bedrock's token counts. `inputTokens` excludes the tokens read from and written to the
/// prompt cache, which are reported apart (and billed at their own rates).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_write_input_tokens: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// ConverseStream event payloads (the JSON of one event-stream message), as read. Every payload
// also carries a padding field `p` of random length, which is ignored like any unknown field.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStart<'a> {
    #[serde(default)]
    pub content_block_index: u64,
    #[serde(default, borrow)]
    pub start: Option<StartBlock<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartBlock<'a> {
    #[serde(default, borrow)]
    pub tool_use: Option<ToolUseStart<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseStart<'a> {
    #[serde(borrow)]
    pub tool_use_id: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDelta<'a> {
    #[serde(default)]
    pub content_block_index: u64,
    #[serde(default, borrow)]
    pub delta: Option<DeltaBlock<'a>>,
}

/// A union: text, a fragment of a tool's input JSON, or reasoning (which is dropped).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaBlock<'a> {
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tool_use: Option<ToolUseDelta<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct ToolUseDelta<'a> {
    #[serde(default, borrow)]
    pub input: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStop<'a> {
    #[serde(default, borrow)]
    pub stop_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct StreamMetadata {
    #[serde(default)]
    pub usage: Option<TokenUsage>,
}

/// The body of an error answer, and the payload of an exception message in a stream:
/// `{"message": …}` (some services spell it `Message`).
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default, alias = "Message")]
    pub message: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Embeddings (InvokeModel): Amazon Titan and Cohere Embed bodies.
// ---------------------------------------------------------------------------------------------

/// One text for a Titan embeddings model. Titan Text G1 takes `inputText` alone, Titan Text V2
/// `dimensions` and `normalize`, Titan Multimodal `embeddingConfig`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanRequest<'a> {
    pub input_text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_config: Option<TitanEmbeddingConfig>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanEmbeddingConfig {
    pub output_embedding_length: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanResponse {
    #[serde(default)]
    pub embedding: Vec<f32>,
    #[serde(default)]
    pub input_text_token_count: u64,
}

#[derive(Debug, Serialize)]
pub struct CohereRequest<'a> {
    pub texts: &'a [&'a str],
    pub input_type: &'a str,
    pub truncate: &'static str,
    /// Embed v4 only; earlier models have a fixed size and refuse it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_dimension: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct CohereResponse {
    pub embeddings: CohereEmbeddings,
}

/// `embeddings` is a list of float vectors, or (when embedding types were asked for, and by
/// Embed v4) an object of such lists keyed by type.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CohereEmbeddings {
    Floats(Vec<Vec<f32>>),
    ByType {
        #[serde(default)]
        float: Option<Vec<Vec<f32>>>,
    },
}
