//! Files that document the contract: example configs parse, schemas match the types, and every
//! shipped event schema version still decodes from its golden bytes.
//!
//! Regenerate schemas and golden files with `SWITCHYARD_BLESS=1 cargo test --test it files::`
//! (golden files of a shipped version must never change: add a new version instead).

use std::path::{Path, PathBuf};
use switchyard::config::{self, RawConfig, RawPricing, Secret, SecretRef};
use switchyard::events::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bless() -> bool {
    std::env::var_os("SWITCHYARD_BLESS").is_some()
}

fn check_or_write(path: &Path, content: &[u8]) {
    if bless() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        return;
    }
    let on_disk = std::fs::read(path)
        .unwrap_or_else(|_| panic!("{} missing: run with SWITCHYARD_BLESS=1", path.display()));
    assert!(
        on_disk == content,
        "{} is stale: run `SWITCHYARD_BLESS=1 cargo test --test it files::`",
        path.display()
    );
}

/// The lines between `start` (exclusive) and the next line equal to `end`, trimmed, blanks
/// dropped.
fn block(text: &str, start: &str, end: &str) -> Vec<String> {
    let from = text.find(start).unwrap_or_else(|| panic!("no {start:?}")) + start.len();
    text[from..]
        .lines()
        .skip(1)
        .take_while(|l| l.trim() != end)
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn scripts_run_prints_every_example_the_readme_shows() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let run = std::fs::read_to_string(root().join("scripts/run")).unwrap();
    let shown = block(&readme, "prints requests to try:\n\n```sh", "```");
    let printed = block(&run, "cat <<'EXAMPLES'", "EXAMPLES");
    assert!(shown.len() >= 4, "README quick start examples: {shown:?}");
    assert_eq!(shown, printed, "README quick start and scripts/run differ");
}

#[test]
fn example_configs_parse_and_validate() {
    for name in [
        "switchyard.toml",
        "openai.toml",
        "docker.toml",
        "docker-cluster.toml",
        "providers.example.toml",
        "routing.example.toml",
        "secrets.example.toml",
    ] {
        let path = root().join("config").join(name);
        let raw: RawConfig = toml::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let pricing: RawPricing =
            toml::from_str(&std::fs::read_to_string(root().join("config/pricing.toml")).unwrap())
                .unwrap();
        // secrets are resolved by a stand-in: the example must not need a real key to validate
        let cfg = config::validate(raw, Some(pricing), |_: &SecretRef| Ok(Secret::new("test")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!cfg.models.is_empty() && !cfg.keys.is_empty(), "{name}");
        if name == "docker-cluster.toml" {
            // the compose cluster profile: every node is a seed, and the stream is R3
            assert_eq!(cfg.nats.seeds().len(), 3, "{name}");
            assert_eq!(cfg.nats.replicas, 3, "{name}");
        }
        // the gateway prices by the upstream model name, else by the public name
        for m in &cfg.models {
            for d in &m.deployments {
                assert!(
                    cfg.pricing
                        .price(&d.model)
                        .or(cfg.pricing.price(&m.name))
                        .is_some(),
                    "{name}: {} has no price",
                    d.model
                );
            }
        }
    }
    // the default config loads through the real loader too (no secrets needed)
    config::load(&root().join("config/switchyard.toml")).unwrap();
}

#[test]
fn schemas_match_the_types() {
    let pretty = |v: serde_json::Value| {
        let mut s = serde_json::to_string_pretty(&v).unwrap();
        s.push('\n');
        s
    };
    check_or_write(
        &root().join("schemas/config.schema.json"),
        pretty(config::json_schema()).as_bytes(),
    );
    check_or_write(
        &root().join("schemas/pricing.schema.json"),
        pretty(config::pricing_json_schema()).as_bytes(),
    );
    let events = serde_json::to_value(schemars::schema_for!(Envelope)).unwrap();
    check_or_write(
        &root().join("schemas/events.schema.json"),
        pretty(events).as_bytes(),
    );
}

/// What the schema-1 golden files decode to: the v1 payloads, converted to today's types (the
/// fields added later filled as `decode` documents).
fn golden_v1() -> Vec<(&'static str, Envelope)> {
    let id = |n: u128| ulid::Ulid::from(0x0193_6f2a_b000_0000_0000_0000_0000_0000u128 + n);
    let principal = Principal {
        key_id: "dev".into(),
        user: Some("alice".into()),
        team: Some("platform".into()),
        project: None,
    };
    let usage = Usage {
        input_tokens: 12,
        output_tokens: 7,
        cached_input_tokens: 2,
        reasoning_tokens: 0,
        estimated: false,
    };
    let env = |n, event| Envelope {
        id: id(n),
        at_ms: 1_732_500_000_000 + n as u64,
        request_id: id(0),
        event,
    };
    vec![
        (
            "request_accepted",
            env(
                1,
                Event::RequestAccepted(RequestAccepted {
                    principal: principal.clone(),
                    endpoint: Endpoint::ChatCompletions,
                    model: "gpt-4o-mini".into(),
                    route: vec![DeploymentRef {
                        provider: "openai".into(),
                        model: "gpt-4o-mini".into(),
                    }],
                    stream: false,
                    body: r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
                        .into(),
                    // written as {guardrail: "pii", kind: "email", action: "redact"}
                    guardrail_findings: vec![GuardrailFinding {
                        detector: "email".into(),
                        action: GuardrailAction::Redact,
                        count: 1,
                        location: FindingLocation::Request,
                        message: None,
                    }],
                    cache: None,
                    rule: None,
                    routed_model: None,
                }),
            ),
        ),
        (
            "response_completed",
            env(
                2,
                Event::ResponseCompleted(ResponseCompleted {
                    principal: principal.clone(),
                    endpoint: Endpoint::ChatCompletions,
                    model: "gpt-4o-mini".into(),
                    attempts: vec![
                        Attempt {
                            provider: "openai".into(),
                            model: "gpt-4o-mini".into(),
                            status: 503,
                            latency_us: 900,
                            error: Some(ErrorInfo {
                                class: "upstream_5xx".into(),
                                message: "busy".into(),
                            }),
                            kind: AttemptKind::First,
                            backoff_ms: 0,
                            key_index: None,
                        },
                        Attempt {
                            provider: "backup".into(),
                            model: "gpt-4o-mini".into(),
                            status: 200,
                            latency_us: 1200,
                            error: None,
                            kind: AttemptKind::Fallback,
                            backoff_ms: 0,
                            key_index: None,
                        },
                    ],
                    provider: Some("backup".into()),
                    provider_model: Some("gpt-4o-mini".into()),
                    status: 200,
                    error: None,
                    stream: true,
                    ttft_us: Some(800),
                    latency_us: 2500,
                    usage: Some(usage),
                    finish_reason: Some("stop".into()),
                    body: Some("{\"choices\":[]}".into()),
                    cache: None,
                    whole_body: false,
                    guardrail_findings: vec![],
                }),
            ),
        ),
        (
            "spend_recorded",
            env(
                3,
                Event::SpendRecorded(SpendRecorded {
                    principal,
                    model: "gpt-4o-mini".into(),
                    provider: "backup".into(),
                    provider_model: "gpt-4o-mini".into(),
                    usage,
                    cost_nanos: 5_850,
                    currency: "USD".into(),
                    priced: true,
                }),
            ),
        ),
    ]
}

/// Schema 2: every event kind, with the fields schema 2 added set to non-default values so a
/// layout change cannot hide behind zeros.
fn golden_v2() -> Vec<(&'static str, Envelope)> {
    let id = |n: u128| ulid::Ulid::from(0x0197_0c5e_c000_0000_0000_0000_0000_0000u128 + n);
    let principal = Principal {
        key_id: "dev".into(),
        user: Some("alice".into()),
        team: Some("platform".into()),
        project: Some("search".into()),
    };
    let usage = Usage {
        input_tokens: 40,
        output_tokens: 9,
        cached_input_tokens: 0,
        reasoning_tokens: 3,
        estimated: true,
    };
    let env = |n, event| Envelope {
        id: id(n),
        at_ms: 1_750_000_000_000 + n as u64,
        request_id: id(0),
        event,
    };
    let busy = || {
        Some(ErrorInfo {
            class: "rate_limited".into(),
            message: "slow down".into(),
        })
    };
    vec![
        (
            "request_accepted",
            env(
                1,
                Event::RequestAccepted(RequestAccepted {
                    principal: principal.clone(),
                    endpoint: Endpoint::Messages,
                    model: "auto".into(),
                    route: vec![
                        DeploymentRef {
                            provider: "anthropic".into(),
                            model: "claude-sonnet-4".into(),
                        },
                        DeploymentRef {
                            provider: "bedrock".into(),
                            model: "claude-sonnet-4".into(),
                        },
                    ],
                    stream: true,
                    body:
                        r#"{"model":"auto","messages":[{"role":"user","content":"fn main() {}"}]}"#
                            .into(),
                    guardrail_findings: vec![],
                    cache: None,
                    rule: Some("code".into()),
                    routed_model: Some("claude-sonnet".into()),
                }),
            ),
        ),
        (
            "response_completed",
            env(
                2,
                Event::ResponseCompleted(ResponseCompleted {
                    principal: principal.clone(),
                    endpoint: Endpoint::Messages,
                    model: "claude-sonnet".into(),
                    attempts: vec![
                        Attempt {
                            provider: "anthropic".into(),
                            model: "claude-sonnet-4".into(),
                            status: 429,
                            latency_us: 700,
                            error: busy(),
                            kind: AttemptKind::First,
                            backoff_ms: 0,
                            key_index: Some(0),
                        },
                        Attempt {
                            provider: "anthropic".into(),
                            model: "claude-sonnet-4".into(),
                            status: 429,
                            latency_us: 650,
                            error: busy(),
                            kind: AttemptKind::Retry,
                            backoff_ms: 250,
                            key_index: Some(1),
                        },
                        Attempt {
                            provider: "bedrock".into(),
                            model: "claude-sonnet-4".into(),
                            status: 0,
                            latency_us: 2_000_000,
                            error: None,
                            kind: AttemptKind::Fallback,
                            backoff_ms: 0,
                            key_index: None,
                        },
                        Attempt {
                            provider: "anthropic".into(),
                            model: "claude-sonnet-4".into(),
                            status: 200,
                            latency_us: 900_000,
                            error: None,
                            kind: AttemptKind::Hedge,
                            backoff_ms: 0,
                            key_index: Some(2),
                        },
                    ],
                    provider: Some("anthropic".into()),
                    provider_model: Some("claude-sonnet-4".into()),
                    status: 200,
                    error: None,
                    stream: true,
                    ttft_us: Some(1_200_000),
                    latency_us: 3_000_000,
                    usage: Some(usage),
                    finish_reason: Some("end_turn".into()),
                    body: Some("{\"type\":\"message_stop\"}".into()),
                    cache: None,
                    whole_body: false,
                    guardrail_findings: vec![],
                }),
            ),
        ),
        (
            "spend_recorded",
            env(
                3,
                Event::SpendRecorded(SpendRecorded {
                    principal,
                    model: "claude-sonnet".into(),
                    provider: "anthropic".into(),
                    provider_model: "claude-sonnet-4".into(),
                    usage,
                    cost_nanos: 255_000,
                    currency: "USD".into(),
                    priced: true,
                }),
            ),
        ),
        (
            "breaker_changed",
            Envelope {
                // belongs to no request: a fresh ULID of its own
                request_id: id(40),
                ..env(
                    4,
                    Event::BreakerChanged(BreakerChanged {
                        provider: "bedrock".into(),
                        model: "claude-sonnet-4".into(),
                        from: BreakerState::Closed,
                        to: BreakerState::Open,
                        reason: "5 failures in 30s".into(),
                    }),
                )
            },
        ),
    ]
}

/// Golden files of an older `schema` decode to `cases`, and re-encode as the current schema to
/// bytes that decode to the same events. (The body is not byte-identical: schema 6 changed two
/// payloads.)
fn older_schema_decodes(schema: u16, cases: Vec<(&'static str, Envelope)>) {
    let dir = root().join(format!("tests/fixtures/events/v{schema}"));
    for (name, env) in cases {
        let path = dir.join(format!("{name}.bin"));
        let bytes = std::fs::read(&path).unwrap_or_else(|_| panic!("{} missing", path.display()));
        assert_eq!(u16::from_le_bytes([bytes[0], bytes[1]]), schema);
        assert_eq!(
            decode(&bytes).unwrap(),
            env,
            "{name}: v{schema} bytes decode to the same event"
        );
        let again = encode(&env);
        assert_eq!(u16::from_le_bytes([again[0], again[1]]), CURRENT_SCHEMA);
        assert_eq!(
            decode(&again).unwrap(),
            env,
            "{name}: re-encoded as current"
        );
    }
}

/// Schema 1 is no longer written: its golden files decode through the frozen v1 types and the
/// conversion, and re-encoding writes the current schema.
#[test]
fn golden_v1_bytes_still_decode() {
    let dir = root().join("tests/fixtures/events/v1");
    for (name, env) in golden_v1() {
        let path = dir.join(format!("{name}.bin"));
        let bytes = std::fs::read(&path).unwrap_or_else(|_| panic!("{} missing", path.display()));
        assert_eq!(u16::from_le_bytes([bytes[0], bytes[1]]), 1);
        assert_eq!(
            decode(&bytes).unwrap(),
            env,
            "{name}: v1 bytes decode to the converted event"
        );
        let again = encode(&env);
        assert_eq!(u16::from_le_bytes([again[0], again[1]]), CURRENT_SCHEMA);
        assert_eq!(
            decode(&again).unwrap(),
            env,
            "{name}: re-encoded as current"
        );
    }
}

/// Schema 2 is no longer written: its golden files decode through the frozen schema-5 types
/// to the same events, and re-encode as the current schema.
#[test]
fn golden_v2_bytes_still_decode() {
    older_schema_decodes(2, golden_v2());
}

/// Schema 3: the admin events, with every optional field set.
fn golden_v3() -> Vec<(&'static str, Envelope)> {
    let id = |n: u128| ulid::Ulid::from(0x019a_d000_0000_0000_0000_0000_0000_0000u128 + n);
    let env = |n, event| Envelope {
        id: id(n),
        at_ms: 1_764_000_000_000 + n as u64,
        request_id: id(100 + n),
        event,
    };
    let limits = Limits {
        budgets: vec![
            Budget {
                period: Period::Daily,
                limit_nanos: 5_000_000_000,
                alert_at_percent: vec![50, 80],
            },
            Budget {
                period: Period::Lifetime,
                limit_nanos: 100_000_000_000,
                alert_at_percent: vec![],
            },
        ],
        rate: RateLimit {
            requests_per_minute: Some(600),
            tokens_per_minute: Some(100_000),
        },
    };
    vec![
        (
            "key_issued",
            env(
                1,
                Event::KeyIssued(KeyIssued {
                    key_id: "01kb0000000000000000000001".into(),
                    name: "search ci".into(),
                    secret_sha256:
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
                    user: Some("alice".into()),
                    team: Some("platform".into()),
                    project: Some("search".into()),
                    models: vec!["gpt-4o-mini".into()],
                    expires_at_ms: Some(1_764_000_900_000),
                    limits: limits.clone(),
                    metadata: [("owner".to_owned(), "alice".to_owned())].into(),
                }),
            ),
        ),
        (
            "key_rotated",
            env(
                2,
                Event::KeyRotated(KeyRotated {
                    key_id: "01kb0000000000000000000001".into(),
                    secret_sha256:
                        "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed".into(),
                    previous_valid_until_ms: 1_764_003_600_000,
                }),
            ),
        ),
        (
            "key_revoked",
            env(
                3,
                Event::KeyRevoked(KeyRevoked {
                    key_id: "01kb0000000000000000000001".into(),
                    reason: Some("leaked in a log".into()),
                }),
            ),
        ),
        (
            "key_expired",
            env(
                4,
                Event::KeyExpired(KeyExpired {
                    key_id: "01kb0000000000000000000002".into(),
                    expires_at_ms: 1_764_000_900_000,
                }),
            ),
        ),
        (
            "limits_set",
            env(
                5,
                Event::LimitsSet(LimitsSet {
                    scope: Scope::new(ScopeKind::Team, "platform"),
                    limits,
                }),
            ),
        ),
        (
            "budget_leased",
            env(
                6,
                Event::BudgetLeased(BudgetLeased {
                    window: BudgetWindow {
                        scope: Scope::new(ScopeKind::Team, "platform"),
                        period: Period::Daily,
                        window: "2025-11-24".into(),
                    },
                    instance: "01KB0000000000000000000009".into(),
                    amount_nanos: 500_000_000,
                    returned: false,
                    total_nanos: 1_750_000_000,
                    limit_nanos: 5_000_000_000,
                }),
            ),
        ),
        (
            "budget_threshold_crossed",
            env(
                7,
                Event::BudgetThresholdCrossed(BudgetThresholdCrossed {
                    window: BudgetWindow {
                        scope: Scope::new(ScopeKind::Key, "01kb0000000000000000000001"),
                        period: Period::Lifetime,
                        window: "lifetime".into(),
                    },
                    percent: 80,
                    spent_nanos: 80_000_000_123,
                    limit_nanos: 100_000_000_000,
                }),
            ),
        ),
    ]
}

/// Schema 3 is no longer written: its golden files decode through the frozen schema-5 types
/// to the same events, and re-encode as the current schema.
#[test]
fn golden_v3_bytes_still_decode() {
    older_schema_decodes(3, golden_v3());
}

/// Schema 4: a refused request, every optional field set, and one with none.
fn golden_v4() -> Vec<(&'static str, Envelope)> {
    let id = |n: u128| ulid::Ulid::from(0x019a_e000_0000_0000_0000_0000_0000_0000u128 + n);
    let env = |n, event| Envelope {
        id: id(n),
        at_ms: 1_764_500_000_000 + n as u64,
        request_id: id(100 + n),
        event,
    };
    vec![
        (
            "request_rejected_full",
            env(
                1,
                Event::RequestRejected(RequestRejected {
                    endpoint: Endpoint::Messages,
                    status: 429,
                    code: "rate_limit_exceeded".into(),
                    message: "Rate limit reached for key 01kb on requests per minute.".into(),
                    principal: Some(Principal {
                        key_id: "01kb0000000000000000000001".into(),
                        user: Some("ana".into()),
                        team: Some("search".into()),
                        project: Some("web".into()),
                    }),
                    key_id: Some("01kb0000000000000000000002".into()),
                    key_fingerprint: Some("a1b2c3d4".into()),
                    model: Some("claude".into()),
                    remote_addr: Some("10.0.0.7:51234".into()),
                    user_agent: Some("anthropic-python/2.14.0".into()),
                }),
            ),
        ),
        (
            "request_rejected_bare",
            env(
                2,
                Event::RequestRejected(RequestRejected {
                    endpoint: Endpoint::ChatCompletions,
                    status: 401,
                    code: "invalid_api_key".into(),
                    message: "Incorrect API key provided.".into(),
                    principal: None,
                    key_id: None,
                    key_fingerprint: None,
                    model: None,
                    remote_addr: None,
                    user_agent: None,
                }),
            ),
        ),
    ]
}

/// Schema 4 is no longer written: its golden files decode through the frozen schema-5 types
/// to the same events, and re-encode as the current schema.
#[test]
fn golden_v4_bytes_still_decode() {
    older_schema_decodes(4, golden_v4());
}

/// Schema 5: an audit chain anchor.
fn golden_v5() -> Vec<(&'static str, Envelope)> {
    let id = ulid::Ulid::from(0x019a_e100_0000_0000_0000_0000_0000_0001u128);
    vec![(
        "audit_anchored",
        Envelope {
            id,
            at_ms: 1_764_600_000_000,
            request_id: id,
            event: Event::AuditAnchored(AuditAnchored {
                head_seq: 123_456,
                head: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
                length: 61_728,
            }),
        },
    )]
}

/// Schema 5 is no longer written: its golden files decode through the frozen schema-5 types
/// to the same events, and re-encode as the current schema.
#[test]
fn golden_v5_bytes_still_decode() {
    older_schema_decodes(5, golden_v5());
}

/// Schema 6: guardrail findings on both sides of a request.
fn golden_v6() -> Vec<(&'static str, Envelope)> {
    let id = |n: u128| ulid::Ulid::from(0x019a_e200_0000_0000_0000_0000_0000_0000u128 + n);
    let principal = Principal {
        key_id: "01kb0000000000000000000009".into(),
        user: Some("ana".into()),
        team: Some("support".into()),
        project: None,
    };
    let finding = |detector: &str, action, count, location, message| GuardrailFinding {
        detector: detector.into(),
        action,
        count,
        location,
        message,
    };
    vec![
        (
            "request_accepted_with_findings",
            Envelope {
                id: id(1),
                at_ms: 1_764_700_000_000,
                request_id: id(100),
                event: Event::RequestAccepted(RequestAccepted {
                    principal: principal.clone(),
                    endpoint: Endpoint::ChatCompletions,
                    model: "gpt-4o-mini".into(),
                    route: vec![DeploymentRef {
                        provider: "openai".into(),
                        model: "gpt-4o-mini".into(),
                    }],
                    stream: true,
                    body: r#"{"messages":[{"role":"user","content":"mail [EMAIL_1]"}]}"#.into(),
                    guardrail_findings: vec![
                        finding(
                            "email",
                            GuardrailAction::Redact,
                            2,
                            FindingLocation::Request,
                            Some(1),
                        ),
                        finding(
                            "phone",
                            GuardrailAction::Log,
                            1,
                            FindingLocation::Request,
                            Some(0),
                        ),
                    ],
                    cache: None,
                    rule: None,
                    routed_model: None,
                }),
            },
        ),
        (
            "response_completed_with_findings",
            Envelope {
                id: id(2),
                at_ms: 1_764_700_000_900,
                request_id: id(100),
                event: Event::ResponseCompleted(ResponseCompleted {
                    principal,
                    endpoint: Endpoint::ChatCompletions,
                    model: "gpt-4o-mini".into(),
                    attempts: vec![],
                    provider: Some("openai".into()),
                    provider_model: Some("gpt-4o-mini-2024-07-18".into()),
                    status: 200,
                    error: None,
                    stream: true,
                    ttft_us: Some(210_000),
                    latency_us: 900_000,
                    usage: None,
                    finish_reason: Some("stop".into()),
                    body: Some("write to [EMAIL_1]".into()),
                    cache: None,
                    whole_body: false,
                    guardrail_findings: vec![finding(
                        "openai_key",
                        GuardrailAction::Redact,
                        1,
                        FindingLocation::Response,
                        None,
                    )],
                }),
            },
        ),
    ]
}

/// Schema 6 is no longer written: its golden files decode through the frozen v6 types.
#[test]
fn golden_v6_bytes_still_decode() {
    older_schema_decodes(6, golden_v6());
}

/// Schema 7: the cache's keys on a request, a hit on its completion, a flush.
fn golden_v7() -> Vec<(&'static str, Envelope)> {
    let id = |n: u128| ulid::Ulid::from(0x019a_f000_0000_0000_0000_0000_0000_0000u128 + n);
    let principal = Principal {
        key_id: "01kb000000000000000000000a".into(),
        user: None,
        team: Some("search".into()),
        project: None,
    };
    vec![
        (
            "request_accepted_with_cache_key",
            Envelope {
                id: id(1),
                at_ms: 1_764_800_000_000,
                request_id: id(100),
                event: Event::RequestAccepted(RequestAccepted {
                    principal: principal.clone(),
                    endpoint: Endpoint::ChatCompletions,
                    model: "gpt-4o-mini".into(),
                    route: vec![DeploymentRef {
                        provider: "openai".into(),
                        model: "gpt-4o-mini".into(),
                    }],
                    stream: false,
                    body: r#"{"messages":[{"role":"user","content":"capital of France?"}]}"#.into(),
                    guardrail_findings: vec![],
                    cache: Some(CacheKey {
                        tenant: "team:search".into(),
                        exact: "ab".repeat(32),
                        context: Some("cd".repeat(32)),
                        prompt: Some("capital of France?".into()),
                        embedding: Some(vec![0.6, 0.8, 0.0]),
                        store: true,
                        ttl_ms: 3_600_000,
                    }),
                    rule: None,
                    routed_model: None,
                }),
            },
        ),
        (
            "response_completed_from_cache",
            Envelope {
                id: id(2),
                at_ms: 1_764_800_000_002,
                request_id: id(101),
                event: Event::ResponseCompleted(ResponseCompleted {
                    principal,
                    endpoint: Endpoint::ChatCompletions,
                    model: "gpt-4o-mini".into(),
                    attempts: vec![],
                    provider: None,
                    provider_model: None,
                    status: 200,
                    error: None,
                    stream: false,
                    ttft_us: Some(400),
                    latency_us: 500,
                    usage: None,
                    finish_reason: Some("stop".into()),
                    body: Some("{}".into()),
                    cache: Some(CacheHit {
                        matched: CacheMatch::Semantic,
                        similarity: 0.93,
                        source: id(100).to_string(),
                    }),
                    whole_body: true,
                    guardrail_findings: vec![],
                }),
            },
        ),
        (
            "cache_flushed",
            Envelope {
                id: id(3),
                at_ms: 1_764_800_000_003,
                request_id: id(3),
                event: Event::CacheFlushed(CacheFlushed {
                    tenant: Some("team:search".into()),
                    model: None,
                }),
            },
        ),
    ]
}

/// Schema 7 is current: its golden files are written once under SWITCHYARD_BLESS (never
/// rewritten) and this build must still write them byte for byte.
#[test]
fn golden_v7_bytes_are_written_identically() {
    assert_eq!(CURRENT_SCHEMA, 7, "a new schema needs its own golden files");
    let dir = root().join("tests/fixtures/events/v7");
    for (name, env) in golden_v7() {
        let path = dir.join(format!("{name}.bin"));
        if bless() && !path.exists() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, encode(&env)).unwrap();
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|_| panic!("{} missing", path.display()));
        assert_eq!(u16::from_le_bytes([bytes[0], bytes[1]]), 7);
        assert_eq!(
            decode(&bytes).unwrap(),
            env,
            "{name}: v7 bytes decode to the same event"
        );
        assert_eq!(
            encode(&env),
            bytes,
            "{name}: this build still writes v7 identically"
        );
    }
}
