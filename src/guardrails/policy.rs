//! The configured policy: what each finding does for a given caller and model, and what the
//! event stream keeps of bodies.
//!
//! A request's body is scanned once, as the raw JSON the client sent: whatever the surface
//! (chat, embeddings, Anthropic Messages), every string in it is covered in one pass, and a
//! redaction is a text replacement by a placeholder that is itself valid inside a JSON string
//! (`[EMAIL_1]`), after which the body is parsed again. Placeholders are consistent within a
//! request: the same value gets the same placeholder, so the model still sees that two mentions
//! are one.

use std::collections::{BTreeMap, HashMap};

use super::stream::Hold;
use super::{Class, Custom, CustomPattern, Detector, Finding, GuardrailError, Scanner};
use crate::config::{BodyPolicy, GuardrailsConfig, PrivacyConfig};
use crate::events::{FindingLocation, GuardrailAction, GuardrailFinding, Principal};

/// Labels a rule matches on; `None` matches anything.
#[derive(Debug, Default)]
struct Match {
    key: Option<String>,
    user: Option<String>,
    team: Option<String>,
    project: Option<String>,
    model: Option<String>,
}

impl Match {
    fn matches(&self, p: &Principal, model: Option<&str>) -> bool {
        let is = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| got == Some(w))
        };
        is(&self.key, Some(p.key_id.as_str()))
            && is(&self.user, p.user.as_deref())
            && is(&self.team, p.team.as_deref())
            && is(&self.project, p.project.as_deref())
            && is(&self.model, model)
    }
}

/// The guardrails and privacy sections, compiled.
pub struct Policy {
    scanner: Scanner,
    enabled: bool,
    /// Per detector, the action of `[guardrails.actions]`.
    defaults: Vec<GuardrailAction>,
    /// Per rule, per detector, the action it names (if any).
    rules: Vec<(Match, Vec<Option<GuardrailAction>>)>,
    bodies: BodyPolicy,
    privacy_rules: Vec<(Match, BodyPolicy)>,
    /// Scan answers too.
    pub responses: bool,
    /// Put the redacted values back into answers.
    pub restore: bool,
    /// Where a streamed answer may hold a finding still coming (`None`: a fixed window).
    hold: Option<Hold>,
}

/// What the request guardrails decided about one body.
#[derive(Debug, Default)]
pub struct Inspection {
    /// By detector and message: what was found and done.
    pub findings: Vec<GuardrailFinding>,
    /// Detectors whose action is `block` that found something.
    pub blocked: Vec<String>,
    /// The body to forward, when something was redacted.
    pub forward: Option<Vec<u8>>,
    /// The body with every finding replaced, whatever its action (what a `redacted` privacy
    /// policy stores), when anything was found.
    pub masked: Option<Vec<u8>>,
    /// Each placeholder put into the forwarded body and the value it stands for (as it was
    /// written in the JSON), to restore them in the answer when `restore` is on.
    pub restore: Vec<(String, String)>,
    /// The body was scanned (guardrails on, UTF-8): `masked` is then exactly what a `redacted`
    /// privacy policy stores (`None`: nothing found, the body as is).
    pub scanned: bool,
}

/// Names an action may be given for besides a detector's: each class ([`class_name`]), and all.
pub const GROUPS: [&str; 3] = ["pii", "secrets", "*"];

fn class_name(c: Class) -> &'static str {
    match c {
        Class::Pii => "pii",
        Class::Secret | Class::Generic => "secrets",
    }
}

/// The action `actions` gives detector `d`: by name, then class, then `*`.
fn pick(actions: &BTreeMap<String, GuardrailAction>, d: &Detector) -> Option<GuardrailAction> {
    actions
        .get(&d.name)
        .or_else(|| actions.get(class_name(d.class)))
        .or_else(|| actions.get("*"))
        .copied()
}

impl Policy {
    pub fn new(g: &GuardrailsConfig, p: &PrivacyConfig) -> Result<Self, GuardrailError> {
        let custom: Vec<Custom> = g
            .custom
            .iter()
            .map(|c| Custom {
                name: c.name.clone(),
                pattern: match &c.pattern {
                    Some(r) => CustomPattern::Regex(r.clone()),
                    None => CustomPattern::Words(c.words.clone()),
                },
            })
            .collect();
        let scanner = Scanner::new(&custom)?;
        let hold = Hold::new(scanner.detectors().iter().map(|d| d.regex.as_str()));
        if hold.is_none() {
            tracing::warn!(
                "a custom guardrail pattern needs Unicode classes: streamed answers are held back \
                 by a fixed window instead of by the patterns"
            );
        }
        let defaults = scanner
            .detectors()
            .iter()
            .map(|d| pick(&g.actions, d).unwrap_or(GuardrailAction::Log))
            .collect();
        let rules = g
            .rules
            .iter()
            .map(|r| {
                let m = Match {
                    key: r.key.clone(),
                    user: r.user.clone(),
                    team: r.team.clone(),
                    project: r.project.clone(),
                    model: r.model.clone(),
                };
                let actions = scanner
                    .detectors()
                    .iter()
                    .map(|d| pick(&r.actions, d))
                    .collect();
                (m, actions)
            })
            .collect();
        let privacy_rules = p
            .rules
            .iter()
            .map(|r| {
                (
                    Match {
                        key: r.key.clone(),
                        user: r.user.clone(),
                        team: r.team.clone(),
                        project: r.project.clone(),
                        model: None,
                    },
                    r.bodies,
                )
            })
            .collect();
        Ok(Self {
            scanner,
            enabled: g.enabled,
            defaults,
            rules,
            bodies: p.bodies,
            privacy_rules,
            responses: g.responses,
            restore: g.restore,
            hold,
        })
    }

    pub fn scanner(&self) -> &Scanner {
        &self.scanner
    }

    pub(super) fn hold(&self) -> Option<&Hold> {
        self.hold.as_ref()
    }

    /// Answers are scanned.
    pub fn scans_answers(&self) -> bool {
        self.enabled && self.responses
    }

    /// Each detector's action for `p` and `model`.
    pub(super) fn actions_for(&self, p: &Principal, model: &str) -> Vec<GuardrailAction> {
        let rules: Vec<&Vec<Option<GuardrailAction>>> = self
            .rules
            .iter()
            .filter(|(m, _)| m.matches(p, Some(model)))
            .map(|(_, a)| a)
            .collect();
        (0..self.scanner.detectors().len())
            .map(|d| self.action(&rules, d))
            .collect()
    }

    /// What the stream keeps of `p`'s bodies.
    pub fn bodies(&self, p: &Principal) -> BodyPolicy {
        self.privacy_rules
            .iter()
            .find(|(m, _)| m.matches(p, None))
            .map_or(self.bodies, |(_, b)| *b)
    }

    /// Detector `d`'s action for this caller and model.
    fn action(&self, rules: &[&Vec<Option<GuardrailAction>>], d: usize) -> GuardrailAction {
        rules.iter().find_map(|r| r[d]).unwrap_or(self.defaults[d])
    }

    /// Scan a request body (raw JSON) sent by `p` for `model`.
    pub fn inspect(&self, p: &Principal, model: &str, body: &[u8]) -> Inspection {
        self.inspect_at(p, model, body, FindingLocation::Request, &[])
    }

    /// Scan an answer (raw JSON, in the surface's shape) to `p`'s request for `model`. `asked`
    /// are the request's placeholders: a value the request redacted keeps its placeholder in
    /// the answer, and new ones are numbered after them.
    pub fn inspect_answer(
        &self,
        p: &Principal,
        model: &str,
        body: &[u8],
        asked: &[(String, String)],
    ) -> Inspection {
        if !self.responses {
            return Inspection::default();
        }
        self.inspect_at(p, model, body, FindingLocation::Response, asked)
    }

    fn inspect_at(
        &self,
        p: &Principal,
        model: &str,
        body: &[u8],
        location: FindingLocation,
        asked: &[(String, String)],
    ) -> Inspection {
        if !self.enabled {
            return Inspection::default();
        }
        let normalized = unescaped(body);
        let body = normalized.as_deref().unwrap_or(body);
        let Ok(text) = std::str::from_utf8(body) else {
            return Inspection::default();
        };
        let found = self.scanner.scan(text);
        if found.is_empty() {
            return Inspection {
                scanned: true,
                ..Inspection::default()
            };
        }
        let by_detector = self.actions_for(p, model);
        let actions: Vec<GuardrailAction> = found.iter().map(|f| by_detector[f.detector]).collect();
        let names = self.placeholders(text, &found, &mut Placeholders::seeded(asked));
        let redacted = actions.contains(&GuardrailAction::Redact);
        let (forward, masked) = redactions(text, &found, &actions, &names);
        // (detector, message) → (count, action)
        let mut tally: BTreeMap<(usize, Option<u32>), (u32, GuardrailAction)> = BTreeMap::new();
        let mut blocked = Vec::new();
        let mut restore: Vec<(String, String)> = Vec::new();
        let starts = match location {
            FindingLocation::Request => element_starts(text),
            FindingLocation::Response => Vec::new(),
        };
        for (i, (f, action)) in found.iter().zip(&actions).enumerate() {
            let d = &self.scanner.detectors()[f.detector];
            match action {
                GuardrailAction::Redact if !restore.iter().any(|(p, _)| *p == names[i]) => {
                    restore.push((names[i].clone(), text[f.start..f.end].to_owned()));
                }
                GuardrailAction::Block if !blocked.contains(&d.name) => {
                    blocked.push(d.name.clone());
                }
                _ => {}
            }
            let entry = tally
                .entry((f.detector, message_index(&starts, f)))
                .or_insert((0, *action));
            entry.0 += 1;
        }
        let findings = tally
            .into_iter()
            .map(|((d, message), (count, action))| GuardrailFinding {
                detector: self.scanner.detectors()[d].name.clone(),
                action,
                count,
                location,
                message,
            })
            .collect();
        Inspection {
            findings,
            blocked,
            forward: redacted.then(|| forward.into_bytes()),
            masked: Some(masked.into_bytes()),
            restore,
            scanned: true,
        }
    }

    /// `text` (an answer, or a stream's log) with everything the detectors find replaced by
    /// placeholders: what a `redacted` privacy policy stores.
    pub fn mask(&self, text: &str) -> String {
        if !self.enabled {
            return text.to_owned();
        }
        let found = self.scanner.scan(text);
        if found.is_empty() {
            return text.to_owned();
        }
        let names = self.placeholders(text, &found, &mut Placeholders::default());
        splice(text, &found, |i| Some(names[i].as_str()))
    }

    /// Each finding's placeholder, numbered by `given` (the same value, the same one).
    pub(super) fn placeholders(
        &self,
        text: &str,
        found: &[Finding],
        given: &mut Placeholders,
    ) -> Vec<String> {
        found
            .iter()
            .map(|f| {
                let d = &self.scanner.detectors()[f.detector];
                given.of(d, &text[f.start..f.end]).to_owned()
            })
            .collect()
    }
}

/// A body that writes characters as `\u` escapes (`sk\u002dproj-…`, or every non-ASCII letter,
/// as Python's `json.dumps` does) hides them from a scan of the raw JSON: such a body is scanned
/// (and, when redacted, forwarded) as serde_json writes it again, with only `"`, `\` and control
/// characters escaped. `None`: the body has no `\u` escape (or is not JSON), scan it as it is.
fn unescaped(body: &[u8]) -> Option<Vec<u8>> {
    if !body.windows(2).any(|w| w == b"\\u") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    serde_json::to_vec(&value).ok()
}

/// `text` with the `i`th finding replaced by `with(i)` (kept as it is on `None`).
pub(super) fn splice<'a>(
    text: &str,
    found: &[Finding],
    with: impl Fn(usize) -> Option<&'a str>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (i, f) in found.iter().enumerate() {
        out.push_str(&text[at..f.start]);
        out.push_str(with(i).unwrap_or(&text[f.start..f.end]));
        at = f.end;
    }
    out.push_str(&text[at..]);
    out
}

/// `text` as the client gets it (the findings whose action is `redact` replaced by their
/// placeholders) and as a `redacted` stream keeps it (every finding replaced).
pub(super) fn redactions(
    text: &str,
    found: &[Finding],
    actions: &[GuardrailAction],
    names: &[String],
) -> (String, String) {
    let forward = splice(text, found, |i| {
        (actions[i] == GuardrailAction::Redact).then_some(names[i].as_str())
    });
    (forward, splice(text, found, |i| Some(names[i].as_str())))
}

/// `answer` with the request's placeholders replaced by the values they stand for. The values
/// are put back as they were written in the request's JSON, so the answer stays valid JSON.
pub fn restore(answer: &[u8], pairs: &[(String, String)]) -> Option<Vec<u8>> {
    restored(std::str::from_utf8(answer).ok()?, pairs).map(String::into_bytes)
}

/// `text` with each placeholder of `pairs` replaced by its value; `None` when it has none.
pub(super) fn restored(text: &str, pairs: &[(String, String)]) -> Option<String> {
    if !pairs.iter().any(|(p, _)| text.contains(p.as_str())) {
        return None;
    }
    let mut out = text.to_owned();
    for (placeholder, value) in pairs {
        out = out.replace(placeholder.as_str(), value);
    }
    Some(out)
}

/// Where each element of the body's top-level `messages` array (chat, Anthropic Messages) or
/// `input` array (embeddings) starts, in bytes: a small lexer over the raw JSON (strings and
/// their escapes, nesting), so findings can name their message without a second parse.
fn element_starts(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    let mut key_at_depth1: Option<(usize, usize)> = None;
    let mut in_target = false;
    let mut expect_element = false;
    let mut starts = Vec::new();
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if depth == 1 {
                    key_at_depth1 = Some((start, i.min(b.len())));
                }
                if in_target && depth == 2 && expect_element {
                    starts.push(start - 1);
                    expect_element = false;
                }
            }
            b'[' | b'{' => {
                if in_target && depth == 2 && expect_element {
                    starts.push(i);
                    expect_element = false;
                }
                if b[i] == b'[' && depth == 1 {
                    in_target = key_at_depth1
                        .is_some_and(|(s, e)| matches!(&text[s..e], "messages" | "input"));
                    expect_element = in_target;
                }
                depth += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    in_target = false;
                }
            }
            b',' if in_target && depth == 2 => expect_element = true,
            _ => {}
        }
        i += 1;
    }
    starts
}

/// The index of the message (or embeddings input) a finding is in; `None` outside them.
fn message_index(starts: &[usize], f: &Finding) -> Option<u32> {
    starts.iter().rposition(|&s| s <= f.start).map(|i| i as u32)
}

/// Placeholders of one request: `[EMAIL_1]`, `[EMAIL_2]`, … the same value, the same one.
#[derive(Default)]
pub(super) struct Placeholders {
    given: HashMap<(String, String), String>,
    counts: HashMap<String, u32>,
}

impl Placeholders {
    /// Placeholders already given (`[EMAIL_1]` → its value): kept, and counted.
    pub(super) fn seeded(given: &[(String, String)]) -> Self {
        let mut p = Self::default();
        for (placeholder, value) in given {
            let Some((kind, n)) = placeholder
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.rsplit_once('_'))
            else {
                continue;
            };
            let n: u32 = n.parse().unwrap_or(0);
            p.given
                .insert((kind.to_owned(), value.clone()), placeholder.clone());
            let count = p.counts.entry(kind.to_owned()).or_insert(0);
            *count = (*count).max(n);
        }
        p
    }

    pub(super) fn of(&mut self, d: &Detector, value: &str) -> &str {
        let key = (d.placeholder.clone(), value.to_owned());
        if !self.given.contains_key(&key) {
            let n = self.counts.entry(d.placeholder.clone()).or_insert(0);
            *n += 1;
            let p = format!("[{}_{}]", d.placeholder, n);
            self.given.insert(key.clone(), p);
        }
        &self.given[&key]
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{GuardrailsConfig, PrivacyConfig};
    use crate::events::{FindingLocation, GuardrailAction, Principal};
    use std::collections::BTreeMap;

    /// E-mail addresses redacted, secrets blocked, the rest logged.
    fn redact_email_block_secrets() -> super::Policy {
        let cfg = GuardrailsConfig {
            actions: BTreeMap::from([
                ("email".to_owned(), GuardrailAction::Redact),
                ("secrets".to_owned(), GuardrailAction::Block),
            ]),
            ..GuardrailsConfig::default()
        };
        super::Policy::new(&cfg, &PrivacyConfig::default()).unwrap()
    }

    #[test]
    fn answers_are_redacted_or_withheld_and_placeholders_restored() {
        let policy = redact_email_block_secrets();
        let p = Principal::default();
        let req = br#"{"messages":[{"role":"user","content":"ping ana@corp-mail.io"}]}"#;
        let asked = policy.inspect(&p, "m", req);
        assert_eq!(
            asked.restore,
            [("[EMAIL_1]".to_owned(), "ana@corp-mail.io".to_owned())]
        );
        let answer =
            br#"{"choices":[{"message":{"content":"wrote [EMAIL_1] and bo@corp-mail.io"}}]}"#;
        let checked = policy.inspect_answer(&p, "m", answer, &asked.restore);
        assert_eq!(checked.findings[0].location, FindingLocation::Response);
        let forwarded = String::from_utf8(checked.forward.unwrap()).unwrap();
        assert!(
            forwarded.contains("wrote [EMAIL_1] and [EMAIL_2]"),
            "a new address in the answer is numbered after the request's: {forwarded}"
        );
        let restored = super::restore(br#"{"content":"wrote [EMAIL_1]"}"#, &asked.restore).unwrap();
        assert_eq!(restored, br#"{"content":"wrote ana@corp-mail.io"}"#);
        let leaked = br#"{"content":"use sk-proj-Qm7vT2xZ9LpR4kWc8YbN1sDf6Hj3Ga5Ue0Ko"}"#;
        assert_eq!(
            policy.inspect_answer(&p, "m", leaked, &[]).blocked,
            ["openai_key"]
        );
    }

    #[test]
    fn values_written_as_unicode_escapes_are_seen() {
        let policy = redact_email_block_secrets();
        let p = Principal::default();
        let key = br#"{"messages":[{"role":"user","content":"key sk\u002dproj-Qm7vT2xZ9LpR4kWc8YbN1sDf6Hj3Ga5Ue0Ko"}]}"#;
        assert_eq!(policy.inspect(&p, "m", key).blocked, ["openai_key"]);
        let mail =
            br#"{"messages":[{"role":"user","content":"Se\u00f1or, mail ana\u0040corp-mail.io"}]}"#;
        let got = policy.inspect(&p, "m", mail);
        let forward = String::from_utf8(got.forward.unwrap()).unwrap();
        assert!(forward.contains("Señor, mail [EMAIL_1]"), "{forward}");
        assert_eq!(got.findings[0].message, Some(0));
    }

    #[test]
    fn elements_of_messages_and_inputs() {
        let chat = r#"{"model":"m","messages":[{"content":"a \"]}","role":"system"},{"role":"user","content":[{"type":"text","text":"x"}]}],"user":"u"}"#;
        let starts = super::element_starts(chat);
        assert_eq!(starts.len(), 2, "{starts:?}");
        assert_eq!(&chat[starts[1]..starts[1] + 8], r#"{"role":"#);
        let emb = r#"{"input":["one","two"],"model":"m"}"#;
        let starts = super::element_starts(emb);
        assert_eq!(
            starts.iter().map(|&s| &emb[s..s + 4]).collect::<Vec<_>>(),
            [r#""one"#, r#""two"#]
        );
    }
}
