//! Embeddings over HTTP: Titan's one call per input, Cohere's one call for all.

use super::*;

#[tokio::test]
async fn titan_embeds_one_call_per_input_in_order_and_sums_tokens() {
    let up = server(|seen| async move {
        let text = seen.json()["inputText"].as_str().unwrap().to_owned();
        // Later inputs answer sooner, so a wrong order would show.
        tokio::time::sleep(Duration::from_millis(
            40u64.saturating_sub(text.len() as u64 * 10),
        ))
        .await;
        let n = text.len() as f32;
        json_reply(
            200,
            &[],
            &json!({"embedding": [n, 1.0], "inputTextTokenCount": text.len()}).to_string(),
        )
    })
    .await;
    let p = adapter(&up.base_url, Auth::Aws(None));
    let req: EmbeddingsRequest = serde_json::from_value(
        json!({"model": "e", "input": ["a", "bb", "ccc"], "dimensions": 256}),
    )
    .unwrap();
    let resp = p
        .embeddings(&req, "amazon.titan-embed-text-v2:0")
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    let firsts: Vec<f64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["embedding"][0].as_f64().unwrap())
        .collect();
    assert_eq!(firsts, [1.0, 2.0, 3.0]);
    assert_eq!(v["usage"], json!({"prompt_tokens": 6, "total_tokens": 6}));
    assert_eq!(resp.usage.unwrap().input_tokens, 6);
    let seen = up.seen();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|s| s.path == "/model/amazon.titan-embed-text-v2%3A0/invoke")
    );
    let mut bodies: Vec<Value> = seen.iter().map(Seen::json).collect();
    bodies.sort_by_key(|b| b["inputText"].as_str().unwrap().len());
    assert_eq!(
        bodies[1],
        json!({"inputText": "bb", "dimensions": 256, "normalize": true})
    );
}

#[tokio::test]
async fn cohere_embeds_in_one_call_and_reads_the_token_header() {
    let up = server(|_| async {
        json_reply(
            200,
            &[("x-amzn-bedrock-input-token-count", "9")],
            include_str!("../../../../tests/fixtures/bedrock/cohere_embed_response.json"),
        )
    })
    .await;
    let p = adapter(&up.base_url, Auth::Key("k"));
    let req: EmbeddingsRequest = serde_json::from_value(
        json!({"model": "e", "input": ["hello world", "is it raining in Paris"], "encoding_format": "base64"}),
    )
    .unwrap();
    let resp = p.embeddings(&req, "cohere.embed-english-v3").await.unwrap();
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    assert!(v["data"][0]["embedding"].is_string(), "base64 as asked");
    assert_eq!(v["usage"]["prompt_tokens"], 9);
    assert_eq!(resp.usage.unwrap().input_tokens, 9);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/model/cohere.embed-english-v3/invoke");
    assert_eq!(
        seen[0].json(),
        json!({"texts": ["hello world", "is it raining in Paris"], "input_type": "search_document", "truncate": "NONE"})
    );
}
