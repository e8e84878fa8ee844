//! Tests of the Gemini request and response conversions, on fixtures from Google's API
//! reference and property tests.

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
        "../../../../tests/fixtures/gemini/generate_content_request.json"
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
    let no_tools = convert(json!({"model": "m", "messages": [user("hi")], "tool_choice": "none"}));
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
        include_bytes!("../../../../tests/fixtures/gemini/generate_content_response.json"),
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
        include_bytes!("../../../../tests/fixtures/gemini/function_call_response.json"),
        "gemini-pro",
        1,
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&c.body).unwrap();
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-") && id.len() > 20, "{id}");
    let again = response(
        include_bytes!("../../../../tests/fixtures/gemini/function_call_response.json"),
        "gemini-pro",
        1,
    )
    .unwrap();
    let again: Value = serde_json::from_slice(&again.body).unwrap();
    assert_ne!(
        again["id"], v["id"],
        "no responseId: a unique id per answer"
    );
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
        include_bytes!("../../../../tests/fixtures/gemini/safety_blocked_response.json"),
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
