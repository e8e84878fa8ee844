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
    Completion, CompletionChoice, Content, FunctionCall as GeminiCall, FunctionCallingConfig,
    FunctionDeclaration, FunctionOutput, GenerateContentRequest, GenerateContentResponse,
    GenerationConfig, OaCompletionDetails, OaFunction, OaOutMessage, OaPromptDetails, OaToolCall,
    OaUsage, Part, PartData, Role, SystemInstruction, Tool, ToolConfig, ToolOutput, UsageMetadata,
};
use crate::events::Usage;
use crate::providers::canonical::{
    OaContent, OaMessage, OaPart, OaRequest, OaStop, OaTool, OaToolChoice,
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
        let args = arguments(call.function.arguments).ok_or_else(|| {
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

/// Tool-call arguments as Gemini's `args` object; `None` if they are not one.
fn arguments(raw: &str) -> Option<serde_json::Value> {
    if raw.trim().is_empty() {
        return Some(serde_json::Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .filter(serde_json::Value::is_object)
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
    let completion = u.candidates_token_count + u.thoughts_token_count;
    (
        Usage {
            input_tokens: prompt,
            output_tokens: completion,
            cached_input_tokens: u.cached_content_token_count,
            reasoning_tokens: u.thoughts_token_count,
            estimated: false,
        },
        OaUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: OaPromptDetails {
                cached_tokens: u.cached_content_token_count,
            },
            completion_tokens_details: OaCompletionDetails {
                reasoning_tokens: u.thoughts_token_count,
            },
        },
    )
}

/// The OpenAI tool call for Gemini's `ordinal`th function call of a choice.
pub fn tool_call<'a>(
    ordinal: u32,
    call: &'a GeminiCall<'_>,
    signature: Option<&str>,
    index: Option<u32>,
) -> OaToolCall<'a> {
    OaToolCall {
        index,
        id: call_id(ordinal, signature),
        kind: "function",
        function: OaFunction {
            name: &call.name,
            arguments: call
                .args
                .as_ref()
                .map_or_else(|| "{}".to_owned(), serde_json::Value::to_string),
        },
    }
}

/// The id an answer without `responseId` gets.
pub const FALLBACK_ID: &str = "chatcmpl-gemini";

/// What a complete Gemini answer becomes.
#[derive(Debug)]
pub struct Converted {
    pub body: Vec<u8>,
    pub usage: Option<Usage>,
    pub finish_reason: Option<&'static str>,
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
        choices.push(CompletionChoice {
            index: candidate
                .index
                .unwrap_or_else(|| u32::try_from(pos).unwrap_or(u32::MAX)),
            message: OaOutMessage {
                role: "assistant",
                content: text,
                refusal: None,
                tool_calls,
            },
            logprobs: None,
            finish_reason: candidate
                .finish_reason
                .as_deref()
                .map(|r| finish_reason(r, has_calls)),
        });
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
        choices.push(CompletionChoice {
            index: 0,
            message: OaOutMessage {
                role: "assistant",
                content: Some(String::new()),
                refusal: None,
                tool_calls: Vec::new(),
            },
            logprobs: None,
            finish_reason: Some("content_filter"),
        });
    }
    let finish_reason = choices.first().and_then(|c| c.finish_reason);
    let (usage, oa_usage) = resp.usage_metadata.as_ref().map(usage).unzip();
    let completion = Completion {
        id: resp.response_id.as_deref().unwrap_or(FALLBACK_ID),
        object: "chat.completion",
        created,
        model: resp.model_version.as_deref().unwrap_or(model),
        choices,
        usage: oa_usage,
    };
    let body = serde_json::to_vec(&completion).map_err(|e| ProviderError::Decode(e.to_string()))?;
    Ok(Converted {
        body,
        usage,
        finish_reason,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn chat(body: Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    fn convert(body: Value) -> Value {
        let req = chat(body);
        serde_json::to_value(request(&req).unwrap()).unwrap()
    }

    fn error(body: Value) -> ProviderError {
        let req = chat(body);
        request(&req).unwrap_err()
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    /// The OpenAI request whose conversion is the `generate_content_request.json` fixture.
    fn fixture_openai_request() -> Value {
        json!({
            "model": "public-gemini",
            "messages": [
                {"role": "system", "content": "You are a weather assistant."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in one sentence."}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is the weather like where this photo was taken?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg==", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://storage.googleapis.com/generativeai-downloads/images/scones.jpg"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_0_ts_Cp8BAdHtim-9x_5k", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"location\": \"Mountain View, CA\"}"}},
                    {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_0_ts_Cp8BAdHtim-9x_5k", "content": "15 degrees"},
                {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "{\"time\": \"14:05\"}"}]}
            ],
            "tools": [
                {"type": "function", "function": {
                    "name": "get_weather",
                    "description": "Get the current weather in a given location",
                    "parameters": {"type": "object", "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}}, "required": ["location"], "additionalProperties": false},
                    "strict": true
                }},
                {"type": "function", "function": {"name": "get_time"}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": false,
            "max_completion_tokens": 1024,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": ["\n\nUser:", "END"],
            "n": 2,
            "seed": 7,
            "user": "user-1234",
            "logprobs": true,
            "frequency_penalty": 0.1,
            "presence_penalty": 0,
            "response_format": {"type": "json_schema", "json_schema": {"name": "weather", "strict": true, "schema": {
                "type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"], "additionalProperties": false}}}
        })
    }

    #[test]
    fn fixture_request_converts_exactly() {
        let want: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/gemini/generate_content_request.json"
        ))
        .unwrap();
        assert_eq!(convert(fixture_openai_request()), want);
    }

    #[test]
    fn system_and_developer_become_the_system_instruction() {
        let v = convert(fixture_openai_request());
        assert_eq!(
            v["systemInstruction"],
            json!({"parts": [{"text": "You are a weather assistant."}, {"text": "Answer in one sentence."}]})
        );
        let roles: Vec<&Value> = v["contents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["role"])
            .collect();
        assert_eq!(roles, ["user", "model", "user"]);
        let image = json!({"model": "m", "messages": [{"role": "system", "content": [
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]});
        assert!(matches!(error(image), ProviderError::Invalid(_)));
    }

    #[test]
    fn images_become_inline_or_file_data() {
        let with = |url: &str| {
            let v = convert(
                json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}}]}]}),
            );
            v["contents"][0]["parts"][0].clone()
        };
        assert_eq!(
            with("data:image/png;base64,iVBORw0KGgo="),
            json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}})
        );
        assert_eq!(
            with("https://example.com/a/cat.PNG?size=large#top"),
            json!({"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/a/cat.PNG?size=large#top"}})
        );
        assert_eq!(
            with("http://example.com/pic.webp")["fileData"]["mimeType"],
            "image/webp"
        );
        assert_eq!(
            with("https://example.com/render")["fileData"]["mimeType"],
            "image/jpeg"
        );
        for bad in ["ftp://x/y.png", "data:image/png,abc", "data:;base64,abc"] {
            let body = json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": bad}}]}]});
            assert!(matches!(error(body), ProviderError::Invalid(_)), "{bad}");
        }
    }

    #[test]
    fn tool_round_trip_names_the_functions_and_merges_the_results() {
        let v = convert(fixture_openai_request());
        let contents = v["contents"].as_array().unwrap();
        assert_eq!(
            contents[1]["parts"][1],
            json!({"functionCall": {"name": "get_time", "args": {}}}),
            "empty arguments are an empty object, and an id without a signature adds none"
        );
        assert_eq!(
            contents[2]["parts"][1]["functionResponse"]["response"],
            json!({"content": {"time": "14:05"}}),
            "JSON output is passed as JSON"
        );
        assert!(
            v["tools"][0]["functionDeclarations"][0]
                .get("strict")
                .is_none()
        );

        let bad_args = json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]});
        let err = error(bad_args);
        assert!(matches!(err, ProviderError::Invalid(_)));
        assert!(err.to_string().contains("tool_calls[0]"), "{err}");
        let unknown = json!({"model": "m", "messages": [
            {"role": "tool", "tool_call_id": "call_9", "content": "x"}]});
        let err = error(unknown);
        assert!(err.to_string().contains("call_9"), "{err}");
        let no_id = json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]});
        assert!(matches!(error(no_id), ProviderError::Invalid(_)));

        // Ids repeat across answers (`call_0` each time): the latest call with the id wins.
        let v = convert(json!({"model": "m", "messages": [
            user("a"),
            {"role": "assistant", "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "first", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "1"},
            {"role": "assistant", "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "second", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "2"}
        ]}));
        assert_eq!(
            v["contents"][4]["parts"][0]["functionResponse"],
            json!({"name": "second", "response": {"content": "2"}}),
            "a bare number stays the text the tool wrote"
        );
    }

    #[test]
    fn thought_signatures_ride_in_call_ids_and_come_back() {
        let signature = "Cp8BAdHtim+9x/5kYwQ1Zx2dZ3RvIGJlIA==";
        let id = call_id(0, Some(signature));
        assert_eq!(id, "call_0_ts_Cp8BAdHtim-9x_5kYwQ1Zx2dZ3RvIGJlIA");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        assert_eq!(signature_of(&id).as_deref(), Some(signature));
        assert_eq!(call_id(3, None), "call_3");
        assert_eq!(call_id(3, Some("")), "call_3");
        for foreign in [
            "call_3",
            "call_ts_abc",
            "call__ts_abc",
            "call_1_ts_",
            "toolu_01A09q90qw90lq917835lq9",
            "call_abc123",
        ] {
            assert_eq!(signature_of(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn tool_choice_maps_every_openai_form() {
        let with = |choice: Value| {
            convert(json!({"model": "m", "messages": [user("hi")],
                "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice}))
                ["toolConfig"]
                .clone()
        };
        let mode = |m: &str| json!({"functionCallingConfig": {"mode": m}});
        assert_eq!(with(json!("auto")), mode("AUTO"));
        assert_eq!(with(json!("none")), mode("NONE"));
        assert_eq!(with(json!("required")), mode("ANY"));
        assert_eq!(
            with(json!({"type": "function", "function": {"name": "f"}})),
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}})
        );
        assert_eq!(with(Value::Null), Value::Null);
        let no_tools =
            convert(json!({"model": "m", "messages": [user("hi")], "tool_choice": "none"}));
        assert!(no_tools.get("toolConfig").is_none() && no_tools.get("tools").is_none());
        let bad = json!({"model": "m", "messages": [], "tool_choice": "sometimes"});
        assert!(matches!(error(bad), ProviderError::Invalid(_)));
    }

    #[test]
    fn generation_config_carries_only_what_was_set() {
        let v = convert(json!({"model": "m", "messages": [user("hi")]}));
        assert_eq!(
            v,
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
            "nothing set, nothing sent"
        );
        let v = convert(
            json!({"model": "m", "messages": [], "stop": "END", "max_tokens": 10,
            "n": 1, "presence_penalty": 0.0, "frequency_penalty": 0, "seed": null,
            "response_format": {"type": "json_object"}}),
        );
        assert_eq!(
            v["generationConfig"],
            json!({"maxOutputTokens": 10, "stopSequences": ["END"], "responseMimeType": "application/json"})
        );
        let v = convert(json!({"model": "m", "messages": [], "max_tokens": 10,
            "max_completion_tokens": 20, "presence_penalty": -0.5, "response_format": {"type": "text"}}));
        assert_eq!(
            v["generationConfig"],
            json!({"maxOutputTokens": 20, "presencePenalty": -0.5})
        );
        for bad in [
            json!({"model": "m", "messages": [], "seed": "7"}),
            json!({"model": "m", "messages": [], "frequency_penalty": "high"}),
            json!({"model": "m", "messages": [], "response_format": {"type": "yaml"}}),
            json!({"model": "m", "messages": [], "n": 0}),
        ] {
            assert!(
                matches!(error(bad.clone()), ProviderError::Invalid(_)),
                "{bad}"
            );
        }
    }

    #[test]
    fn unsupported_and_malformed_requests_are_refused() {
        let audio = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]});
        assert!(matches!(error(audio), ProviderError::Unsupported(_)));
        let file = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_id": "f"}}]}]});
        assert!(matches!(error(file), ProviderError::Unsupported(_)));
        let function =
            json!({"model": "m", "messages": [{"role": "function", "name": "f", "content": "x"}]});
        assert!(matches!(error(function), ProviderError::Unsupported(_)));
        let custom_tool = json!({"model": "m", "messages": [], "tools": [{"type": "custom", "custom": {"name": "x"}}]});
        assert!(matches!(error(custom_tool), ProviderError::Unsupported(_)));
        let missing = json!({"model": "m"});
        assert!(matches!(error(missing), ProviderError::Invalid(_)));
        let role = json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]});
        assert!(matches!(error(role), ProviderError::Invalid(_)));
        let unknown_part =
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "video"}]}]});
        assert!(matches!(error(unknown_part), ProviderError::Invalid(_)));
        assert!(!error(json!({"model": "m", "n": 0, "messages": []})).retryable());
    }

    #[test]
    fn empty_texts_are_dropped_and_same_role_turns_merge() {
        let v = convert(json!({"model": "m", "messages": [
            user("a"),
            {"role": "assistant", "content": ""},
            {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}
        ]}));
        assert_eq!(
            v["contents"],
            json!([{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
                   {"role": "model", "parts": [{"text": "no"}]}])
        );
    }

    #[test]
    fn text_response_fixture() {
        let c = response(
            include_bytes!("../../../tests/fixtures/gemini/generate_content_response.json"),
            "requested",
            1_700_000_000,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(v["id"], "mWuYaK3XM9e6nsEP3O7H8Qk");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["created"], 1_700_000_000);
        assert_eq!(v["model"], "gemini-2.5-flash", "modelVersion wins");
        let choice = &v["choices"][0];
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(
            choice["message"]["content"],
            "AI learns patterns from data to make predictions or decisions."
        );
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
        // 12 answer tokens + 981 thinking tokens; 2048 of the 2062 prompt tokens cached.
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 2062, "completion_tokens": 993, "total_tokens": 3055,
                   "prompt_tokens_details": {"cached_tokens": 2048},
                   "completion_tokens_details": {"reasoning_tokens": 981}})
        );
        assert_eq!(
            c.usage.unwrap(),
            Usage {
                input_tokens: 2062,
                output_tokens: 993,
                cached_input_tokens: 2048,
                reasoning_tokens: 981,
                estimated: false,
            }
        );
        assert_eq!(c.finish_reason, Some("stop"));
    }

    #[test]
    fn function_call_response_fixture() {
        let c = response(
            include_bytes!("../../../tests/fixtures/gemini/function_call_response.json"),
            "gemini-pro",
            1,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(v["id"], FALLBACK_ID);
        assert_eq!(
            v["model"], "gemini-pro",
            "no modelVersion: the requested model"
        );
        let message = &v["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        let call = &message["tool_calls"][0];
        assert_eq!(call["id"], "call_0");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "find_theaters");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(
            args,
            json!({"movie": "Barbie", "location": "Mountain View, CA"})
        );
        assert!(
            call.get("index").is_none(),
            "only stream deltas carry an index"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c.finish_reason, Some("tool_calls"));
        assert_eq!(c.usage, None, "no usageMetadata: the gateway estimates");
        assert!(v.get("usage").is_none());
    }

    #[test]
    fn a_blocked_prompt_is_an_empty_filtered_answer() {
        let c = response(
            include_bytes!("../../../tests/fixtures/gemini/safety_blocked_response.json"),
            "gemini-1.5-flash",
            1,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(
            v["choices"],
            json!([{"index": 0, "message": {"role": "assistant", "content": "", "refusal": null},
                    "logprobs": null, "finish_reason": "content_filter"}])
        );
        assert_eq!(c.finish_reason, Some("content_filter"));
        assert!(matches!(
            response(br#"{"usageMetadata": {"promptTokenCount": 3}}"#, "m", 0),
            Err(ProviderError::Decode(_))
        ));
        assert!(matches!(
            response(b"{not json", "m", 0),
            Err(ProviderError::Decode(_))
        ));
    }

    #[test]
    fn candidates_thoughts_signatures_and_finish_reasons() {
        let body = json!({"candidates": [
            {"content": {"role": "model", "parts": [
                {"text": "thinking about it", "thought": true},
                {"text": "Two calls: "},
                {"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "c2ln"},
                {"functionCall": {"name": "b"}},
                {"text": "", "thoughtSignature": "dGFpbA=="}
            ]}, "finishReason": "STOP", "index": 0},
            {"content": {"role": "model", "parts": [{"text": "cut"}]}, "finishReason": "MAX_TOKENS", "index": 1},
            {"finishReason": "SAFETY", "index": 2}
        ]});
        let c = response(body.to_string().as_bytes(), "m", 0).unwrap();
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        let first = &v["choices"][0]["message"];
        assert_eq!(first["content"], "Two calls: ");
        assert_eq!(first["tool_calls"][0]["id"], "call_0_ts_c2ln");
        assert_eq!(first["tool_calls"][1]["id"], "call_1");
        assert_eq!(first["tool_calls"][1]["function"]["arguments"], "{}");
        let finishes: Vec<&Value> = v["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["finish_reason"])
            .collect();
        assert_eq!(finishes, ["tool_calls", "length", "content_filter"]);
        assert_eq!(v["choices"][2]["message"]["content"], Value::Null);

        for (reason, calls, want) in [
            ("STOP", false, "stop"),
            ("STOP", true, "tool_calls"),
            ("MAX_TOKENS", true, "length"),
            ("RECITATION", false, "content_filter"),
            ("BLOCKLIST", false, "content_filter"),
            ("PROHIBITED_CONTENT", false, "content_filter"),
            ("SPII", false, "content_filter"),
            ("IMAGE_SAFETY", false, "content_filter"),
            ("MALFORMED_FUNCTION_CALL", false, "stop"),
            ("OTHER", true, "stop"),
            ("SOMETHING_NEW", false, "stop"),
        ] {
            assert_eq!(finish_reason(reason, calls), want, "{reason}");
        }
    }

    #[test]
    fn usage_adds_tool_prompts_and_thinking() {
        let u = UsageMetadata {
            prompt_token_count: 100,
            candidates_token_count: 10,
            cached_content_token_count: 40,
            thoughts_token_count: 5,
            tool_use_prompt_token_count: 7,
        };
        let (usage, oa) = usage(&u);
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cached_input_tokens,
                usage.reasoning_tokens
            ),
            (107, 15, 40, 5)
        );
        assert_eq!(oa.total_tokens, 122);
    }

    fn conversation() -> impl Strategy<Value = Vec<(bool, String)>> {
        proptest::collection::vec((any::<bool>(), ".{1,20}"), 0..12)
    }

    proptest! {
        /// Whatever the role pattern (merging included), every text reaches Gemini, in order,
        /// under the role it was sent with, and the roles alternate.
        #[test]
        fn texts_survive_in_order(turns in conversation()) {
            let messages: Vec<Value> = turns
                .iter()
                .map(|(user, text)| json!({"role": if *user { "user" } else { "assistant" }, "content": text}))
                .collect();
            let v = convert(json!({"model": "m", "messages": messages}));
            let contents = v["contents"].as_array().unwrap();
            let got: Vec<(bool, String)> = contents
                .iter()
                .flat_map(|c| {
                    let user = c["role"] == "user";
                    c["parts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(move |p| (user, p["text"].as_str().unwrap().to_owned()))
                        .collect::<Vec<_>>()
                })
                .collect();
            prop_assert_eq!(got, turns);
            let roles: Vec<&Value> = contents.iter().map(|c| &c["role"]).collect();
            prop_assert!(roles.windows(2).all(|w| w[0] != w[1]), "roles alternate");
        }
    }
}
