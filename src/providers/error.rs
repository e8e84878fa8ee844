//! What can go wrong talking to a provider, classified once. A [`ProviderError`] carries its
//! [`Class`], decided when the error is made (for an HTTP status: from the status, the
//! provider's error type and code, and, for a 4xx only, the wording providers use for a
//! too-long prompt or refused content); whose fault it is, whether to retry it, its metrics
//! label, the router's [`ErrorClass`] and the client's HTTP error are all read from that class,
//! never from the message text again.

use std::time::Duration;

use crate::config::ErrorClass;

/// Whose fault a failure is, which decides the status class and whether to try elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request itself is wrong; another deployment would refuse it too.
    Client,
    /// The provider failed or is overloaded; another deployment may succeed.
    Provider,
}

/// The kind of a provider failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Connect,
    Timeout,
    /// 429.
    RateLimited,
    /// 401/403: the gateway's credentials were refused.
    UpstreamAuth,
    /// 5xx, or a status no provider should answer with (3xx after redirects were followed).
    Upstream5xx,
    /// 408/409: a 4xx about the provider's state, not the request.
    UpstreamConflict,
    /// A 4xx that says the prompt is longer than the model's context window.
    ContextLength,
    /// A 4xx that says the provider refused the content.
    ContentPolicy,
    /// Any other 4xx: the request's fault.
    Rejected,
    MalformedChunk,
    StreamCut,
    Decode,
    /// The operation does not exist at this provider.
    Unsupported,
    /// The request cannot be expressed in the provider's format (nothing was sent).
    Invalid,
    /// Every deployment's breaker is open (nothing was sent).
    CircuitOpen,
}

impl Class {
    /// The class of an HTTP status answered by a provider, with what it said about it.
    fn of_status(status: u16, message: &str, error_type: Option<&str>, code: Option<&str>) -> Self {
        match status {
            429 => Class::RateLimited,
            401 | 403 => Class::UpstreamAuth,
            s if !(400..500).contains(&s) => Class::Upstream5xx,
            _ => {
                let said = |needles: &[&str]| {
                    let lower = message.to_ascii_lowercase();
                    [code, error_type]
                        .into_iter()
                        .flatten()
                        .any(|c| needles.iter().any(|n| c.contains(n)))
                        || needles.iter().any(|n| lower.contains(n))
                };
                if matches!(status, 408 | 409) {
                    Class::UpstreamConflict
                } else if said(&[
                    "context_length_exceeded",
                    "maximum context length",
                    "prompt is too long",
                    "input is too long",
                    "context window",
                ]) {
                    Class::ContextLength
                } else if said(&[
                    "content_policy",
                    "content_filter",
                    "content management policy",
                ]) {
                    Class::ContentPolicy
                } else {
                    Class::Rejected
                }
            }
        }
    }

    pub fn fault(self) -> Fault {
        match self {
            Class::Unsupported
            | Class::Invalid
            | Class::Rejected
            | Class::ContextLength
            | Class::ContentPolicy => Fault::Client,
            _ => Fault::Provider,
        }
    }

    /// A short static label for metrics and events.
    pub fn label(self) -> &'static str {
        match self {
            Class::Connect => "connect",
            Class::Timeout => "timeout",
            Class::RateLimited => "rate_limited",
            Class::UpstreamAuth => "upstream_auth",
            Class::Upstream5xx => "upstream_5xx",
            Class::UpstreamConflict
            | Class::ContextLength
            | Class::ContentPolicy
            | Class::Rejected => "upstream_4xx",
            Class::MalformedChunk => "malformed_chunk",
            Class::StreamCut => "stream_cut",
            Class::Decode => "decode",
            Class::Unsupported => "unsupported",
            Class::Invalid => "invalid_request",
            Class::CircuitOpen => "circuit_open",
        }
    }

    /// The router's name for it, for retry (`on`) and fallback (`fallback_on`) decisions.
    pub fn routing(self) -> Option<ErrorClass> {
        Some(match self {
            Class::Timeout => ErrorClass::Timeout,
            Class::Connect | Class::CircuitOpen => ErrorClass::Connect,
            Class::MalformedChunk | Class::StreamCut | Class::Decode => ErrorClass::Stream,
            Class::RateLimited => ErrorClass::RateLimited,
            Class::UpstreamAuth => ErrorClass::UpstreamAuth,
            Class::Upstream5xx => ErrorClass::Upstream5xx,
            Class::ContextLength => ErrorClass::ContextLengthExceeded,
            Class::ContentPolicy => ErrorClass::ContentPolicy,
            Class::UpstreamConflict | Class::Rejected | Class::Unsupported | Class::Invalid => {
                return None;
            }
        })
    }
}

/// Everything that can go wrong talking to a provider, typed so that routing and the edge decide
/// from the kind, never from message text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("could not connect to the provider: {0}")]
    Connect(String),
    #[error("the provider did not answer in time ({phase})")]
    Timeout { phase: &'static str },
    /// A non-2xx answer; made by [`ProviderError::upstream`], which classifies it.
    #[error("the provider answered {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// The provider's own error type/code, passed on to the client for 4xx.
        error_type: Option<String>,
        code: Option<String>,
        retry_after: Option<Duration>,
        class: Class,
    },
    #[error("the provider sent a malformed stream chunk: {0}")]
    MalformedChunk(String),
    #[error("the provider's stream ended early: {0}")]
    StreamCut(String),
    #[error("the provider sent an unreadable answer: {0}")]
    Decode(String),
    #[error("this provider does not support {0}")]
    Unsupported(&'static str),
    /// The request cannot be expressed in the provider's format; found before anything was sent.
    #[error("the request cannot be sent to this provider: {0}")]
    Invalid(String),
    /// Every deployment's circuit breaker is open: nothing was sent.
    #[error("every deployment of this model is failing; its circuit breakers are open")]
    CircuitOpen,
}

impl ProviderError {
    /// A non-2xx answer of a provider, classified here once.
    pub fn upstream(
        status: u16,
        message: String,
        error_type: Option<String>,
        code: Option<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        let class = Class::of_status(status, &message, error_type.as_deref(), code.as_deref());
        ProviderError::Status {
            status,
            message,
            error_type,
            code,
            retry_after,
            class,
        }
    }

    pub fn class(&self) -> Class {
        match self {
            ProviderError::Connect(_) => Class::Connect,
            ProviderError::Timeout { .. } => Class::Timeout,
            ProviderError::Status { class, .. } => *class,
            ProviderError::MalformedChunk(_) => Class::MalformedChunk,
            ProviderError::StreamCut(_) => Class::StreamCut,
            ProviderError::Decode(_) => Class::Decode,
            ProviderError::Unsupported(_) => Class::Unsupported,
            ProviderError::Invalid(_) => Class::Invalid,
            ProviderError::CircuitOpen => Class::CircuitOpen,
        }
    }

    pub fn fault(&self) -> Fault {
        self.class().fault()
    }

    /// Worth trying another deployment (or again) for.
    pub fn retryable(&self) -> bool {
        self.fault() == Fault::Provider
    }

    /// A short static label for metrics and events.
    pub fn label(&self) -> &'static str {
        self.class().label()
    }

    /// The upstream HTTP status, if one was received.
    pub fn status(&self) -> u16 {
        match self {
            ProviderError::Status { status, .. } => *status,
            _ => 0,
        }
    }

    /// How long the provider asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A transport failure (no HTTP status) as a provider error.
pub(crate) fn transport_error(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout { phase: "connect" }
    } else if e.is_connect() {
        ProviderError::Connect(short_cause(&e))
    } else {
        ProviderError::StreamCut(short_cause(&e))
    }
}

/// The innermost cause, without the URL reqwest puts in its own message.
pub(crate) fn short_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: u16) -> ProviderError {
        ProviderError::upstream(s, String::new(), None, None, None)
    }

    #[test]
    fn classification() {
        assert!(!status(400).retryable());
        assert!(!status(404).retryable());
        assert!(status(408).retryable());
        assert!(status(429).retryable());
        assert!(status(500).retryable());
        assert!(
            status(401).retryable(),
            "our credentials: another provider may work"
        );
        assert!(ProviderError::Timeout { phase: "connect" }.retryable());
        assert_eq!(status(503).label(), "upstream_5xx");
        assert_eq!(status(409).label(), "upstream_4xx");
    }

    #[test]
    fn a_4xx_is_read_once_for_what_it_says() {
        let said = |message: &str, code: Option<&str>| {
            ProviderError::upstream(400, message.into(), None, code.map(str::to_owned), None)
                .class()
        };
        assert_eq!(
            said("This model's maximum context length is 8192 tokens", None),
            Class::ContextLength
        );
        assert_eq!(
            said("x", Some("context_length_exceeded")),
            Class::ContextLength
        );
        assert_eq!(said("x", Some("content_filter")), Class::ContentPolicy);
        assert_eq!(said("bad temperature", None), Class::Rejected);
        assert_eq!(
            Class::ContextLength.routing(),
            Some(ErrorClass::ContextLengthExceeded)
        );
        assert_eq!(Class::Rejected.routing(), None);
        // A 5xx is never read for its text.
        assert_eq!(
            ProviderError::upstream(500, "context window".into(), None, None, None).class(),
            Class::Upstream5xx
        );
    }
}
