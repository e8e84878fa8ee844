//! serde mirrors of Google's Generative Language API for the Gemini adapter: the
//! `GenerateContentRequest` and `BatchEmbedContentsRequest` it writes, and the
//! `GenerateContentResponse`, embeddings and error bodies it reads. The OpenAI shapes on the
//! other side are `providers::canonical`, shared by every converting adapter. Types only: what
//! maps to what is decided in `convert.rs` and `stream.rs`.
//!
//! Gemini's JSON is proto3 JSON: camelCase names, and every field may be absent (a zero value
//! is never sent), so every field read here has a default.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

// ---------------------------------------------------------------------------------------------
// Gemini GenerateContentRequest, as written.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest<'a> {
    pub contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<SystemInstruction<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<[Tool<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    pub generation_config: GenerationConfig<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Model,
}

#[derive(Debug, Serialize)]
pub struct Content<'a> {
    pub role: Role,
    pub parts: Vec<Part<'a>>,
}

#[derive(Debug, Serialize)]
pub struct SystemInstruction<'a> {
    pub parts: Vec<Part<'a>>,
}

/// One part: exactly one kind of data, plus the thought signature Gemini asks to get back on
/// the function call it came with.
#[derive(Debug, Serialize)]
pub struct Part<'a> {
    #[serde(flatten)]
    pub data: PartData<'a>,
    #[serde(rename = "thoughtSignature", skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

impl<'a> Part<'a> {
    pub fn new(data: PartData<'a>) -> Self {
        Self {
            data,
            thought_signature: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub enum PartData<'a> {
    #[serde(rename = "text")]
    Text(&'a str),
    #[serde(rename = "inlineData")]
    InlineData {
        #[serde(rename = "mimeType")]
        mime_type: &'a str,
        data: &'a str,
    },
    #[serde(rename = "fileData")]
    FileData {
        #[serde(rename = "mimeType")]
        mime_type: &'static str,
        #[serde(rename = "fileUri")]
        file_uri: &'a str,
    },
    #[serde(rename = "functionCall")]
    FunctionCall {
        name: &'a str,
        args: serde_json::Value,
    },
    #[serde(rename = "functionResponse")]
    FunctionResponse {
        name: &'a str,
        response: FunctionOutput<'a>,
    },
}

/// `functionResponse.response`: Gemini wants an object, so the tool's output goes under
/// `content`.
#[derive(Debug, Serialize)]
pub struct FunctionOutput<'a> {
    pub content: ToolOutput<'a>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ToolOutput<'a> {
    Text(Cow<'a, str>),
    Json(serde_json::Value),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool<'a> {
    pub function_declarations: Vec<FunctionDeclaration<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeclaration<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    /// JSON Schema, as OpenAI tools carry it (`parameters` would take only Gemini's OpenAPI
    /// subset, which refuses e.g. `additionalProperties`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters_json_schema: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig<'a> {
    pub function_calling_config: FunctionCallingConfig<'a>,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig<'a> {
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_function_names: Option<[&'a str; 1]>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<&'static str>,
    /// JSON Schema, as OpenAI's `json_schema.schema` is (`responseSchema` would take only the
    /// OpenAPI subset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_json_schema: Option<&'a serde_json::Value>,
}

impl GenerationConfig<'_> {
    pub fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.max_output_tokens.is_none()
            && self.stop_sequences.is_none()
            && self.candidate_count.is_none()
            && self.seed.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.response_mime_type.is_none()
            && self.response_json_schema.is_none()
    }
}

// ---------------------------------------------------------------------------------------------
// Gemini answers, as read: GenerateContentResponse (whole, or one per stream event), errors.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse<'a> {
    #[serde(default, borrow)]
    pub candidates: Vec<Candidate<'a>>,
    #[serde(default, borrow)]
    pub prompt_feedback: Option<PromptFeedback<'a>>,
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(default, borrow)]
    pub model_version: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub response_id: Option<Cow<'a, str>>,
    /// Set instead of everything else when a stream fails after it started.
    #[serde(default)]
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate<'a> {
    #[serde(default, borrow)]
    pub content: Option<CandidateContent<'a>>,
    #[serde(default, borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub index: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct CandidateContent<'a> {
    #[serde(default, borrow)]
    pub parts: Vec<OutPart<'a>>,
}

/// A part of an answer. Kinds the OpenAI shape has no place for (inline data, executable code
/// and its result…) leave every field here empty and are dropped.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutPart<'a> {
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    /// A thought summary rather than the answer (only sent when thoughts were asked for).
    #[serde(default)]
    pub thought: bool,
    #[serde(default, borrow)]
    pub function_call: Option<FunctionCall<'a>>,
    #[serde(default, borrow)]
    pub thought_signature: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct FunctionCall<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(default)]
    pub args: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback<'a> {
    #[serde(default, borrow)]
    pub block_reason: Option<Cow<'a, str>>,
}

/// Gemini's token counts. `promptTokenCount` includes the cached tokens; `candidatesTokenCount`
/// excludes the thinking tokens, which are billed as output.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
    #[serde(default)]
    pub cached_content_token_count: u64,
    #[serde(default)]
    pub thoughts_token_count: u64,
    #[serde(default)]
    pub tool_use_prompt_token_count: u64,
}

/// `{"error": {"code", "message", "status", "details"}}`, Google's error envelope.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: Option<String>,
    /// The canonical gRPC code name: `RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`, …
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub details: Vec<ErrorItem>,
}

/// One of `details`: only `ErrorInfo.reason` and `RetryInfo.retryDelay` are read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorItem {
    #[serde(default)]
    pub reason: Option<String>,
    /// A protobuf Duration in JSON: seconds with an `s` suffix, e.g. `"22s"` or `"0.5s"`.
    #[serde(default)]
    pub retry_delay: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Embeddings: BatchEmbedContentsRequest written, its response read.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
pub struct BatchEmbedRequest<'a> {
    pub requests: Vec<EmbedRequest<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbedRequest<'a> {
    /// `models/<name>`, the model of the URL again: Gemini requires both.
    pub model: &'a str,
    pub content: EmbedContent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_dimensionality: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct EmbedContent<'a> {
    pub parts: [EmbedText<'a>; 1],
}

#[derive(Debug, Serialize)]
pub struct EmbedText<'a> {
    pub text: &'a str,
}

#[derive(Debug, Deserialize)]
pub struct BatchEmbedResponse {
    #[serde(default)]
    pub embeddings: Vec<Embedding>,
}

#[derive(Debug, Deserialize)]
pub struct Embedding {
    #[serde(default)]
    pub values: Vec<f32>,
}
