//! Guardrails: find personal data ([`pii`]) and credentials ([`secrets`]) in text, in one pass.
//!
//! Every detector is a pattern plus a check that confirms a candidate (a checksum, a range, the
//! characters around it, entropy). A [`Scanner`] compiles all of them into one `RegexSet`: a
//! single pass over the text says which detectors have candidates at all, and only those run
//! their own pattern to locate them. Text without anything sensitive (most of it) costs that one
//! pass. Where candidates overlap, the more specific detector wins (a vendor token over a generic
//! `password=` value, a longer match over a shorter one).

mod pii;
pub mod policy;
mod secrets;
pub mod stream;

pub use policy::{Inspection, Policy};
pub use stream::{AnswerGuard, ChunkGuard, Step};

use regex::{Regex, RegexSet};
use serde::Serialize;

/// How specific a detector is: on overlapping matches, the higher class wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A `password = …` style assignment.
    Generic,
    /// Personal data, and custom detectors.
    Pii,
    /// A credential with a recognisable format.
    Secret,
}

/// Confirms a candidate at `start..end` of the text (byte offsets).
type Confirm = fn(&str, usize, usize) -> bool;

/// A built-in detector's definition.
pub(crate) struct Spec {
    name: &'static str,
    /// Redactions read `[<placeholder>_<n>]`.
    placeholder: &'static str,
    class: Class,
    pattern: &'static str,
    /// The capture group holding the sensitive part (0: the whole match).
    group: usize,
    confirm: Confirm,
}

/// A detector from the configuration: a regex, or a list of words and phrases (matched whole,
/// case-insensitively).
#[derive(Debug, Clone)]
pub struct Custom {
    pub name: String,
    pub pattern: CustomPattern,
}

#[derive(Debug, Clone)]
pub enum CustomPattern {
    Regex(String),
    Words(Vec<String>),
}

/// One compiled detector.
pub struct Detector {
    pub name: String,
    pub placeholder: String,
    pub class: Class,
    regex: Regex,
    group: usize,
    confirm: Confirm,
}

/// Where a detector found something: byte offsets into the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// Index of the detector in its [`Scanner`].
    pub detector: usize,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum GuardrailError {
    #[error("guardrail `{name}`: {source}")]
    Pattern {
        name: String,
        #[source]
        source: regex::Error,
    },
    #[error("guardrail `{0}`: an empty word list")]
    NoWords(String),
}

/// Every detector, compiled for one pass.
pub struct Scanner {
    set: RegexSet,
    detectors: Vec<Detector>,
}

fn always(_: &str, _: usize, _: usize) -> bool {
    true
}

/// The built-in detectors' names, in scanner order.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    secrets::SPECS.iter().chain(pii::SPECS).map(|s| s.name)
}

impl Scanner {
    /// The built-in detectors and `custom` ones.
    pub fn new(custom: &[Custom]) -> Result<Self, GuardrailError> {
        let compile = |name: &str, pattern: &str| {
            Regex::new(pattern).map_err(|source| GuardrailError::Pattern {
                name: name.to_owned(),
                source,
            })
        };
        let mut detectors = Vec::new();
        for s in secrets::SPECS.iter().chain(pii::SPECS) {
            detectors.push(Detector {
                name: s.name.to_owned(),
                placeholder: s.placeholder.to_owned(),
                class: s.class,
                regex: compile(s.name, s.pattern)?,
                group: s.group,
                confirm: s.confirm,
            });
        }
        for c in custom {
            let pattern = match &c.pattern {
                CustomPattern::Regex(r) => r.clone(),
                CustomPattern::Words(words) => {
                    if words.is_empty() {
                        return Err(GuardrailError::NoWords(c.name.clone()));
                    }
                    let alts: Vec<String> = words.iter().map(|w| regex::escape(w)).collect();
                    format!(r"(?i)\b(?:{})\b", alts.join("|"))
                }
            };
            detectors.push(Detector {
                name: c.name.clone(),
                placeholder: c.name.to_ascii_uppercase(),
                class: Class::Pii,
                regex: compile(&c.name, &pattern)?,
                group: 0,
                confirm: always,
            });
        }
        let set = RegexSet::new(detectors.iter().map(|d| d.regex.as_str())).map_err(|source| {
            GuardrailError::Pattern {
                name: "(all)".into(),
                source,
            }
        })?;
        Ok(Self { set, detectors })
    }

    pub fn detectors(&self) -> &[Detector] {
        &self.detectors
    }

    /// Whether any detector has a candidate in `text` (one pass, nothing located).
    pub fn any(&self, text: &str) -> bool {
        self.set.is_match(text)
    }

    /// Everything sensitive in `text`, in order, without overlaps.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut found = Vec::new();
        for i in self.set.matches(text).iter() {
            let d = &self.detectors[i];
            if d.group == 0 {
                for m in d.regex.find_iter(text) {
                    if (d.confirm)(text, m.start(), m.end()) {
                        found.push(Finding {
                            detector: i,
                            start: m.start(),
                            end: m.end(),
                        });
                    }
                }
            } else {
                for caps in d.regex.captures_iter(text) {
                    if let Some(m) = caps.get(d.group)
                        && (d.confirm)(text, m.start(), m.end())
                    {
                        found.push(Finding {
                            detector: i,
                            start: m.start(),
                            end: m.end(),
                        });
                    }
                }
            }
        }
        self.resolve(found)
    }

    /// Keep, of overlapping findings, the most specific (then the longest, then the first).
    fn resolve(&self, mut found: Vec<Finding>) -> Vec<Finding> {
        if found.len() < 2 {
            return found;
        }
        found.sort_by(|a, b| {
            let (ca, cb) = (
                self.detectors[a.detector].class,
                self.detectors[b.detector].class,
            );
            cb.cmp(&ca)
                .then((b.end - b.start).cmp(&(a.end - a.start)))
                .then(a.start.cmp(&b.start))
        });
        let mut kept: Vec<Finding> = Vec::with_capacity(found.len());
        for f in found {
            if !kept.iter().any(|k| f.start < k.end && k.start < f.end) {
                kept.push(f);
            }
        }
        kept.sort_by_key(|f| f.start);
        kept
    }
}

#[cfg(test)]
mod tests;
