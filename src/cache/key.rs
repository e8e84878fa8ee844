//! A request's cache keys: the exact key (every field that can change the answer) and, for the
//! semantic cache, the hash of everything but the last user turn, plus that turn's text.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::CacheScope;
use crate::events::Principal;
use crate::providers::ChatRequest;

/// The tenant a cached answer belongs to: answers are only served inside it.
pub fn tenant(scope: CacheScope, p: &Principal) -> String {
    let by = |kind: &str, name: &Option<String>| name.as_ref().map(|n| format!("{kind}:{n}"));
    let key = || format!("key:{}", p.key_id);
    match scope {
        CacheScope::Global => "global".to_owned(),
        CacheScope::Key => key(),
        // A caller without the label is its own tenant: nothing is shared by accident.
        CacheScope::User => by("user", &p.user).unwrap_or_else(key),
        CacheScope::Team => by("team", &p.team).unwrap_or_else(key),
        CacheScope::Project => by("project", &p.project).unwrap_or_else(key),
    }
}

/// What the cache needs of a chat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// SHA-256 of the tenant, the public model and every field of the request but `stream`
    /// and `stream_options` (which change the framing, not the answer).
    pub exact: [u8; 32],
    /// For the semantic cache: SHA-256 of the same with the last user turn's text left out,
    /// and that text. `None` when the request does not end with a user turn of plain text
    /// no longer than the limit.
    pub semantic: Option<([u8; 32], String)>,
}

/// The keys of `req` for `tenant` and the public model `model`. `max_prompt_chars` bounds the
/// turns the semantic cache considers: in a long prompt a small change that matters moves the
/// vector too little to be seen.
pub fn keys(tenant: &str, model: &str, req: &ChatRequest, max_prompt_chars: usize) -> Keys {
    let exact = digest(tenant, model, "exact", &req.rest);
    let semantic = last_user_text(&req.rest)
        .filter(|(_, text)| text.chars().count() <= max_prompt_chars && !text.trim().is_empty())
        .map(|(at, text)| {
            let without = WithoutContent {
                rest: &req.rest,
                at,
            };
            (digest(tenant, model, "context", &without), text)
        });
    Keys { exact, semantic }
}

/// The request's fields as JSON with message `at`'s content as `null`: what the context key
/// hashes, written without copying the conversation.
struct WithoutContent<'a> {
    rest: &'a serde_json::Map<String, Value>,
    at: usize,
}

impl serde::Serialize for WithoutContent<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Messages<'a>(&'a [Value], usize);
        impl serde::Serialize for Messages<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for (i, m) in self.0.iter().enumerate() {
                    match m {
                        Value::Object(fields) if i == self.1 => {
                            seq.serialize_element(&Blanked(fields))?
                        }
                        other => seq.serialize_element(other)?,
                    }
                }
                seq.end()
            }
        }
        struct Blanked<'a>(&'a serde_json::Map<String, Value>);
        impl serde::Serialize for Blanked<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len()))?;
                for (k, v) in self.0 {
                    let v = if k == "content" { &Value::Null } else { v };
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
        let mut map = s.serialize_map(Some(self.rest.len()))?;
        for (k, v) in self.rest {
            match v {
                Value::Array(messages) if k == "messages" => {
                    map.serialize_entry(k, &Messages(messages, self.at))?
                }
                other => map.serialize_entry(k, other)?,
            }
        }
        map.end()
    }
}

fn digest(tenant: &str, model: &str, kind: &str, rest: &impl serde::Serialize) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in ["switchyard-cache-1", kind, tenant, model] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    // serde_json's map keeps keys sorted, at every level: the same request hashes the same
    // whatever order the client wrote its fields in.
    if let Ok(json) = serde_json::to_vec(rest) {
        h.update(&json);
    }
    h.finalize().into()
}

/// The last message, when it is the user's and its content is text (a string, or parts that are
/// all text): its index and its text.
fn last_user_text(rest: &serde_json::Map<String, Value>) -> Option<(usize, String)> {
    let messages = rest.get("messages")?.as_array()?;
    let at = messages.len().checked_sub(1)?;
    let last = messages.get(at)?.as_object()?;
    if last.get("role")?.as_str()? != "user" {
        return None;
    }
    let text = match last.get("content")? {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                let part = part.as_object()?;
                if part.get("type")?.as_str()? != "text" {
                    return None;
                }
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(part.get("text")?.as_str()?);
            }
            text
        }
        _ => return None,
    };
    Some((at, text))
}

/// What the client asked of the cache in `Cache-Control`: `no-cache` (do not answer from the
/// cache) and `no-store` (do not keep this answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    pub no_cache: bool,
    pub no_store: bool,
}

impl Directives {
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Self {
        let mut d = Self::default();
        for value in headers.get_all(axum::http::header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let name = directive.split('=').next().unwrap_or("").trim();
                if name.eq_ignore_ascii_case("no-cache") {
                    d.no_cache = true;
                } else if name.eq_ignore_ascii_case("no-store") {
                    d.no_store = true;
                }
            }
        }
        d
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn every_generation_field_is_in_the_exact_key_but_not_the_framing() {
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2});
        let k = |v: Value| keys("team:a", "m", &req(v), 2000).exact;
        let first = k(base.clone());
        let mut streamed = base.clone();
        streamed["stream"] = json!(true);
        streamed["stream_options"] = json!({"include_usage": true});
        assert_eq!(k(streamed), first);
        // Field order does not matter.
        let reordered: Value = serde_json::from_str(
            r#"{"temperature":0.2,"messages":[{"content":"hi","role":"user"}],"model":"m"}"#,
        )
        .unwrap();
        assert_eq!(k(reordered), first);
        for (field, value) in [
            ("temperature", json!(0.3)),
            ("seed", json!(1)),
            ("max_tokens", json!(5)),
            ("tools", json!([])),
            ("n", json!(2)),
            ("some_new_field", json!("x")),
        ] {
            let mut other = base.clone();
            other[field] = value;
            assert_ne!(k(other), first, "{field}");
        }
        assert_ne!(keys("team:b", "m", &req(base.clone()), 2000).exact, first);
        assert_ne!(keys("team:a", "m2", &req(base), 2000).exact, first);
    }

    #[test]
    fn the_semantic_context_is_everything_but_the_last_user_turn() {
        let conv = |last: &str| {
            req(json!({"model": "m", "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": last}]}
            ]}))
        };
        let a = keys("t", "m", &conv("How do I reverse a list?"), 2000);
        let b = keys("t", "m", &conv("reverse a list how"), 2000);
        let (ca, ta) = a.semantic.unwrap();
        let (cb, _) = b.semantic.unwrap();
        assert_eq!(ca, cb);
        assert_eq!(ta, "How do I reverse a list?");
        assert_ne!(a.exact, b.exact);
        // Too long, or not ending with the user's text: exact only.
        assert!(
            keys("t", "m", &conv(&"word ".repeat(500)), 2000)
                .semantic
                .is_none()
        );
        let tool = req(json!({"model": "m", "messages": [
            {"role": "user", "content": "x"}, {"role": "tool", "content": "y", "tool_call_id": "1"}
        ]}));
        assert!(keys("t", "m", &tool, 2000).semantic.is_none());
    }

    #[test]
    fn the_context_view_writes_the_request_with_that_content_nulled() {
        let r = req(json!({"model": "m", "temperature": 0.1, "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "name": "ann", "content": [{"type": "text", "text": "hi"}]}
        ]}));
        let mut nulled = r.rest.clone();
        nulled["messages"][1]["content"] = Value::Null;
        let view = WithoutContent {
            rest: &r.rest,
            at: 1,
        };
        assert_eq!(
            serde_json::to_string(&view).unwrap(),
            serde_json::to_string(&nulled).unwrap()
        );
    }

    #[test]
    fn tenants_fall_back_to_the_key() {
        let p = Principal {
            key_id: "k1".into(),
            team: Some("red".into()),
            ..Principal::default()
        };
        assert_eq!(tenant(CacheScope::Team, &p), "team:red");
        assert_eq!(tenant(CacheScope::Project, &p), "key:k1");
        assert_eq!(tenant(CacheScope::Global, &p), "global");
    }

    #[test]
    fn cache_control_directives() {
        let mut h = axum::http::HeaderMap::new();
        h.append("cache-control", "max-age=0, No-Store".parse().unwrap());
        let d = Directives::from_headers(&h);
        assert!(d.no_store && !d.no_cache);
        h.append("cache-control", "no-cache".parse().unwrap());
        assert!(Directives::from_headers(&h).no_cache);
    }
}
