//! OpenAI chat request → Gemini `GenerateContentRequest`, and Gemini `GenerateContentResponse`
//! → OpenAI `chat.completion`. Pure: no I/O, no clock (the caller passes `created`), no HTTP.
//! Embeddings are `embed.rs`'s.
//!
//! What the request conversion does not carry over:
//! - dropped silently, because Gemini has no equivalent or the gateway has no place for the
//!   answer: `logprobs`, `top_logprobs`, `logit_bias`, `user`, `metadata`, `store`,
//!   `service_tier`, `parallel_tool_calls`, `reasoning_effort`, `modalities`, `audio`,
//!   `prediction`, `web_search_options`, `stream_options` (Gemini always reports usage), a
//!   message's `name`, an image's `detail`, a tool's `strict`, penalties of 0 (the default, and
//!   some Gemini models refuse the field outright), and empty text (Gemini refuses empty parts);
//! - refused as [`ProviderError::Unsupported`]: audio and file content parts, the legacy
//!   `function` role, tools whose type is not `function`;
//! - refused as a 400 `invalid_request_error`: anything malformed, including tool-call
//!   `arguments` that are not a JSON object (an empty string counts as `{}`), a `tool` message
//!   whose `tool_call_id` no earlier assistant call has (Gemini needs the function's name), and
//!   image URLs that are neither `data:` nor http(s).
//!
//! Gemini gives function calls no ids, so a call's OpenAI id is `call_<n>`, numbered per choice;
//! the thought signature Gemini 3 attaches to a call (and refuses the next turn without) is
//! carried inside that id, the one field every OpenAI client sends back (see [`call_id`]).
//!
//! Values are forwarded as given: a `temperature` Gemini refuses is Gemini's to refuse.

use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;

use super::wire::{
    Content, FunctionCall as GeminiCall, FunctionCallingConfig, FunctionDeclaration,
    FunctionOutput, GenerateContentRequest, GenerateContentResponse, GenerationConfig, Part,
    PartData, Role, SystemInstruction, Tool, ToolConfig, ToolOutput, UsageMetadata,
};
use crate::events::Usage;
use crate::providers::canonical::{
    Completion, CompletionChoice, Converted, OaContent, OaMessage, OaOutToolCall, OaPart,
    OaRequest, OaStop, OaTool, OaToolChoice, OaUsage,
};
use crate::providers::{ChatRequest, ProviderError};

/// The Gemini request for `req`. The model is not part of the body: it is in the URL.
pub fn request(req: &ChatRequest) -> Result<GenerateContentRequest<'_>, ProviderError> {
    let oa = OaRequest::deserialize(&req.rest)
        .map_err(|e| invalid(format!("invalid chat request: {e}")))?;
    let mut system: Vec<Part<'_>> = Vec::new();
    let mut contents: Vec<Content<'_>> = Vec::with_capacity(oa.messages.len());
    // Tool call id → function name: a Gemini function response names its function, an OpenAI
    // tool message only points at the call. Later ids overwrite earlier ones, so a client that
    // reuses ids across turns (they are `call_0`, `call_1`… per answer) still finds the latest.
    let mut calls: HashMap<&str, &str> = HashMap::new();
    for (i, m) in oa.messages.iter().enumerate() {
        match m.role {
            "system" | "developer" => system.extend(system_parts(m, i)?),
            "user" => push(
                &mut contents,
                Role::User,
                content_parts(m.content.as_ref(), i)?,
            ),
            "assistant" => push(&mut contents, Role::Model, model_parts(m, i, &mut calls)?),
            "tool" => push(
                &mut contents,
                Role::User,
                vec![function_response(m, i, &calls)?],
            ),
            "function" => return Err(ProviderError::Unsupported("the legacy function role")),
            other => {
                return Err(invalid(format!(
                    "messages[{i}].role: unknown role \"{other}\""
                )));
            }
        }
    }
    let tools = match &oa.tools {
        Some(tools) if !tools.is_empty() => Some([Tool {
            function_declarations: tools.iter().map(tool).collect::<Result<_, _>>()?,
        }]),
        _ => None,
    };
    let choice = tool_choice(oa.tool_choice.as_ref())?;
    let (response_mime_type, response_json_schema) = response_format(&req.rest)?;
    if oa.n == Some(0) {
        return Err(invalid("n: must be at least 1".into()));
    }
    Ok(GenerateContentRequest {
        contents,
        system_instruction: (!system.is_empty()).then_some(SystemInstruction { parts: system }),
        // A tool config without tools is refused by Gemini, and means nothing anyway.
        tool_config: choice
            .filter(|_| tools.is_some())
            .map(|function_calling_config| ToolConfig {
                function_calling_config,
            }),
        tools,
        generation_config: GenerationConfig {
            temperature: oa.temperature,
            top_p: oa.top_p,
            max_output_tokens: oa.max_completion_tokens.or(oa.max_tokens),
            stop_sequences: oa.stop.map(|s| match s {
                OaStop::One(s) => vec![s],
                OaStop::Many(v) => v,
            }),
            candidate_count: oa.n.filter(|n| *n != 1),
            seed: integer(&req.rest, "seed")?,
            presence_penalty: penalty(&req.rest, "presence_penalty")?,
            frequency_penalty: penalty(&req.rest, "frequency_penalty")?,
            response_mime_type,
            response_json_schema,
        },
    })
}

/// A client error found before anything was sent.
fn invalid(message: String) -> ProviderError {
    ProviderError::Invalid(message)
}

/// A turn of the same role as the one before joins it: the tool results of one assistant turn
/// become one user turn, as Gemini's own SDKs send them.
fn push<'a>(contents: &mut Vec<Content<'a>>, role: Role, parts: Vec<Part<'a>>) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some(last) if last.role == role => last.parts.extend(parts),
        _ => contents.push(Content { role, parts }),
    }
}

fn system_parts<'a>(m: &OaMessage<'a>, i: usize) -> Result<Vec<Part<'a>>, ProviderError> {
    let parts = content_parts(m.content.as_ref(), i)?;
    if parts.iter().any(|p| !matches!(p.data, PartData::Text(_))) {
        return Err(invalid(format!(
            "messages[{i}].content: a system message may only hold text"
        )));
    }
    Ok(parts)
}

fn content_parts<'a>(
    content: Option<&OaContent<'a>>,
    i: usize,
) -> Result<Vec<Part<'a>>, ProviderError> {
    let parts = match content {
        None | Some(OaContent::Text("")) => return Ok(Vec::new()),
        Some(OaContent::Text(text)) => return Ok(vec![Part::new(PartData::Text(text))]),
        Some(OaContent::Parts(parts)) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        match part {
            OaPart::Text { text: "" } | OaPart::Refusal { refusal: "" } => {}
            OaPart::Text { text } | OaPart::Refusal { refusal: text } => {
                out.push(Part::new(PartData::Text(text)));
            }
            OaPart::ImageUrl { image_url } => {
                out.push(Part::new(image(image_url.url).ok_or_else(|| {
                    invalid(format!(
                        "messages[{i}].content[{j}].image_url.url: expected an http(s) URL or a \
                         data:<media type>;base64,<data> URL"
                    ))
                })?));
            }
            OaPart::InputAudio {} => {
                return Err(ProviderError::Unsupported("audio content parts"));
            }
            OaPart::File {} => return Err(ProviderError::Unsupported("file content parts")),
            OaPart::Unknown => {
                return Err(invalid(format!(
                    "messages[{i}].content[{j}]: unknown content part type"
                )));
            }
        }
    }
    Ok(out)
}

/// `data:<media type>;base64,<data>` → inline data; `http(s)://…` → file data whose media type
/// is guessed from the path's extension.
fn image(url: &str) -> Option<PartData<'_>> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',')?;
        let mime_type = meta.strip_suffix(";base64")?;
        return (!mime_type.is_empty() && !data.is_empty())
            .then_some(PartData::InlineData { mime_type, data });
    }
    (url.starts_with("https://") || url.starts_with("http://")).then(|| PartData::FileData {
        mime_type: image_media_type(url),
        file_uri: url,
    })
}

/// The image media type an URL's extension names; JPEG when it names none Gemini reads.
fn image_media_type(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => "image/jpeg",
    }
}

fn model_parts<'a>(
    m: &OaMessage<'a>,
    i: usize,
    calls: &mut HashMap<&'a str, &'a str>,
) -> Result<Vec<Part<'a>>, ProviderError> {
    let mut parts = content_parts(m.content.as_ref(), i)?;
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let args = call.function.arguments_object().ok_or_else(|| {
            invalid(format!(
                "messages[{i}].tool_calls[{j}].function.arguments: not a JSON object"
            ))
        })?;
        calls.insert(call.id, call.function.name);
        parts.push(Part {
            data: PartData::FunctionCall {
                name: call.function.name,
                args,
            },
            thought_signature: signature_of(call.id),
        });
    }
    Ok(parts)
}

fn function_response<'a>(
    m: &OaMessage<'a>,
    i: usize,
    calls: &HashMap<&'a str, &'a str>,
) -> Result<Part<'a>, ProviderError> {
    let id = m.tool_call_id.ok_or_else(|| {
        invalid(format!(
            "messages[{i}].tool_call_id: required for role tool"
        ))
    })?;
    let name = calls.get(id).ok_or_else(|| {
        invalid(format!(
            "messages[{i}].tool_call_id: no earlier assistant tool call has id \"{id}\""
        ))
    })?;
    let text: Cow<'a, str> = match &m.content {
        None => Cow::Borrowed(""),
        Some(OaContent::Text(t)) => Cow::Borrowed(t),
        Some(OaContent::Parts(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                match part {
                    OaPart::Text { text: t } => text.push_str(t),
                    _ => {
                        return Err(invalid(format!(
                            "messages[{i}].content[{j}]: a tool message may only hold text"
                        )));
                    }
                }
            }
            Cow::Owned(text)
        }
    };
    Ok(Part::new(PartData::FunctionResponse {
        name,
        response: FunctionOutput {
            content: tool_output(text),
        },
    }))
}

/// A tool's output as JSON when it is a JSON object or array, so the model reads structure;
/// as text otherwise (a bare `15` stays the text the tool wrote).
fn tool_output(text: Cow<'_, str>) -> ToolOutput<'_> {
    let trimmed = text.trim_start();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
    {
        return ToolOutput::Json(v);
    }
    ToolOutput::Text(text)
}

fn tool<'a>(t: &OaTool<'a>) -> Result<FunctionDeclaration<'a>, ProviderError> {
    match (t.kind, &t.function) {
        ("function", Some(f)) => Ok(FunctionDeclaration {
            name: f.name,
            description: f.description,
            parameters_json_schema: f.parameters.clone(),
        }),
        ("function", None) => Err(invalid("tools[]: a function tool needs `function`".into())),
        _ => Err(ProviderError::Unsupported(
            "tools whose type is not function",
        )),
    }
}

fn tool_choice<'a>(
    choice: Option<&OaToolChoice<'a>>,
) -> Result<Option<FunctionCallingConfig<'a>>, ProviderError> {
    let config = |mode| FunctionCallingConfig {
        mode,
        allowed_function_names: None,
    };
    Ok(match choice {
        None => None,
        Some(OaToolChoice::Mode("auto")) => Some(config("AUTO")),
        Some(OaToolChoice::Mode("none")) => Some(config("NONE")),
        Some(OaToolChoice::Mode("required")) => Some(config("ANY")),
        Some(OaToolChoice::Mode(other)) => {
            return Err(invalid(format!(
                "tool_choice: unknown mode \"{other}\" (expected auto, required or none)"
            )));
        }
        Some(OaToolChoice::Named { function }) => Some(FunctionCallingConfig {
            mode: "ANY",
            allowed_function_names: Some([function.name]),
        }),
    })
}

type Rest = serde_json::Map<String, serde_json::Value>;

/// `response_format` → (`responseMimeType`, `responseJsonSchema`).
fn response_format(
    rest: &Rest,
) -> Result<(Option<&'static str>, Option<&serde_json::Value>), ProviderError> {
    let Some(format) = rest.get("response_format").filter(|v| !v.is_null()) else {
        return Ok((None, None));
    };
    match format.get("type").and_then(serde_json::Value::as_str) {
        Some("text") => Ok((None, None)),
        Some("json_object") => Ok((Some("application/json"), None)),
        Some("json_schema") => Ok((
            Some("application/json"),
            format.get("json_schema").and_then(|s| s.get("schema")),
        )),
        _ => Err(invalid(
            "response_format.type: expected text, json_object or json_schema".into(),
        )),
    }
}

fn integer(rest: &Rest, key: &str) -> Result<Option<i64>, ProviderError> {
    match rest.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid(format!("{key}: expected an integer"))),
    }
}

/// A penalty to forward: a number other than 0.
fn penalty(rest: &Rest, key: &str) -> Result<Option<f64>, ProviderError> {
    match rest.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(|p| (p != 0.0).then_some(p))
            .ok_or_else(|| invalid(format!("{key}: expected a number"))),
    }
}

/// Where the OpenAI id of a function call carries its thought signature.
const SIGNATURE_MARK: &str = "_ts_";

/// The OpenAI id of the `ordinal`th call of a choice. Gemini 3 attaches a thought signature to
/// function calls and refuses the next request (400) unless it comes back on the same call; the
/// OpenAI shape has no field for it, but every client sends a call's id back, so the signature
/// rides in the id (`call_<n>_ts_<signature>`), re-encoded as URL-safe base64 so the id stays
/// within `[A-Za-z0-9_-]`, the alphabet Anthropic-shaped clients accept.
pub fn call_id(ordinal: u32, signature: Option<&str>) -> String {
    let Some(signature) = signature.filter(|s| !s.is_empty()) else {
        return format!("call_{ordinal}");
    };
    let mut id = format!("call_{ordinal}{SIGNATURE_MARK}");
    id.extend(signature.chars().filter_map(|c| match c {
        '+' => Some('-'),
        '/' => Some('_'),
        '=' => None,
        c => Some(c),
    }));
    id
}

/// The thought signature [`call_id`] put in `id`, back in standard base64; `None` for any other
/// id, so ids made by other providers or clients pass through untouched.
fn signature_of(id: &str) -> Option<String> {
    let rest = id.strip_prefix("call_")?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let signature = rest[digits..].strip_prefix(SIGNATURE_MARK)?;
    if digits == 0 || signature.is_empty() {
        return None;
    }
    let mut out: String = signature
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    Some(out)
}

/// Gemini's `finishReason` as an OpenAI `finish_reason`. Unknown reasons (added after this was
/// written, or `OTHER`, `MALFORMED_FUNCTION_CALL`…) read as a normal stop.
pub fn finish_reason(reason: &str, has_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        "STOP" if has_calls => "tool_calls",
        _ => "stop",
    }
}

/// Gemini counts thinking apart from the answer and tool-use prompts apart from the prompt;
/// OpenAI's `completion_tokens` and `prompt_tokens` (and the gateway's counts) include them,
/// as Gemini bills them. The cached tokens are already part of `promptTokenCount`.
pub fn usage(u: &UsageMetadata) -> (Usage, OaUsage) {
    let prompt = u.prompt_token_count + u.tool_use_prompt_token_count;
    let usage = Usage {
        input_tokens: prompt,
        output_tokens: u.candidates_token_count + u.thoughts_token_count,
        cached_input_tokens: u.cached_content_token_count,
        reasoning_tokens: u.thoughts_token_count,
        estimated: false,
    };
    (usage, OaUsage::from_usage(&usage, true))
}

/// The OpenAI tool call for Gemini's `ordinal`th function call of a choice.
pub fn tool_call<'a>(
    ordinal: u32,
    call: &'a GeminiCall<'_>,
    signature: Option<&str>,
    index: Option<u32>,
) -> OaOutToolCall<'a> {
    let arguments = call
        .args
        .as_ref()
        .map_or_else(|| "{}".to_owned(), serde_json::Value::to_string);
    OaOutToolCall::whole(index, call_id(ordinal, signature), &call.name, arguments)
}

/// The id an answer without `responseId` gets: unique, so clients and logs that key on it never
/// see two answers collide (a stream keeps the one it drew for every chunk).
pub fn fallback_id() -> String {
    format!("chatcmpl-{}", ulid::Ulid::generate())
}

/// A Gemini `GenerateContentResponse` → the JSON of an OpenAI `chat.completion`. `model` names
/// the answer when Gemini leaves `modelVersion` out.
pub fn response(body: &[u8], model: &str, created: u64) -> Result<Converted, ProviderError> {
    let resp: GenerateContentResponse<'_> =
        serde_json::from_slice(body).map_err(|e| ProviderError::Decode(e.to_string()))?;
    let mut choices = Vec::with_capacity(resp.candidates.len().max(1));
    for (pos, candidate) in resp.candidates.iter().enumerate() {
        let mut text: Option<String> = None;
        let mut tool_calls = Vec::new();
        for part in candidate.content.iter().flat_map(|c| &c.parts) {
            if let Some(t) = part
                .text
                .as_deref()
                .filter(|t| !t.is_empty() && !part.thought)
            {
                text.get_or_insert_with(String::new).push_str(t);
            }
            if let Some(call) = &part.function_call {
                // invariant: an answer has far fewer than 2^32 calls.
                let ordinal = u32::try_from(tool_calls.len()).unwrap_or(u32::MAX);
                let signature = part.thought_signature.as_deref();
                tool_calls.push(tool_call(ordinal, call, signature, None));
            }
        }
        let has_calls = !tool_calls.is_empty();
        choices.push(CompletionChoice::assistant(
            candidate
                .index
                .unwrap_or_else(|| u32::try_from(pos).unwrap_or(u32::MAX)),
            text,
            tool_calls,
            candidate
                .finish_reason
                .as_deref()
                .map(|r| finish_reason(r, has_calls)),
        ));
    }
    if choices.is_empty() {
        // Gemini answers without candidates only when it blocked the prompt itself.
        if resp
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_ref())
            .is_none()
        {
            return Err(ProviderError::Decode(
                "the answer has neither candidates nor a prompt block reason".into(),
            ));
        }
        choices.push(CompletionChoice::assistant(
            0,
            Some(String::new()),
            Vec::new(),
            Some("content_filter"),
        ));
    }
    let fallback;
    let id = match resp.response_id.as_deref() {
        Some(id) => id,
        None => {
            fallback = fallback_id();
            &fallback
        }
    };
    Completion::encode(
        id,
        created,
        resp.model_version.as_deref().unwrap_or(model),
        choices,
        resp.usage_metadata.as_ref().map(usage),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
