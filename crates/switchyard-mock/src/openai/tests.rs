use super::*;

fn parse(body: &str) -> ChatRequest<'_> {
    serde_json::from_str(body).unwrap()
}

#[test]
fn reply_cycles_last_user_words_and_truncates_to_max_tokens() {
    let req = parse(
        r#"{"model":"m","messages":[{"role":"user","content":"old words"},{"role":"assistant","content":null},
        {"role":"user","content":[{"type":"text","text":"a b"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"c\n"}]}],
        "max_tokens":5}"#,
    );
    let r = reply(&req, 8, 1, 1);
    match r.answer {
        Answer::Text {
            text,
            finish_reason,
        } => {
            assert_eq!(text, "a b c a b");
            assert_eq!(finish_reason, "length");
        }
        Answer::ToolCall { .. } => panic!("expected text"),
    }
    // 2 + 0 + 3 words, 3 messages.
    assert_eq!(r.usage.prompt_tokens, 5 + 9);
    assert_eq!(r.usage.completion_tokens, 5);
}

#[test]
fn empty_user_message_answers_ok_and_escaped_strings_parse() {
    let req = parse(r#"{"model":"m\u0021","messages":[{"role":"user","content":"  "}]}"#);
    assert_eq!(req.model(), "m!");
    match reply(&req, 3, 1, 2).answer {
        Answer::Text {
            text,
            finish_reason,
        } => assert_eq!((text.as_str(), finish_reason), ("ok ok ok", "stop")),
        Answer::ToolCall { .. } => panic!("expected text"),
    }
}

#[test]
fn tool_choice_none_disables_tools_and_named_choice_wins() {
    let tools = r#""tools":[{"type":"function","function":{"name":"first"}},{"type":"function","function":{"name":"second"}}]"#;
    let base = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"#;
    let none = format!(r#"{base}{tools},"tool_choice":"none"}}"#);
    assert!(parse(&none).tool_to_call().is_none());
    let named = format!(
        r#"{base}{tools},"tool_choice":{{"type":"function","function":{{"name":"second"}}}}}}"#
    );
    assert_eq!(parse(&named).tool_to_call(), Some("second"));
    let auto = format!(r#"{base}{tools},"tool_choice":"auto"}}"#);
    assert_eq!(parse(&auto).tool_to_call(), Some("first"));
    let empty = format!(r#"{base}"tools":[]}}"#);
    assert!(parse(&empty).tool_to_call().is_none());
}

#[test]
fn parallel_in_the_prompt_calls_every_offered_tool_unless_one_is_named_or_parallel_is_off() {
    let tools = r#""tools":[{"type":"function","function":{"name":"first"}},{"type":"function","function":{"name":"second"}}]"#;
    let base = r#"{"model":"m","messages":[{"role":"user","content":"both, in Parallel."}],"#;
    let names = |body: &str| -> Vec<String> {
        let req = parse(body);
        let r = reply(&req, 8, 3, 2);
        assert_eq!(r.usage.completion_tokens, r.calls().count() as u64 * 2);
        r.calls().map(|(name, _)| name.to_owned()).collect()
    };
    let auto = format!(r#"{base}{tools}}}"#);
    assert_eq!(names(&auto), ["first", "second"]);
    let req = parse(&auto);
    let r = reply(&req, 8, 3, 1);
    let ids: Vec<&str> = r.calls().map(|(_, id)| id).collect();
    assert_eq!(ids, ["call_mock_3", "call_mock_3_1"]);
    let off = format!(r#"{base}{tools},"parallel_tool_calls":false}}"#);
    assert_eq!(names(&off), ["first"]);
    let named = format!(
        r#"{base}{tools},"tool_choice":{{"type":"function","function":{{"name":"second"}}}}}}"#
    );
    assert_eq!(names(&named), ["second"]);
    let plain =
        format!(r#"{{"model":"m","messages":[{{"role":"user","content":"both"}}],{tools}}}"#);
    assert_eq!(names(&plain), ["first"]);
}

#[test]
fn parallel_calls_are_numbered_in_the_message_and_in_stream_deltas() {
    let req = parse(
        r#"{"model":"m","messages":[{"role":"user","content":"parallel"}],
        "tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"b"}}]}"#,
    );
    let r = reply(&req, 8, 1, 1);
    let meta = Meta {
        id: "x",
        created: 0,
        model: "m",
    };
    let v: serde_json::Value =
        serde_json::from_slice(&completion(&meta, &r, 1, true).unwrap()).unwrap();
    let calls = v["choices"][0]["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1]["function"]["name"], "b");
    assert!(calls[1].get("index").is_none());
    let frames = stream_frames(&meta, &r, 1, false, 0).unwrap();
    // role, one delta per call, finish, [DONE]
    assert_eq!(frames.len(), 5);
    let second: serde_json::Value =
        serde_json::from_slice(frames.frame(2).strip_prefix(b"data: ").unwrap()).unwrap();
    let call = &second["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(
        (call["index"].as_u64(), call["function"]["name"].as_str()),
        (Some(1), Some("b"))
    );
}
