//! OpenAI embeddings request → Gemini `batchEmbedContents`, and its answer → an OpenAI
//! embeddings list. Pure: no I/O, no HTTP.
//!
//! Token-array inputs are refused as [`ProviderError::Unsupported`] (Gemini takes text only);
//! `user` is dropped. Gemini reports no token counts here, so the list says 0 and the adapter
//! leaves the usage to the gateway's estimate.

use super::wire::{BatchEmbedRequest, BatchEmbedResponse, EmbedContent, EmbedRequest, EmbedText};
use crate::providers::canonical::{EmbeddingItem, EmbeddingList, EmbeddingUsage, Vector};
use crate::providers::{EmbeddingsRequest, ProviderError};

/// An embeddings request read: the texts, whether the vectors go back as base64.
pub struct Embeddings<'a> {
    pub texts: Vec<&'a str>,
    pub dimensions: Option<u64>,
    pub base64: bool,
}

/// The parts of an OpenAI embeddings request Gemini can carry.
pub fn embeddings(req: &EmbeddingsRequest) -> Result<Embeddings<'_>, ProviderError> {
    use serde_json::Value;
    let texts = match req.rest.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(ProviderError::Invalid("input: must not be empty".into()));
        }
        Some(Value::Array(items)) => {
            let mut texts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => texts.push(s.as_str()),
                    Value::Number(_) | Value::Array(_) => {
                        return Err(ProviderError::Unsupported("token-array embedding input"));
                    }
                    _ => return Err(ProviderError::Invalid("input: expected strings".into())),
                }
            }
            texts
        }
        _ => {
            return Err(ProviderError::Invalid(
                "input: expected a string or an array of strings".into(),
            ));
        }
    };
    let dimensions = match req.rest.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            ProviderError::Invalid("dimensions: expected a positive integer".into())
        })?),
    };
    let base64 = match req.rest.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ProviderError::Invalid(format!(
                "encoding_format: expected \"float\" or \"base64\", got {other:?}"
            )));
        }
    };
    Ok(Embeddings {
        texts,
        dimensions,
        base64,
    })
}

/// The `batchEmbedContents` body for `e`, one request per text, each naming `resource` (the
/// model's resource name, as the URL does).
pub fn embed_request<'a>(e: &'a Embeddings<'_>, resource: &'a str) -> BatchEmbedRequest<'a> {
    BatchEmbedRequest {
        requests: e
            .texts
            .iter()
            .map(|text| EmbedRequest {
                model: resource,
                content: EmbedContent {
                    parts: [EmbedText { text }],
                },
                output_dimensionality: e.dimensions,
            })
            .collect(),
    }
}

/// A `batchEmbedContents` answer → the JSON of an OpenAI embeddings list with zero usage.
pub fn embed_response(
    body: &[u8],
    e: &Embeddings<'_>,
    model: &str,
) -> Result<Vec<u8>, ProviderError> {
    let resp: BatchEmbedResponse =
        serde_json::from_slice(body).map_err(|e| ProviderError::Decode(e.to_string()))?;
    if resp.embeddings.len() != e.texts.len() {
        return Err(ProviderError::Decode(format!(
            "{} embeddings for {} inputs",
            resp.embeddings.len(),
            e.texts.len()
        )));
    }
    let data = resp
        .embeddings
        .into_iter()
        .enumerate()
        .map(|(index, v)| EmbeddingItem {
            object: "embedding",
            index,
            embedding: Vector::new(v.values, e.base64),
        })
        .collect();
    let list = EmbeddingList {
        object: "list",
        data,
        model,
        usage: EmbeddingUsage {
            prompt_tokens: 0,
            total_tokens: 0,
        },
    };
    serde_json::to_vec(&list).map_err(|e| ProviderError::Decode(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::providers::gemini::resource_name;
    use serde_json::{Value, json};

    fn embeddings_req(body: Value) -> EmbeddingsRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn embeddings_request_one_per_text_with_the_resource_name() {
        let req = embeddings_req(
            json!({"model": "public", "input": ["What is the meaning of life?", "How does the brain work?"], "dimensions": 256}),
        );
        let e = embeddings(&req).unwrap();
        assert!(!e.base64);
        let v = serde_json::to_value(embed_request(&e, &resource_name("gemini-embedding-001")))
            .unwrap();
        assert_eq!(
            v,
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "What is the meaning of life?"}]}, "outputDimensionality": 256},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "How does the brain work?"}]}, "outputDimensionality": 256}
            ]})
        );
        let one =
            embeddings_req(json!({"model": "m", "input": "hello", "encoding_format": "base64"}));
        let e = embeddings(&one).unwrap();
        assert_eq!(
            (e.texts.as_slice(), e.dimensions, e.base64),
            (&["hello"][..], None, true)
        );
        assert_eq!(
            resource_name("tunedModels/my-model"),
            "tunedModels/my-model"
        );

        for (body, unsupported) in [
            (json!({"model": "m", "input": [1, 2, 3]}), true),
            (json!({"model": "m", "input": [[1, 2]]}), true),
            (json!({"model": "m", "input": []}), false),
            (json!({"model": "m"}), false),
            (json!({"model": "m", "input": [null]}), false),
            (json!({"model": "m", "input": "x", "dimensions": -1}), false),
            (
                json!({"model": "m", "input": "x", "encoding_format": "int8"}),
                false,
            ),
        ] {
            let e = embeddings(&embeddings_req(body.clone())).err().unwrap();
            if unsupported {
                assert!(matches!(e, ProviderError::Unsupported(_)), "{body}");
            } else {
                assert!(matches!(e, ProviderError::Invalid(_)), "{body}");
            }
        }
    }

    #[test]
    fn embeddings_response_fixture_becomes_an_openai_list() {
        let fixture = include_bytes!("../../../tests/fixtures/gemini/batch_embed_response.json");
        let req = embeddings_req(json!({"model": "m", "input": ["a", "b", "c"]}));
        let e = embeddings(&req).unwrap();
        let v: Value =
            serde_json::from_slice(&embed_response(fixture, &e, "embedding-001").unwrap()).unwrap();
        assert_eq!(v["object"], "list");
        assert_eq!(v["model"], "embedding-001");
        assert_eq!(v["usage"], json!({"prompt_tokens": 0, "total_tokens": 0}));
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 3);
        assert_eq!(data[2]["index"], 2);
        assert_eq!(data[2]["object"], "embedding");
        let first = data[0]["embedding"].as_array().unwrap();
        assert_eq!(first.len(), 5);
        assert!((first[1].as_f64().unwrap() - -0.05592018).abs() < 1e-7);

        let two = embeddings_req(json!({"model": "m", "input": ["a", "b"]}));
        let e = embeddings(&two).unwrap();
        assert!(matches!(
            embed_response(fixture, &e, "m"),
            Err(ProviderError::Decode(_))
        ));

        let b64 = embeddings_req(json!({"model": "m", "input": "a", "encoding_format": "base64"}));
        let e = embeddings(&b64).unwrap();
        let v: Value = serde_json::from_slice(
            &embed_response(br#"{"embeddings": [{"values": [1.0, 0.0]}]}"#, &e, "m").unwrap(),
        )
        .unwrap();
        assert_eq!(v["data"][0]["embedding"], "AACAPwAAAAA=");
    }
}
