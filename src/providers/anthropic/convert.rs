//! OpenAI chat request → Anthropic Messages request, and Anthropic message → OpenAI
//! `chat.completion`. Pure: no I/O, no clock (the caller passes `created`), no HTTP.
//!
//! What the request conversion does not carry over:
//! - dropped silently, because Anthropic has no equivalent: `logprobs`, `top_logprobs`, `seed`,
//!   `response_format`, `frequency_penalty`, `presence_penalty`, `logit_bias`, `service_tier`,
//!   `store`, `metadata`, `modalities`, `audio`, `prediction`, `reasoning_effort`,
//!   `web_search_options`, `stream_options` (Anthropic always reports usage), a message's
//!   `name`, an image's `detail`, a tool's `strict`, and empty text (Anthropic refuses empty
//!   text blocks);
//! - refused as [`ProviderError::Unsupported`]: `n` > 1, audio and file content parts, the
//!   legacy `function` role, tools whose type is not `function`;
//! - refused as a 400 `invalid_request_error`: anything malformed, including tool-call
//!   `arguments` that are not a JSON object (an empty string counts as `{}`). Rewriting them to
//!   `{}` would silently change the conversation the model sees.
//!
//! Values are forwarded as given: a `temperature` above Anthropic's 1.0 is Anthropic's to refuse.

use serde::Deserialize;

use super::wire::{
    AnUsage, Block, ContentBlock, ImageSource, Message, MessagesRequest, MessagesResponse,
    Metadata, OaContent, OaMessage, OaPart, OaRequest, OaStop, OaTool, OaToolChoice, Role, Tool,
    ToolChoice, ToolResultContent,
};
use crate::events::Usage;
use crate::providers::canonical::{
    Completion, CompletionChoice, Converted, OaOutToolCall, OaUsage,
};
use crate::providers::{ChatRequest, ProviderError};

/// Anthropic requires `max_tokens`; OpenAI clients usually leave it out.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The Anthropic request for `req`, sent as `model` (the deployment's upstream name).
pub fn request<'a>(
    req: &'a ChatRequest,
    model: &'a str,
    stream: bool,
) -> Result<MessagesRequest<'a>, ProviderError> {
    let oa = OaRequest::deserialize(&req.rest)
        .map_err(|e| invalid(format!("invalid chat request: {e}")))?;
    if oa.n.is_some_and(|n| n > 1) {
        return Err(ProviderError::Unsupported("n > 1"));
    }
    let mut system: Vec<&str> = Vec::new();
    let mut messages: Vec<Message<'a>> = Vec::with_capacity(oa.messages.len());
    for (i, m) in oa.messages.iter().enumerate() {
        match m.role {
            "system" | "developer" => system_texts(m, i, &mut system)?,
            "user" => push(&mut messages, Role::User, user_blocks(m, i)?),
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
    let tools = match &oa.tools {
        Some(tools) if !tools.is_empty() => {
            Some(tools.iter().map(tool).collect::<Result<Vec<_>, _>>()?)
        }
        _ => None,
    };
    let tool_choice = tool_choice(&oa, tools.is_some())?;
    Ok(MessagesRequest {
        model,
        max_tokens: oa
            .max_completion_tokens
            .or(oa.max_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS),
        messages,
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        temperature: oa.temperature,
        top_p: oa.top_p,
        stop_sequences: oa.stop.map(|s| match s {
            OaStop::One(s) => vec![s],
            OaStop::Many(v) => v,
        }),
        metadata: oa.user.map(|user_id| Metadata { user_id }),
        tools,
        tool_choice,
        stream: stream.then_some(true),
    })
}

/// A client error found before anything was sent.
fn invalid(message: String) -> ProviderError {
    ProviderError::Invalid(message)
}

/// Anthropic wants alternating roles: a message of the same role as the one before joins it
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

fn system_texts<'a>(
    m: &OaMessage<'a>,
    i: usize,
    out: &mut Vec<&'a str>,
) -> Result<(), ProviderError> {
    match &m.content {
        None => {}
        Some(OaContent::Text("")) => {}
        Some(OaContent::Text(t)) => out.push(t),
        Some(OaContent::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                match part {
                    OaPart::Text { text: "" } => {}
                    OaPart::Text { text } => out.push(text),
                    _ => {
                        return Err(invalid(format!(
                            "messages[{i}].content[{j}]: a system message may only hold text"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

fn user_blocks<'a>(m: &OaMessage<'a>, i: usize) -> Result<Vec<Block<'a>>, ProviderError> {
    content_blocks(m.content.as_ref(), i)
}

fn assistant_blocks<'a>(m: &OaMessage<'a>, i: usize) -> Result<Vec<Block<'a>>, ProviderError> {
    let mut blocks = content_blocks(m.content.as_ref(), i)?;
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let input = call.function.arguments_object().ok_or_else(|| {
            invalid(format!(
                "messages[{i}].tool_calls[{j}].function.arguments: not a JSON object"
            ))
        })?;
        blocks.push(Block::ToolUse {
            id: call.id,
            name: call.function.name,
            input,
        });
    }
    Ok(blocks)
}

fn tool_result<'a>(m: &OaMessage<'a>, i: usize) -> Result<Block<'a>, ProviderError> {
    let tool_use_id = m.tool_call_id.ok_or_else(|| {
        invalid(format!(
            "messages[{i}].tool_call_id: required for role tool"
        ))
    })?;
    let content = match &m.content {
        None | Some(OaContent::Text("")) => None,
        Some(OaContent::Text(t)) => Some(ToolResultContent::Text(t)),
        Some(OaContent::Parts(_)) => {
            let blocks = content_blocks(m.content.as_ref(), i)?;
            (!blocks.is_empty()).then_some(ToolResultContent::Blocks(blocks))
        }
    };
    Ok(Block::ToolResult {
        tool_use_id,
        content,
    })
}

fn content_blocks<'a>(
    content: Option<&OaContent<'a>>,
    i: usize,
) -> Result<Vec<Block<'a>>, ProviderError> {
    match content {
        None | Some(OaContent::Text("")) => Ok(Vec::new()),
        Some(OaContent::Text(text)) => Ok(vec![Block::Text { text }]),
        Some(OaContent::Parts(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                match part {
                    OaPart::Text { text: "" } | OaPart::Refusal { refusal: "" } => {}
                    OaPart::Text { text } | OaPart::Refusal { refusal: text } => {
                        blocks.push(Block::Text { text });
                    }
                    OaPart::ImageUrl { image_url } => blocks.push(Block::Image {
                        source: image_source(image_url.url).ok_or_else(|| {
                            invalid(format!(
                                "messages[{i}].content[{j}].image_url.url: expected an http(s) \
                                 URL or a data:<media type>;base64,<data> URL"
                            ))
                        })?,
                    }),
                    OaPart::InputAudio {} => {
                        return Err(ProviderError::Unsupported("audio content parts"));
                    }
                    OaPart::File {} => {
                        return Err(ProviderError::Unsupported("file content parts"));
                    }
                    OaPart::Unknown => {
                        return Err(invalid(format!(
                            "messages[{i}].content[{j}]: unknown content part type"
                        )));
                    }
                }
            }
            Ok(blocks)
        }
    }
}

/// `data:<media type>;base64,<data>` → a base64 source; `http(s)://…` → a URL source.
fn image_source(url: &str) -> Option<ImageSource<'_>> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',')?;
        let media_type = meta.strip_suffix(";base64")?;
        return (!media_type.is_empty() && !data.is_empty())
            .then_some(ImageSource::Base64 { media_type, data });
    }
    (url.starts_with("https://") || url.starts_with("http://")).then_some(ImageSource::Url { url })
}

fn tool<'a>(t: &OaTool<'a>) -> Result<Tool<'a>, ProviderError> {
    match (t.kind, &t.function) {
        ("function", Some(f)) => Ok(Tool {
            name: f.name,
            description: f.description,
            input_schema: f
                .parameters
                .clone()
                .unwrap_or_else(|| serde_json::json!({"type": "object"})),
        }),
        ("function", None) => Err(invalid("tools[]: a function tool needs `function`".into())),
        _ => Err(ProviderError::Unsupported(
            "tools whose type is not function",
        )),
    }
}

fn tool_choice<'a>(
    oa: &OaRequest<'a>,
    has_tools: bool,
) -> Result<Option<ToolChoice<'a>>, ProviderError> {
    let disable_parallel_tool_use = (oa.parallel_tool_calls == Some(false)).then_some(true);
    let choice = match &oa.tool_choice {
        // `parallel_tool_calls: false` alone still has to reach Anthropic, which only takes it
        // on a tool_choice; "auto" is what OpenAI assumes when tools are given without a choice.
        None => (has_tools && disable_parallel_tool_use.is_some()).then_some(ToolChoice::Auto {
            disable_parallel_tool_use,
        }),
        Some(OaToolChoice::Mode("auto")) => Some(ToolChoice::Auto {
            disable_parallel_tool_use,
        }),
        Some(OaToolChoice::Mode("required")) => Some(ToolChoice::Any {
            disable_parallel_tool_use,
        }),
        Some(OaToolChoice::Mode("none")) => Some(ToolChoice::None),
        Some(OaToolChoice::Mode(other)) => {
            return Err(invalid(format!(
                "tool_choice: unknown mode \"{other}\" (expected auto, required or none)"
            )));
        }
        Some(OaToolChoice::Named { function }) => Some(ToolChoice::Tool {
            name: function.name,
            disable_parallel_tool_use,
        }),
    };
    Ok(choice)
}

/// Anthropic's `stop_reason` as an OpenAI `finish_reason`. Unknown reasons (added after this
/// was written) read as a normal stop.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic's input counts exclude cache reads and writes; OpenAI's `prompt_tokens` and the
/// gateway's `input_tokens` include them, with the reads also reported as cached.
pub fn usage(input: &AnUsage) -> (Usage, OaUsage) {
    let cached = input.cache_read_input_tokens.unwrap_or(0);
    let prompt = input.input_tokens + cached + input.cache_creation_input_tokens.unwrap_or(0);
    let usage = Usage {
        input_tokens: prompt,
        output_tokens: input.output_tokens,
        cached_input_tokens: cached,
        reasoning_tokens: 0,
        estimated: false,
    };
    (usage, OaUsage::from_usage(&usage, false))
}

/// An Anthropic `message` body → the JSON of an OpenAI `chat.completion`.
pub fn response(body: &[u8], created: u64) -> Result<Converted, ProviderError> {
    let msg: MessagesResponse<'_> =
        serde_json::from_slice(body).map_err(|e| ProviderError::Decode(e.to_string()))?;
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in &msg.content {
        match block {
            ContentBlock::Text { text: t } => text.get_or_insert_with(String::new).push_str(t),
            ContentBlock::ToolUse { id, name, input } => {
                tool_calls.push(OaOutToolCall::whole(None, &**id, name, input.to_string()));
            }
            ContentBlock::Other => {}
        }
    }
    let finish_reason = msg.stop_reason.as_deref().map(finish_reason);
    Completion::encode(
        &msg.id,
        created,
        &msg.model,
        vec![CompletionChoice::assistant(
            0,
            text,
            tool_calls,
            finish_reason,
        )],
        msg.usage.as_ref().map(usage),
    )
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
        serde_json::to_value(request(&req, "claude-up", false).unwrap()).unwrap()
    }

    fn error(body: Value) -> ProviderError {
        let req = chat(body);
        request(&req, "m", false).unwrap_err()
    }

    /// The OpenAI request whose conversion is the `messages_request.json` fixture.
    fn fixture_openai_request() -> Value {
        json!({
            "model": "public-claude",
            "messages": [
                {"role": "system", "content": "You are a weather assistant."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in one sentence."}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is the weather like where this photo was taken?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg==", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"location\": \"San Francisco, CA\"}"}},
                    {"id": "toolu_01B09q90qw90lq917835lq9", "type": "function",
                     "function": {"name": "get_time", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
                {"role": "tool", "tool_call_id": "toolu_01B09q90qw90lq917835lq9", "content": [{"type": "text", "text": "14:05"}]}
            ],
            "tools": [
                {"type": "function", "function": {
                    "name": "get_weather",
                    "description": "Get the current weather in a given location",
                    "parameters": {"type": "object", "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}}, "required": ["location"]},
                    "strict": true
                }},
                {"type": "function", "function": {"name": "get_time"}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": false,
            "max_completion_tokens": 1024,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": ["\n\nHuman:", "END"],
            "user": "user-1234",
            "seed": 7,
            "logprobs": true,
            "response_format": {"type": "text"},
            "frequency_penalty": 0.1
        })
    }

    #[test]
    fn fixture_request_converts_exactly() {
        let want: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/anthropic/messages_request.json"
        ))
        .unwrap();
        assert_eq!(convert(fixture_openai_request()), want);
    }

    #[test]
    fn system_and_developer_are_lifted_and_joined() {
        let v = convert(fixture_openai_request());
        assert_eq!(
            v["system"],
            "You are a weather assistant.\n\nAnswer in one sentence."
        );
        assert!(
            v["messages"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["role"] != "system")
        );
    }

    #[test]
    fn image_parts_become_base64_and_url_sources() {
        let v = convert(fixture_openai_request());
        let content = &v["messages"][0]["content"];
        assert_eq!(
            content[1],
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}})
        );
        assert_eq!(content[2]["source"]["type"], "url");
        let bad = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]});
        assert!(matches!(error(bad), ProviderError::Invalid(_)));
        let not_base64 = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]});
        assert!(matches!(error(not_base64), ProviderError::Invalid(_)));
    }

    #[test]
    fn tool_round_trip_merges_results_into_one_user_message() {
        let v = convert(fixture_openai_request());
        let messages = v["messages"].as_array().unwrap();
        let roles: Vec<&str> = messages
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(
            messages[1]["content"][0],
            json!({"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
                   "input": {"location": "San Francisco, CA"}})
        );
        assert_eq!(
            messages[1]["content"][1]["input"],
            json!({}),
            "empty arguments are an empty object"
        );
        assert_eq!(
            messages[2]["content"],
            json!([
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
                {"type": "tool_result", "tool_use_id": "toolu_01B09q90qw90lq917835lq9", "content": [{"type": "text", "text": "14:05"}]}
            ])
        );
        assert_eq!(v["tools"][1]["input_schema"], json!({"type": "object"}));
        assert!(v["tools"][0].get("strict").is_none());

        let bad_args = json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\": "}}]}]});
        let err = error(bad_args);
        assert!(matches!(err, ProviderError::Invalid(_)));
        assert!(err.to_string().contains("tool_calls[0]"), "{err}");
        let no_id = json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]});
        assert!(matches!(error(no_id), ProviderError::Invalid(_)));
    }

    #[test]
    fn tool_choice_maps_every_openai_form() {
        let with = |choice: Value, parallel: Option<bool>| {
            let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice});
            if let Some(p) = parallel {
                body["parallel_tool_calls"] = json!(p);
            }
            convert(body)["tool_choice"].clone()
        };
        assert_eq!(with(json!("auto"), None), json!({"type": "auto"}));
        assert_eq!(with(json!("required"), None), json!({"type": "any"}));
        assert_eq!(with(json!("none"), Some(false)), json!({"type": "none"}));
        assert_eq!(
            with(
                json!({"type": "function", "function": {"name": "f"}}),
                Some(false)
            ),
            json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            with(json!("required"), Some(false)),
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            with(Value::Null, Some(false)),
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert_eq!(with(Value::Null, Some(true)), Value::Null);
        let bad = json!({"model": "m", "messages": [], "tool_choice": "sometimes"});
        assert!(matches!(error(bad), ProviderError::Invalid(_)));
    }

    #[test]
    fn stop_max_tokens_user_and_stream() {
        let v = convert(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stop": "END"}),
        );
        assert_eq!(v["stop_sequences"], json!(["END"]));
        assert_eq!(v["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(
            v["model"], "claude-up",
            "the deployment's name, not the public one"
        );
        for absent in [
            "stream",
            "system",
            "tools",
            "tool_choice",
            "metadata",
            "temperature",
        ] {
            assert!(v.get(absent).is_none(), "{absent}");
        }
        let v = convert(json!({"model": "m", "messages": [], "max_tokens": 10}));
        assert_eq!(v["max_tokens"], 10);
        let v = convert(
            json!({"model": "m", "messages": [], "max_tokens": 10, "max_completion_tokens": 20}),
        );
        assert_eq!(v["max_tokens"], 20);
        let req = chat(json!({"model": "m", "messages": [], "user": "u-1"}));
        let v = serde_json::to_value(request(&req, "x", true).unwrap()).unwrap();
        assert_eq!(v["stream"], true);
        assert_eq!(v["metadata"], json!({"user_id": "u-1"}));
    }

    #[test]
    fn unsupported_and_malformed_requests_are_refused() {
        let n = json!({"model": "m", "messages": [], "n": 2});
        assert!(matches!(error(n), ProviderError::Unsupported("n > 1")));
        let one = json!({"model": "m", "messages": [], "n": 1});
        assert!(convert(one).get("n").is_none());
        let audio = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]});
        assert!(matches!(error(audio), ProviderError::Unsupported(_)));
        let missing = json!({"model": "m"});
        assert!(matches!(error(missing), ProviderError::Invalid(_)));
        let role = json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]});
        assert!(matches!(error(role), ProviderError::Invalid(_)));
        let custom_tool = json!({"model": "m", "messages": [], "tools": [{"type": "custom", "custom": {"name": "x"}}]});
        assert!(matches!(error(custom_tool), ProviderError::Unsupported(_)));
        assert!(!error(json!({"model": "m", "n": 3, "messages": []})).retryable());
    }

    #[test]
    fn empty_texts_are_dropped_and_their_messages_vanish() {
        let v = convert(json!({"model": "m", "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "b"}]}
        ]}));
        assert_eq!(
            v["messages"],
            json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
        );
    }

    #[test]
    fn text_response_fixture() {
        let c = response(
            include_bytes!("../../../tests/fixtures/anthropic/messages_response.json"),
            1_700_000_000,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(v["id"], "msg_013Zva2CMHLNnXjNJJKqJ2EF");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["created"], 1_700_000_000);
        assert_eq!(v["model"], "claude-opus-4-6");
        let choice = &v["choices"][0];
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["content"], "Hi! My name is Claude.");
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
        // 2095 uncached + 2051 read + 2051 written.
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 6197, "completion_tokens": 503, "total_tokens": 6700,
                   "prompt_tokens_details": {"cached_tokens": 2051}})
        );
        assert_eq!(
            c.usage.unwrap(),
            Usage {
                input_tokens: 6197,
                output_tokens: 503,
                cached_input_tokens: 2051,
                reasoning_tokens: 0,
                estimated: false,
            }
        );
        assert_eq!(c.finish_reason, Some("stop"));
    }

    #[test]
    fn tool_use_response_fixture() {
        let c = response(
            include_bytes!("../../../tests/fixtures/anthropic/messages_tool_use_response.json"),
            1,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        let message = &v["choices"][0]["message"];
        assert_eq!(
            message["content"],
            "I'll check the current weather in San Francisco for you."
        );
        let call = &message["tool_calls"][0];
        assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(
            args,
            json!({"location": "San Francisco, CA", "unit": "celsius"})
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c.finish_reason, Some("tool_calls"));
        let usage = c.usage.unwrap();
        assert_eq!((usage.input_tokens, usage.cached_input_tokens), (472, 0));
    }

    #[test]
    fn stop_reasons_map_and_content_without_text_is_null() {
        for (reason, want) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("something_new", "stop"),
        ] {
            assert_eq!(finish_reason(reason), want, "{reason}");
        }
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[{"type":"thinking","thinking":"hm","signature":"s"}],"stop_reason":"max_tokens"}"#;
        let c = response(body, 0).unwrap();
        assert_eq!(c.usage, None, "no usage: the gateway estimates it");
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        assert!(v.get("usage").is_none());
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert!(matches!(
            response(b"{not json", 0),
            Err(ProviderError::Decode(_))
        ));
    }

    fn conversation() -> impl Strategy<Value = Vec<(bool, String)>> {
        proptest::collection::vec((any::<bool>(), ".{1,20}"), 0..12)
    }

    proptest! {
        /// Whatever the role pattern (merging included), every text reaches Anthropic, in order,
        /// under the role it was sent with.
        #[test]
        fn texts_survive_in_order(turns in conversation()) {
            let messages: Vec<Value> = turns
                .iter()
                .map(|(user, text)| json!({"role": if *user { "user" } else { "assistant" }, "content": text}))
                .collect();
            let v = convert(json!({"model": "m", "messages": messages}));
            let got: Vec<(bool, String)> = v["messages"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|m| {
                    let user = m["role"] == "user";
                    m["content"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(move |b| (user, b["text"].as_str().unwrap().to_owned()))
                        .collect::<Vec<_>>()
                })
                .collect();
            prop_assert_eq!(got, turns);
            let roles: Vec<&Value> = v["messages"].as_array().unwrap().iter().map(|m| &m["role"]).collect();
            prop_assert!(roles.windows(2).all(|w| w[0] != w[1]), "roles alternate");
        }
    }
}
