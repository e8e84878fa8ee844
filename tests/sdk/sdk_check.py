"""The official OpenAI and Anthropic Python SDKs, unchanged, against a running Switchyard.

Run by the Rust test `sdk::official_sdks_work_unchanged` (tests/it/sdk.rs) with
SWITCHYARD_URL (e.g. http://127.0.0.1:8080), SWITCHYARD_KEY (a virtual key), OPENAI_MODEL and
ANTHROPIC_MODEL (public model names routed to an OpenAI and an Anthropic deployment), and
optionally OTHER_MODELS (comma-separated public models on any other adapters: Gemini, Bedrock…),
which get every chat, stream and tool check through both SDKs too.
Every check is an assert: any failure exits non-zero.
"""
import os

import anthropic
import openai

URL = os.environ["SWITCHYARD_URL"]
KEY = os.environ["SWITCHYARD_KEY"]
MODELS = [os.environ["OPENAI_MODEL"], os.environ["ANTHROPIC_MODEL"]] + [
    m for m in os.environ.get("OTHER_MODELS", "").split(",") if m
]
EMBED = os.environ["EMBEDDING_MODEL"]
TOOL = {"type": "object", "properties": {"city": {"type": "string"}}}

oa = openai.OpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0)
for model in MODELS:
    r = oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello there"}])
    assert "hello" in r.choices[0].message.content, r
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0, r.usage

    text, usage = "", None
    for c in oa.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "stream please"}],
        stream=True, stream_options={"include_usage": True},
    ):
        if c.choices and c.choices[0].delta.content:
            text += c.choices[0].delta.content
        if c.usage:
            usage = c.usage
    assert "stream" in text and usage and usage.completion_tokens > 0, (text, usage)

    t = oa.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "weather?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": TOOL}}],
    )
    assert t.choices[0].finish_reason == "tool_calls", t
    assert t.choices[0].message.tool_calls[0].function.name == "get_weather", t
    print("openai sdk ok:", model)

e = oa.embeddings.create(model=EMBED, input=["a b c", "d e"])
assert len(e.data) == 2 and len(e.data[0].embedding) > 0
try:
    oa.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as err:
    assert err.code == "model_not_found", err
try:
    openai.OpenAI(base_url=URL + "/v1", api_key="sk-wrong", max_retries=0).models.list()
    raise AssertionError("wrong key accepted")
except openai.AuthenticationError:
    pass
assert {m.id for m in oa.models.list()} >= set(MODELS)

an = anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0)
for model in reversed(MODELS):
    m = an.messages.create(
        model=model, max_tokens=64, system="Be brief.",
        messages=[{"role": "user", "content": "hello there"}],
    )
    assert m.content[0].type == "text" and "hello" in m.content[0].text, m
    assert m.stop_reason == "end_turn" and m.usage.output_tokens > 0, m

    with an.messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "stream please"}],
    ) as st:
        text = "".join(st.text_stream)
        final = st.get_final_message()
    assert "stream" in text and final.stop_reason == "end_turn", (text, final)

    t = an.messages.create(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "weather?"}],
        tools=[{"name": "get_weather", "input_schema": TOOL}],
    )
    assert t.stop_reason == "tool_use" and t.content[-1].type == "tool_use", t
    # the tool result round trip
    follow = an.messages.create(
        model=model, max_tokens=64, tools=[{"name": "get_weather", "input_schema": TOOL}],
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [b.model_dump() for b in t.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": t.content[-1].id, "content": "18C"}]},
        ],
    )
    assert follow.type == "message", follow
    print("anthropic sdk ok:", model)

n = an.messages.count_tokens(model=MODELS[1], messages=[{"role": "user", "content": "hello world"}])
assert n.input_tokens > 0
try:
    an.messages.create(model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    raise AssertionError("unknown model accepted")
except anthropic.NotFoundError:
    pass
print("sdk check passed")
