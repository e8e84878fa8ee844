//! Bedrock's authentication as the mock checks it: a Bedrock API key (`Authorization: Bearer
//! …`) or an AWS Signature Version 4 header is required; a SigV4 signature made with the
//! mock's well-known key ([`MOCK_AWS_ACCESS_KEY_ID`]) is recomputed from the request exactly as
//! it arrived — method, raw path and query, the headers the client listed in `SignedHeaders`,
//! the body bytes — and must match. Other key ids are accepted unverified, so real-looking
//! credentials can point at the mock. Pure: no state, no I/O.
//!
//! The recomputation uses `aws-sigv4` with its default settings, which are Bedrock's (the
//! path double-encoded, no `x-amz-content-sha256` unless the client signed one), so a client
//! signing with the same crate or an AWS SDK agrees with it. Only the header list is the
//! client's: AWS signs what the client says it signed, so nothing is excluded by name.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::http::{HeaderMap, Method, Uri, header};
use time::PrimitiveDateTime;
use time::macros::format_description;

use super::{MOCK_AWS_ACCESS_KEY_ID, MOCK_AWS_SECRET_ACCESS_KEY};

/// Why a request was refused: the AWS error name and message (the status is 403).
#[derive(Debug)]
pub(super) struct Denied {
    pub name: &'static str,
    pub message: String,
}

fn access_denied(message: impl Into<String>) -> Denied {
    Denied {
        name: "AccessDeniedException",
        message: message.into(),
    }
}

fn invalid_signature() -> Denied {
    Denied {
        name: "InvalidSignatureException",
        message: "The request signature we calculated does not match the signature you \
                  provided. Check your AWS Secret Access Key and signing method. Consult the \
                  service documentation for details."
            .to_owned(),
    }
}

/// The parts of `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
struct Authorization<'a> {
    access_key_id: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

/// Checks the request's credentials; `Err` is answered with 403.
pub(super) fn authenticate(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Denied> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(access_denied("Missing Authentication Token"));
    };
    let Ok(value) = value.to_str() else {
        return Err(access_denied("Invalid Authorization header"));
    };
    if let Some(key) = value.strip_prefix("Bearer ") {
        return if key.trim().is_empty() {
            Err(access_denied("Missing Authentication Token"))
        } else {
            Ok(())
        };
    }
    let Some(fields) = value.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(access_denied(
            "Authorization header requires the 'AWS4-HMAC-SHA256' or 'Bearer' scheme.",
        ));
    };
    let auth = parse(fields)?;
    let Some(amz_date) = headers.get("x-amz-date").and_then(|v| v.to_str().ok()) else {
        return Err(access_denied(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' \
             header.",
        ));
    };
    if auth.access_key_id != MOCK_AWS_ACCESS_KEY_ID {
        return Ok(());
    }
    let expected = recompute(&auth, amz_date, method, uri, headers, body)?;
    if expected == auth.signature {
        Ok(())
    } else {
        Err(invalid_signature())
    }
}

fn parse(fields: &str) -> Result<Authorization<'_>, Denied> {
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for field in fields.split(',') {
        match field.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let missing: Vec<String> = [
        ("Credential", credential.is_none()),
        ("Signature", signature.is_none()),
        ("SignedHeaders", signed_headers.is_none()),
    ]
    .into_iter()
    .filter(|(_, missing)| *missing)
    .map(|(name, _)| format!("Authorization header requires '{name}' parameter."))
    .collect();
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(access_denied(missing.join(" ")));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(access_denied(format!(
            "Credential should be scoped to a valid region, not '{credential}'."
        )));
    };
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(access_denied(format!(
            "Credential should be scoped to a valid date, not '{date}'."
        )));
    }
    if service != "bedrock" {
        return Err(access_denied(
            "Credential should be scoped to correct service: 'bedrock'.",
        ));
    }
    if terminator != "aws4_request" {
        return Err(access_denied(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not \
             '{terminator}'."
        )));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid_signature());
    }
    Ok(Authorization {
        access_key_id,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// The signature the client should have sent for this request.
fn recompute(
    auth: &Authorization<'_>,
    amz_date: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, Denied> {
    let time = PrimitiveDateTime::parse(
        amz_date,
        format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .map_err(|_| {
        access_denied(format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See \
             http://en.wikipedia.org/wiki/ISO_8601"
        ))
    })?
    .assume_utc();
    let session_token = headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let identity: Identity = Credentials::new(
        auth.access_key_id,
        MOCK_AWS_SECRET_ACCESS_KEY,
        session_token,
        None,
        "switchyard-mock",
    )
    .into();
    let names: Vec<&str> = auth.signed_headers.split(';').collect();
    let mut settings = SigningSettings::default();
    settings.excluded_headers = None;
    if names.contains(&"x-amz-content-sha256") {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name(auth.service)
        .time(SystemTime::from(time))
        .settings(settings)
        .build()
        .map_err(|_| invalid_signature())?
        .into();
    // The signer derives these three from its parameters and the body; every other header
    // is taken as received.
    let mut signed = Vec::with_capacity(names.len());
    for name in names {
        if matches!(
            name,
            "x-amz-date" | "x-amz-security-token" | "x-amz-content-sha256"
        ) {
            continue;
        }
        for value in headers.get_all(name) {
            signed.push((name, value.to_str().map_err(|_| invalid_signature())?));
        }
    }
    // The signer needs an absolute URI; its authority only matters when `host` was not sent.
    let authority = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let request = SignableRequest::new(
        method.as_str(),
        format!("https://{authority}{path_and_query}"),
        signed.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|_| invalid_signature())?;
    let (_, signature) = sign(request, &params)
        .map_err(|_| invalid_signature())?
        .into_parts();
    Ok(signature)
}
