//! serde mirrors of the parts of OpenAI's wire format the gateway reads. Everything else in a
//! body is passed through untouched, so these types only name what we act on.

use serde::{Deserialize, Serialize};

use crate::events::Usage;

#[derive(Debug, Default, Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage {
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
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ChoiceInfo {
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// What we read of a `chat.completion` or a `chat.completion.chunk`.
#[derive(Debug, Default, Deserialize)]
pub struct CompletionInfo {
    #[serde(default)]
    pub choices: Vec<ChoiceInfo>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
    /// Some servers report a failure inside a stream as `{"error": {...}}`.
    #[serde(default)]
    pub error: Option<ErrorDetail>,
}

impl CompletionInfo {
    pub fn finish_reason(&mut self) -> Option<String> {
        self.choices.iter_mut().find_map(|c| c.finish_reason.take())
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, rename = "type")]
    pub error_type: Option<String>,
    #[serde(default)]
    pub code: Option<serde_json::Value>,
}

/// `stream_options` as sent upstream: usage is always requested so that it can be recorded.
#[derive(Debug, Serialize)]
pub struct OutStreamOptions<'a> {
    pub include_usage: bool,
    #[serde(flatten)]
    pub rest: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// The request body as sent upstream: the client's body with the deployment's model name.
#[derive(Debug, Serialize)]
pub struct OutRequest<'a> {
    pub model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<OutStreamOptions<'a>>,
    #[serde(flatten)]
    pub rest: &'a serde_json::Map<String, serde_json::Value>,
}

/// An embeddings body as sent upstream: the client's body with the deployment's model name.
#[derive(Debug, Serialize)]
pub struct OutEmbeddings<'a> {
    pub model: &'a str,
    #[serde(flatten)]
    pub rest: &'a serde_json::Map<String, serde_json::Value>,
}
