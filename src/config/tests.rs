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
