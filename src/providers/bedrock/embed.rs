//! OpenAI embeddings request → Bedrock InvokeModel bodies, and their answers → an OpenAI
//! embeddings list. Pure: no I/O, no HTTP. Bedrock has no common embeddings shape, so the
//! family is read from the model id:
//! - Amazon Titan (`amazon.titan-embed-…`): one text per call, so one call per input. Text V2
//!   gets `dimensions` and `normalize: true` (OpenAI's vectors are unit length); Text G1 takes
//!   only the text (a `dimensions` is refused as a 400); Multimodal G1 gets `dimensions` as
//!   `embeddingConfig.outputEmbeddingLength`. Token counts are each answer's
//!   `inputTextTokenCount`, summed.
//! - Cohere Embed (`cohere.embed-…`): all inputs in one call, `input_type` from the request's
//!   own `input_type` (a Cohere field some clients send) or `search_document`, `truncate:
//!   "NONE"` (an over-long input is an error, as on OpenAI, never silently cut), `dimensions`
//!   as `output_dimension` (Embed v4; v3 refuses it). The token count comes from the
//!   `x-amzn-bedrock-input-token-count` header, when Bedrock sends it.
//!
//! Token-array inputs are refused as a 400: neither family takes token ids. `user` is dropped.

use super::wire::{
    CohereEmbeddings, CohereRequest, CohereResponse, TitanEmbeddingConfig, TitanRequest,
    TitanResponse,
};
use crate::providers::canonical::{EmbeddingItem, EmbeddingList, EmbeddingUsage, Vector};
use crate::providers::{EmbeddingsRequest, ProviderError};

/// Which InvokeModel body a model id takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    TitanTextV1,
    TitanText,
    TitanMultimodal,
    Cohere,
}

impl Family {
    /// The family of `model`: a model id, an inference profile id (`us.cohere.embed-…`) or an
    /// ARN ending in one.
    pub fn of(model: &str) -> Result<Self, ProviderError> {
        let name = model.rsplit('/').next().unwrap_or(model);
        if name.contains("amazon.titan-embed-text-v1") {
            Ok(Family::TitanTextV1)
        } else if name.contains("amazon.titan-embed-image") {
            Ok(Family::TitanMultimodal)
        } else if name.contains("amazon.titan-embed") {
            Ok(Family::TitanText)
        } else if name.contains("cohere.embed") {
            Ok(Family::Cohere)
        } else {
            Err(ProviderError::Invalid(format!(
                "the Bedrock adapter embeds with Amazon Titan (amazon.titan-embed-*) or Cohere \
                 Embed (cohere.embed-*) models; {model:?} is neither"
            )))
        }
    }
}

/// An embeddings request read: the texts, the options both families carry.
#[derive(Debug)]
pub struct Embeddings<'a> {
    pub texts: Vec<&'a str>,
    pub dimensions: Option<u64>,
    pub base64: bool,
    pub input_type: &'a str,
}

/// The parts of an OpenAI embeddings request Bedrock can carry.
pub fn embeddings(req: &EmbeddingsRequest) -> Result<Embeddings<'_>, ProviderError> {
    use serde_json::Value;
    let invalid = |m: &str| ProviderError::Invalid(m.to_owned());
    let texts = match req.rest.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(invalid("input: must not be empty"));
        }
        Some(Value::Array(items)) => {
            let mut texts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => texts.push(s.as_str()),
                    Value::Number(_) | Value::Array(_) => {
                        return Err(invalid(
                            "input: Bedrock embeds text, not token arrays; send strings",
                        ));
                    }
                    _ => return Err(invalid("input: expected strings")),
                }
            }
            texts
        }
        _ => return Err(invalid("input: expected a string or an array of strings")),
    };
    let dimensions = match req.rest.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| invalid("dimensions: expected a positive integer"))?,
        ),
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
    let input_type = match req.rest.get("input_type") {
        None | Some(Value::Null) => "search_document",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(invalid("input_type: expected a string")),
    };
    Ok(Embeddings {
        texts,
        dimensions,
        base64,
        input_type,
    })
}

/// The Titan body for one text of `e`.
pub fn titan_request<'a>(
    family: Family,
    text: &'a str,
    e: &Embeddings<'_>,
) -> Result<TitanRequest<'a>, ProviderError> {
    let mut body = TitanRequest {
        input_text: text,
        dimensions: None,
        normalize: None,
        embedding_config: None,
    };
    match family {
        Family::TitanTextV1 if e.dimensions.is_some() => {
            return Err(ProviderError::Invalid(
                "dimensions: Titan Text Embeddings G1 has a fixed size; leave dimensions out \
                 or use amazon.titan-embed-text-v2"
                    .into(),
            ));
        }
        Family::TitanTextV1 => {}
        Family::TitanMultimodal => {
            body.embedding_config =
                e.dimensions
                    .map(|output_embedding_length| TitanEmbeddingConfig {
                        output_embedding_length,
                    });
        }
        Family::TitanText | Family::Cohere => {
            body.dimensions = e.dimensions;
            body.normalize = Some(true);
        }
    }
    Ok(body)
}

/// The Cohere body for all of `e`.
pub fn cohere_request<'a>(e: &'a Embeddings<'a>) -> CohereRequest<'a> {
    CohereRequest {
        texts: &e.texts,
        input_type: e.input_type,
        truncate: "NONE",
        output_dimension: e.dimensions,
    }
}

/// The Titan answers, one per text in order → the JSON of an OpenAI embeddings list, and the
/// summed token count.
pub fn titan_response(
    bodies: &[bytes::Bytes],
    e: &Embeddings<'_>,
    model: &str,
) -> Result<(Vec<u8>, u64), ProviderError> {
    let mut vectors = Vec::with_capacity(bodies.len());
    let mut tokens = 0;
    for body in bodies {
        let resp: TitanResponse =
            serde_json::from_slice(body).map_err(|e| ProviderError::Decode(e.to_string()))?;
        if resp.embedding.is_empty() {
            return Err(ProviderError::Decode(
                "a Titan answer without a vector".into(),
            ));
        }
        tokens += resp.input_text_token_count;
        vectors.push(resp.embedding);
    }
    Ok((list(vectors, e, model, tokens)?, tokens))
}

/// The Cohere answer → the JSON of an OpenAI embeddings list; `tokens` from the header.
pub fn cohere_response(
    body: &[u8],
    e: &Embeddings<'_>,
    model: &str,
    tokens: Option<u64>,
) -> Result<Vec<u8>, ProviderError> {
    let resp: CohereResponse =
        serde_json::from_slice(body).map_err(|e| ProviderError::Decode(e.to_string()))?;
    let vectors = match resp.embeddings {
        CohereEmbeddings::Floats(v) => v,
        CohereEmbeddings::ByType { float: Some(v) } => v,
        CohereEmbeddings::ByType { float: None } => {
            return Err(ProviderError::Decode(
                "the Cohere answer has no float embeddings".into(),
            ));
        }
    };
    if vectors.len() != e.texts.len() {
        return Err(ProviderError::Decode(format!(
            "{} embeddings for {} inputs",
            vectors.len(),
            e.texts.len()
        )));
    }
    list(vectors, e, model, tokens.unwrap_or(0))
}

fn list(
    vectors: Vec<Vec<f32>>,
    e: &Embeddings<'_>,
    model: &str,
    tokens: u64,
) -> Result<Vec<u8>, ProviderError> {
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| EmbeddingItem {
            object: "embedding",
            index,
            embedding: Vector::new(v, e.base64),
        })
        .collect();
    let list = EmbeddingList {
        object: "list",
        data,
        model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    serde_json::to_vec(&list).map_err(|e| ProviderError::Decode(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn req(body: Value) -> EmbeddingsRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn families_are_read_from_model_ids_profiles_and_arns() {
        for (model, family) in [
            ("amazon.titan-embed-text-v2:0", Family::TitanText),
            ("amazon.titan-embed-text-v1", Family::TitanTextV1),
            ("amazon.titan-embed-image-v1", Family::TitanMultimodal),
            ("cohere.embed-english-v3", Family::Cohere),
            ("us.cohere.embed-v4:0", Family::Cohere),
            (
                "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
                Family::TitanText,
            ),
        ] {
            assert_eq!(Family::of(model).unwrap(), family, "{model}");
        }
        let e = Family::of("anthropic.claude-3-haiku-20240307-v1:0").unwrap_err();
        assert!(matches!(e, ProviderError::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains("amazon.titan-embed"), "{e}");
    }

    #[test]
    fn titan_bodies_follow_each_model_generation() {
        let r = req(json!({"model": "m", "input": ["a", "b"], "dimensions": 256}));
        let e = embeddings(&r).unwrap();
        let body = |family| serde_json::to_value(titan_request(family, "a", &e).unwrap()).unwrap();
        assert_eq!(
            body(Family::TitanText),
            json!({"inputText": "a", "dimensions": 256, "normalize": true})
        );
        assert_eq!(
            body(Family::TitanMultimodal),
            json!({"inputText": "a", "embeddingConfig": {"outputEmbeddingLength": 256}})
        );
        assert!(matches!(
            titan_request(Family::TitanTextV1, "a", &e),
            Err(ProviderError::Invalid(_))
        ));
        let plain = req(json!({"model": "m", "input": "hello"}));
        let e = embeddings(&plain).unwrap();
        assert_eq!(
            serde_json::to_value(titan_request(Family::TitanTextV1, "hello", &e).unwrap()).unwrap(),
            json!({"inputText": "hello"})
        );
    }

    #[test]
    fn cohere_body_takes_every_text_and_the_input_type() {
        let r = req(json!({"model": "m", "input": ["a", "b"], "input_type": "search_query"}));
        let e = embeddings(&r).unwrap();
        assert_eq!(
            serde_json::to_value(cohere_request(&e)).unwrap(),
            json!({"texts": ["a", "b"], "input_type": "search_query", "truncate": "NONE"})
        );
        let r = req(json!({"model": "m", "input": "a", "dimensions": 512}));
        let e = embeddings(&r).unwrap();
        assert_eq!(
            serde_json::to_value(cohere_request(&e)).unwrap(),
            json!({"texts": ["a"], "input_type": "search_document", "truncate": "NONE", "output_dimension": 512})
        );
    }

    #[test]
    fn malformed_and_token_inputs_are_refused() {
        for body in [
            json!({"model": "m", "input": [1, 2, 3]}),
            json!({"model": "m", "input": [[1, 2]]}),
            json!({"model": "m", "input": []}),
            json!({"model": "m"}),
            json!({"model": "m", "input": [null]}),
            json!({"model": "m", "input": "x", "dimensions": -1}),
            json!({"model": "m", "input": "x", "encoding_format": "int8"}),
            json!({"model": "m", "input": "x", "input_type": 3}),
        ] {
            let e = embeddings(&req(body.clone())).unwrap_err();
            assert!(matches!(e, ProviderError::Invalid(_)), "{body}: {e:?}");
        }
    }

    #[test]
    fn titan_answers_become_one_list_with_summed_tokens() {
        let fixture = bytes::Bytes::from_static(include_bytes!(
            "../../../tests/fixtures/bedrock/titan_embed_response.json"
        ));
        let r = req(json!({"model": "m", "input": ["a", "b"]}));
        let e = embeddings(&r).unwrap();
        let (body, tokens) = titan_response(
            &[fixture.clone(), fixture],
            &e,
            "amazon.titan-embed-text-v2:0",
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(tokens, 12);
        assert_eq!(v["usage"], json!({"prompt_tokens": 12, "total_tokens": 12}));
        assert_eq!(v["model"], "amazon.titan-embed-text-v2:0");
        assert_eq!(v["data"][1]["index"], 1);
        assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 8);
        let b64 = req(json!({"model": "m", "input": "a", "encoding_format": "base64"}));
        let e = embeddings(&b64).unwrap();
        let one =
            bytes::Bytes::from_static(br#"{"embedding": [1.0, 0.0], "inputTextTokenCount": 1}"#);
        let (body, _) = titan_response(&[one], &e, "m").unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"][0]["embedding"], "AACAPwAAAAA=");
        let empty = bytes::Bytes::from_static(br#"{"inputTextTokenCount": 1}"#);
        assert!(matches!(
            titan_response(&[empty], &e, "m"),
            Err(ProviderError::Decode(_))
        ));
    }

    #[test]
    fn cohere_answers_in_both_shapes() {
        let r = req(json!({"model": "m", "input": ["a", "b"]}));
        let e = embeddings(&r).unwrap();
        let floats = include_bytes!("../../../tests/fixtures/bedrock/cohere_embed_response.json");
        let v: Value = serde_json::from_slice(
            &cohere_response(floats, &e, "cohere.embed-english-v3", Some(7)).unwrap(),
        )
        .unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        assert_eq!(v["usage"]["prompt_tokens"], 7);
        let by_type = br#"{"id": "x", "embeddings": {"float": [[0.5], [0.25]]}, "response_type": "embeddings_by_type"}"#;
        let v: Value =
            serde_json::from_slice(&cohere_response(by_type, &e, "m", None).unwrap()).unwrap();
        assert_eq!(v["data"][1]["embedding"], json!([0.25]));
        assert_eq!(v["usage"]["prompt_tokens"], 0);
        let one = req(json!({"model": "m", "input": "a"}));
        let e = embeddings(&one).unwrap();
        assert!(matches!(
            cohere_response(floats, &e, "m", None),
            Err(ProviderError::Decode(_))
        ));
        let int8 = br#"{"embeddings": {"int8": [[1]]}}"#;
        assert!(matches!(
            cohere_response(int8, &e, "m", None),
            Err(ProviderError::Decode(_))
        ));
    }
}
