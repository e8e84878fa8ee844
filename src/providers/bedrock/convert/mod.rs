//! OpenAI chat request → Bedrock Converse request, and Converse answer → OpenAI
//! `chat.completion`. Pure: no I/O, no clock (the caller passes `created`), no HTTP. Embeddings
//! are `embed.rs`'s, stream events `stream/`'s.
//!
//! Where Bedrock cannot say what OpenAI can:
//! - `n` other than 1: refused as a 400 (`ProviderError::Invalid`); Converse makes one answer.
//! - Image URLs: Converse takes image bytes only (or S3 objects), never a URL, so `http(s)`
//!   image URLs are refused as a 400 naming the fix (send a `data:` URL). Media types other
//!   than png, jpeg, gif and webp are refused the same way.
//! - `tool_choice: "none"`: Converse has no such mode. The tools and the whole `toolConfig` are
//!   left out, so the model cannot call any; but Bedrock refuses a conversation holding
//!   `toolUse`/`toolResult` blocks without a `toolConfig`, so when the history has tool calls
//!   the tools are sent anyway, without a choice (`auto`): the model may then call one.
//! - Tool history without tools: when the history holds tool calls but the request offers no
//!   tools, each tool named in the history is declared with an open schema (`{"type":
//!   "object"}`), for the same reason.
//! - `response_format` (`json_object`, `json_schema`): Converse has no JSON mode that every
//!   model supports, so the request is kept and the format becomes an instruction appended to
//!   the system prompt (with the schema, for `json_schema`). The model is asked, not forced:
//!   the answer is not validated, and `strict` cannot be honoured.
//! - `parallel_tool_calls`, `user`, `metadata`, `seed`, `logprobs`, `top_logprobs`,
//!   `logit_bias`, penalties, `service_tier`, `store`, `reasoning_effort`, `modalities`,
//!   `audio`, `prediction`, `stream_options` (Bedrock always reports usage), a message's
//!   `name`, an image's `detail`, a tool's `strict`: dropped silently, no Converse equivalent
//!   (`requestMetadata` exists but only for invocation logs, and refuses most characters).
//! - Empty texts are dropped (Bedrock refuses blank text blocks) and a message left empty
//!   vanishes; turns of the same role are merged, as Bedrock requires alternation.
//! - Audio and file parts, the legacy `function` role and tools that are not functions are
//!   refused as `ProviderError::Unsupported`; malformed input (unknown roles, tool arguments
//!   that are not a JSON object, a `tool` message without `tool_call_id`) as a 400.
//!
//! Values are forwarded as given: a `temperature` a model refuses is Bedrock's to refuse.

use serde::Deserialize;
use std::borrow::Cow;

use super::wire::{
    Block, ConverseRequest, ConverseResponse, Empty, Image, ImageSource, InferenceConfig,
    InputSchema, Message, Role, SystemBlock, TokenUsage, Tool, ToolChoice, ToolConfig, ToolResult,
    ToolResultContent, ToolSpec, ToolUse,
};
use crate::events::Usage;
use crate::providers::canonical::{
    Completion, CompletionChoice, Converted, OaContent, OaMessage, OaOutToolCall, OaPart,
    OaRequest, OaStop, OaTool, OaToolChoice, OaUsage,
};
use crate::providers::{ChatRequest, ProviderError};

/// The Converse request for `req`. The model is not part of the body: it is in the URL.
pub fn request(req: &ChatRequest) -> Result<ConverseRequest<'_>, ProviderError> {
    let oa = OaRequest::deserialize(&req.rest)
        .map_err(|e| invalid(format!("invalid chat request: {e}")))?;
    match oa.n {
        None | Some(1) => {}
        Some(n) => {
            return Err(invalid(format!(
                "n: Bedrock makes one choice per request, so n must be 1 (got {n})"
            )));
        }
    }
    let mut system: Vec<SystemBlock<'_>> = Vec::new();
    let mut messages: Vec<Message<'_>> = Vec::with_capacity(oa.messages.len());
    for (i, m) in oa.messages.iter().enumerate() {
        match m.role {
            "system" | "developer" => system_blocks(m, i, &mut system)?,
            "user" => push(&mut messages, Role::User, content_blocks(m, i)?),
            "assistant" => push(&mut messages, Role::Assistant, assistant_blocks(m, i)?),
            "tool" => push(&mut messages, Role::User, vec![tool_result(m, i)?]),
            "function" => return Err(ProviderError::Unsupported("the legacy function role")),
            other => {
                return Err(invalid(format!(
                    "messages[{i}].role: unknown role \"{other}\""
                )));
            }
        }
    }
    if let Some(instruction) = response_format(&req.rest)? {
        system.push(SystemBlock { text: instruction });
    }
    let tool_config = tool_config(&oa, &messages)?;
    Ok(ConverseRequest {
        messages,
        system,
        inference_config: InferenceConfig {
            max_tokens: oa.max_completion_tokens.or(oa.max_tokens),
            temperature: oa.temperature,
            top_p: oa.top_p,
            stop_sequences: oa.stop.map(|s| match s {
                OaStop::One(s) => vec![s],
                OaStop::Many(v) => v,
            }),
        },
        tool_config,
    })
}

/// A client error found before anything was sent.
fn invalid(message: String) -> ProviderError {
    ProviderError::Invalid(message)
}

/// Bedrock wants alternating roles: a message of the same role as the one before joins it
/// (several tool results after one assistant turn become one user message).
fn push<'a>(messages: &mut Vec<Message<'a>>, role: Role, blocks: Vec<Block<'a>>) {
    if blocks.is_empty() {
        return;
    }
    match messages.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => messages.push(Message {
            role,
            content: blocks,
        }),
    }
}

fn system_blocks<'a>(
    m: &OaMessage<'a>,
    i: usize,
    out: &mut Vec<SystemBlock<'a>>,
) -> Result<(), ProviderError> {
    for block in content_blocks(m, i)? {
        match block {
            Block::Text(text) => out.push(SystemBlock {
                text: Cow::Borrowed(text),
            }),
            _ => {
                return Err(invalid(format!(
                    "messages[{i}].content: a system message may only hold text"
                )));
            }
        }
    }
    Ok(())
}

fn content_blocks<'a>(m: &OaMessage<'a>, i: usize) -> Result<Vec<Block<'a>>, ProviderError> {
    let parts = match &m.content {
        None | Some(OaContent::Text("")) => return Ok(Vec::new()),
        Some(OaContent::Text(text)) => return Ok(vec![Block::Text(text)]),
        Some(OaContent::Parts(parts)) => parts,
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        match part {
            OaPart::Text { text: "" } | OaPart::Refusal { refusal: "" } => {}
            OaPart::Text { text } | OaPart::Refusal { refusal: text } => {
                blocks.push(Block::Text(text));
            }
            OaPart::ImageUrl { image_url } => {
                let at = format!("messages[{i}].content[{j}].image_url.url");
                blocks.push(Block::Image(image(image_url.url, &at)?));
            }
            OaPart::InputAudio {} => return Err(ProviderError::Unsupported("audio content parts")),
            OaPart::File {} => return Err(ProviderError::Unsupported("file content parts")),
            OaPart::Unknown => {
                return Err(invalid(format!(
                    "messages[{i}].content[{j}]: unknown content part type"
                )));
            }
        }
    }
    Ok(blocks)
}

/// `data:image/<png|jpeg|gif|webp>;base64,<data>` → an image block carrying the data as is.
fn image<'a>(url: &'a str, at: &str) -> Result<Image<'a>, ProviderError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        return Err(invalid(format!(
            "{at}: Bedrock does not fetch image URLs; send the image inline as a \
             data:image/<png|jpeg|gif|webp>;base64,<data> URL"
        )));
    }
    let parsed = url.strip_prefix("data:").and_then(|rest| {
        let (meta, data) = rest.split_once(',')?;
        Some((meta.strip_suffix(";base64")?, data))
    });
    let Some((media_type, data)) = parsed.filter(|(_, data)| !data.is_empty()) else {
        return Err(invalid(format!(
            "{at}: expected a data:image/<png|jpeg|gif|webp>;base64,<data> URL"
        )));
    };
    let format = match media_type.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => {
            return Err(invalid(format!(
                "{at}: Bedrock takes png, jpeg, gif or webp images, not {media_type}"
            )));
        }
    };
    Ok(Image {
        format,
        source: ImageSource { bytes: data },
    })
}

fn assistant_blocks<'a>(m: &OaMessage<'a>, i: usize) -> Result<Vec<Block<'a>>, ProviderError> {
    let mut blocks = content_blocks(m, i)?;
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let input = call.function.arguments_object().ok_or_else(|| {
            invalid(format!(
                "messages[{i}].tool_calls[{j}].function.arguments: not a JSON object"
            ))
        })?;
        blocks.push(Block::ToolUse(ToolUse {
            tool_use_id: call.id,
            name: call.function.name,
            input,
        }));
    }
    Ok(blocks)
}

/// A `tool` message → a `toolResult` block with one text block per text part. The result's
/// `status` is left out: OpenAI does not say whether a tool failed, and not every model takes it.
fn tool_result<'a>(m: &OaMessage<'a>, i: usize) -> Result<Block<'a>, ProviderError> {
    let tool_use_id = m.tool_call_id.ok_or_else(|| {
        invalid(format!(
            "messages[{i}].tool_call_id: required for role tool"
        ))
    })?;
    let mut content = Vec::new();
    match &m.content {
        None | Some(OaContent::Text("")) => {}
        Some(OaContent::Text(text)) => content.push(ToolResultContent::Text(text)),
        Some(OaContent::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                match part {
                    OaPart::Text { text: "" } => {}
                    OaPart::Text { text } => content.push(ToolResultContent::Text(text)),
                    _ => {
                        return Err(invalid(format!(
                            "messages[{i}].content[{j}]: a tool message may only hold text"
                        )));
                    }
                }
            }
        }
    }
    Ok(Block::ToolResult(ToolResult {
        tool_use_id,
        content,
    }))
}

fn tool<'a>(t: &OaTool<'a>) -> Result<Tool<'a>, ProviderError> {
    match (t.kind, &t.function) {
        ("function", Some(f)) => Ok(Tool {
            tool_spec: ToolSpec {
                name: f.name,
                description: f.description,
                input_schema: InputSchema {
                    json: f.parameters.clone().unwrap_or_else(open_schema),
                },
            },
        }),
        ("function", None) => Err(invalid("tools[]: a function tool needs `function`".into())),
        _ => Err(ProviderError::Unsupported(
            "tools whose type is not function",
        )),
    }
}

fn open_schema() -> serde_json::Value {
    serde_json::json!({"type": "object"})
}

/// `tools` + `tool_choice` → `toolConfig` (see the module docs for `none` and for tool history
/// without tools).
fn tool_config<'a>(
    oa: &OaRequest<'a>,
    messages: &[Message<'a>],
) -> Result<Option<ToolConfig<'a>>, ProviderError> {
    let tools: Vec<Tool<'a>> = oa
        .tools
        .iter()
        .flatten()
        .map(tool)
        .collect::<Result<_, _>>()?;
    let choice = match &oa.tool_choice {
        None | Some(OaToolChoice::Mode("auto")) => Some(None),
        Some(OaToolChoice::Mode("required")) => Some(Some(ToolChoice::Any(Empty {}))),
        Some(OaToolChoice::Mode("none")) => None,
        Some(OaToolChoice::Mode(other)) => {
            return Err(invalid(format!(
                "tool_choice: unknown mode \"{other}\" (expected auto, required or none)"
            )));
        }
        Some(OaToolChoice::Named { function }) => Some(Some(ToolChoice::Tool {
            name: function.name,
        })),
    };
    let history = history_tools(messages);
    let tools = if tools.is_empty() && !history.is_empty() {
        history
            .into_iter()
            .map(|name| Tool {
                tool_spec: ToolSpec {
                    name,
                    description: None,
                    input_schema: InputSchema {
                        json: open_schema(),
                    },
                },
            })
            .collect()
    } else {
        tools
    };
    let needed = messages.iter().any(|m| {
        m.content
            .iter()
            .any(|b| matches!(b, Block::ToolUse(_) | Block::ToolResult(_)))
    });
    Ok(match choice {
        _ if tools.is_empty() => None,
        Some(tool_choice) => Some(ToolConfig { tools, tool_choice }),
        // `none`: no tools at all, unless the history makes Bedrock require them.
        None if needed => Some(ToolConfig {
            tools,
            tool_choice: None,
        }),
        None => None,
    })
}

/// The names of the tools the history's assistant turns called, first use first, each once.
fn history_tools<'a>(messages: &[Message<'a>]) -> Vec<&'a str> {
    let mut names: Vec<&'a str> = Vec::new();
    for block in messages.iter().flat_map(|m| &m.content) {
        if let Block::ToolUse(call) = block
            && !names.contains(&call.name)
        {
            names.push(call.name);
        }
    }
    names
}

type Rest = serde_json::Map<String, serde_json::Value>;

/// `response_format` → the system instruction that asks for it, if any.
fn response_format(rest: &Rest) -> Result<Option<Cow<'static, str>>, ProviderError> {
    const JSON_ONLY: &str = "Respond with a single valid JSON object and nothing else: no \
                             prose before or after it, no Markdown code fences.";
    let Some(format) = rest.get("response_format").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(serde_json::Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(Cow::Borrowed(JSON_ONLY))),
        Some("json_schema") => {
            let schema = format
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .ok_or_else(|| {
                    invalid("response_format.json_schema.schema: required for json_schema".into())
                })?;
            Ok(Some(Cow::Owned(format!(
                "{JSON_ONLY} The object must conform to this JSON Schema:\n{schema}"
            ))))
        }
        _ => Err(invalid(
            "response_format.type: expected text, json_object or json_schema".into(),
        )),
    }
}

/// Bedrock's `stopReason` as an OpenAI `finish_reason`. Unknown reasons (added after this was
/// written, or `malformed_model_output`…) read as a normal stop.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

/// Bedrock's `inputTokens` excludes cache reads and writes; OpenAI's `prompt_tokens` and the
/// gateway's `input_tokens` include them, with the reads also reported as cached. Reasoning is
/// part of `outputTokens` and not reported apart.
pub fn usage(u: &TokenUsage) -> (Usage, OaUsage) {
    let cached = u.cache_read_input_tokens.unwrap_or(0);
    let usage = Usage {
        input_tokens: u.input_tokens + cached + u.cache_write_input_tokens.unwrap_or(0),
        output_tokens: u.output_tokens,
        cached_input_tokens: cached,
        reasoning_tokens: 0,
        estimated: false,
    };
    (usage, OaUsage::from_usage(&usage, false))
}

/// A Converse answer → the JSON of an OpenAI `chat.completion` named `id`. Bedrock names
/// neither the answer nor the model in the body: `id` comes from the request id header and
/// `model` is the deployment's model id.
pub fn response(
    body: &[u8],
    id: &str,
    model: &str,
    created: u64,
) -> Result<Converted, ProviderError> {
    let resp: ConverseResponse<'_> =
        serde_json::from_slice(body).map_err(|e| ProviderError::Decode(e.to_string()))?;
    let blocks = resp
        .output
        .as_ref()
        .and_then(|o| o.message.as_ref())
        .ok_or_else(|| ProviderError::Decode("the answer has no output message".into()))?;
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in &blocks.content {
        if let Some(t) = &block.text {
            text.get_or_insert_with(String::new).push_str(t);
        }
        if let Some(call) = &block.tool_use {
            let arguments = call
                .input
                .as_ref()
                .map_or_else(|| "{}".to_owned(), serde_json::Value::to_string);
            tool_calls.push(OaOutToolCall::whole(
                None,
                &*call.tool_use_id,
                &call.name,
                arguments,
            ));
        }
    }
    let finish_reason = resp.stop_reason.as_deref().map(finish_reason);
    Completion::encode(
        id,
        created,
        model,
        vec![CompletionChoice::assistant(
            0,
            text,
            tool_calls,
            finish_reason,
        )],
        resp.usage.as_ref().map(usage),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
