//! OpenAI SSE stream → [`StreamChunk`]s. Parsing of the SSE framing is the eventsource-stream
//! crate's; this file only decides what each `data:` payload means and when the stream is broken.

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use std::time::Duration;

use super::wire::CompletionInfo;
use crate::providers::{ChatStream, ProviderError, StreamChunk};

/// Turn an upstream response body into chunks. `idle` bounds the wait for each event.
pub fn chunks(resp: reqwest::Response, idle: Duration) -> ChatStream {
    let events = resp.bytes_stream().eventsource();
    let state = State {
        events: Box::pin(events),
        finished: false,
        idle,
    };
    futures::stream::unfold(state, next).boxed()
}

type Events = std::pin::Pin<
    Box<
        dyn futures::Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

struct State {
    events: Events,
    finished: bool,
    idle: Duration,
}

async fn next(mut st: State) -> Option<(Result<StreamChunk, ProviderError>, State)> {
    if st.finished {
        return None;
    }
    loop {
        let item = match tokio::time::timeout(st.idle, st.events.next()).await {
            Err(_) => {
                st.finished = true;
                return Some((
                    Err(ProviderError::Timeout {
                        phase: "stream_idle",
                    }),
                    st,
                ));
            }
            Ok(item) => item,
        };
        let ev = match item {
            None => {
                st.finished = true;
                return Some((
                    Err(ProviderError::StreamCut(
                        "stream ended before [DONE]".into(),
                    )),
                    st,
                ));
            }
            Some(Err(e)) => {
                st.finished = true;
                return Some((Err(ProviderError::StreamCut(e.to_string())), st));
            }
            Some(Ok(ev)) => ev,
        };
        let data = ev.data;
        if data.is_empty() {
            continue;
        }
        if data == "[DONE]" {
            return None;
        }
        return Some((parse_chunk(data).inspect_err(|_| st.finished = true), st));
    }
}

pub(super) fn parse_chunk(data: String) -> Result<StreamChunk, ProviderError> {
    let mut info: CompletionInfo =
        serde_json::from_str(&data).map_err(|e| ProviderError::MalformedChunk(e.to_string()))?;
    if let Some(err) = info.error.take() {
        return Err(ProviderError::StreamCut(format!(
            "provider reported an error mid-stream: {}",
            err.message.unwrap_or_default()
        )));
    }
    let finish_reason = info.finish_reason();
    let usage_only = info.choices.is_empty() && info.usage.is_some();
    Ok(StreamChunk {
        usage: info.usage.map(Into::into),
        finish_reason,
        usage_only,
        data: Bytes::from(data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_usage_and_finish_reason() {
        let c = parse_chunk(r#"{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#.into()).unwrap();
        assert_eq!(c.finish_reason.as_deref(), Some("stop"));
        assert!(!c.usage_only);
        let u = parse_chunk(r#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":1}}}"#.into()).unwrap();
        assert!(u.usage_only);
        let usage = u.usage.unwrap();
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cached_input_tokens
            ),
            (3, 4, 1)
        );
        assert!(matches!(
            parse_chunk("{not json".into()),
            Err(ProviderError::MalformedChunk(_))
        ));
        assert!(matches!(
            parse_chunk(r#"{"error":{"message":"overloaded"}}"#.into()),
            Err(ProviderError::StreamCut(_))
        ));
    }
}
