//! Tests of the Converse request and response conversions, on fixtures following AWS's API
//! reference and user guide examples, and property tests.

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

const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// The OpenAI request whose conversion is the `converse_request.json` fixture.
fn fixture_openai_request() -> Value {
    json!({
        "model": "public-bedrock",
        "messages": [
            {"role": "system", "content": "You are a radio assistant."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in one sentence."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is the most popular song on WZPZ?"},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}"), "detail": "low"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
                 "function": {"name": "top_song", "arguments": "{\"sign\": \"WZPZ\"}"}},
                {"id": "tooluse_Xm2pQ4t1S0KcCmmbx6vb8A", "type": "function",
                 "function": {"name": "station_time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
             "content": "{\"song\": \"Elemental Hotel\", \"artist\": \"8 Storey Hike\"}"},
            {"role": "tool", "tool_call_id": "tooluse_Xm2pQ4t1S0KcCmmbx6vb8A",
             "content": [{"type": "text", "text": "14:05"}]}
        ],
        "tools": [
            {"type": "function", "function": {
                "name": "top_song",
                "description": "Get the most popular song played on a radio station.",
                "parameters": {"type": "object", "properties": {"sign": {"type": "string", "description": "The call sign for the radio station for which you want the most popular song. Example calls signs are WZPZ and WKRP."}}, "required": ["sign"]},
                "strict": true
            }},
            {"type": "function", "function": {"name": "station_time"}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "top_song"}},
        "parallel_tool_calls": false,
        "max_completion_tokens": 512,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["\n\nHuman:", "END"],
        "n": 1,
        "user": "user-1234",
        "seed": 7,
        "logprobs": true,
        "frequency_penalty": 0.1
    })
}

#[test]
fn fixture_request_converts_exactly() {
    let want: Value = serde_json::from_str(include_str!(
        "../../../../tests/fixtures/bedrock/converse_request.json"
    ))
    .unwrap();
    assert_eq!(convert(fixture_openai_request()), want);
}

#[test]
fn system_and_developer_become_system_blocks_and_leave_the_messages() {
    let v = convert(fixture_openai_request());
    assert_eq!(
        v["system"],
        json!([{"text": "You are a radio assistant."}, {"text": "Answer in one sentence."}])
    );
    let bad = json!({"model": "m", "messages": [{"role": "system", "content": [
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}}]}]});
    assert!(matches!(error(bad), ProviderError::Invalid(_)));
}

#[test]
fn images_go_inline_and_urls_are_refused_with_the_fix() {
    let with = |url: &str| {
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]}]})
    };
    let v = convert(with("data:image/jpg;base64,/9j/4AAQSkZJRg=="));
    assert_eq!(
        v["messages"][0]["content"][0],
        json!({"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQSkZJRg=="}}})
    );
    for (media, format) in [
        ("image/jpeg", "jpeg"),
        ("image/gif", "gif"),
        ("IMAGE/WEBP", "webp"),
    ] {
        let v = convert(with(&format!("data:{media};base64,AAAA")));
        assert_eq!(v["messages"][0]["content"][0]["image"]["format"], format);
    }
    let e = error(with("https://example.com/cat.png"));
    assert!(matches!(e, ProviderError::Invalid(_)), "{e:?}");
    assert!(
        e.to_string().contains("does not fetch image URLs") && e.to_string().contains("data:"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("messages[0].content[0].image_url.url"),
        "{e}"
    );
    for bad in [
        "data:image/bmp;base64,AAAA",
        "data:image/png,AAAA",
        "data:image/png;base64,",
        "ftp://x/y.png",
    ] {
        assert!(
            matches!(error(with(bad)), ProviderError::Invalid(_)),
            "{bad}"
        );
    }
}

#[test]
fn tool_calls_and_results_merge_into_alternating_turns() {
    let v = convert(fixture_openai_request());
    let roles: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(
        v["messages"][1]["content"][1]["toolUse"]["input"],
        json!({}),
        "empty arguments are an empty object"
    );
    let bad_args = json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]});
    let e = error(bad_args);
    assert!(e.to_string().contains("tool_calls[0]"), "{e}");
    let no_id = json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]});
    assert!(matches!(error(no_id), ProviderError::Invalid(_)));
    let image_result = json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "c", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]});
    assert!(matches!(error(image_result), ProviderError::Invalid(_)));
}

/// The tool config for `choice` with one tool `f` offered, and optionally a tool round in the
/// history.
fn tool_config_for(choice: Value, history: bool) -> Value {
    let mut messages = vec![json!({"role": "user", "content": "hi"})];
    if history {
        messages.push(json!({"role": "assistant", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}));
        messages.push(json!({"role": "tool", "tool_call_id": "t1", "content": "done"}));
    }
    let mut body = json!({"model": "m", "messages": messages,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]});
    if !choice.is_null() {
        body["tool_choice"] = choice;
    }
    convert(body)["toolConfig"].clone()
}

#[test]
fn tool_choice_maps_to_auto_any_tool_and_none_drops_the_tools() {
    let f = json!([{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object", "properties": {}}}}}]);
    // Bedrock's default is auto, and not every model takes an explicit toolChoice.
    assert_eq!(tool_config_for(Value::Null, false), json!({"tools": f}));
    assert_eq!(tool_config_for(json!("auto"), false), json!({"tools": f}));
    assert_eq!(
        tool_config_for(json!("required"), false),
        json!({"tools": f, "toolChoice": {"any": {}}})
    );
    assert_eq!(
        tool_config_for(
            json!({"type": "function", "function": {"name": "f"}}),
            false
        ),
        json!({"tools": f, "toolChoice": {"tool": {"name": "f"}}})
    );
    assert_eq!(tool_config_for(json!("none"), false), Value::Null);
    assert_eq!(
        tool_config_for(json!("none"), true),
        json!({"tools": f}),
        "a tool history needs the tools declared"
    );
    let bad = json!({"model": "m", "messages": [], "tool_choice": "sometimes"});
    assert!(matches!(error(bad), ProviderError::Invalid(_)));
    let no_tools = json!({"model": "m", "messages": [], "tool_choice": "required"});
    assert!(convert(no_tools).get("toolConfig").is_none());
    let custom = json!({"model": "m", "messages": [], "tools": [{"type": "custom", "custom": {"name": "x"}}]});
    assert!(matches!(error(custom), ProviderError::Unsupported(_)));
}

#[test]
fn a_tool_history_without_tools_declares_the_tools_it_used() {
    let v = convert(json!({"model": "m", "messages": [
        {"role": "user", "content": "weather and time?"},
        {"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "weather", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "time", "arguments": "{}"}},
            {"id": "c", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "sunny"}
    ]}));
    assert_eq!(
        v["toolConfig"],
        json!({"tools": [
            {"toolSpec": {"name": "weather", "inputSchema": {"json": {"type": "object"}}}},
            {"toolSpec": {"name": "time", "inputSchema": {"json": {"type": "object"}}}}
        ]})
    );
}

#[test]
fn inference_config_carries_stop_and_max_tokens_and_is_left_out_when_empty() {
    let v = convert(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
    for absent in ["inferenceConfig", "system", "toolConfig"] {
        assert!(v.get(absent).is_none(), "{absent}");
    }
    let v = convert(json!({"model": "m", "messages": [], "stop": "END", "max_tokens": 10}));
    assert_eq!(
        v["inferenceConfig"],
        json!({"maxTokens": 10, "stopSequences": ["END"]})
    );
    let v = convert(
        json!({"model": "m", "messages": [], "max_tokens": 10, "max_completion_tokens": 20}),
    );
    assert_eq!(v["inferenceConfig"]["maxTokens"], 20);
}

#[test]
fn json_modes_become_a_system_instruction() {
    let v = convert(
        json!({"model": "m", "messages": [{"role": "system", "content": "Be terse."}],
        "response_format": {"type": "json_object"}}),
    );
    let system = v["system"].as_array().unwrap();
    assert_eq!(system.len(), 2);
    assert!(
        system[1]["text"]
            .as_str()
            .unwrap()
            .starts_with("Respond with a single valid JSON object")
    );
    let schema =
        json!({"type": "object", "properties": {"song": {"type": "string"}}, "required": ["song"]});
    let v = convert(json!({"model": "m", "messages": [],
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "strict": true, "schema": schema}}}));
    let text = v["system"][0]["text"].as_str().unwrap();
    assert!(text.ends_with(&schema.to_string()), "{text}");
    let v = convert(json!({"model": "m", "messages": [], "response_format": {"type": "text"}}));
    assert!(v.get("system").is_none());
    for bad in [
        json!({"type": "yaml"}),
        json!({"type": "json_schema", "json_schema": {"name": "s"}}),
    ] {
        let body = json!({"model": "m", "messages": [], "response_format": bad});
        assert!(matches!(error(body), ProviderError::Invalid(_)));
    }
}

#[test]
fn unsupported_and_malformed_requests_are_refused() {
    let e = error(json!({"model": "m", "messages": [], "n": 2}));
    assert!(
        matches!(e, ProviderError::Invalid(_)) && e.to_string().contains("n must be 1"),
        "{e}"
    );
    assert!(!e.retryable());
    assert!(matches!(
        error(json!({"model": "m", "messages": [], "n": 0})),
        ProviderError::Invalid(_)
    ));
    let audio = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]});
    assert!(matches!(error(audio), ProviderError::Unsupported(_)));
    let function =
        json!({"model": "m", "messages": [{"role": "function", "name": "f", "content": "x"}]});
    assert!(matches!(error(function), ProviderError::Unsupported(_)));
    assert!(matches!(
        error(json!({"model": "m"})),
        ProviderError::Invalid(_)
    ));
    let role = json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]});
    assert!(matches!(error(role), ProviderError::Invalid(_)));
}

#[test]
fn empty_texts_are_dropped_and_same_role_turns_merge() {
    let v = convert(json!({"model": "m", "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}
    ]}));
    assert_eq!(
        v["messages"],
        json!([
            {"role": "user", "content": [{"text": "a"}, {"text": "b"}]},
            {"role": "assistant", "content": [{"text": "no"}]}
        ])
    );
}

#[test]
fn text_response_fixture_with_cache_tokens() {
    let c = response(
        include_bytes!("../../../../tests/fixtures/bedrock/converse_response.json"),
        "chatcmpl-req-1",
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        1_700_000_000,
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&c.body).unwrap();
    assert_eq!(v["id"], "chatcmpl-req-1");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["created"], 1_700_000_000);
    assert_eq!(v["model"], "anthropic.claude-3-5-haiku-20241022-v1:0");
    let message = &v["choices"][0]["message"];
    assert_eq!(message["role"], "assistant");
    assert!(
        message["content"]
            .as_str()
            .unwrap()
            .contains("\"Wannabe\" by Spice Girls")
    );
    assert!(message.get("tool_calls").is_none());
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // 125 uncached + 2048 read + 1080 written.
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 3253, "completion_tokens": 60, "total_tokens": 3313,
               "prompt_tokens_details": {"cached_tokens": 2048}})
    );
    assert_eq!(
        c.usage.unwrap(),
        Usage {
            input_tokens: 3253,
            output_tokens: 60,
            cached_input_tokens: 2048,
            reasoning_tokens: 0,
            estimated: false,
        }
    );
    assert_eq!(c.finish_reason, Some("stop"));
}

#[test]
fn tool_use_response_fixture_drops_reasoning() {
    let c = response(
        include_bytes!("../../../../tests/fixtures/bedrock/converse_tool_use_response.json"),
        "chatcmpl-x",
        "m",
        1,
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&c.body).unwrap();
    let message = &v["choices"][0]["message"];
    assert_eq!(
        message["content"],
        "I'll look up the most popular song on WZPZ."
    );
    let call = &message["tool_calls"][0];
    assert_eq!(call["id"], "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "top_song");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"sign": "WZPZ"}));
    assert_eq!(c.finish_reason, Some("tool_calls"));
    assert_eq!(c.usage.unwrap().input_tokens, 405);
}

#[test]
fn every_stop_reason_maps_and_answers_without_text_or_usage_are_fine() {
    for (reason, want) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("malformed_model_output", "stop"),
        ("something_new", "stop"),
    ] {
        assert_eq!(finish_reason(reason), want, "{reason}");
    }
    let body =
        br#"{"output":{"message":{"role":"assistant","content":[]}},"stopReason":"max_tokens"}"#;
    let c = response(body, "i", "m", 0).unwrap();
    assert_eq!(c.usage, None, "no usage: the gateway estimates it");
    let v: Value = serde_json::from_slice(&c.body).unwrap();
    assert!(v.get("usage").is_none());
    assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert!(matches!(
        response(b"{not json", "i", "m", 0),
        Err(ProviderError::Decode(_))
    ));
    assert!(matches!(
        response(b"{}", "i", "m", 0),
        Err(ProviderError::Decode(_))
    ));
}

fn conversation() -> impl Strategy<Value = Vec<(bool, String)>> {
    proptest::collection::vec((any::<bool>(), ".{1,20}"), 0..12)
}

/// A Converse answer: texts and tool calls (name, input object) in any order.
fn answer() -> impl Strategy<Value = Vec<Result<String, (String, Value)>>> {
    let text = ".{1,20}".prop_map(Ok);
    let call = (
        "[a-z_]{1,12}",
        proptest::collection::btree_map("[a-z]{1,6}", any::<i32>(), 0..4),
    )
        .prop_map(|(name, args)| Err((name, json!(args))));
    proptest::collection::vec(prop_oneof![text, call], 0..8)
}

proptest! {
    /// Whatever the role pattern (merging included), every text reaches Bedrock, in order,
    /// under the role it was sent with, and the roles alternate.
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

    /// Every text of an answer reaches the client, joined in order, and every tool call with its
    /// id, name and input; and the calls, sent back in the next request, are the same blocks.
    #[test]
    fn answers_lose_nothing_both_ways(blocks in answer()) {
        let content: Vec<Value> = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| match b {
                Ok(text) => json!({"text": text}),
                Err((name, input)) => json!({"toolUse": {"toolUseId": format!("tooluse_{i}"), "name": name, "input": input}}),
            })
            .collect();
        let body = json!({"output": {"message": {"role": "assistant", "content": content}}, "stopReason": "end_turn"});
        let c = response(&serde_json::to_vec(&body).unwrap(), "i", "m", 0).unwrap();
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        let message = &v["choices"][0]["message"];
        let texts: String = blocks.iter().filter_map(|b| b.as_ref().ok().map(String::as_str)).collect();
        if texts.is_empty() {
            prop_assert_eq!(&message["content"], &Value::Null);
        } else {
            prop_assert_eq!(message["content"].as_str().unwrap(), texts);
        }
        let calls: Vec<Value> = message.get("tool_calls").and_then(Value::as_array).cloned().unwrap_or_default();
        let sent: Vec<&Value> = content.iter().filter_map(|b| b.get("toolUse")).collect();
        prop_assert_eq!(calls.len(), sent.len());
        for (call, sent) in calls.iter().zip(&sent) {
            prop_assert_eq!(&call["id"], &sent["toolUseId"]);
            prop_assert_eq!(&call["function"]["name"], &sent["name"]);
            let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
            prop_assert_eq!(&args, &sent["input"]);
        }
        // The answer as the client sends it back: the same toolUse blocks reach Bedrock.
        let back = convert(json!({"model": "m", "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": message["content"].clone(), "tool_calls": calls}
        ]}));
        let echoed: Vec<&Value> = back["messages"].as_array().unwrap().iter()
            .flat_map(|m| m["content"].as_array().unwrap())
            .filter_map(|b| b.get("toolUse"))
            .collect();
        prop_assert_eq!(echoed, sent);
    }
}
