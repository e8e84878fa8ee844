//! The one place errors become HTTP responses, always in OpenAI's shape:
//! `{"error":{"message","type","code","param"}}`. Client errors keep their message; upstream
//! failures say which class they are; internal errors are generic and logged once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::Duration;

use crate::providers::ProviderError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub code: Option<String>,
    pub param: Option<&'static str>,
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

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
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
            format!("The model `{model}` does not exist or you do not have access to it."),
        );
        e.param = Some("model");
        e
    }

    pub fn bad_param(param: &'static str, message: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_value",
            message,
        );
        e.param = Some(param);
        e
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

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            "The gateway hit an internal error.",
        )
    }

    /// Map a provider failure to what the client sees.
    pub fn from_provider(e: &ProviderError) -> Self {
        match e {
            ProviderError::Status {
                status: 429,
                retry_after,
                ..
            } => {
                let mut err = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "rate_limit_exceeded",
                    "The provider is rate limiting requests; retry later.",
                );
                err.retry_after = *retry_after;
                err
            }
            ProviderError::Status {
                status: 401 | 403, ..
            } => Self::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "upstream_auth_failed",
                e.to_string(),
            ),
            ProviderError::Status {
                status,
                message,
                error_type,
                code,
                ..
            } if (400..500).contains(status) => Self {
                status: StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
                message: message.clone(),
                // A 400/413/422 is the request's fault whatever the provider calls it (Gemini's
                // INVALID_ARGUMENT, Bedrock's ValidationException…): OpenAI's type for it, with
                // the provider's own name kept as the code when it sent no code.
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
            },
            ProviderError::Status { .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "upstream_error",
                e.to_string(),
            ),
            ProviderError::Timeout { .. } => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_error",
                "upstream_timeout",
                e.to_string(),
            ),
            ProviderError::Connect(_) => Self::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "upstream_unavailable",
                e.to_string(),
            ),
            ProviderError::CircuitOpen => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_error",
                "circuit_open",
                e.to_string(),
            ),
            ProviderError::Unsupported(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "unsupported_operation",
                e.to_string(),
            ),
            ProviderError::Invalid(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
                e.to_string(),
            ),
            ProviderError::MalformedChunk(_)
            | ProviderError::StreamCut(_)
            | ProviderError::Decode(_) => Self::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "upstream_bad_response",
                e.to_string(),
            ),
        }
    }

    /// The JSON body alone (also used as an in-stream SSE error event).
    pub fn body_json(&self) -> Vec<u8> {
        let body = Body {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                code: self.code.as_deref(),
                param: self.param,
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
        let body = serde_json::json!({
            "type": "error",
            "error": {"type": self.anthropic_type(), "message": self.message},
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
