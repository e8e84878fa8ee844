//! The one internal error of the edge, [`ApiError`], and its two renderings: OpenAI's
//! `{"error":{"message","type","code","param"}}` and Anthropic's
//! `{"type":"error","error":{"type","message"}}` (each surface picks one through
//! `surface::SurfaceError`). Client errors keep their message; upstream failures are mapped
//! from their class; internal errors are generic and logged once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::borrow::Cow;
use std::time::Duration;

use crate::governance::budgets::Refusal;
use crate::governance::rate::{RateRefusal, Unit};
use crate::providers::{Class, ProviderError};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub code: Option<String>,
    /// The request field at fault, as OpenAI names it: `model`, `messages[2].role`.
    pub param: Option<Cow<'static, str>>,
    pub retry_after: Option<Duration>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    code: Option<&'a str>,
    param: Option<&'a str>,
}

/// The most bytes of client input quoted back in an error message: enough to recognise it,
/// never the whole of a large body (a 4 MB model name must not come back whole).
pub const ECHO_MAX: usize = 256;

/// `s` as quoted in an error message: whole when short, else its first [`ECHO_MAX`] bytes (cut at
/// a character boundary) and a marker saying how much was left out.
pub fn echo(s: &str) -> Cow<'_, str> {
    shorten(s, ECHO_MAX)
}

/// Messages that embed a parser's or a provider's own text (which may quote the input) are cut
/// here: a few lines of explanation, never a body.
const MESSAGE_MAX: usize = 1024;

fn bounded(message: String) -> String {
    match shorten(&message, MESSAGE_MAX) {
        Cow::Borrowed(_) => message,
        Cow::Owned(short) => short,
    }
}

fn shorten(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let head = char_prefix(s, max);
    Cow::Owned(format!("{head}…[{} more bytes]", s.len() - head.len()))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn char_prefix(s: &str, max: usize) -> &str {
    let mut cut = max.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        kind: &'static str,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            message: bounded(message.into()),
            kind,
            code: Some(code.to_owned()),
            param: None,
            retry_after: None,
        }
    }

    pub fn invalid_json(e: &serde_json::Error) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_json",
            format!("We could not parse the JSON body of your request: {e}"),
        )
    }

    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("The request body exceeds the limit of {limit} bytes."),
        )
    }

    pub fn request_timeout(limit: Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "request_timeout",
            format!(
                "The request body did not arrive within {} s.",
                limit.as_secs_f64()
            ),
        )
    }

    pub fn bad_body(e: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_body",
            format!("The request body could not be read: {e}"),
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "Missing or invalid API key. Send it as 'Authorization: Bearer <key>'.",
        )
    }

    /// A key past its expiry.
    pub fn key_expired() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "key_expired",
            "This API key has expired. Ask your administrator for a new one.",
        )
    }

    /// A key an administrator revoked.
    pub fn key_revoked() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "key_revoked",
            "This API key has been revoked.",
        )
    }

    /// An issued key presented before this instance has read the key directory from the
    /// event log (at start, or while NATS has been unreachable since start).
    pub fn keys_loading() -> Self {
        Self::unavailable(
            "keys_loading",
            "The gateway is still loading its key directory from the event log; retry shortly.",
        )
    }

    /// A model the key may not call.
    /// The request holds something a guardrail blocks: named by detector, never echoed.
    pub fn guardrail_blocked(detectors: &[String]) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "guardrail_blocked",
            format!(
                "The request was blocked by a guardrail: it contains {} ({}). Remove it and try again.",
                if detectors.len() == 1 {
                    "a value a detector blocks"
                } else {
                    "values detectors block"
                },
                detectors.join(", ")
            ),
        )
    }

    /// The provider's answer holds something a guardrail blocks: withheld, never echoed.
    pub fn answer_blocked(detectors: &[String]) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "api_error",
            "guardrail_blocked",
            format!(
                "The provider's answer was withheld by a guardrail: it contains {} ({}).",
                if detectors.len() == 1 {
                    "a value a detector blocks"
                } else {
                    "values detectors block"
                },
                detectors.join(", ")
            ),
        )
    }

    pub fn model_not_allowed(model: &str) -> Self {
        let mut e = Self::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "model_not_allowed",
            format!("This API key may not use the model `{}`.", echo(model)),
        );
        e.param = Some(Cow::Borrowed("model"));
        e
    }

    /// A request budget admission refused: 429 `budget_exceeded` or 503 `budget_unavailable`.
    pub fn budget_refused(refusal: &Refusal, currency: &str) -> Self {
        match refusal {
            Refusal::Exceeded { .. } => Self::budget_exceeded(refusal, currency),
            Refusal::Unavailable { .. } => Self::budget_unavailable(refusal),
        }
    }

    /// A request that could take a budget past its limit: 429 `budget_exceeded`, naming the
    /// budget and when it resets (`Retry-After` until then; none for a lifetime budget).
    pub fn budget_exceeded(refusal: &Refusal, currency: &str) -> Self {
        let Refusal::Exceeded {
            scope,
            period,
            limit_nanos,
            ..
        } = refusal
        else {
            return Self::budget_unavailable(refusal);
        };
        let resets = match refusal.resets_at() {
            Some(at) => format!("resets at {at}"),
            None => "does not reset".to_owned(),
        };
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "budget_exceeded",
            format!(
                "Budget exceeded for {} {:?}: {} limit {} {currency}, {resets}.",
                scope.kind.as_str(),
                echo(&scope.name),
                period.as_str(),
                super::money::decimal(*limit_nanos),
            ),
        );
        let now = crate::governance::now_ms();
        e.retry_after = refusal
            .resets_ms()
            .map(|at| Duration::from_millis(at.saturating_sub(now)));
        e
    }

    /// A lease was needed to admit the request and the budget ledger (NATS) could not be
    /// reached in time: 503 `budget_unavailable`.
    pub fn budget_unavailable(refusal: &Refusal) -> Self {
        let (scope, period) = match refusal {
            Refusal::Exceeded { scope, period, .. } | Refusal::Unavailable { scope, period } => {
                (scope, period)
            }
        };
        let mut e = Self::unavailable(
            "budget_unavailable",
            format!(
                "The {} budget of {} {:?} could not be checked: the budget ledger is not reachable. Retry shortly.",
                period.as_str(),
                scope.kind.as_str(),
                echo(&scope.name)
            ),
        );
        e.retry_after = Some(Duration::from_secs(1));
        e
    }

    /// A request over a rate limit: 429 `rate_limit_exceeded` (type `requests` or `tokens`, as
    /// OpenAI sends it), naming the limit; `Retry-After` says when it would be admitted.
    /// The ledger unreachable under policy `refuse`: 503 `rate_limit_unavailable`.
    pub fn rate_refused(refusal: &RateRefusal) -> Self {
        match refusal {
            RateRefusal::Exceeded {
                scope,
                unit,
                limit,
                retry_after,
            } => {
                let (kind, short) = match unit {
                    Unit::Requests => ("requests", "RPM"),
                    Unit::Tokens => ("tokens", "TPM"),
                };
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    kind,
                    "rate_limit_exceeded",
                    format!(
                        "Rate limit reached for {} {:?} on {kind} per min ({short}): limit {limit}. Please try again in {}.",
                        scope.kind.as_str(),
                        echo(&scope.name),
                        crate::edge::ratelimit::duration_text(*retry_after),
                    ),
                );
                e.retry_after = Some(*retry_after);
                e
            }
            RateRefusal::Unavailable { scope, unit } => {
                let mut e = Self::unavailable(
                    "rate_limit_unavailable",
                    format!(
                        "The {} per minute limit of {} {:?} could not be checked: the rate-limit ledger is not reachable. Retry shortly.",
                        unit.as_str(),
                        scope.kind.as_str(),
                        echo(&scope.name)
                    ),
                );
                e.retry_after = Some(Duration::from_secs(1));
                e
            }
        }
    }

    pub fn admin_unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_admin_token",
            "Missing or invalid admin token.",
        )
    }

    pub fn model_not_found(model: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!(
                "The model `{}` does not exist or you do not have access to it.",
                echo(model)
            ),
        );
        e.param = Some(Cow::Borrowed("model"));
        e
    }

    /// A request field with the right type but a value we refuse (empty, out of range, not one
    /// of the allowed names). Callers quote client values through [`echo`].
    pub fn bad_param(param: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::invalid_param("invalid_value", param, message)
    }

    /// A request field of the wrong JSON type.
    pub fn wrong_type(param: impl Into<Cow<'static, str>>, expected: &str, got: &str) -> Self {
        let param = param.into();
        let message =
            format!("Invalid type for '{param}': expected {expected}, but got {got} instead.");
        Self::invalid_param("invalid_type", param, message)
    }

    /// A required request field that is absent (or null).
    pub fn missing_param(param: impl Into<Cow<'static, str>>) -> Self {
        let param = param.into();
        let message = format!("Missing required parameter: '{param}'.");
        Self::invalid_param("missing_required_parameter", param, message)
    }

    fn invalid_param(
        code: &str,
        param: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        );
        e.param = Some(param.into());
        e
    }

    /// A named resource (a key, a scope's limits) that does not exist.
    pub fn no_such(code: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            code,
            message,
        )
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            "Unknown endpoint.",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            "This endpoint does not accept that HTTP method.",
        )
    }

    pub fn unavailable(code: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            code,
            message,
        )
    }

    /// A provider's answer that could not be turned into the client's shape.
    pub fn bad_upstream_answer(e: &str) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_bad_response",
            format!("The provider's answer could not be converted: {e}"),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            "The gateway hit an internal error.",
        )
    }

    /// Map a provider failure to what the client sees, by its class.
    pub fn from_provider(e: &ProviderError) -> Self {
        let (status, kind, code) = match e.class() {
            Class::RateLimited => {
                let mut err = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "rate_limit_exceeded",
                    "The provider is rate limiting requests; retry later.",
                );
                err.retry_after = e.retry_after();
                return err;
            }
            Class::UpstreamConflict
            | Class::ContextLength
            | Class::ContentPolicy
            | Class::Rejected => return Self::provider_4xx(e),
            Class::UpstreamAuth => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "upstream_auth_failed",
            ),
            Class::Upstream5xx => (StatusCode::BAD_GATEWAY, "upstream_error", "upstream_error"),
            Class::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_error",
                "upstream_timeout",
            ),
            Class::Connect => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "upstream_unavailable",
            ),
            Class::CircuitOpen => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_error",
                "circuit_open",
            ),
            Class::Unsupported => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "unsupported_operation",
            ),
            Class::Invalid => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
            ),
            Class::MalformedChunk | Class::StreamCut | Class::Decode => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "upstream_bad_response",
            ),
        };
        Self::new(status, kind, code, e.to_string())
    }

    /// A provider's 4xx is passed on with its status and message.
    fn provider_4xx(e: &ProviderError) -> Self {
        let ProviderError::Status {
            status,
            message,
            error_type,
            code,
            ..
        } = e
        else {
            // invariant: only a Status error has a 4xx class; anything else is ours.
            return Self::internal();
        };
        Self {
            status: StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
            message: bounded(message.clone()),
            // A 400/413/422 is the request's fault whatever the provider calls it (Gemini's
            // INVALID_ARGUMENT, Bedrock's ValidationException…): OpenAI's type for it, with the
            // provider's own name kept as the code when it sent no code.
            kind: if matches!(status, 400 | 413 | 422)
                || error_type
                    .as_deref()
                    .is_none_or(|t| t == "invalid_request_error")
            {
                "invalid_request_error"
            } else {
                "upstream_error"
            },
            code: code.clone().or_else(|| {
                error_type
                    .clone()
                    .filter(|t| t.as_str() != "invalid_request_error")
            }),
            param: None,
            retry_after: None,
        }
    }

    /// The JSON body alone (also used as an in-stream SSE error event).
    pub fn body_json(&self) -> Vec<u8> {
        let body = Body {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                code: self.code.as_deref(),
                param: self.param.as_deref(),
            },
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl ApiError {
    /// The Messages API error type for this error, chosen by status as Anthropic does.
    pub fn anthropic_type(&self) -> &'static str {
        match self.status.as_u16() {
            400 | 405 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        }
    }

    /// The same error in the Messages API shape, `{"type":"error","error":{"type","message"}}`,
    /// for Anthropic-shaped clients.
    pub fn anthropic_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = ?self.code, message = %self.message, "request failed");
        }
        // Anthropic clients send their key as `x-api-key`, so the hint names that header.
        let message = if self.code.as_deref() == Some("invalid_api_key") {
            "Missing or invalid API key. Send it as 'x-api-key: <key>'."
        } else {
            &self.message
        };
        let body = serde_json::json!({
            "type": "error",
            "error": {"type": self.anthropic_type(), "message": message},
        });
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        self.set_retry_after(&mut resp);
        resp
    }

    fn set_retry_after(&self, resp: &mut Response) {
        if let Some(ra) = self.retry_after {
            let secs = ra.as_secs() + u64::from(ra.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = ?self.code, message = %self.message, "request failed");
        }
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body_json(),
        )
            .into_response();
        self.set_retry_after(&mut resp);
        resp
    }
}
