//! `aws` references: AWS Secrets Manager's `GetSecretValue` (a JSON 1.1 POST to the regional
//! endpoint with `X-Amz-Target: secretsmanager.GetSecretValue`), SigV4-signed by
//! [`crate::aws::SigV4`] with the credentials of the standard `AWS_*` variables, read at every
//! fetch. The value is the `SecretString`, or one key of it when it is a JSON object. Failures
//! quote the error's `__type` and message; a body is never quoted, nor serde's reading of it.

use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use std::sync::Arc;
use std::time::SystemTime;

use super::credential::Fetched;
use super::{FetchError, local};
use crate::aws::{AwsKeys, SigV4};
use crate::config::{Secret, SecretRef};

/// Secrets Manager's SigV4 signing name.
const SERVICE: &str = "secretsmanager";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    secret_string: Option<String>,
    version_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(rename = "__type")]
    kind: Option<String>,
    #[serde(alias = "Message")]
    message: Option<String>,
}

/// The most of an error message quoted in a failure.
const QUOTED_ERROR_CHARS: usize = 200;

pub async fn fetch(
    http: &reqwest::Client,
    endpoint: &reqwest::Url,
    region: &str,
    secret_id: &str,
    field: Option<&str>,
) -> Result<Fetched, FetchError> {
    let fail = |reason: String| FetchError::Aws {
        secret_id: secret_id.to_owned(),
        reason,
    };
    let keys = keys()
        .await
        .map_err(|e| fail(format!("credentials: {e}")))?;
    let body = serde_json::json!({ "SecretId": secret_id }).to_string();
    let mut request = http
        .post(endpoint.clone())
        .header(CONTENT_TYPE, "application/x-amz-json-1.1")
        .header("x-amz-target", "secretsmanager.GetSecretValue")
        .body(body)
        .build()
        .map_err(|e| fail(crate::providers::short_cause(&e)))?;
    SigV4::new(region, SERVICE)
        .sign(&mut request, &keys, SystemTime::now())
        .map_err(|e| fail(e.to_string()))?;
    let (status, body) = super::answer(http.execute(request)).await.map_err(fail)?;
    read(status, &body, field).map_err(fail)
}

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, if set, `AWS_SESSION_TOKEN`.
async fn keys() -> Result<AwsKeys, String> {
    let var = |name: &str| SecretRef::Env(name.to_owned());
    Ok(AwsKeys {
        access_key_id: Arc::new(local(&var("AWS_ACCESS_KEY_ID")).await?),
        secret_access_key: Arc::new(local(&var("AWS_SECRET_ACCESS_KEY")).await?),
        session_token: local(&var("AWS_SESSION_TOKEN")).await.ok().map(Arc::new),
    })
}

/// The secret in a `GetSecretValue` answer with `status` (its `field` when given), or why
/// there is none.
fn read(status: u16, body: &[u8], field: Option<&str>) -> Result<Fetched, String> {
    if status != 200 {
        let said = serde_json::from_slice::<ErrorAnswer>(body).ok();
        let kind = said.as_ref().and_then(|e| e.kind.as_deref());
        // `__type` may be a shape id: `com.amazonaws.secretsmanager#ResourceNotFoundException`.
        let kind = kind.map(|k| k.rsplit('#').next().unwrap_or(k));
        let message = said.as_ref().and_then(|e| e.message.as_deref());
        let message: Option<String> = message.map(|m| m.chars().take(QUOTED_ERROR_CHARS).collect());
        return Err(match (kind, message) {
            (Some(k), Some(m)) => format!("Secrets Manager answered {status} {k}: {m}"),
            (Some(k), None) => format!("Secrets Manager answered {status} {k}"),
            (None, Some(m)) => format!("Secrets Manager answered {status}: {m}"),
            (None, None) => format!("Secrets Manager answered {status}"),
        });
    }
    let answer = serde_json::from_slice::<Answer>(body).map_err(|e| {
        format!(
            "the answer is not GetSecretValue JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let string = answer
        .secret_string
        .ok_or("the secret has no SecretString (binary secrets are not supported)")?;
    let value = match field {
        None => string,
        Some(field) => {
            let object =
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&string)
                    .map_err(|_| {
                        format!("the SecretString is not a JSON object, so it has no key {field:?}")
                    })?;
            match object.get(field) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(_) => return Err(format!("the key {field:?} is not a string")),
                None => return Err(format!("the SecretString has no key {field:?}")),
            }
        }
    };
    Ok(Fetched {
        value: Secret::new(value),
        version: answer.version_id,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_secret_string_or_one_key_of_it() {
        let body = br#"{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/openai-AbCdEf","Name":"prod/openai","VersionId":"EXAMPLE1-90ab-cdef-fedc-ba987SECRET1","SecretString":"{\"api_key\":\"sk-aws-1\",\"n\":1}","VersionStages":["AWSCURRENT"],"CreatedDate":1523477145.713}"#;
        let whole = read(200, body, None).unwrap();
        assert_eq!(whole.value.expose(), r#"{"api_key":"sk-aws-1","n":1}"#);
        assert_eq!(
            whole.version.as_deref(),
            Some("EXAMPLE1-90ab-cdef-fedc-ba987SECRET1")
        );
        assert_eq!(
            read(200, body, Some("api_key")).unwrap().value.expose(),
            "sk-aws-1"
        );
        assert_eq!(
            read(200, body, Some("n")).unwrap_err(),
            "the key \"n\" is not a string"
        );
        assert_eq!(
            read(200, body, Some("x")).unwrap_err(),
            "the SecretString has no key \"x\""
        );
        let plain = br#"{"SecretString":"sk-plain-2","VersionId":"v"}"#;
        let e = read(200, plain, Some("api_key")).unwrap_err();
        assert!(!e.contains("sk-plain-2"), "{e}");
        assert!(
            read(200, br#"{"SecretBinary":"AAEC"}"#, None)
                .unwrap_err()
                .contains("binary")
        );
    }

    #[test]
    fn errors_quote_the_type_and_message_only() {
        let e = read(
            400,
            br#"{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "Secrets Manager answered 400 ResourceNotFoundException: Secrets Manager can't find the specified secret."
        );
        let e = read(
            400,
            br#"{"__type":"com.amazonaws.secretsmanager#AccessDeniedException","Message":"no"}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(e, "Secrets Manager answered 400 AccessDeniedException: no");
        assert_eq!(
            read(500, b"<html>", None).unwrap_err(),
            "Secrets Manager answered 500"
        );
    }
}
