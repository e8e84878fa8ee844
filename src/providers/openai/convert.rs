//! The one conversion the OpenAI wire format needs: the canonical request is already OpenAI's
//! shape, so the outgoing body only renames the model and, on streams, asks for usage.

use super::wire::{OutRequest, OutStreamOptions};
use crate::providers::{ChatRequest, ProviderError, http};

/// Canonical request → upstream body: `model` is the deployment's, and a stream always asks for
/// the final usage chunk (withheld from clients that did not ask for it), so usage is never
/// estimated for a provider that can report it.
pub fn request(req: &ChatRequest, model: &str, stream: bool) -> Result<Vec<u8>, ProviderError> {
    let out = OutRequest {
        model,
        stream: stream.then_some(true),
        stream_options: stream.then(|| OutStreamOptions {
            include_usage: true,
            rest: req.stream_options.as_ref().map(|o| &o.rest),
        }),
        rest: &req.rest,
    };
    http::to_json(&out)
}
