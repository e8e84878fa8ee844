//! The OpenAI chat request as the converting adapters (anthropic, gemini) read it: borrowed serde
//! mirrors of the fields they act on, deserialized from `ChatRequest::rest`. Types only, no
//! decisions: what each field becomes is every adapter's own `convert.rs`; the OpenAI adapter
//! forwards the request verbatim and never reads these.
//!
//! Strings borrow from `ChatRequest::rest`: deserializing from a `&serde_json::Value` hands out
//! borrowed strings, so a conversion copies no text. Fields a converter does not act on are
//! simply absent here, so an unknown or newer field never fails a request.

use serde::Deserialize;

/// The fields of an OpenAI chat request the conversion acts on; all others are dropped.
#[derive(Debug, Deserialize)]
pub struct OaRequest<'a> {
    #[serde(borrow)]
    pub messages: Vec<OaMessage<'a>>,
    #[serde(default, borrow)]
    pub tools: Option<Vec<OaTool<'a>>>,
    #[serde(default, borrow)]
    pub tool_choice: Option<OaToolChoice<'a>>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default, borrow)]
    pub stop: Option<OaStop<'a>>,
    #[serde(default, borrow)]
    pub user: Option<&'a str>,
    #[serde(default)]
    pub n: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct OaMessage<'a> {
    pub role: &'a str,
    #[serde(default, borrow)]
    pub content: Option<OaContent<'a>>,
    #[serde(default, borrow)]
    pub tool_calls: Option<Vec<OaToolCall<'a>>>,
    #[serde(default, borrow)]
    pub tool_call_id: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OaContent<'a> {
    Text(&'a str),
    Parts(#[serde(borrow)] Vec<OaPart<'a>>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OaPart<'a> {
    Text {
        text: &'a str,
    },
    ImageUrl {
        #[serde(borrow)]
        image_url: OaImageUrl<'a>,
    },
    /// An assistant's refusal, sent back in a later turn.
    Refusal {
        refusal: &'a str,
    },
    InputAudio {},
    File {},
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
pub struct OaImageUrl<'a> {
    pub url: &'a str,
}

#[derive(Debug, Deserialize)]
pub struct OaToolCall<'a> {
    pub id: &'a str,
    #[serde(borrow)]
    pub function: OaFunctionCall<'a>,
}

#[derive(Debug, Deserialize)]
pub struct OaFunctionCall<'a> {
    pub name: &'a str,
    #[serde(default)]
    pub arguments: &'a str,
}

#[derive(Debug, Deserialize)]
pub struct OaTool<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(default, borrow)]
    pub function: Option<OaFunctionDef<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct OaFunctionDef<'a> {
    pub name: &'a str,
    #[serde(default, borrow)]
    pub description: Option<&'a str>,
    /// Owned: a schema is forwarded whole, and a `Value` cannot be borrowed out of another.
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OaToolChoice<'a> {
    Mode(&'a str),
    Named {
        #[serde(borrow)]
        function: OaNamedFunction<'a>,
    },
}

#[derive(Debug, Deserialize)]
pub struct OaNamedFunction<'a> {
    pub name: &'a str,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OaStop<'a> {
    One(&'a str),
    Many(#[serde(borrow)] Vec<&'a str>),
}
