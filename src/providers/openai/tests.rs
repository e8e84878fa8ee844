//! Tests of the OpenAI adapter: URLs (Azure included) and outgoing bodies.

use super::*;

fn spec(kind: ProviderKind, base: &str) -> Arc<ProviderSpec> {
    Arc::new(ProviderSpec {
        connect_timeout: std::time::Duration::from_secs(1),
        timeout: std::time::Duration::from_secs(1),
        ..ProviderSpec::new("p", kind, base)
    })
}

#[test]
fn azure_puts_the_deployment_and_api_version_in_the_url() {
    let a = OpenAi::new(spec(ProviderKind::Azure, "https://res.openai.azure.com")).unwrap();
    assert_eq!(
        a.url(Op::Chat, "gpt4o-prod").unwrap().as_str(),
        "https://res.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(
        a.url(Op::Embeddings, "emb").unwrap().as_str(),
        "https://res.openai.azure.com/openai/deployments/emb/embeddings?api-version=2024-10-21"
    );
    let o = OpenAi::new(spec(ProviderKind::Openai, "https://api.groq.com/openai/v1")).unwrap();
    assert_eq!(
        o.url(Op::Chat, "ignored").unwrap().as_str(),
        "https://api.groq.com/openai/v1/chat/completions"
    );
}

#[test]
fn outgoing_body_renames_model_and_always_asks_for_stream_usage() {
    let req: ChatRequest = serde_json::from_str(
        r#"{"model":"public","messages":[{"role":"user","content":"hi"}],"stream":true,"temperature":0.2}"#,
    )
    .unwrap();
    let body: serde_json::Value =
        serde_json::from_slice(&convert::request(&req, "upstream-x", true).unwrap()).unwrap();
    assert_eq!(body["model"], "upstream-x");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(body["messages"][0]["content"], "hi");
    let plain: serde_json::Value =
        serde_json::from_slice(&convert::request(&req, "u", false).unwrap()).unwrap();
    assert!(plain.get("stream").is_none() && plain.get("stream_options").is_none());
}
