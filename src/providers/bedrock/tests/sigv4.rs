//! SigV4 as Bedrock checks it, verified by an implementation written from AWS's description
//! (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html): HMAC-SHA256
//! and the canonical request here are independent of the aws-sigv4 crate that signs.

use super::*;
use sha2::{Digest, Sha256};

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        let digest: [u8; 32] = Sha256::digest(key).into();
        block[..32].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(data);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The signature `seen` should carry, or why it cannot be checked.
fn expected_signature(seen: &Seen) -> Result<String, String> {
    let auth = seen.header("authorization").ok_or("no authorization")?;
    let fields = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("not SigV4")?;
    let field = |name: &str| {
        fields
            .split(", ")
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .ok_or(format!("no {name}"))
    };
    let credential = field("Credential")?;
    let signed_headers = field("SignedHeaders")?;
    let scope = credential.split_once('/').ok_or("bad credential")?.1;
    let amz_date = seen.header("x-amz-date").ok_or("no x-amz-date")?;
    // Canonical URI: every path segment URI-encoded twice, and the wire path is encoded once.
    let canonical_uri = seen.path.replace('%', "%25");
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let value = seen
            .header(name)
            .ok_or(format!("{name} signed but not sent"))?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    let canonical_request = format!(
        "{}\n{canonical_uri}\n\n{canonical_headers}\n{signed_headers}\n{}",
        seen.method,
        hex::encode(Sha256::digest(&seen.body))
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut parts = scope.split('/');
    let (date, region, service) = (
        parts.next().ok_or("bad scope")?,
        parts.next().ok_or("bad scope")?,
        parts.next().ok_or("bad scope")?,
    );
    let k_date = hmac(format!("AWS4{SECRET}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    Ok(hex::encode(hmac(&k_signing, string_to_sign.as_bytes())))
}

/// Answers 200 to a correctly signed request, 403 otherwise.
async fn verify(seen: Seen) -> Response {
    let sent = seen
        .header("authorization")
        .and_then(|a| a.rsplit_once("Signature="))
        .map(|(_, s)| s.to_owned());
    match expected_signature(&seen) {
        Ok(want) if Some(&want) == sent.as_ref() => json_reply(200, &[], RESPONSE),
        Ok(_) => json_reply(
            403,
            &[(
                "x-amzn-errortype",
                "InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/",
            )],
            r#"{"message":"The request signature we calculated does not match the signature you provided."}"#,
        ),
        Err(why) => json_reply(400, &[], &json!({"message": why}).to_string()),
    }
}

#[test]
fn the_test_hmac_matches_rfc_4231() {
    // RFC 4231, test case 2.
    assert_eq!(
        hex::encode(hmac(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[tokio::test]
async fn sigv4_signs_what_is_sent_for_ids_with_colons_and_arns() {
    let up = server(verify).await;
    for token in [None, Some("FQoGZXIvYXdzEJr//////////wEaDEXAMPLE+token=")] {
        let p = adapter(&up.base_url, Auth::Aws(token));
        for model in [HAIKU, PROFILE_ARN, "meta.llama3-70b-instruct-v1:0"] {
            let resp = p.chat(&hi(), model).await;
            assert!(resp.is_ok(), "{model}: {resp:?}");
        }
        let mut streamed =
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        streamed["max_tokens"] = json!(5);
        // The stream endpoint is signed the same way (the answer is not a stream here: only
        // the signature is checked).
        let seen_before = up.seen().len();
        let _ = p.chat_stream(&chat(streamed), HAIKU).await;
        assert_eq!(up.seen().len(), seen_before + 1);
    }
    let seen = up.seen();
    let plain = &seen[0];
    let auth = plain.header("authorization").unwrap();
    let day = &plain.header("x-amz-date").unwrap()[..8];
    assert!(
        auth.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/{day}/us-east-1/bedrock/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature="
        )),
        "{auth}"
    );
    assert!(plain.header("x-amz-security-token").is_none());
    let arn = &seen[1];
    assert_eq!(
        arn.path,
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    );
    let temporary = &seen[4];
    assert_eq!(
        temporary.header("x-amz-security-token"),
        Some("FQoGZXIvYXdzEJr//////////wEaDEXAMPLE+token=")
    );
    assert!(
        temporary
            .header("authorization")
            .unwrap()
            .contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"),
    );
    assert!(seen.iter().all(|s| s.header("x-amz-date").is_some()));
    assert_eq!(
        seen[3].path,
        "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_the_refusal_says_nothing_of_it() {
    let up = server(verify).await;
    let mut bad = spec(&up.base_url, Auth::Aws(None), Duration::from_secs(5));
    bad.aws = Some(AwsCredentials::fixed(AKID, "not-the-secret", None));
    let p = Bedrock::new(Arc::new(bad)).unwrap();
    let e = p.chat(&hi(), HAIKU).await.unwrap_err();
    let (code, kind, message) = status(&e);
    assert_eq!((code, kind), (403, Some("InvalidSignatureException")));
    assert_eq!(message, "the provider rejected the gateway's credentials");
    assert!(
        e.retryable(),
        "the gateway's credentials, not the client's request"
    );
    assert!(!format!("{e:?}").contains("not-the-secret"));
}
