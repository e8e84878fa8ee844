//! Content rules: `[[routing.rules]]`, compiled once at start and evaluated in order on each
//! request; the first rule whose conditions all hold picks the public model that serves it.
//! Cheap checks run first, and the prompt is tokenized only when a rule asks for a token count.

use axum::http::{HeaderMap, HeaderName};
use regex::Regex;
use serde_json::{Map, Value};

use crate::config::RawRule;
use crate::events::Principal;
use crate::providers::{ChatRequest, tokens};

/// What a rule looks at.
pub struct Input<'a> {
    /// The model the client asked for.
    pub model: &'a str,
    pub headers: &'a HeaderMap,
    pub principal: &'a Principal,
    /// The chat request; `None` for endpoints without messages (embeddings), where only the
    /// model, header, metadata and key conditions can hold.
    pub chat: Option<&'a ChatRequest>,
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub target: String,
    models: Vec<String>,
    headers: Vec<(HeaderName, String)>,
    metadata: Vec<(String, String)>,
    user: Option<String>,
    team: Option<String>,
    project: Option<String>,
    min_tokens: Option<u64>,
    max_tokens: Option<u64>,
    has_tools: Option<bool>,
    has_images: Option<bool>,
    /// Lowercased.
    keywords: Vec<String>,
    regex: Option<Regex>,
}

/// The rules in order.
#[derive(Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    /// Compile validated rules (config validation already refused bad regexes and headers;
    /// one that still fails to compile never matches).
    pub fn compile(raw: &[RawRule]) -> Self {
        let rules = raw
            .iter()
            .map(|r| {
                let w = &r.when;
                Rule {
                    name: r.name.clone(),
                    target: r.target.clone(),
                    models: w.models.clone(),
                    headers: w
                        .headers
                        .iter()
                        .filter_map(|(k, v)| {
                            HeaderName::try_from(k.to_ascii_lowercase())
                                .ok()
                                .map(|h| (h, v.clone()))
                        })
                        .collect(),
                    metadata: w
                        .metadata
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    user: w.user.clone(),
                    team: w.team.clone(),
                    project: w.project.clone(),
                    min_tokens: w.min_prompt_tokens,
                    max_tokens: w.max_prompt_tokens,
                    has_tools: w.has_tools,
                    has_images: w.has_images,
                    keywords: w.keywords.iter().map(|k| k.to_lowercase()).collect(),
                    regex: w.regex.as_deref().map(|re| {
                        // invariant: validation compiled it already; a never-matching
                        // expression is the safe fallback.
                        Regex::new(re).unwrap_or_else(|_| never())
                    }),
                }
            })
            .collect();
        Self { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first matching rule.
    pub fn evaluate(&self, input: &Input<'_>) -> Option<&Rule> {
        let mut facts = Facts::default();
        self.rules.iter().find(|r| r.matches(input, &mut facts))
    }
}

fn never() -> Regex {
    // invariant: a literal, valid pattern that matches nothing.
    #[allow(clippy::unwrap_used)]
    Regex::new(r"[^\s\S]").unwrap()
}

/// Facts about the request computed at most once across rules.
#[derive(Default)]
struct Facts {
    prompt_tokens: Option<u64>,
    last_user: Option<String>,
}

impl Rule {
    fn matches(&self, input: &Input<'_>, facts: &mut Facts) -> bool {
        if !self.models.is_empty() && !self.models.iter().any(|m| m == input.model) {
            return false;
        }
        let labels = [
            (&self.user, &input.principal.user),
            (&self.team, &input.principal.team),
            (&self.project, &input.principal.project),
        ];
        if labels
            .iter()
            .any(|(want, have)| want.is_some() && want != have)
        {
            return false;
        }
        let header_ok = |(name, want): &(HeaderName, String)| {
            input
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == want)
        };
        if !self.headers.iter().all(header_ok) {
            return false;
        }
        let body = input.chat.map(|c| &c.rest);
        if !self.metadata.is_empty() {
            let meta = body
                .and_then(|b| b.get("metadata"))
                .and_then(Value::as_object);
            let ok = self.metadata.iter().all(|(k, want)| {
                meta.and_then(|m| m.get(k))
                    .and_then(Value::as_str)
                    .is_some_and(|v| v == want)
            });
            if !ok {
                return false;
            }
        }
        if let Some(want) = self.has_tools {
            let has = body
                .and_then(|b| b.get("tools"))
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty());
            if has != want {
                return false;
            }
        }
        if let Some(want) = self.has_images
            && body.is_some_and(has_image) != want
        {
            return false;
        }
        if !self.keywords.is_empty() || self.regex.is_some() {
            let text = facts
                .last_user
                .get_or_insert_with(|| body.map(last_user_text).unwrap_or_default());
            if !self.keywords.is_empty() {
                let lower = text.to_lowercase();
                if !self.keywords.iter().any(|k| lower.contains(k.as_str())) {
                    return false;
                }
            }
            if let Some(re) = &self.regex
                && !re.is_match(text)
            {
                return false;
            }
        }
        if self.min_tokens.is_some() || self.max_tokens.is_some() {
            let Some(chat) = input.chat else {
                return false;
            };
            let n = *facts
                .prompt_tokens
                .get_or_insert_with(|| tokens::prompt_tokens(chat));
            if self.min_tokens.is_some_and(|lo| n < lo) || self.max_tokens.is_some_and(|hi| n > hi)
            {
                return false;
            }
        }
        true
    }
}

fn messages(body: &Map<String, Value>) -> &[Value] {
    body.get("messages")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The text of the last user message (its text parts joined by newlines).
fn last_user_text(body: &Map<String, Value>) -> String {
    let Some(content) = messages(body)
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
    else {
        return String::new();
    };
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn has_image(body: &Map<String, Value>) -> bool {
    messages(body).iter().any(|m| {
        m.get("content")
            .and_then(Value::as_array)
            .is_some_and(|parts| {
                parts
                    .iter()
                    .any(|p| p.get("type").and_then(Value::as_str) == Some("image_url"))
            })
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(toml_rules: &str) -> Rules {
        #[derive(serde::Deserialize)]
        struct R {
            rules: Vec<RawRule>,
        }
        let r: R = toml::from_str(toml_rules).unwrap();
        Rules::compile(&r.rules)
    }

    fn chat(body: Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    fn pick<'r>(
        rules: &'r Rules,
        model: &str,
        headers: &HeaderMap,
        principal: &Principal,
        req: &ChatRequest,
    ) -> Option<&'r str> {
        rules
            .evaluate(&Input {
                model,
                headers,
                principal,
                chat: Some(req),
            })
            .map(|r| r.name.as_str())
    }

    #[test]
    fn first_matching_rule_wins_in_order() {
        let r = rules(
            r#"
            [[rules]]
            name = "summaries"
            target = "cheap"
            when = { models = ["auto"], keywords = ["Summarize", "tl;dr"], max_prompt_tokens = 200 }
            [[rules]]
            name = "tools"
            target = "strong"
            when = { models = ["auto"], has_tools = true }
            [[rules]]
            name = "gold"
            target = "strong"
            when = { headers = { "X-Tier" = "gold" }, team = "research" }
            [[rules]]
            name = "images"
            target = "vision"
            when = { has_images = true, regex = "(?i)what is (in|on) this" }
            [[rules]]
            name = "long"
            target = "strong"
            when = { models = ["auto"], min_prompt_tokens = 1000 }
            [[rules]]
            name = "tagged"
            target = "cheap"
            when = { metadata = { purpose = "eval" } }
            "#,
        );
        let none = HeaderMap::new();
        let anyone = Principal::default();
        let short = chat(json!({"model": "auto", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "please SUMMARIZE this: rivers flow"}]}));
        assert_eq!(pick(&r, "auto", &none, &anyone, &short), Some("summaries"));
        assert_eq!(pick(&r, "gpt", &none, &anyone, &short), None, "other model");

        let tools = chat(
            json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f"}}]}),
        );
        assert_eq!(pick(&r, "auto", &none, &anyone, &tools), Some("tools"));

        let mut gold = HeaderMap::new();
        gold.insert("x-tier", "gold".parse().unwrap());
        let research = Principal {
            team: Some("research".into()),
            ..Principal::default()
        };
        let hi = chat(json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(pick(&r, "x", &gold, &research, &hi), Some("gold"));
        assert_eq!(
            pick(&r, "x", &gold, &anyone, &hi),
            None,
            "team label required"
        );

        let image = chat(
            json!({"model": "x", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}]}),
        );
        assert_eq!(pick(&r, "x", &none, &anyone, &image), Some("images"));

        let long_text = "word ".repeat(1500);
        let long =
            chat(json!({"model": "auto", "messages": [{"role": "user", "content": long_text}]}));
        assert_eq!(pick(&r, "auto", &none, &anyone, &long), Some("long"));

        let tagged = chat(json!({"model": "x", "metadata": {"purpose": "eval"},
            "messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(pick(&r, "x", &none, &anyone, &tagged), Some("tagged"));
    }

    #[test]
    fn only_the_last_user_message_is_searched() {
        let r = rules(
            r#"
            [[rules]]
            name = "k"
            target = "t"
            when = { keywords = ["translate"] }
            "#,
        );
        let req = chat(json!({"model": "m", "messages": [
            {"role": "user", "content": "translate this"},
            {"role": "assistant", "content": "done"},
            {"role": "user", "content": "thanks"}]}));
        let (h, p) = (HeaderMap::new(), Principal::default());
        assert_eq!(pick(&r, "m", &h, &p, &req), None);
    }
}
