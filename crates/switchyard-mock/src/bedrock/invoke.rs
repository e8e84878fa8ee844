//! InvokeModel bodies of the embedding models the mock plays: Amazon Titan Text Embeddings
//! (one `inputText` per call) and Cohere Embed (a batch of `texts`). The vectors are the
//! OpenAI embeddings mock's for the same text and size, the token counts its word counts.
//! Pure: the handler in `mod.rs` owns counting, faults and headers.
//!
//! Requests are checked as the models check them, and refused in their words: `Malformed
//! input request: <what>, please reformat your input and try again.`

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::super::embeddings::{text_input, unit_vector};
use super::super::openai::Text;

/// The embedding model families, by model id prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// `amazon.titan-embed-text-v1`: 1536 dimensions and `inputText` only.
    TitanV1,
    /// `amazon.titan-embed-*` otherwise, shaped as Titan Text Embeddings V2.
    TitanV2,
    /// `cohere.embed-*`, shaped as Cohere Embed v3 (1024 dimensions).
    Cohere,
}

/// What an embeddings answer is made of.
pub(super) struct Embedded {
    pub body: Vec<u8>,
    /// What the OpenAI mock would report as `prompt_tokens` for the same input.
    pub input_tokens: u64,
}

/// Why no embeddings were made.
pub(super) enum Rejection {
    /// The client's fault: a 400 ValidationException with this message.
    Invalid(String),
    Internal(serde_json::Error),
}

fn malformed(what: impl std::fmt::Display) -> Rejection {
    Rejection::Invalid(format!(
        "Malformed input request: {what}, please reformat your input and try again."
    ))
}

const TITAN_V1_DIMENSIONS: usize = 1536;
const TITAN_DIMENSIONS: [usize; 3] = [256, 512, 1024];
const TITAN_DEFAULT_DIMENSIONS: usize = 1024;
const COHERE_DIMENSIONS: usize = 1024;
/// Cohere's documented limit of texts per call.
const COHERE_MAX_TEXTS: usize = 96;

impl Family {
    pub(super) fn of(model: &str) -> Option<Self> {
        if model.starts_with("amazon.titan-embed-text-v1") {
            Some(Self::TitanV1)
        } else if model.starts_with("amazon.titan-embed") {
            Some(Self::TitanV2)
        } else if model.starts_with("cohere.embed") {
            Some(Self::Cohere)
        } else {
            None
        }
    }

    /// The model's JSON answer to `body`; `id` names a Cohere response.
    pub(super) fn embed(self, body: &[u8], id: &str) -> Result<Embedded, Rejection> {
        match self {
            Self::TitanV1 | Self::TitanV2 => titan(self == Self::TitanV1, body),
            Self::Cohere => cohere(body, id),
        }
    }
}

/// A Titan request; unknown keys are refused, as Titan's schema refuses them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TitanRequest<'a> {
    #[serde(borrow)]
    input_text: Text<'a>,
    #[serde(default)]
    dimensions: Option<usize>,
    /// The mock's vectors are unit vectors either way.
    #[serde(default)]
    normalize: Option<bool>,
    #[serde(default, borrow)]
    embedding_types: Option<Vec<Text<'a>>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TitanResponse<'a> {
    embedding: &'a [f32],
    input_text_token_count: u64,
    /// V2 always sends it, with `float` unless only `binary` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    embeddings_by_type: Option<ByType<'a>>,
}

#[derive(Serialize)]
struct ByType<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    float: Option<&'a [f32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    binary: Option<Vec<u8>>,
}

fn titan(v1: bool, body: &[u8]) -> Result<Embedded, Rejection> {
    let req: TitanRequest<'_> = serde_json::from_slice(body).map_err(malformed)?;
    if v1 {
        let extra = [
            ("dimensions", req.dimensions.is_some()),
            ("normalize", req.normalize.is_some()),
            ("embeddingTypes", req.embedding_types.is_some()),
        ];
        if let Some((key, _)) = extra.into_iter().find(|(_, present)| *present) {
            return Err(malformed(format!(
                "extraneous key [{key}] is not permitted"
            )));
        }
    }
    let text = req.input_text.as_str();
    if text.is_empty() {
        return Err(malformed("#/inputText: expected minLength: 1, actual: 0"));
    }
    let dims = match (v1, req.dimensions) {
        (true, _) => TITAN_V1_DIMENSIONS,
        (false, None) => TITAN_DEFAULT_DIMENSIONS,
        (false, Some(d)) if TITAN_DIMENSIONS.contains(&d) => d,
        (false, Some(d)) => {
            return Err(malformed(format!(
                "#/dimensions: {d} is not a valid enum value"
            )));
        }
    };
    let (mut float, mut binary) = (true, false);
    if let Some(types) = &req.embedding_types {
        float = false;
        for (i, t) in types.iter().enumerate() {
            match t.as_str() {
                "float" => float = true,
                "binary" => binary = true,
                other => {
                    return Err(malformed(format!(
                        "#/embeddingTypes/{i}: {other} is not a valid enum value"
                    )));
                }
            }
        }
    }
    let (seed, input_tokens) = text_input(text);
    let vector = unit_vector(seed, dims);
    let by_type = ByType {
        float: float.then_some(vector.as_slice()),
        binary: binary.then(|| vector.iter().map(|x| u8::from(*x > 0.0)).collect()),
    };
    let response = TitanResponse {
        embedding: &vector,
        input_text_token_count: input_tokens,
        embeddings_by_type: (!v1).then_some(by_type),
    };
    let body = serde_json::to_vec(&response).map_err(Rejection::Internal)?;
    Ok(Embedded { body, input_tokens })
}

/// A Cohere Embed request. Images are recognised only to be refused: the mock embeds text.
#[derive(Deserialize)]
struct CohereRequest<'a> {
    #[serde(default, borrow)]
    texts: Option<Vec<Text<'a>>>,
    #[serde(default)]
    images: Option<IgnoredAny>,
    #[serde(default, borrow)]
    input_type: Option<Text<'a>>,
    #[serde(default, borrow)]
    truncate: Option<Text<'a>>,
    #[serde(default, borrow)]
    embedding_types: Option<Vec<Text<'a>>>,
}

#[derive(Serialize)]
struct CohereResponse<'a> {
    id: &'a str,
    embeddings: CohereEmbeddings,
    response_type: &'static str,
    texts: Vec<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum CohereEmbeddings {
    Floats(Vec<Vec<f32>>),
    ByType { float: Vec<Vec<f32>> },
}

fn cohere(body: &[u8], id: &str) -> Result<Embedded, Rejection> {
    let req: CohereRequest<'_> = serde_json::from_slice(body).map_err(malformed)?;
    let Some(input_type) = &req.input_type else {
        return Err(malformed("#: required key [input_type] not found"));
    };
    let kind = input_type.as_str();
    if !matches!(
        kind,
        "search_document" | "search_query" | "classification" | "clustering" | "image"
    ) {
        return Err(malformed(format!(
            "#/input_type: {kind} is not a valid enum value"
        )));
    }
    if req.images.is_some() {
        return Err(malformed("#/images: the switchyard mock embeds texts only"));
    }
    let Some(texts) = &req.texts else {
        return Err(malformed("#: required key [texts] not found"));
    };
    if texts.len() > COHERE_MAX_TEXTS {
        return Err(malformed(format!(
            "#/texts: expected maxItems: {COHERE_MAX_TEXTS}, actual: {}",
            texts.len()
        )));
    }
    if let Some(truncate) = &req.truncate
        && !matches!(truncate.as_str(), "NONE" | "START" | "END")
    {
        return Err(malformed(format!(
            "#/truncate: {} is not a valid enum value",
            truncate.as_str()
        )));
    }
    if let Some(types) = &req.embedding_types
        && let Some((i, t)) = types
            .iter()
            .enumerate()
            .find(|(_, t)| t.as_str() != "float")
    {
        return Err(malformed(format!(
            "#/embedding_types/{i}: {} is not supported by the switchyard mock (only float)",
            t.as_str()
        )));
    }
    let texts: Vec<&str> = texts.iter().map(Text::as_str).collect();
    let mut input_tokens = 0;
    let vectors = texts
        .iter()
        .map(|text| {
            let (seed, tokens) = text_input(text);
            input_tokens += tokens;
            unit_vector(seed, COHERE_DIMENSIONS)
        })
        .collect();
    let (embeddings, response_type) = match req.embedding_types {
        None => (CohereEmbeddings::Floats(vectors), "embeddings_floats"),
        Some(_) => (
            CohereEmbeddings::ByType { float: vectors },
            "embeddings_by_type",
        ),
    };
    let response = CohereResponse {
        id,
        embeddings,
        response_type,
        texts,
    };
    let body = serde_json::to_vec(&response).map_err(Rejection::Internal)?;
    Ok(Embedded { body, input_tokens })
}
