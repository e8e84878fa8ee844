//! AWS Signature Version 4 with the aws-sigv4 crate, for every AWS API the gateway calls: the
//! Bedrock runtime (`providers::bedrock`) and Secrets Manager (`secrets`). Signs exactly what
//! goes on the wire: the method, the URL as sent (its path already percent-encoded; SigV4's
//! canonical URI encodes it once more, as every AWS service but S3 expects), the `host`, the
//! `content-type`, every `x-amz-*` header the caller set (Secrets Manager's `x-amz-target`), and
//! the SHA-256 of the body bytes; the signer adds `x-amz-date` and, for temporary credentials,
//! `x-amz-security-token`, both signed.
//!
//! Secrets stay secret: [`AwsKeys`] has no `Debug`, the `authorization` and
//! `x-amz-security-token` values are marked sensitive (reqwest leaves them out of its Debug
//! output), signing errors never carry a credential, and the signer's own trace events (whose
//! canonical request quotes the session token) are not emitted.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::Secret;

/// The credentials of one signature, read from their cells when a request is built, so a
/// rotation takes effect with the next request and never midway through one.
pub struct AwsKeys {
    pub access_key_id: Arc<Secret>,
    pub secret_access_key: Arc<Secret>,
    pub session_token: Option<Arc<Secret>>,
}

/// Signs requests for one AWS service in one region.
pub struct SigV4 {
    region: String,
    service: &'static str,
}

/// Why a request could not be signed: its parts, never the credentials.
#[derive(Debug, thiserror::Error)]
#[error("could not sign the request: {0}")]
pub struct SignError(String);

impl SigV4 {
    /// A signer for `service` (its signing name: `bedrock`, `secretsmanager`) in `region`.
    pub fn new(region: &str, service: &'static str) -> Self {
        Self {
            region: region.to_owned(),
            service,
        }
    }

    /// Add the signature headers to `req`, a POST whose body is in memory, made with `keys` as
    /// of `time`.
    pub fn sign(
        &self,
        req: &mut reqwest::Request,
        keys: &AwsKeys,
        time: SystemTime,
    ) -> Result<(), SignError> {
        let identity: Identity = Credentials::new(
            keys.access_key_id.expose(),
            keys.secret_access_key.expose(),
            keys.session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "switchyard",
        )
        .into();
        let body = req
            .body()
            .map(|b| b.as_bytes().ok_or("a streaming body cannot be signed"))
            .transpose()
            .map_err(|e| SignError(e.to_owned()))?
            .unwrap_or_default();
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        let mut headers = vec![("content-type", content_type)];
        for (name, value) in req.headers() {
            if name.as_str().starts_with("x-amz-")
                && let Ok(value) = value.to_str()
            {
                headers.push((name.as_str(), value));
            }
        }
        let signable = SignableRequest::new(
            req.method().as_str(),
            req.url().as_str(),
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| SignError(e.to_string()))?;
        let params = SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SignError(e.to_string()))?
            .into();
        // aws-sigv4 traces the canonical request, which quotes the session token: signing runs
        // with no subscriber, so a `RUST_LOG=trace` never writes it out.
        let signed =
            tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::new(), || {
                sign(signable, &params)
            })
            .map_err(|e| SignError(e.to_string()))?;
        let (instructions, _signature) = signed.into_parts();
        let (headers, _params) = instructions.into_parts();
        for header in headers {
            let name = HeaderName::from_static(header.name());
            let mut value = HeaderValue::from_str(header.value())
                .map_err(|_| SignError(format!("{} is not a header value", header.name())))?;
            value.set_sensitive(
                header.sensitive() || name == "authorization" || name == "x-amz-security-token",
            );
            req.headers_mut().insert(name, value);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn creds(token: Option<&str>) -> AwsKeys {
        AwsKeys {
            access_key_id: Arc::new(Secret::new("AKIAMOCKSWITCHYARD01")),
            secret_access_key: Arc::new(Secret::new("mock/secret/key/for/tests/only/0123456789")),
            session_token: token.map(|t| Arc::new(Secret::new(t))),
        }
    }

    fn request(url: &str) -> reqwest::Request {
        reqwest::Client::new()
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(r#"{"messages":[]}"#)
            .build()
            .unwrap()
    }

    /// 2015-08-30T12:36:00Z, the instant of AWS's published SigV4 examples.
    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    #[test]
    fn signs_host_content_type_and_date_for_the_region_and_service() {
        let (signer, keys) = (SigV4::new("us-east-1", "bedrock"), creds(None));
        let mut req = request(
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        );
        signer.sign(&mut req, &keys, at()).unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIAMOCKSWITCHYARD01/20150830/us-east-1/bedrock/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, Signature="
            ),
            "{auth}"
        );
        assert_eq!(req.headers()["x-amz-date"], "20150830T123600Z");
        assert!(req.headers()["authorization"].is_sensitive());
        assert!(req.headers().get("x-amz-security-token").is_none());
        // Deterministic: the same request at the same instant signs the same.
        let mut again = request(
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        );
        signer.sign(&mut again, &keys, at()).unwrap();
        assert_eq!(
            req.headers()["authorization"],
            again.headers()["authorization"]
        );
    }

    #[test]
    fn a_session_token_is_sent_signed_and_hidden() {
        let (signer, keys) = (
            SigV4::new("eu-west-3", "bedrock"),
            creds(Some("FQoGZXIvYXdzEXAMPLE")),
        );
        let mut req = request("http://127.0.0.1:9/model/m/converse");
        signer.sign(&mut req, &keys, at()).unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.contains("/eu-west-3/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"),
            "{auth}"
        );
        let token = &req.headers()["x-amz-security-token"];
        assert_eq!(token, "FQoGZXIvYXdzEXAMPLE");
        assert!(token.is_sensitive());
        let debug = format!("{req:?}");
        assert!(!debug.contains("FQoGZXIvYXdzEXAMPLE"), "{debug}");
        assert!(!debug.contains("mock/secret"), "{debug}");
    }

    /// A log line of everything, `RUST_LOG=trace` style.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn signing_writes_no_trace_that_could_quote_the_token() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let (signer, keys) = (
            SigV4::new("us-east-1", "bedrock"),
            creds(Some("FQoGZXIvYXdzEXAMPLE")),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!("before");
            let mut req = request("http://127.0.0.1:9/model/m/converse");
            signer.sign(&mut req, &keys, at()).unwrap();
            tracing::trace!("after");
        });
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("before") && log.contains("after"), "{log}");
        assert!(!log.contains("FQoGZXIvYXdzEXAMPLE"), "{log}");
        assert!(!log.contains("canonical_request"), "{log}");
    }

    #[test]
    fn x_amz_headers_the_caller_set_are_signed_for_the_service() {
        let (signer, keys) = (SigV4::new("us-east-1", "secretsmanager"), creds(None));
        let mut req = reqwest::Client::new()
            .post("http://127.0.0.1:9/")
            .header(CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("x-amz-target", "secretsmanager.GetSecretValue")
            .body(r#"{"SecretId":"s"}"#)
            .build()
            .unwrap();
        signer.sign(&mut req, &keys, at()).unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.contains(
                "/20150830/us-east-1/secretsmanager/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target,"
            ),
            "{auth}"
        );
    }
}
