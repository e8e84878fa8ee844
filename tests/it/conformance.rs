//! The provider conformance list, run against every adapter by one macro: an OpenAI-shaped client
//! talks to the gateway over real HTTP, the gateway talks to one adapter's deployment on the mock
//! upstream, and every scenario checks the answer and the events the request left behind.
//!
//! Scenarios are plain async fns taking an [`Adapter`]; `conformance!` only turns the list into
//! one `#[tokio::test]` per scenario in a module named after the adapter, each with its own
//! nats-server, mock and gateway (the isolation contract). The mock answers every wire format
//! with the same deterministic reply (the last user message's words cycled to 8) and usage
//! (words of every message plus 3 per message), so one expectation holds for all adapters;
//! where adapters legitimately differ, the difference is a field of [`Quirks`].
//!
//! A new adapter is a `fn(&Mock, &Path) -> String` building its provider table and one
//! `conformance!` line naming it, its upstream model and its quirks (see the ones below).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::*;
use futures::StreamExt;
use serde_json::{Value, json};
use switchyard::events::{
    Attempt, AttemptKind, Envelope, Event, RequestAccepted, ResponseCompleted,
};
use switchyard_mock::MockConfig;

/// How one adapter is reached on the mock, and where it legitimately differs from the others.
pub struct Adapter {
    /// Also the provider's name in the config, so answers name it in `x-switchyard-provider`.
    pub name: &'static str,
    /// The fields of its `[providers.<name>]` table (kind, base_url, api_key…) for this mock
    /// and this upstream key file; the suite adds the timeouts itself.
    pub provider: fn(&Mock, &Path) -> String,
    /// The deployment's upstream model name.
    pub model: &'static str,
    pub quirks: Quirks,
}

/// Per-adapter differences the suite expects, each one a documented behaviour.
#[derive(Clone, Copy)]
pub struct Quirks {
    /// The status the provider answers when it is overloaded; the 5xx scenario injects it.
    pub overloaded: u16,
    /// Calls answered when two tools are offered and the prompt asks for parallel calls.
    pub parallel_calls: usize,
    /// The wire format carries the results of one assistant turn in one user message
    /// (Anthropic's `tool_result` blocks, Gemini's `functionResponse` parts) where OpenAI has one
    /// `tool` message per result, so the mock's 3 tokens per message count them once.
    pub merges_tool_results: bool,
    /// JSON mode is asked for with an added system instruction, which the mock counts as one
    /// more message (Bedrock: Converse has no JSON mode of its own).
    pub json_mode_instruction: bool,
}

impl Quirks {
    pub const DEFAULT: Quirks = Quirks {
        overloaded: 503,
        parallel_calls: 2,
        merges_tool_results: false,
        json_mode_instruction: false,
    };
}

/// One test per scenario for an adapter: `conformance!(name, provider_fn, "upstream-model")`,
/// optionally followed by its [`Quirks`] and by the scenarios a known bug of this adapter
/// breaks: `…, Quirks::DEFAULT, ignore { stream_cut: "bug: …" }`.
macro_rules! conformance {
    ($name:ident, $provider:expr, $model:expr $(,)?) => {
        conformance!($name, $provider, $model, Quirks::DEFAULT);
    };
    ($name:ident, $provider:expr, $model:expr, $quirks:expr
        $(, ignore { $($bug:ident: $why:literal),* $(,)? })? $(,)?) => {
        // `$` is handed down so the module can define a macro of its own.
        conformance!(@module ($) $name, $provider, $model, $quirks, [$($($bug: $why),*)?]);
    };
    (@module ($d:tt) $name:ident, $provider:expr, $model:expr, $quirks:expr,
        [$($bug:ident: $why:literal),*]) => {
        mod $name {
            use super::*;

            static ADAPTER: Adapter = Adapter {
                name: stringify!($name),
                provider: $provider,
                model: $model,
                quirks: $quirks,
            };

            /// One test, ignored with its reason where this adapter has a known bug.
            macro_rules! scenario {
                $(($bug) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    #[ignore = $why]
                    async fn $bug() {
                        super::$bug(&ADAPTER).await;
                    }
                };)*
                ($d(#[$d attr:meta])* $d scenario:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    $d(#[$d attr])*
                    async fn $d scenario() {
                        super::$d scenario(&ADAPTER).await;
                    }
                };
            }

            scenario!(plain_text);
            scenario!(system_prompt);
            scenario!(multi_turn);
            scenario!(image_part);
            scenario!(json_mode);
            scenario!(tool_call);
            scenario!(tool_result_round_trip);
            scenario!(parallel_tool_calls);
            scenario!(stream_with_usage);
            scenario!(stream_without_usage);
            scenario!(stream_tool_call_deltas);
            scenario!(upstream_400);
            scenario!(upstream_401);
            scenario!(upstream_429_retry_after);
            scenario!(upstream_5xx);
            scenario!(timeout);
            scenario!(first_token_timeout);
            scenario!(stream_total_timeout);
            scenario!(malformed_chunk);
            scenario!(stream_cut);
        }
    };
}

fn key_ref(key_file: &Path) -> String {
    format!("{{ file = {:?} }}", key_file.display().to_string())
}

fn openai_provider(mock: &Mock, key_file: &Path) -> String {
    format!(
        "kind = \"openai\"\nbase_url = \"{}\"\napi_key = {}",
        mock.base_url(),
        key_ref(key_file)
    )
}

fn azure_provider(mock: &Mock, key_file: &Path) -> String {
    format!(
        "kind = \"azure\"\nbase_url = \"http://{}\"\napi_key = {}",
        mock.addr,
        key_ref(key_file)
    )
}

fn anthropic_provider(mock: &Mock, key_file: &Path) -> String {
    format!(
        "kind = \"anthropic\"\nbase_url = \"{}\"\napi_key = {}",
        mock.base_url(),
        key_ref(key_file)
    )
}

fn gemini_provider(mock: &Mock, key_file: &Path) -> String {
    format!(
        "kind = \"gemini\"\nbase_url = \"http://{}/v1beta\"\napi_key = {}",
        mock.addr,
        key_ref(key_file)
    )
}

/// SigV4 with the mock's well-known credentials, which the mock verifies on every request.
fn bedrock_provider(mock: &Mock, key_file: &Path) -> String {
    let dir = key_file.parent().unwrap();
    let (id, secret) = (dir.join("aws-key-id"), dir.join("aws-secret"));
    std::fs::write(&id, switchyard_mock::MOCK_AWS_ACCESS_KEY_ID).unwrap();
    std::fs::write(&secret, switchyard_mock::MOCK_AWS_SECRET_ACCESS_KEY).unwrap();
    format!(
        "kind = \"bedrock\"\nbase_url = \"http://{}\"\nregion = \"us-east-1\"\naws_access_key_id = {}\naws_secret_access_key = {}",
        mock.addr,
        key_ref(&id),
        key_ref(&secret)
    )
}

conformance!(openai, openai_provider, "gpt-4o-mini");
conformance!(azure, azure_provider, "gpt4o-prod");
conformance!(
    anthropic,
    anthropic_provider,
    "claude-haiku-4-5",
    Quirks {
        overloaded: 529,
        merges_tool_results: true,
        ..Quirks::DEFAULT
    }
);
conformance!(
    gemini,
    gemini_provider,
    "gemini-2.5-flash",
    Quirks {
        merges_tool_results: true,
        ..Quirks::DEFAULT
    }
);

conformance!(
    bedrock,
    bedrock_provider,
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    Quirks {
        merges_tool_results: true,
        json_mode_instruction: true,
        ..Quirks::DEFAULT
    }
);

// ---- setup ----

/// The public model with the adapter's deployment alone.
const MODEL: &str = "conf";
/// The same deployment with a healthy OpenAI-kind backup after it.
const WITH_FALLBACK: &str = "conf-fallback";
/// Words in every mock reply (the mock's default `stream_words`).
const REPLY_WORDS: usize = 8;

/// One test's world: nats-server, the adapter's mock, a backup mock and the gateway.
struct Rig {
    nats: Nats,
    mock: Mock,
    backup: Mock,
    _dir: tempfile::TempDir,
    gw: Gateway,
    adapter: &'static Adapter,
}

async fn rig(adapter: &'static Adapter) -> Rig {
    rig_with_timeouts(adapter, r#"timeout = "5s""#).await
}

/// A rig whose provider table ends with `timeouts` (`timeout`, `first_token_timeout`…).
async fn rig_with_timeouts(adapter: &'static Adapter, timeouts: &str) -> Rig {
    let nats = Nats::start();
    let mock = Mock::start(MockConfig::default()).await;
    let backup = Mock::start(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(&nats, &mock, dir.path());
    let fields = (adapter.provider)(&mock, &dir.path().join("upstream.key"));
    cfg.extra = format!(
        r#"
[providers.{name}]
{fields}
{timeouts}

[providers.backup]
kind = "openai"
base_url = "{backup}"

[[models]]
name = "{MODEL}"
deployments = [{{ provider = "{name}", model = "{model}" }}]

[[models]]
name = "{WITH_FALLBACK}"
deployments = [{{ provider = "{name}", model = "{model}" }}, {{ provider = "backup", model = "gpt-4o-mini" }}]
"#,
        name = adapter.name,
        model = adapter.model,
        backup = backup.base_url(),
    );
    let gw = Gateway::start(cfg.build()).await;
    Rig {
        nats,
        mock,
        backup,
        _dir: dir,
        gw,
        adapter,
    }
}

/// What the gateway answered, read whole.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    fn request_id(&self) -> String {
        self.headers
            .get("x-request-id")
            .expect("every admitted request names its id")
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn message(&self) -> Value {
        self.json()["choices"][0]["message"].clone()
    }
}

impl Rig {
    async fn send(&self, body: &Value) -> Answer {
        let r = post_chat(&self.gw, KEY, body).await;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        // A stream the upstream broke ends in a truncated body: keep what arrived.
        let mut bytes = Vec::new();
        let mut s = r.bytes_stream();
        while let Some(Ok(b)) = s.next().await {
            bytes.extend_from_slice(&b);
        }
        Answer {
            status,
            headers,
            text: String::from_utf8(bytes).unwrap(),
        }
    }

    /// Send and expect a 200 from the adapter's deployment.
    async fn ok(&self, body: &Value) -> Answer {
        let a = self.send(body).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.headers["x-switchyard-provider"], self.adapter.name);
        a
    }

    fn inject(&self, cfg: MockConfig) {
        self.mock.state.set_config(cfg);
    }

    fn fail_with(&self, status: u16) {
        self.inject(MockConfig {
            fail_rate: 1.0,
            fail_status: status,
            ..MockConfig::default()
        });
    }

    /// Stop the gateway (which flushes its publisher) and read every event it published.
    async fn finish(self) -> Vec<(u64, Envelope, Vec<u8>)> {
        self.gw.stop().await;
        read_events(&self.nats.url()).await
    }
}

// ---- expectations ----

/// The mock's reply to a last user message saying `prompt`.
fn echo(prompt: &str) -> String {
    let words: Vec<&str> = prompt.split_whitespace().collect();
    words
        .iter()
        .cycle()
        .take(REPLY_WORDS)
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The mock's prompt tokens for these messages: words of every text plus 3 per message.
fn prompt_tokens(messages: &Value) -> u64 {
    let messages = messages.as_array().unwrap();
    let words: usize = messages
        .iter()
        .map(|m| match &m["content"] {
            Value::String(s) => s.split_whitespace().count(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .map(|t| t.split_whitespace().count())
                .sum(),
            _ => 0,
        })
        .sum();
    (words + 3 * messages.len()) as u64
}

fn chat(messages: Value) -> Value {
    json!({"model": MODEL, "messages": messages})
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    }})
}

fn time_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_time",
        "description": "Local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}
    }})
}

/// A completed text answer: the mock's echo of `prompt`, finish `stop`, and the mock's usage
/// for `messages`. Returns the usage.
fn assert_text_answer(j: &Value, prompt: &str, messages: &Value) -> Value {
    assert_text_answer_with(j, prompt, prompt_tokens(messages))
}

/// [`assert_text_answer`] for a prompt the adapter sends as `input` tokens' worth.
fn assert_text_answer_with(j: &Value, prompt: &str, input: u64) -> Value {
    assert_eq!(j["object"], "chat.completion", "{j}");
    assert_eq!(j["choices"].as_array().unwrap().len(), 1, "{j}");
    let choice = &j["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant", "{j}");
    assert_eq!(choice["message"]["content"], echo(prompt).as_str(), "{j}");
    assert_eq!(choice["finish_reason"], "stop", "{j}");
    let usage = &j["usage"];
    assert_eq!(usage["prompt_tokens"], input, "{j}");
    assert_eq!(usage["completion_tokens"], REPLY_WORDS, "{j}");
    assert_eq!(usage["total_tokens"], input + REPLY_WORDS as u64, "{j}");
    usage.clone()
}

/// An OpenAI-shaped error body; returns its `error` object.
fn assert_openai_error(a: &Answer) -> Value {
    assert_eq!(
        a.headers["content-type"], "application/json",
        "an error before the first byte is JSON, even for a stream: {}",
        a.text
    );
    let j = a.json();
    let e = &j["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
    assert!(e["type"].as_str().is_some_and(|t| !t.is_empty()), "{j}");
    let keys = e.as_object().unwrap();
    assert!(
        keys.contains_key("code") && keys.contains_key("param"),
        "{j}"
    );
    e.clone()
}

/// A tool call as OpenAI shapes it; returns (id, name, arguments as JSON).
fn assert_tool_call(call: &Value) -> (String, String, Value) {
    assert_eq!(call["type"], "function", "{call}");
    let id = call["id"].as_str().expect("a call has an id");
    assert!(!id.is_empty(), "{call}");
    let name = call["function"]["name"].as_str().unwrap();
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("arguments are JSON ({e}): {call}"));
    assert!(args.is_object(), "{call}");
    (id.to_owned(), name.to_owned(), args)
}

/// Tool calls assembled from stream deltas, by index: (id, name, arguments text).
fn streamed_calls(chunks: &[Value]) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for c in chunks {
        for d in c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = d["index"].as_u64().expect("a call delta has an index") as usize;
            assert!(i <= calls.len(), "calls are numbered from 0 in order: {c}");
            if i == calls.len() {
                calls.push(Default::default());
            }
            let call = &mut calls[i];
            if let Some(id) = d["id"].as_str() {
                call.0.push_str(id);
            }
            if let Some(name) = d["function"]["name"].as_str() {
                call.1.push_str(name);
            }
            if let Some(args) = d["function"]["arguments"].as_str() {
                call.2.push_str(args);
            }
        }
    }
    calls
}

/// The request's RequestAccepted and ResponseCompleted, checked to come first and in order.
fn lifecycle(
    events: &[(u64, Envelope, Vec<u8>)],
    request_id: &str,
) -> (RequestAccepted, ResponseCompleted) {
    let mine = for_request(events, request_id);
    let (Some(Event::RequestAccepted(acc)), Some(Event::ResponseCompleted(done))) = (
        mine.first().map(|e| &e.event),
        mine.get(1).map(|e| &e.event),
    ) else {
        panic!("RequestAccepted then ResponseCompleted for {request_id}: {mine:?}")
    };
    (acc.clone(), done.clone())
}

/// A completed answer from the adapter's deployment, as recorded.
fn assert_completed(
    adapter: &Adapter,
    events: &[(u64, Envelope, Vec<u8>)],
    id: &str,
    stream: bool,
    finish_reason: &str,
) -> ResponseCompleted {
    let (acc, done) = lifecycle(events, id);
    assert_eq!(acc.model, MODEL);
    assert_eq!(acc.route[0].provider, adapter.name);
    assert_eq!(acc.stream, stream);
    assert_eq!(done.status, 200);
    assert!(done.error.is_none(), "{:?}", done.error);
    assert_eq!(done.stream, stream);
    assert_eq!(done.provider.as_deref(), Some(adapter.name));
    assert_eq!(done.provider_model.as_deref(), Some(adapter.model));
    assert_eq!(done.attempts.len(), 1);
    assert_eq!(done.attempts[0].status, 200);
    assert_eq!(done.finish_reason.as_deref(), Some(finish_reason));
    done
}

/// A failed request, as recorded: client status and error class.
fn assert_failed(
    events: &[(u64, Envelope, Vec<u8>)],
    id: &str,
    status: u16,
    class: &str,
) -> ResponseCompleted {
    let (_, done) = lifecycle(events, id);
    assert_eq!(done.status, status, "{done:?}");
    let error = done.error.as_ref().expect("a failure records its error");
    assert_eq!(error.class, class, "{done:?}");
    done
}

/// Every attempt went to the adapter's deployment and failed with `status` and `class`; the
/// router retries these classes once by default, so there may be more than one.
fn assert_attempts_failed(adapter: &Adapter, attempts: &[Attempt], status: u16, class: &str) {
    assert!(!attempts.is_empty());
    for a in attempts {
        assert_eq!(a.provider, adapter.name, "{attempts:?}");
        assert_eq!(a.status, status, "{attempts:?}");
        assert_eq!(
            a.error.as_ref().map(|e| e.class.as_str()),
            Some(class),
            "{attempts:?}"
        );
    }
}

/// The backup answered after the adapter's deployment failed with `status`.
fn assert_fell_back(adapter: &Adapter, done: &ResponseCompleted, status: u16, class: &str) {
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.provider.as_deref(), Some("backup"), "{done:?}");
    let (last, failed) = done.attempts.split_last().unwrap();
    assert_eq!((last.provider.as_str(), last.status), ("backup", 200));
    assert_eq!(last.kind, AttemptKind::Fallback);
    assert_attempts_failed(adapter, failed, status, class);
}

fn assert_usage_recorded(done: &ResponseCompleted, usage: &Value) {
    let u = done.usage.expect("usage recorded");
    assert_eq!(u.input_tokens, usage["prompt_tokens"].as_u64().unwrap());
    assert_eq!(
        u.output_tokens,
        usage["completion_tokens"].as_u64().unwrap()
    );
    assert!(!u.estimated, "the provider reported usage: {u:?}");
}

// ---- scenarios ----

async fn plain_text(adapter: &'static Adapter) {
    let rig = rig(adapter).await;
    let prompt = "tell me about rivers";
    let messages = user(prompt);
    let a = rig.ok(&chat(messages.clone())).await;
    let usage = assert_text_answer(&a.json(), prompt, &messages);
    let events = rig.finish().await;
    let done = assert_completed(adapter, &events, &a.request_id(), false, "stop");
    assert_usage_recorded(&done, &usage);
    let answered: Value = serde_json::from_str(done.body.as_deref().unwrap()).unwrap();
    assert_eq!(answered, a.json(), "the answer is recorded as sent");
}

async fn system_prompt(adapter: &'static Adapter) {
    let rig = rig(adapter).await;
    let prompt = "name three rivers";
    let messages = json!([
        {"role": "system", "content": "You are terse and answer in English."},
        {"role": "user", "content": prompt}
    ]);
    let a = rig.ok(&chat(messages.clone())).await;
    // The system prompt counts as one message of the usage, whatever the wire format.
    let usage = assert_text_answer(&a.json(), prompt, &messages);
    let events = rig.finish().await;
    let done = assert_completed(adapter, &events, &a.request_id(), false, "stop");
    assert_usage_recorded(&done, &usage);
}

async fn multi_turn(adapter: &'static Adapter) {
    let rig = rig(adapter).await;
    let prompt = "and now about lakes";
    let messages = json!([
        {"role": "user", "content": "tell me about rivers"},
        {"role": "assistant", "content": "Rivers flow downhill to the sea."},
        {"role": "user", "content": prompt}
    ]);
    let a = rig.ok(&chat(messages.clone())).await;
    assert_text_answer(&a.json(), prompt, &messages);
    let events = rig.finish().await;
    assert_completed(adapter, &events, &a.request_id(), false, "stop");
}

async fn image_part(adapter: &'static Adapter) {
    let rig = rig(adapter).await;
    let prompt = "describe this picture";
    let messages = json!([{"role": "user", "content": [
        {"type": "text", "text": prompt},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
    ]}]);
    let a = rig.ok(&chat(messages.clone())).await;
    assert_text_answer(&a.json(), prompt, &messages);
    let events = rig.finish().await;
    let (acc, _) = lifecycle(&events, &a.request_id());
    assert!(acc.body.contains("data:image/png;base64,iVBORw0KGgo="));
    assert_completed(adapter, &events, &a.request_id(), false, "stop");
}

async fn json_mode(adapter: &'static Adapter) {
    let rig = rig(adapter).await;
    let prompt = "list rivers as json";
    let messages = user(prompt);
    let mut body = chat(messages.clone());
    body["response_format"] = json!({"type": "json_object"});
    let a = rig.ok(&body).await;
    let mut input = prompt_tokens(&messages);
    if adapter.quirks.json_mode_instruction {
        let j = a.json();
        let instruction = j["usage"]["prompt_tokens"]
            .as_u64()
            .unwrap()
            .saturating_sub(input);
        assert!(
            instruction > 3,
            "an instruction of some words was added: {j}"
        );
        input += instruction;
    }
    assert_text_answer_with(&a.json(), prompt, input);
    let events = rig.finish().await;
    let (acc, _) = lifecycle(&events, &a.request_id());
    let sent: Value = serde_json::from_str(&acc.body).unwrap();
    assert_eq!(sent["response_format"]["type"], "json_object");
    assert_completed(adapter, &events, &a.request_id(), false, "stop");
}

async fn tool_call(adapter: &'static Adapter) {
    let rig = rig(adapter).await;
    let mut body = chat(user("weather in Paris?"));
    body["tools"] = json!([weather_tool()]);
    let a = rig.ok(&body).await;
    let j = a.json();
    assert_eq!(j["choices"][0]["finish_reason"], "tool_calls", "{j}");
    let msg = a.message();
    assert_eq!(msg["role"], "assistant");
    assert!(
        msg["content"].as_str().is_none_or(str::is_empty),
        "no text beside the call: {j}"
    );
    let calls = msg["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{j}");
    let (_, name, _) = assert_tool_call(&calls[0]);
    assert_eq!(name, "get_weather");
    assert_eq!(j["usage"]["completion_tokens"], 1, "{j}");
    let events = rig.finish().await;
    assert_completed(adapter, &events, &a.request_id(), false, "tool_calls");
}

/// The answer's message sent back as is, one `tool` result per call, then a text answer.
async fn round_trip(rig: &Rig, prompt: &str, tools: Value, calls: usize) -> Answer {
    let merged = rig.adapter.quirks.merges_tool_results && calls > 1;
    let mut body = chat(user(prompt));
    body["tools"] = tools.clone();
    body["parallel_tool_calls"] = json!(true);
    let first = rig.ok(&body).await;
    let msg = first.message();
    let tool_calls = msg["tool_calls"].as_array().unwrap();
    assert_eq!(tool_calls.len(), calls, "{}", first.text);
    let mut messages = user(prompt);
    let conversation = messages.as_array_mut().unwrap();
    conversation.push(msg.clone());
    for call in tool_calls {
        let (id, name, _) = assert_tool_call(call);
        conversation.push(json!({"role": "tool", "tool_call_id": id, "content": format!("{name} says sunny and 21 degrees")}));
    }
    let mut body = chat(messages.clone());
    body["tools"] = tools;
    // The mock calls a tool whenever tools are offered; "none" asks for the text answer.
    body["tool_choice"] = json!("none");
    let a = rig.ok(&body).await;
    let j = a.json();
    assert_eq!(j["choices"][0]["finish_reason"], "stop", "{j}");
    assert_eq!(
        j["choices"][0]["message"]["content"],
        echo(prompt).as_str(),
        "{j}"
    );
    assert!(
        j["choices"][0]["message"]
            .get("tool_calls")
            .is_none_or(Value::is_null)
    );
    // Every turn reached the provider, tool results included: the mock counts their words.
    let merged_away = if merged { 3 * (calls as u64 - 1) } else { 0 };
    assert_eq!(
        j["usage"]["prompt_tokens"],
        prompt_tokens(&messages) - merged_away,
        "{j}"
    );
    a
}

async fn tool_result_round_trip(adapter: &'static Adapter) {
    let rig = rig(adapter).await;
    let a = round_trip(&rig, "weather in Paris?", json!([weather_tool()]), 1).await;
    let events = rig.finish().await;
    let (acc, _) = lifecycle(&events, &a.request_id());
    assert!(acc.body.contains("\"role\":\"tool\""));
    assert_completed(adapter, &events, &a.request_id(), false, "stop");
}

async fn parallel_tool_calls(adapter: &'static Adapter) {
    let rig = rig(adapter).await;
    let n = adapter.quirks.parallel_calls;
    let prompt = "weather and time in Paris, in parallel please";
    let mut body = chat(user(prompt));
    body["tools"] = json!([weather_tool(), time_tool()]);
    body["parallel_tool_calls"] = json!(true);
    let a = rig.ok(&body).await;
    let j = a.json();
    assert_eq!(j["choices"][0]["finish_reason"], "tool_calls", "{j}");
    let calls: Vec<_> = a.message()["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(assert_tool_call)
        .collect();
    let names: Vec<&str> = calls.iter().map(|(_, name, _)| name.as_str()).collect();
    assert_eq!(names, ["get_weather", "get_time"][..n], "{j}");
    let ids: BTreeSet<&str> = calls.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids.len(), n, "call ids are distinct: {j}");
    assert_eq!(j["usage"]["completion_tokens"], n, "{j}");

    // Both results go back and the conversation ends in text.
    let back = round_trip(&rig, prompt, json!([weather_tool(), time_tool()]), n).await;
    let events = rig.finish().await;
    assert_completed(adapter, &events, &a.request_id(), false, "tool_calls");
    assert_completed(adapter, &events, &back.request_id(), false, "stop");
}

async fn stream_with_usage(adapter: &'static Adapter) {
    let rig = rig(adapter).await;
    let prompt = "stream about lakes";
    let plain = rig.ok(&chat(user(prompt))).await.json();
    let mut body = chat(user(prompt));
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let a = rig.ok(&body).await;
    assert_eq!(a.headers["content-type"], "text/event-stream");
    let (chunks, done) = sse_chunks(&a.text);
    assert!(done, "ends with [DONE]: {}", a.text);
    assert!(chunks.len() >= 3, "{}", a.text);
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert_eq!(c["id"], chunks[0]["id"], "one id across the stream: {c}");
    }
    assert_eq!(
        streamed_text(&chunks),
        plain["choices"][0]["message"]["content"].as_str().unwrap(),
        "the deltas concatenate to the plain answer"
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop"),
        "{}",
        a.text
    );
    let (last, rest) = chunks.split_last().unwrap();
    assert_eq!(
        last["choices"],
        json!([]),
        "the usage chunk comes last: {last}"
    );
    assert_eq!(
        last["usage"], plain["usage"],
        "same usage as the plain answer"
    );
    assert!(
        rest.iter().all(|c| c["usage"].is_null()),
        "usage only on the last chunk: {}",
        a.text
    );
    let events = rig.finish().await;
    let done = assert_completed(adapter, &events, &a.request_id(), true, "stop");
    assert!(done.ttft_us.is_some());
    assert_usage_recorded(&done, &plain["usage"]);
}

async fn stream_without_usage(adapter: &'static Adapter) {
    let rig = rig(adapter).await;
    let prompt = "stream about deserts";
    let mut body = chat(user(prompt));
    body["stream"] = json!(true);
    let a = rig.ok(&body).await;
    let (chunks, done) = sse_chunks(&a.text);
    assert!(done, "ends with [DONE]: {}", a.text);
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "a client that did not ask for usage sees no usage key: {}",
        a.text
    );
    assert!(
        chunks
            .iter()
            .all(|c| !c["choices"].as_array().unwrap().is_empty()),
        "no usage-only chunk: {}",
        a.text
    );
    assert_eq!(streamed_text(&chunks), echo(prompt));
    let events = rig.finish().await;
    let done = assert_completed(adapter, &events, &a.request_id(), true, "stop");
    let u = done.usage.expect("usage recorded all the same");
    assert_eq!(u.output_tokens, REPLY_WORDS as u64);
    assert!(!u.estimated, "the provider reported it: {u:?}");
}

async fn stream_tool_call_deltas(adapter: &'static Adapter) {
    let rig = rig(adapter).await;
    let n = adapter.quirks.parallel_calls;
    let mut body = chat(user("weather and time in Paris, in parallel please"));
    body["tools"] = json!([weather_tool(), time_tool()]);
    body["stream"] = json!(true);
    let a = rig.ok(&body).await;
    let (chunks, done) = sse_chunks(&a.text);
    assert!(done, "{}", a.text);
    let calls = streamed_calls(&chunks);
    assert_eq!(calls.len(), n, "{}", a.text);
    for ((id, name, args), expected) in calls.iter().zip(["get_weather", "get_time"]) {
        assert!(!id.is_empty(), "{}", a.text);
        assert_eq!(name, expected, "{}", a.text);
        let args: Value = serde_json::from_str(args)
            .unwrap_or_else(|e| panic!("argument fragments make JSON ({e}): {}", a.text));
        assert!(args.is_object());
    }
    assert_ne!(calls.first().map(|c| &c.0), calls.get(1).map(|c| &c.0));
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"),
        "{}",
        a.text
    );
    let events = rig.finish().await;
    assert_completed(adapter, &events, &a.request_id(), true, "tool_calls");
}

async fn upstream_400(adapter: &'static Adapter) {
    let rig = rig(adapter).await;
    rig.fail_with(400);
    let mut ids = Vec::new();
    for stream in [false, true] {
        let mut body = chat(user("hi"));
        body["model"] = json!(WITH_FALLBACK);
        body["stream"] = json!(stream);
        let a = rig.send(&body).await;
        assert_eq!(a.status, 400, "the provider's 4xx is passed on: {}", a.text);
        let e = assert_openai_error(&a);
        // Whatever the provider calls it, a 400 is OpenAI's `invalid_request_error`.
        assert_eq!(e["type"], "invalid_request_error", "{e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("injected"),
            "the provider's own message reaches the client: {e}"
        );
        ids.push(a.request_id());
    }
    assert_eq!(
        rig.backup.state.stats().requests,
        0,
        "no fallback for the client's own error"
    );
    assert_eq!(rig.mock.state.stats().faults, 2);
    let events = rig.finish().await;
    for id in ids {
        let done = assert_failed(&events, &id, 400, "upstream_4xx");
        assert_eq!(done.attempts.len(), 1, "neither retried nor fallen back");
        assert_attempts_failed(adapter, &done.attempts, 400, "upstream_4xx");
    }
}

async fn upstream_401(adapter: &'static Adapter) {
    let rig = rig(adapter).await;
    rig.fail_with(401);
    let a = rig.send(&chat(user("hi"))).await;
    assert_eq!(
        a.status, 502,
        "our provider key was refused: the gateway's fault, not the client's: {}",
        a.text
    );
    let e = assert_openai_error(&a);
    assert_eq!(e["code"], "upstream_auth_failed", "{e}");
    assert!(!a.text.contains(UPSTREAM_SECRET), "{}", a.text);
    assert!(
        !a.text.to_lowercase().contains("injected"),
        "the provider's message (which may quote the key) is not passed on: {}",
        a.text
    );
    // Another deployment may hold working credentials.
    let mut body = chat(user("hi"));
    body["model"] = json!(WITH_FALLBACK);
    let b = rig.send(&body).await;
    assert_eq!(b.status, 200, "{}", b.text);
    assert_eq!(b.headers["x-switchyard-provider"], "backup");
    let events = rig.finish().await;
    let done = assert_failed(&events, &a.request_id(), 502, "upstream_auth");
    assert_eq!(done.attempts.len(), 1, "the same key is not tried again");
    assert_attempts_failed(adapter, &done.attempts, 401, "upstream_auth");
    let (_, done) = lifecycle(&events, &b.request_id());
    assert_fell_back(adapter, &done, 401, "upstream_auth");
    assert!(
        events
            .iter()
            .all(|(_, _, raw)| !String::from_utf8_lossy(raw).contains(UPSTREAM_SECRET)),
        "the provider key never reaches an event"
    );
}

/// The router waits for a `Retry-After` up to `routing.retry.max_retry_after` (5 s by default)
/// and retries once; the client then gets the 429 and the provider's delay.
async fn upstream_429_retry_after(adapter: &'static Adapter) {
    let rig = rig(adapter).await;
    rig.inject(MockConfig {
        fail_rate: 1.0,
        fail_status: 429,
        retry_after_secs: Some(1),
        ..MockConfig::default()
    });
    let started = Instant::now();
    let a = rig.send(&chat(user("hi"))).await;
    assert_eq!(a.status, 429, "{}", a.text);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the delay was honoured"
    );
    assert_eq!(
        a.headers["retry-after"], "1",
        "the provider's delay is passed on"
    );
    let e = assert_openai_error(&a);
    assert_eq!(e["code"], "rate_limit_exceeded", "{e}");
    assert_eq!(e["type"], "rate_limit_error", "{e}");
    let events = rig.finish().await;
    let done = assert_failed(&events, &a.request_id(), 429, "rate_limited");
    assert_attempts_failed(adapter, &done.attempts, 429, "rate_limited");
    let kinds: Vec<(AttemptKind, u64)> = done
        .attempts
        .iter()
        .map(|a| (a.kind, a.backoff_ms))
        .collect();
    assert_eq!(
        kinds,
        [(AttemptKind::First, 0), (AttemptKind::Retry, 1000)],
        "one retry after exactly the provider's Retry-After"
    );
}

async fn upstream_5xx(adapter: &'static Adapter) {
    let rig = rig(adapter).await;
    let overloaded = adapter.quirks.overloaded;
    rig.fail_with(overloaded);
    let mut ids = Vec::new();
    for stream in [false, true] {
        let mut body = chat(user("hi"));
        body["stream"] = json!(stream);
        let a = rig.send(&body).await;
        assert_eq!(a.status, 502, "{}", a.text);
        let e = assert_openai_error(&a);
        assert_eq!(e["code"], "upstream_error", "{e}");
        assert_eq!(e["type"], "upstream_error", "{e}");
        ids.push(a.request_id());
    }
    // A provider failure falls back to the next deployment.
    let mut body = chat(user("hi"));
    body["model"] = json!(WITH_FALLBACK);
    let b = rig.send(&body).await;
    assert_eq!(b.status, 200, "{}", b.text);
    assert_eq!(b.headers["x-switchyard-provider"], "backup");
    let events = rig.finish().await;
    for id in ids {
        let done = assert_failed(&events, &id, 502, "upstream_5xx");
        assert_attempts_failed(adapter, &done.attempts, overloaded, "upstream_5xx");
    }
    let (_, done) = lifecycle(&events, &b.request_id());
    assert_fell_back(adapter, &done, overloaded, "upstream_5xx");
    assert_eq!(
        b.headers["x-switchyard-attempts"],
        done.attempts.len().to_string().as_str()
    );
}

/// The mock hangs 5 s before answering: past the provider's limit the client gets a 504 at
/// once (well before the hang ends), with the failure recorded as a timeout.
async fn expect_timeouts(rig: Rig, stream: bool) {
    let adapter = rig.adapter;
    rig.inject(MockConfig {
        timeout_rate: 1.0,
        hang_ms: 5_000,
        ..MockConfig::default()
    });
    let mut body = chat(user("hi"));
    body["stream"] = json!(stream);
    let started = Instant::now();
    let a = rig.send(&body).await;
    let took = started.elapsed();
    assert_eq!(a.status, 504, "after {took:?}: {}", a.text);
    assert!(took < Duration::from_secs(2), "answered in {took:?}");
    let e = assert_openai_error(&a);
    assert_eq!(e["code"], "upstream_timeout", "{e}");
    let events = rig.finish().await;
    let done = assert_failed(&events, &a.request_id(), 504, "timeout");
    // No upstream status was received.
    assert_attempts_failed(adapter, &done.attempts, 0, "timeout");
}

/// `timeout` bounds a whole answer.
async fn timeout(adapter: &'static Adapter) {
    let rig = rig_with_timeouts(adapter, r#"timeout = "300ms""#).await;
    expect_timeouts(rig, false).await;
}

/// `first_token_timeout` bounds the wait for a stream's first token.
async fn first_token_timeout(adapter: &'static Adapter) {
    let timeouts = "timeout = \"5s\"\nfirst_token_timeout = \"300ms\"";
    let rig = rig_with_timeouts(adapter, timeouts).await;
    expect_timeouts(rig, true).await;
}

/// `timeout` is the total time of a stream too ("the whole answer, or the whole stream"), so
/// a stream whose first token is later than that fails before anything reached the client.
async fn stream_total_timeout(adapter: &'static Adapter) {
    let rig = rig_with_timeouts(adapter, r#"timeout = "300ms""#).await;
    expect_timeouts(rig, true).await;
}

/// A stream the upstream breaks after some content: it ends with an OpenAI error event and no
/// `[DONE]`, the failure is recorded, and the next request is served.
async fn broken_stream(adapter: &'static Adapter, fault: MockConfig, class: &str) {
    let rig = rig(adapter).await;
    rig.inject(MockConfig {
        stream_words: 12,
        // The first chunks are on the wire before the failure.
        chunk_delay_ms: 5,
        ..fault
    });
    let mut body = chat(user("one two three"));
    body["stream"] = json!(true);
    let a = rig.ok(&body).await;
    let (chunks, done) = sse_chunks(&a.text);
    assert!(!done, "no [DONE] after a failure: {}", a.text);
    let (last, before) = chunks.split_last().unwrap();
    assert_eq!(last["error"]["code"], "upstream_bad_response", "{}", a.text);
    assert!(
        last["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(
        !streamed_text(before).is_empty(),
        "content came before the failure: {}",
        a.text
    );
    rig.inject(MockConfig::default());
    let next = rig.ok(&chat(user("still there?"))).await;
    assert_text_answer(&next.json(), "still there?", &user("still there?"));
    let events = rig.finish().await;
    let done = assert_failed(&events, &a.request_id(), 200, class);
    assert!(done.stream);
    assert_completed(adapter, &events, &next.request_id(), false, "stop");
}

async fn malformed_chunk(adapter: &'static Adapter) {
    let fault = MockConfig {
        malformed_rate: 1.0,
        ..MockConfig::default()
    };
    broken_stream(adapter, fault, "malformed_chunk").await;
}

async fn stream_cut(adapter: &'static Adapter) {
    let fault = MockConfig {
        cut_rate: 1.0,
        ..MockConfig::default()
    };
    broken_stream(adapter, fault, "stream_cut").await;
}
