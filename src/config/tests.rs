use super::*;

fn ok_resolve(_: &SecretRef) -> Result<Secret, String> {
    Ok(Secret::new("x"))
}

#[test]
fn reports_every_problem_with_its_path() {
    let raw: RawConfig = toml::from_str(
        r#"
        [[keys]]
        id = "a"
        hash = "nope"
        [providers.openai]
        kind = "openai"
        base_url = "ftp://x"
        api_key = { env = "SWITCHYARD_TEST_UNSET_VAR" }
        [[models]]
        name = "m"
        deployments = [{ provider = "openia", model = "x" }]
        [[models]]
        name = "m"
        deployments = []
        "#,
    )
    .unwrap();
    let err = validate(raw, None, |r| r.resolve()).unwrap_err();
    let ConfigError::Invalid(problems) = err else {
        panic!("expected Invalid")
    };
    let joined = problems.join("\n");
    for needle in [
        "keys[0].hash",
        "providers.openai.base_url",
        "providers.openai.api_key: environment variable SWITCHYARD_TEST_UNSET_VAR is not set",
        "models[0].deployments[0].provider: no provider named \"openia\"",
        "models[1].name",
        "models[1].deployments: needs at least one",
    ] {
        assert!(joined.contains(needle), "missing {needle:?} in\n{joined}");
    }
}

#[test]
fn unknown_fields_are_rejected() {
    let err =
        toml::from_str::<RawConfig>("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n").unwrap_err();
    assert!(err.to_string().contains("lisen"), "{err}");
}

#[test]
fn presets_fill_base_url_and_key_variable() {
    let raw: RawConfig = toml::from_str(
        r#"
        [providers.groq]
        preset = "groq"
        [providers.local]
        preset = "ollama"
        [providers.az]
        kind = "azure"
        base_url = "https://res.openai.azure.com"
        api_key = { env = "AZ" }
        "#,
    )
    .unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let cfg = validate(raw, None, |r| {
        seen.lock().unwrap().push(r.clone());
        Ok(Secret::new("k"))
    })
    .unwrap();
    assert_eq!(
        cfg.providers["groq"].base_url,
        "https://api.groq.com/openai/v1"
    );
    assert!(cfg.providers["groq"].api_key.is_some());
    assert!(
        cfg.providers["local"].api_key.is_none(),
        "local servers need no key"
    );
    assert_eq!(cfg.providers["az"].kind, ProviderKind::Azure);
    assert_eq!(cfg.providers["az"].api_version, "2024-10-21");
    let seen = seen.into_inner().unwrap();
    assert!(seen.contains(&SecretRef::Env("GROQ_API_KEY".into())));
    let missing: RawConfig = toml::from_str("[providers.x]\nkind = \"openai\"\n").unwrap();
    let err = validate(missing, None, ok_resolve).unwrap_err().to_string();
    assert!(
        err.contains("providers.x.base_url: required unless a preset is given"),
        "{err}"
    );
}

#[test]
fn resolves_handles() {
    let raw: RawConfig = toml::from_str(
        r#"
        [providers.p]
        kind = "openai"
        base_url = "http://127.0.0.1:1/v1/"
        [[models]]
        name = "m"
        deployments = [{ provider = "p", model = "up" }]
        "#,
    )
    .unwrap();
    let cfg = validate(raw, None, ok_resolve).unwrap();
    assert_eq!(
        cfg.models[0].deployments[0].provider.base_url,
        "http://127.0.0.1:1/v1"
    );
}

#[test]
fn nats_url_takes_a_seed_list_and_checks_every_entry() {
    let parse = |url: &str| {
        let raw: RawConfig = toml::from_str(&format!("[nats]\nurl = {url:?}\n")).unwrap();
        validate(raw, None, ok_resolve)
    };
    let cfg = parse("nats://127.0.0.1:4222, nats://10.0.0.2:4222,n3:4223").unwrap();
    assert_eq!(
        cfg.nats.seeds(),
        ["nats://127.0.0.1:4222", "nats://10.0.0.2:4222", "n3:4223"]
    );
    parse("nats://127.0.0.1:4222").unwrap();

    let ConfigError::Invalid(problems) =
        parse("nats://a:4222,,http://b:4222,nats://c:notaport").unwrap_err()
    else {
        panic!("expected Invalid")
    };
    let joined = problems.join("\n");
    for needle in [
        "nats.url[1]: empty server URL",
        "nats.url[2]: \"http://b:4222\": invalid scheme",
        "nats.url[3]: \"nats://c:notaport\"",
    ] {
        assert!(joined.contains(needle), "missing {needle:?} in\n{joined}");
    }
    assert!(!joined.contains("nats.url[0]"), "{joined}");
    let one = nats_url_problems("nats://x:1,nats://y:2", "SWITCHYARD_NATS_URL");
    assert!(one.is_empty(), "{one:?}");
    let bad = nats_url_problems("nats://x:1;nats://y:2", "SWITCHYARD_NATS_URL");
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].starts_with("SWITCHYARD_NATS_URL: "), "{bad:?}");
}

/// An environment the test owns: fixed variables, every secret `x`.
struct FakeEnv(&'static [(&'static str, &'static str)]);

impl Environment for FakeEnv {
    fn secret(&self, _: &SecretRef) -> Result<Secret, String> {
        Ok(Secret::new("x"))
    }
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

#[test]
fn validation_reads_variables_from_the_environment_it_is_given() {
    let raw = || -> RawConfig {
        toml::from_str(
            r#"
            [providers.aws]
            kind = "bedrock"
            [[models]]
            name = "m"
            deployments = [{ provider = "aws", model = "amazon.nova-lite-v1:0" }]
            "#,
        )
        .unwrap()
    };
    let cfg = validate_in(
        raw(),
        None,
        &FakeEnv(&[("AWS_DEFAULT_REGION", "eu-west-3")]),
    )
    .unwrap();
    let aws = &cfg.providers["aws"];
    assert_eq!(aws.region, "eu-west-3");
    assert_eq!(
        aws.base_url,
        "https://bedrock-runtime.eu-west-3.amazonaws.com"
    );
    let Err(ConfigError::Invalid(problems)) = validate_in(raw(), None, &FakeEnv(&[])) else {
        panic!("a Bedrock provider without a region is refused")
    };
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("providers.aws.region")),
        "{problems:?}"
    );
}

/// The secret references of providers `p` (api_key) and `q` (a key pool), as validated with
/// `vars` and every `env`/`file` secret readable.
fn secret_refs(
    providers: &str,
    vars: &'static [(&'static str, &'static str)],
) -> Result<Config, Vec<String>> {
    let raw: RawConfig = toml::from_str(providers).unwrap();
    match validate_in(raw, None, &FakeEnv(vars)) {
        Ok(cfg) => Ok(cfg),
        Err(ConfigError::Invalid(problems)) => Err(problems),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn every_kind_of_secret_reference_validates_into_a_source_with_its_refresh() {
    use crate::secrets::Source;
    use std::time::Duration;
    let cfg = secret_refs(
        r#"
        [secrets]
        refresh = "1m"
        [providers.p]
        base_url = "http://127.0.0.1:1/v1"
        api_keys = [
            { env = "K" },
            { file = "/run/secrets/k" },
            { exec = { command = ["vault", "kv", "get", "-field=key", "secret/k"], refresh = "0s" } },
            { vault = { path = "team a/openai", field = "api_key", refresh = "30s" } },
            { aws = { secret_id = "prod/openai", field = "api_key" } },
        ]
        "#,
        &[
            ("VAULT_ADDR", "https://vault.internal:8200/"),
            ("AWS_REGION", "eu-west-3"),
        ],
    )
    .unwrap();
    let names: Vec<_> = cfg.credentials.iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        (0..5)
            .map(|i| format!("providers.p.api_keys[{i}]"))
            .collect::<Vec<_>>()
    );
    let refresh: Vec<_> = cfg.credentials.iter().map(|c| c.refresh_every()).collect();
    let s = Duration::from_secs;
    assert_eq!(refresh, [None, Some(s(60)), None, Some(s(30)), Some(s(60))]);
    let resolved: Vec<_> = cfg.credentials.iter().map(|c| c.is_resolved()).collect();
    assert_eq!(resolved, [true, true, false, false, false]);
    let Some(Source::Vault { url, token, at, .. }) = cfg.credentials[3].source() else {
        panic!("a vault source")
    };
    assert_eq!(
        url.as_str(),
        "https://vault.internal:8200/v1/secret/data/team%20a/openai"
    );
    assert_eq!(*token, SecretRef::Env("VAULT_TOKEN".into()));
    assert_eq!(at, "secret/team a/openai#api_key");
    let Some(Source::Aws {
        endpoint, region, ..
    }) = cfg.credentials[4].source()
    else {
        panic!("an aws source")
    };
    assert_eq!(
        endpoint.as_str(),
        "https://secretsmanager.eu-west-3.amazonaws.com/"
    );
    assert_eq!(region, "eu-west-3");
    assert_eq!(cfg.providers["p"].key_pool.len(), 5);
}

#[test]
fn a_bad_secret_reference_is_named_by_its_path() {
    let problems = secret_refs(
        r#"
        [providers.p]
        base_url = "http://127.0.0.1:1/v1"
        api_key = { vault = { addr = "vault:8200", mount = "", path = "x", field = "", token = { exec = { command = ["t"] } } } }
        [providers.q]
        base_url = "http://127.0.0.1:1/v1"
        api_keys = [{ exec = { command = [] } }, { aws = { secret_id = "", endpoint = "ftp://x" } }, { vault = { path = "x", field = "f" } }]
        "#,
        &[],
    )
    .unwrap_err();
    let joined = problems.join("\n");
    for needle in [
        "providers.p.api_key.vault.addr: must be an http:// or https:// URL",
        "providers.p.api_key.vault.mount: must not be empty",
        "providers.p.api_key.vault.field: must not be empty",
        "providers.p.api_key.vault.token: must be { env = … } or { file = … }, not exec",
        "providers.q.api_keys[0].exec.command: needs a program",
        "providers.q.api_keys[1].aws.secret_id: must not be empty",
        "providers.q.api_keys[1].aws.region: required (or set AWS_REGION)",
        "providers.q.api_keys[1].aws.endpoint: must be an http:// or https:// URL",
        "providers.q.api_keys[2].vault.addr: required (or set VAULT_ADDR)",
    ] {
        assert!(joined.contains(needle), "missing {needle:?} in\n{joined}");
    }
    let unknown = toml::from_str::<RawConfig>(
        "[providers.p]\nbase_url = \"http://x\"\napi_key = { vault = { path = \"x\", field = \"f\", feild = \"g\" } }\n",
    )
    .unwrap_err();
    assert!(unknown.to_string().contains("feild"), "{unknown}");
}

#[test]
fn secrets_the_remote_references_need_are_checked_at_load() {
    let raw: RawConfig = toml::from_str(
        r#"
        [providers.p]
        base_url = "http://127.0.0.1:1/v1"
        api_keys = [
            { vault = { addr = "http://v:8200", path = "x", field = "f", token = { file = "/no/token" } } },
            { aws = { secret_id = "s", region = "us-east-1" } },
        ]
        "#,
    )
    .unwrap();
    let err = validate(raw, None, |r| match r {
        SecretRef::Env(v) => Err(format!("environment variable {v} is not set")),
        SecretRef::File(f) => Err(format!("cannot read secret file {}", f.display())),
        other => panic!("only env/file are read at load, not {other:?}"),
    })
    .unwrap_err()
    .to_string();
    for needle in [
        "providers.p.api_keys[0].vault.token: cannot read secret file /no/token",
        "providers.p.api_keys[1].aws: environment variable AWS_ACCESS_KEY_ID is not set",
        "providers.p.api_keys[1].aws: environment variable AWS_SECRET_ACCESS_KEY is not set",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in\n{err}");
    }
}

#[test]
fn a_local_secret_must_fit_a_header() {
    let raw: RawConfig =
        toml::from_str("[providers.p]\nbase_url = \"http://x\"\napi_key = { env = \"K\" }\n")
            .unwrap();
    let err = validate(raw, None, |_| Ok(Secret::new("two\nlines")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("providers.p.api_key: not usable as a credential"),
        "{err}"
    );
}
