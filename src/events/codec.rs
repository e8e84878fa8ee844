//! Binary codec for envelopes: a two-byte little-endian schema version, then the bincode body.
//!
//! bincode is not self-describing, so any change to a payload type is a new schema version, and
//! the decoder for every shipped version stays here. Golden bytes of each version live under
//! tests/fixtures/events/ and are decoded by a test.
//!
//! | schema | what changed |
//! | --- | --- |
//! | 1 | first shipped; frozen in `v1.rs` and converted on decode |
//! | 2 | routing facts: `RequestAccepted.{rule, routed_model}`, `Attempt.{kind, backoff_ms, key_index}`, `Event::BreakerChanged` |
//! | 3 | admin events: `Event::{KeyIssued, KeyRotated, KeyRevoked, KeyExpired, LimitsSet}`, then the budget ledger's `Event::{BudgetLeased, BudgetThresholdCrossed}` |
//! | 4 | `Event::RequestRejected`: requests refused before admission |
//! | 5 | `Event::AuditAnchored`: the audit chain's head, for `switchyard audit verify` |
//! | 6 | guardrails: `GuardrailFinding` gets its real shape, `ResponseCompleted.guardrail_findings` is appended; frozen in `v5.rs` |
//! | 7 | the cache: `RequestAccepted.cache` (was the reserved `cache_key`), `ResponseCompleted.cache` (was the reserved `cache_hit` and `cache_score`), `Event::CacheFlushed`; frozen in `v6.rs` |
//!
//! Schemas 3, 4 and 5 only added variants at the end of `Event`, so a schema-2, 3 or 4 body is
//! a valid schema-5 body; schema 6 changed two payloads, so bodies of schemas 2 to 5 decode
//! through the frozen schema-5 types (`v5.rs`) and are converted; the version still moved so that an
//! older build stops before an event it does not know ([`DecodeError::UnknownSchema`]) instead
//! of skipping it as garbage. Schema 7 changed the same two payloads again: schema-6 bodies
//! decode through `v6.rs`.

mod v1;
mod v5;
mod v6;

use super::Envelope;

/// The schema version written by this build.
pub const CURRENT_SCHEMA: u16 = 7;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Decoding refuses to allocate more than this for one event, so a corrupt length prefix cannot
/// make a consumer allocate gigabytes. (The limit does not change the encoding.)
const DECODE_LIMIT: usize = 64 * 1024 * 1024;

fn decode_config() -> impl bincode::config::Config {
    config().with_limit::<DECODE_LIMIT>()
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
        _ => 0,
    }
}

/// Decode any known schema version into today's types (older versions are converted: see
/// `v1.rs` for what the fields added since are filled with).
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    let (head, body) = bytes.split_at_checked(2).ok_or(DecodeError::Truncated)?;
    let schema = u16::from_le_bytes([head[0], head[1]]);
    match schema {
        1 => body_of::<v1::Envelope>(schema, body).map(Envelope::from),
        // Schemas 3 to 5 added variants only; 6 changed payloads (see the table above).
        2..=5 => body_of::<v5::Envelope>(schema, body).map(Envelope::from),
        6 => body_of::<v6::Envelope>(schema, body).map(Envelope::from),
        CURRENT_SCHEMA => body_of::<Envelope>(schema, body),
        other => Err(DecodeError::UnknownSchema(other)),
    }
}

fn body_of<T: serde::de::DeserializeOwned>(schema: u16, body: &[u8]) -> Result<T, DecodeError> {
    bincode::serde::decode_from_slice::<T, _>(body, decode_config())
        .map(|(value, _)| value)
        .map_err(|source| DecodeError::Body { schema, source })
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

    #[test]
    fn writes_the_current_schema() {
        let env = Envelope::new(
            Ulid::generate(),
            Event::BreakerChanged(BreakerChanged {
                provider: "openai".into(),
                model: "gpt-4o".into(),
                from: BreakerState::HalfOpen,
                to: BreakerState::Open,
                reason: "probe failed".into(),
            }),
        );
        let bytes = encode(&env);
        assert_eq!(bytes[..2], CURRENT_SCHEMA.to_le_bytes());
        assert_eq!(CURRENT_SCHEMA, 7);
        assert_eq!(decode(&bytes).unwrap(), env);
    }

    /// Schema-1 bytes decode through the frozen v1 types, and the fields schema 2 added get the
    /// values the schema-1 gateway implied (tests/it/files.rs checks every v1 golden file whole).
    #[test]
    fn schema_1_attempts_become_first_then_fallback() {
        let bytes = include_bytes!("../../tests/fixtures/events/v1/response_completed.bin");
        assert_eq!(bytes[..2], [1, 0]);
        let Event::ResponseCompleted(done) = decode(bytes).unwrap().event else {
            panic!("a ResponseCompleted")
        };
        let kinds: Vec<_> = done.attempts.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, [AttemptKind::First, AttemptKind::Fallback]);
        assert!(
            done.attempts
                .iter()
                .all(|a| a.backoff_ms == 0 && a.key_index.is_none())
        );

        let bytes = include_bytes!("../../tests/fixtures/events/v1/request_accepted.bin");
        let Event::RequestAccepted(acc) = decode(bytes).unwrap().event else {
            panic!("a RequestAccepted")
        };
        assert_eq!((acc.rule, acc.routed_model), (None, None));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::events::*;
    use proptest::prelude::*;

    fn usage() -> impl Strategy<Value = Usage> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
        )
            .prop_map(
                |(
                    input_tokens,
                    output_tokens,
                    cached_input_tokens,
                    reasoning_tokens,
                    estimated,
                )| Usage {
                    input_tokens,
                    output_tokens,
                    cached_input_tokens,
                    reasoning_tokens,
                    estimated,
                },
            )
    }

    fn principal() -> impl Strategy<Value = Principal> {
        (
            ".*",
            proptest::option::of(".*"),
            proptest::option::of(".*"),
            proptest::option::of(".*"),
        )
            .prop_map(|(key_id, user, team, project)| Principal {
                key_id,
                user,
                team,
                project,
            })
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (
                principal(),
                ".*",
                ".*",
                any::<bool>(),
                proptest::option::of(".*"),
                (proptest::option::of(".*"), proptest::option::of(".*")),
            )
                .prop_map(
                    |(principal, model, body, stream, cache_key, (rule, routed_model))| {
                        Event::RequestAccepted(RequestAccepted {
                            principal,
                            endpoint: Endpoint::ChatCompletions,
                            route: vec![DeploymentRef {
                                provider: model.clone(),
                                model: model.clone(),
                            }],
                            model,
                            stream,
                            body,
                            guardrail_findings: vec![],
                            cache: cache_key.map(|exact| CacheKey {
                                tenant: "team:t".into(),
                                exact,
                                context: None,
                                prompt: None,
                                embedding: Some(vec![0.5, -0.25]),
                                store: stream,
                                ttl_ms: 60_000,
                            }),
                            rule,
                            routed_model,
                        })
                    }
                ),
            (
                principal(),
                ".*",
                proptest::option::of(usage()),
                any::<u16>(),
                any::<u64>(),
                proptest::option::of(".*"),
                (
                    attempt_kind(),
                    any::<u64>(),
                    proptest::option::of(any::<u32>())
                ),
            )
                .prop_map(
                    |(
                        principal,
                        model,
                        usage,
                        status,
                        latency_us,
                        body,
                        (kind, backoff_ms, key_index),
                    )| {
                        Event::ResponseCompleted(ResponseCompleted {
                            principal,
                            endpoint: Endpoint::Embeddings,
                            attempts: vec![Attempt {
                                provider: model.clone(),
                                model: model.clone(),
                                status,
                                latency_us,
                                error: Some(ErrorInfo {
                                    class: "timeout".into(),
                                    message: model.clone(),
                                }),
                                kind,
                                backoff_ms,
                                key_index,
                            }],
                            provider: Some(model.clone()),
                            provider_model: None,
                            model,
                            status,
                            error: None,
                            stream: true,
                            ttft_us: Some(latency_us / 2),
                            latency_us,
                            usage,
                            finish_reason: body.clone(),
                            body,
                            cache: (status == 200).then(|| CacheHit {
                                matched: CacheMatch::Semantic,
                                similarity: 0.25,
                                source: "01".into(),
                            }),
                            whole_body: status == 200,
                            guardrail_findings: vec![],
                        })
                    }
                ),
            (principal(), ".*", usage(), any::<u64>(), any::<bool>()).prop_map(
                |(principal, model, usage, cost_nanos, priced)| Event::SpendRecorded(
                    SpendRecorded {
                        principal,
                        provider: model.clone(),
                        provider_model: model.clone(),
                        model,
                        usage,
                        cost_nanos,
                        currency: "USD".into(),
                        priced,
                    }
                )
            ),
            (".*", ".*", breaker_state(), breaker_state(), ".*").prop_map(
                |(provider, model, from, to, reason)| Event::BreakerChanged(BreakerChanged {
                    provider,
                    model,
                    from,
                    to,
                    reason,
                })
            ),
        ]
    }

    fn attempt_kind() -> impl Strategy<Value = AttemptKind> {
        prop_oneof![
            Just(AttemptKind::First),
            Just(AttemptKind::Retry),
            Just(AttemptKind::Fallback),
            Just(AttemptKind::Hedge),
        ]
    }

    fn breaker_state() -> impl Strategy<Value = BreakerState> {
        prop_oneof![
            Just(BreakerState::Closed),
            Just(BreakerState::Open),
            Just(BreakerState::HalfOpen),
        ]
    }

    proptest! {
        #[test]
        fn every_event_round_trips(event in event(), id in any::<u128>(), rid in any::<u128>(), at_ms in any::<u64>()) {
            let env = Envelope { id: ulid::Ulid::from(id), at_ms, request_id: ulid::Ulid::from(rid), event };
            prop_assert_eq!(decode(&encode(&env)).unwrap(), env);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn a_huge_length_prefix_is_refused_not_allocated(schema in 1u8..=2, prefix in proptest::collection::vec(any::<u8>(), 0..40)) {
            // a known schema, then bytes, then a varint claiming a ~2^63-element sequence
            let mut bytes = vec![schema, 0];
            bytes.extend(prefix);
            bytes.extend([253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
            let _ = decode(&bytes);
        }
    }
}
