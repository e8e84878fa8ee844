//! The OpenAI embeddings wire for the mock: the request mirror and deterministic vectors (a
//! hash of each input seeds a generator; the vector is L2-normalised), as floats or base64.
//! Pure, like `openai.rs`.

use serde::{Deserialize, Serialize};

use super::openai::Text;

/// The parts of a CreateEmbeddingRequest the mock looks at.
#[derive(Deserialize)]
pub(crate) struct EmbeddingsRequest<'a> {
    #[serde(borrow)]
    model: Text<'a>,
    #[serde(borrow)]
    input: EmbeddingInput<'a>,
    dimensions: Option<usize>,
    #[serde(borrow)]
    encoding_format: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EmbeddingInput<'a> {
    One(#[serde(borrow)] Text<'a>),
    Many(#[serde(borrow)] Vec<Text<'a>>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

impl EmbeddingsRequest<'_> {
    pub(crate) fn model(&self) -> &str {
        self.model.as_str()
    }
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    /// Little-endian f32s, base64: what the official Python SDK asks for by default.
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// Embedding dimensions accepted; bounded so one request cannot ask for gigabytes.
pub(super) const MAX_DIMENSIONS: usize = 8192;
pub(super) const DEFAULT_DIMENSIONS: usize = 16;

/// Why no embeddings list was made.
pub(crate) enum Rejection {
    /// The client's fault: a 400 naming the parameter.
    Invalid {
        param: &'static str,
        message: String,
    },
    Internal(serde_json::Error),
}

fn invalid(param: &'static str, message: String) -> Rejection {
    Rejection::Invalid { param, message }
}

/// The JSON of the embeddings list for this request.
pub(crate) fn list(req: &EmbeddingsRequest<'_>) -> Result<Vec<u8>, Rejection> {
    let dims = req.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
    if dims == 0 || dims > MAX_DIMENSIONS {
        let message = format!("dimensions must be in 1..={MAX_DIMENSIONS}, got {dims}");
        return Err(invalid("dimensions", message));
    }
    let base64 = match req.encoding_format.as_ref().map(Text::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            let message = format!("encoding_format must be \"float\" or \"base64\", got {other:?}");
            return Err(invalid("encoding_format", message));
        }
    };
    // (seed, tokens) per input: texts count words, as chat does; token arrays count tokens.
    let inputs: Vec<(u64, u64)> = match &req.input {
        EmbeddingInput::One(t) => vec![text_input(t.as_str())],
        EmbeddingInput::Many(ts) => ts.iter().map(|t| text_input(t.as_str())).collect(),
        EmbeddingInput::Tokens(tokens) => vec![token_input(tokens)],
        EmbeddingInput::TokenLists(lists) => lists.iter().map(|t| token_input(t)).collect(),
    };
    if inputs.is_empty() {
        return Err(invalid("input", "input must not be empty".to_owned()));
    }
    let tokens = inputs.iter().map(|(_, n)| n).sum();
    let data = inputs
        .iter()
        .enumerate()
        .map(|(index, &(seed, _))| {
            let v = unit_vector(seed, dims);
            let embedding = if base64 {
                Vector::Base64(base64_f32(&v))
            } else {
                Vector::Floats(v)
            };
            EmbeddingItem {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    let list = EmbeddingList {
        object: "list",
        data,
        model: req.model(),
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    serde_json::to_vec(&list).map_err(Rejection::Internal)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(seed, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

pub(super) fn text_input(text: &str) -> (u64, u64) {
    (
        fnv1a(FNV_OFFSET, text.as_bytes()),
        text.split_whitespace().count() as u64,
    )
}

fn token_input(tokens: &[u32]) -> (u64, u64) {
    // A distinct starting seed keeps token arrays apart from texts with the same bytes.
    let seed = tokens
        .iter()
        .fold(!FNV_OFFSET, |h, t| fnv1a(h, &t.to_le_bytes()));
    (seed, tokens.len() as u64)
}

/// A deterministic pseudo-random vector from `seed` (splitmix64), L2-normalised.
pub(super) fn unit_vector(seed: u64, dims: usize) -> Vec<f32> {
    let mut state = seed;
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // 24 high bits → [-1, 1) exactly representable in f32.
            (z >> 40) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect();
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        // invariant: dims >= 1, checked by `list` before any vector is made.
        v[0] = 1.0;
    } else {
        v.iter_mut()
            .for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
    v
}

/// OpenAI's `encoding_format: "base64"`: the little-endian f32 bytes, base64-encoded.
fn base64_f32(v: &[f32]) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
