//! `[guardrails]`: which detectors act how, for whom; and `[privacy]`: what the event stream
//! keeps of bodies. Parsed here, checked by `validate`; `crate::guardrails::policy` compiles them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::events::GuardrailAction;
use crate::guardrails::policy::GROUPS;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GuardrailsConfig {
    /// Scan requests at all.
    pub enabled: bool,
    /// Scan answers too (chat answers on every surface, streamed ones included), with the same
    /// actions: `redact` replaces the value in the answer, `block` withholds the answer (502
    /// `guardrail_blocked`), or ends a stream with an in-stream `guardrail_blocked` error before
    /// the value is sent.
    pub responses: bool,
    /// Put the values a request's redaction replaced back into its answer, where the model
    /// repeated their placeholders (de-anonymisation), for the caller only: the stream keeps
    /// what the privacy setting says.
    pub restore: bool,
    /// What a finding does, by detector name (`email`, `openai_key`, a custom detector's
    /// name), by class (`pii`, `secrets`) or for all (`*`); the most specific wins.
    pub actions: BTreeMap<String, GuardrailAction>,
    /// Overrides for some keys, users, teams, projects or models: the first rule that matches
    /// the request and names an action for a detector (by name, class or `*`) decides it.
    pub rules: Vec<GuardrailRule>,
    /// Detectors of your own: a regex, or words and phrases matched whole, case-insensitively.
    pub custom: Vec<CustomDetector>,
}

impl Default for GuardrailsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            responses: true,
            restore: false,
            actions: BTreeMap::from([
                ("secrets".to_owned(), GuardrailAction::Block),
                ("pii".to_owned(), GuardrailAction::Log),
            ]),
            rules: Vec::new(),
            custom: Vec::new(),
        }
    }
}

/// Actions for requests that match every label given.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardrailRule {
    /// The virtual key's id.
    pub key: Option<String>,
    pub user: Option<String>,
    pub team: Option<String>,
    pub project: Option<String>,
    /// The public model asked for.
    pub model: Option<String>,
    pub actions: BTreeMap<String, GuardrailAction>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    /// Its name in actions, findings and placeholders (`[EMPLOYEE_ID_1]`).
    pub name: String,
    /// A regex (Rust `regex` syntax).
    pub pattern: Option<String>,
    /// Or words and phrases.
    #[serde(default)]
    pub words: Vec<String>,
}

/// What the event stream (and so the outbox, the audit index and every replay) keeps of request
/// and response bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BodyPolicy {
    /// The body as the client sent it (and the answer as the provider gave it).
    Full,
    /// After the guardrails: what was redacted stays redacted, and a blocked or redacted
    /// secret never reaches the stream.
    #[default]
    Redacted,
    /// No bodies: ids, labels, numbers and findings only.
    Metadata,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    pub bodies: BodyPolicy,
    /// Per key, user, team or project: the first rule that matches decides.
    pub rules: Vec<PrivacyRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacyRule {
    pub key: Option<String>,
    pub user: Option<String>,
    pub team: Option<String>,
    pub project: Option<String>,
    pub bodies: BodyPolicy,
}

/// Every problem of the two sections, each with its path.
pub(super) fn validate(g: &GuardrailsConfig, problems: &mut Vec<String>) {
    let builtin: Vec<&str> = crate::guardrails::builtin_names().collect();
    let mut custom_names = Vec::new();
    for (i, c) in g.custom.iter().enumerate() {
        let at = format!("guardrails.custom[{i}]");
        let name_ok = !c.name.is_empty()
            && c.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            problems.push(format!(
                "{at}.name: lowercase letters, digits and `_` only; got {:?}",
                c.name
            ));
        }
        if builtin.contains(&c.name.as_str()) || GROUPS.contains(&c.name.as_str()) {
            problems.push(format!("{at}.name: `{}` is a built-in name", c.name));
        }
        if custom_names.contains(&c.name.as_str()) {
            problems.push(format!("{at}.name: `{}` is defined twice", c.name));
        }
        custom_names.push(c.name.as_str());
        match (&c.pattern, c.words.is_empty()) {
            (Some(_), false) | (None, true) => {
                problems.push(format!("{at}: give either `pattern` or `words`"));
            }
            (Some(p), true) => {
                if let Err(e) = regex::Regex::new(p) {
                    problems.push(format!("{at}.pattern: {e}"));
                }
            }
            (None, false) => {}
        }
    }
    let known = |name: &str| {
        builtin.contains(&name) || custom_names.contains(&name) || GROUPS.contains(&name)
    };
    let mut check = |at: &str, actions: &BTreeMap<String, GuardrailAction>| {
        for name in actions.keys() {
            if !known(name) {
                problems.push(format!(
                    "{at}.{name}: no such detector (built-in: {}; classes: pii, secrets, *)",
                    builtin.join(", ")
                ));
            }
        }
    };
    check("guardrails.actions", &g.actions);
    for (i, r) in g.rules.iter().enumerate() {
        check(&format!("guardrails.rules[{i}].actions"), &r.actions);
    }
}
