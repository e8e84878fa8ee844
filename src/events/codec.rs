//! Binary codec for envelopes: a two-byte little-endian schema version, then the bincode body.
//!
//! bincode is not self-describing, so any change to a payload type is a new schema version, and
//! the decoder for every shipped version stays here. Golden bytes of each version live under
//! tests/fixtures/events/ and are decoded by a test.

use super::Envelope;

/// The schema version written by this build.
pub const CURRENT_SCHEMA: u16 = 1;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("event payload shorter than its schema header")]
    Truncated,
    #[error("unknown event schema version {0}")]
    UnknownSchema(u16),
    #[error("malformed event body (schema {schema}): {source}")]
    Body {
        schema: u16,
        #[source]
        source: bincode::error::DecodeError,
    },
}

/// Encode an envelope at the current schema version.
pub fn encode(env: &Envelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body_hint(env));
    out.extend_from_slice(&CURRENT_SCHEMA.to_le_bytes());
    // invariant: encoding into a Vec cannot fail for these plain serde types (no maps with
    // non-string keys, no unsized sequences); a failure would be a programming error caught by tests.
    if let Err(e) = bincode::serde::encode_into_std_write(env, &mut out, config()) {
        tracing::error!(error = %e, "event encoding failed");
    }
    out
}

fn body_hint(env: &Envelope) -> usize {
    match &env.event {
        super::Event::RequestAccepted(r) => r.body.len(),
        super::Event::ResponseCompleted(r) => r.body.as_ref().map_or(0, String::len),
        super::Event::SpendRecorded(_) => 0,
    }
}

/// Decode any known schema version.
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    let (head, body) = bytes.split_at_checked(2).ok_or(DecodeError::Truncated)?;
    let schema = u16::from_le_bytes([head[0], head[1]]);
    match schema {
        1 => bincode::serde::decode_from_slice::<Envelope, _>(body, config())
            .map(|(env, _)| env)
            .map_err(|source| DecodeError::Body { schema, source }),
        other => Err(DecodeError::UnknownSchema(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::*;
    use ulid::Ulid;

    #[test]
    fn round_trip_and_rejects_garbage() {
        let env = Envelope::new(
            Ulid::generate(),
            Event::SpendRecorded(SpendRecorded {
                principal: Principal {
                    key_id: "k1".into(),
                    user: Some("u".into()),
                    team: None,
                    project: Some("p".into()),
                },
                model: "m".into(),
                provider: "openai".into(),
                provider_model: "gpt".into(),
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 5,
                    ..Usage::default()
                },
                cost_nanos: 42,
                currency: "USD".into(),
                priced: true,
            }),
        );
        let bytes = encode(&env);
        assert_eq!(decode(&bytes).unwrap(), env);
        assert!(matches!(decode(&[1]), Err(DecodeError::Truncated)));
        assert!(matches!(
            decode(&[9, 0, 1]),
            Err(DecodeError::UnknownSchema(9))
        ));
        assert!(matches!(
            decode(&bytes[..bytes.len() / 2]),
            Err(DecodeError::Body { .. })
        ));
    }
}
