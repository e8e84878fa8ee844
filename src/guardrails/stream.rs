//! Guardrails on a streamed answer. A finding may be split over chunks (`sk-proj-Qm7v` then
//! `T2xZ…`), so each text channel of the stream (a choice's content, a tool call's arguments)
//! is held back from the earliest place where a finding could still be starting, and let
//! through once that place can no longer start one. The detectors' patterns, compiled together
//! into one lazy DFA ([`Hold`]) and run anchored from every candidate start, say so byte by
//! byte. In prose that is the current word (any word could be the start of an e-mail address),
//! so the client gets each token when the next one arrives; a private key block is held whole,
//! up to [`MAX_HOLD`] bytes.
//!
//! What is let through is scanned with what came before it (the detectors' context words) and
//! what is held after it (whether a match is glued to more), then redacted, withheld (the
//! stream ends with an error) or logged, exactly as a complete answer is.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::util::{start, syntax};
use regex_automata::{Anchored, MatchKind};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::Finding;
use super::policy::{Placeholders, Policy, redactions, restored};
use crate::events::{FindingLocation, GuardrailAction, GuardrailFinding, Principal};
use crate::providers::canonical::{Chunk, ChunkChoice, Delta, OaOutToolCall};

/// The most a channel holds back: past it, text is let through (scanned) even if a finding
/// could still be starting in it. A 4096-bit RSA key in PEM is about 3.3 KB.
pub const MAX_HOLD: usize = 8 * 1024;

/// Released text kept before the held text, for the detectors that read what precedes a match
/// (`aws_secret` looks 160 bytes back).
const CONTEXT: usize = 256;

/// A placeholder the answer may repeat, held whole so that `restore` can put its value back.
const PLACEHOLDER: &str = r"\[[A-Z][A-Z0-9_]*_[0-9]+\]";

/// The detectors' patterns as one anchored lazy DFA: from a start, is a match still possible?
pub(crate) struct Hold {
    dfa: DFA,
    /// One cache for every stream: a stream steps it for a few bytes per chunk.
    cache: Mutex<Cache>,
}

/// Where one text channel is: what was let through (its tail) and what is held.
#[derive(Default)]
struct Channel {
    context: String,
    pending: String,
    /// Offsets in `pending` where a finding could still be starting, with the DFA's state
    /// there; the earliest start of each state only (the later ones have the same future).
    live: Vec<(usize, LazyStateID)>,
    /// Bytes of `pending` the live set has seen.
    seen: usize,
    /// The cache's clear count the states belong to: a clear invalidates them.
    clears: usize,
}

impl Hold {
    /// `None` when a pattern cannot be compiled without Unicode classes: the caller falls back
    /// to a fixed window.
    pub(crate) fn new<'a>(patterns: impl Iterator<Item = &'a str>) -> Option<Self> {
        let mut all: Vec<&str> = patterns.collect();
        all.push(PLACEHOLDER);
        // Bytes, not characters: an ASCII view of every pattern is enough to tell where a
        // match may start, and it never gives up on non-ASCII text.
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .cache_capacity(16 << 20),
            )
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .build_many(&all)
            .ok()?;
        let cache = Mutex::new(dfa.create_cache());
        Some(Self { dfa, cache })
    }

    /// Step `ch`'s live starts over its new bytes; the earliest one (`pending.len()`: none).
    fn advance(&self, ch: &mut Channel) -> usize {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        for _ in 0..2 {
            if cache.clear_count() != ch.clears {
                ch.live.clear();
                ch.seen = 0;
                ch.clears = cache.clear_count();
            }
            if self.step(&mut cache, ch).is_some() && cache.clear_count() == ch.clears {
                return ch.live.first().map_or(ch.pending.len(), |(s, _)| *s);
            }
        }
        // The DFA could not tell (its cache kept filling up): hold everything.
        0
    }

    fn step(&self, cache: &mut Cache, ch: &mut Channel) -> Option<()> {
        let bytes = ch.pending.as_bytes();
        for (i, &b) in bytes.iter().enumerate().skip(ch.seen) {
            let behind = match i {
                0 => ch.context.as_bytes().last().copied(),
                _ => Some(bytes[i - 1]),
            };
            let config = start::Config::new()
                .anchored(Anchored::Yes)
                .look_behind(behind);
            let s0 = self.dfa.start_state(cache, &config).ok()?;
            ch.live.push((i, s0));
            let mut kept = 0;
            for r in 0..ch.live.len() {
                let (s, id) = ch.live[r];
                let next = self.dfa.next_state(cache, id, b).ok()?;
                if !next.is_dead() && !ch.live[..kept].iter().any(|(_, k)| *k == next) {
                    ch.live[kept] = (s, next);
                    kept += 1;
                }
            }
            ch.live.truncate(kept);
            ch.seen = i + 1;
        }
        Some(())
    }
}

/// A text channel of a stream: (choice, tool call); a choice's content has no tool call.
type ChannelKey = (u32, Option<u32>);

/// A detector whose action is `block` found something: the stream ends with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Withheld;

/// What a channel lets through: as the client gets it, and as a `redacted` stream keeps it.
#[derive(Debug, Default, PartialEq)]
pub struct Release {
    pub forward: String,
    pub masked: String,
}

/// The guardrails of one streamed answer, over its text channels.
pub struct AnswerGuard {
    policy: Arc<Policy>,
    /// Per detector, its action for this caller and model.
    actions: Vec<GuardrailAction>,
    names: Placeholders,
    /// The request's placeholders and their values (decoded), when `restore` is on.
    restore: Vec<(String, String)>,
    /// Per detector: count and action.
    tally: BTreeMap<usize, (u32, GuardrailAction)>,
    /// By (choice, tool call): content is `None`.
    channels: BTreeMap<ChannelKey, Channel>,
    blocked: Vec<String>,
}

impl AnswerGuard {
    /// `None` when answers are not scanned for this caller.
    pub fn new(
        policy: Arc<Policy>,
        p: &Principal,
        model: &str,
        asked: &[(String, String)],
    ) -> Option<Self> {
        if !policy.scans_answers() {
            return None;
        }
        let actions = policy.actions_for(p, model);
        let restore = if policy.restore {
            asked
                .iter()
                .map(|(k, v)| (k.clone(), decode_json_text(v)))
                .collect()
        } else {
            Vec::new()
        };
        Some(Self {
            actions,
            names: Placeholders::seeded(asked),
            restore,
            tally: BTreeMap::new(),
            channels: BTreeMap::new(),
            blocked: Vec::new(),
            policy,
        })
    }

    /// Append `text` to a channel; what can be let through now (`last`: everything). `Err`: a
    /// detector whose action is `block` found something; the stream must end ([`Self::blocked`]).
    pub fn push(
        &mut self,
        channel: ChannelKey,
        text: &str,
        last: bool,
    ) -> Result<Release, Withheld> {
        if !self.blocked.is_empty() {
            return Err(Withheld);
        }
        let ch = self.channels.entry(channel).or_default();
        ch.pending.push_str(text);
        let mut cut = if last {
            ch.pending.len()
        } else {
            match self.policy.hold() {
                Some(hold) => hold.advance(ch),
                None => ch.pending.len().saturating_sub(CONTEXT),
            }
        };
        if ch.pending.len() - cut > MAX_HOLD {
            let floor = ch.pending.len() - MAX_HOLD;
            ch.live.retain(|(s, _)| *s >= floor);
            cut = ch.live.first().map_or(ch.pending.len(), |(s, _)| *s);
        }
        while !ch.pending.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            return Ok(Release::default());
        }
        // Most text has no candidate at all: then nothing before it can make one (the patterns
        // look back at most a `\b` or one character), and the scan with the context is skipped.
        let scanner = self.policy.scanner();
        let (scanned, base, found) = if scanner.any(&ch.pending) {
            let scanned = format!("{}{}", ch.context, ch.pending);
            let found = scanner.scan(&scanned);
            (Cow::Owned(scanned), ch.context.len(), found)
        } else {
            (Cow::Borrowed(ch.pending.as_str()), 0, Vec::new())
        };
        // A finding across the cut is held from its start.
        let mut end = base + cut;
        while let Some(f) = found
            .iter()
            .find(|f| f.start >= base && f.start < end && f.end > end)
        {
            end = f.start;
        }
        let mine: Vec<Finding> = found
            .iter()
            .filter(|f| f.start >= base && f.end <= end)
            .map(|f| Finding {
                detector: f.detector,
                start: f.start - base,
                end: f.end - base,
            })
            .collect();
        let released = scanned[base..end].to_owned();
        drop(scanned);
        let released = released.as_str();
        let actions: Vec<GuardrailAction> = mine.iter().map(|f| self.actions[f.detector]).collect();
        for (f, action) in mine.iter().zip(&actions) {
            let entry = self.tally.entry(f.detector).or_insert((0, *action));
            entry.0 += 1;
            let name = &self.policy.scanner().detectors()[f.detector].name;
            if *action == GuardrailAction::Block && !self.blocked.contains(name) {
                self.blocked.push(name.clone());
            }
        }
        if !self.blocked.is_empty() {
            return Err(Withheld);
        }
        let names = self.policy.placeholders(released, &mine, &mut self.names);
        let (forward, masked) = redactions(released, &mine, &actions, &names);
        let forward = restored(&forward, &self.restore).unwrap_or(forward);
        let taken = end - base;
        ch.context.push_str(released);
        if ch.context.len() > CONTEXT {
            let mut from = ch.context.len() - CONTEXT;
            while !ch.context.is_char_boundary(from) {
                from += 1;
            }
            ch.context.drain(..from);
        }
        ch.pending.drain(..taken);
        ch.seen -= taken.min(ch.seen);
        ch.live.retain(|(s, _)| *s >= taken);
        for (s, _) in &mut ch.live {
            *s -= taken;
        }
        Ok(Release { forward, masked })
    }

    /// The channels of `choice` with text still held.
    fn held(&self, choice: u32) -> Vec<ChannelKey> {
        self.channels
            .iter()
            .filter(|(k, ch)| k.0 == choice && !ch.pending.is_empty())
            .map(|(k, _)| *k)
            .collect()
    }

    /// Detectors whose action is `block` that found something.
    pub fn blocked(&self) -> &[String] {
        &self.blocked
    }

    /// What was found in the answer, by detector.
    pub fn findings(&self) -> Vec<GuardrailFinding> {
        self.tally
            .iter()
            .map(|(d, (count, action))| GuardrailFinding {
                detector: self.policy.scanner().detectors()[*d].name.clone(),
                action: *action,
                count: *count,
                location: FindingLocation::Response,
                message: None,
            })
            .collect()
    }
}

/// A value as the request's JSON wrote it, decoded (the stream's text is decoded).
fn decode_json_text(v: &str) -> String {
    serde_json::from_str::<String>(&format!("\"{v}\"")).unwrap_or_else(|_| v.to_owned())
}

/// What to do with one chunk of the canonical stream.
#[derive(Debug)]
pub enum Step {
    /// Send these chunks (none: everything in it is held), and keep `stored` in the stream's
    /// log under a `redacted` privacy policy.
    Send {
        send: Vec<Bytes>,
        stored: Vec<Bytes>,
    },
    /// A detector whose action is `block` found something: end the stream with an error.
    Blocked,
}

/// A canonical `chat.completion.chunk`, as much as the guard reads of it. The raw values are
/// slices of the chunk's bytes: their place in it is where a replacement goes.
#[derive(Deserialize)]
struct ChunkView<'a> {
    #[serde(borrow, default)]
    id: Cow<'a, str>,
    #[serde(default)]
    created: u64,
    #[serde(borrow, default)]
    model: Cow<'a, str>,
    #[serde(borrow, default)]
    choices: Vec<ChoiceView<'a>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(default)]
    index: u32,
    #[serde(borrow, default)]
    delta: BTreeMap<Cow<'a, str>, &'a RawValue>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
    /// Log probabilities of the chunk's tokens: a chunk carrying them is sent even when all of
    /// its text is held.
    #[serde(borrow, default)]
    logprobs: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CallView<'a> {
    #[serde(default)]
    index: u32,
    #[serde(borrow, default)]
    function: Option<FunctionView<'a>>,
}

#[derive(Deserialize)]
struct FunctionView<'a> {
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

/// One string of the chunk replaced: its byte range, and what goes there for the client and
/// for the log.
struct Edit<'a> {
    at: std::ops::Range<usize>,
    original: Cow<'a, str>,
    release: Release,
}

/// [`AnswerGuard`] over the canonical stream's chunks.
pub struct ChunkGuard {
    guard: AnswerGuard,
    /// `id`, `created`, `model` of the last chunk: a flushed chunk repeats them.
    last: Option<(String, u64, String)>,
}

fn is_null(v: &RawValue) -> bool {
    v.get() == "null"
}

/// Where `part` (a slice of `whole`) sits in it.
fn range_of(whole: &[u8], part: &str) -> std::ops::Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

impl ChunkGuard {
    pub fn new(guard: AnswerGuard) -> Self {
        Self { guard, last: None }
    }

    pub fn guard(&self) -> &AnswerGuard {
        &self.guard
    }

    /// Guard one chunk: its text let through as far as it can be, what a finishing choice
    /// still held flushed in a chunk of its own before it.
    pub fn chunk(&mut self, data: &Bytes) -> Step {
        let Ok(view) = serde_json::from_slice::<ChunkView<'_>>(data) else {
            return Step::Send {
                send: vec![data.clone()],
                stored: vec![data.clone()],
            };
        };
        if self.last.as_ref().is_none_or(|(id, created, model)| {
            (id.as_str(), *created, model.as_str()) != (&*view.id, view.created, &*view.model)
        }) {
            self.last = Some((view.id.to_string(), view.created, view.model.to_string()));
        }
        let mut edits: Vec<Edit> = Vec::new();
        // What finishing choices still held goes before the chunk.
        let mut send = Vec::new();
        let mut stored = Vec::new();
        // Nothing in the chunk but held text: it is not sent at all.
        let mut only_text = view.usage.is_none_or(is_null) && !view.choices.is_empty();
        for choice in &view.choices {
            let finishing = choice.finish_reason.is_some();
            only_text &= !finishing
                && choice.logprobs.is_none_or(is_null)
                && choice
                    .delta
                    .iter()
                    .all(|(k, v)| k == "content" || is_null(v));
            if let Some(raw) = choice.delta.get("content").filter(|v| !is_null(v)) {
                let Ok(text) = serde_json::from_str::<Cow<'_, str>>(raw.get()) else {
                    continue;
                };
                let Ok(release) = self.guard.push((choice.index, None), &text, finishing) else {
                    return Step::Blocked;
                };
                edits.push(Edit {
                    at: range_of(data, raw.get()),
                    original: text,
                    release,
                });
            }
            if let Some(raw) = choice.delta.get("tool_calls").filter(|v| !is_null(v)) {
                let calls: Vec<CallView<'_>> = serde_json::from_str(raw.get()).unwrap_or_default();
                for call in calls {
                    let Some(args) = call.function.and_then(|f| f.arguments) else {
                        continue;
                    };
                    let Ok(text) = serde_json::from_str::<Cow<'_, str>>(args.get()) else {
                        continue;
                    };
                    let channel = (choice.index, Some(call.index));
                    let Ok(release) = self.guard.push(channel, &text, finishing) else {
                        return Step::Blocked;
                    };
                    edits.push(Edit {
                        at: range_of(data, args.get()),
                        original: text,
                        release,
                    });
                }
            }
            // The choice's other channels (not in this chunk) let go of what they hold.
            if finishing && self.flush(choice.index, &mut send, &mut stored).is_err() {
                return Step::Blocked;
            }
        }
        edits.sort_by_key(|e| e.at.start);
        let unchanged = edits.iter().all(|e| e.release.forward == e.original);
        let unmasked = edits.iter().all(|e| e.release.masked == e.original);
        if only_text && edits.iter().all(|e| e.release.forward.is_empty()) {
            // Held whole: neither sent nor logged (it is, once let through).
        } else {
            let fwd = if unchanged {
                data.clone()
            } else {
                rewrite(data, &edits, |r| &r.forward)
            };
            let kept = if unmasked {
                data.clone()
            } else {
                rewrite(data, &edits, |r| &r.masked)
            };
            send.push(fwd);
            stored.push(kept);
        }
        Step::Send { send, stored }
    }

    /// The stream ended without finishing every choice: what they still held.
    pub fn end(&mut self) -> Step {
        let choices: BTreeSet<u32> = self.guard.channels.keys().map(|k| k.0).collect();
        let mut send = Vec::new();
        let mut stored = Vec::new();
        for choice in choices {
            if self.flush(choice, &mut send, &mut stored).is_err() {
                return Step::Blocked;
            }
        }
        Step::Send { send, stored }
    }

    /// Let through everything `choice` holds, as a chunk of its own onto `send` (and its log
    /// form onto `stored`).
    fn flush(
        &mut self,
        choice: u32,
        send: &mut Vec<Bytes>,
        stored: &mut Vec<Bytes>,
    ) -> Result<(), Withheld> {
        let mut released = Vec::new();
        for channel in self.guard.held(choice) {
            released.push((channel, self.guard.push(channel, "", true)?));
        }
        if released.is_empty() {
            return Ok(());
        }
        if let Some((fwd, kept)) = self.flushed_chunk(choice, &released) {
            send.push(fwd);
            stored.push(kept);
        }
        Ok(())
    }

    /// A chunk carrying what `choice`'s channels released at its end: for the client, and for
    /// the log.
    fn flushed_chunk(
        &self,
        choice: u32,
        released: &[(ChannelKey, Release)],
    ) -> Option<(Bytes, Bytes)> {
        let (id, created, model) = self.last.as_ref()?;
        let encode = |pick: fn(&Release) -> &str| {
            let mut delta = Delta::default();
            for ((_, call), r) in released {
                match call {
                    None => delta.content = Some(pick(r)),
                    Some(i) => delta.tool_calls.push(OaOutToolCall::fragment(*i, pick(r))),
                }
            }
            let choices = [ChunkChoice {
                index: choice,
                delta,
                logprobs: None,
                finish_reason: None,
            }];
            Chunk::encode(id, *created, model, &choices, None).ok()
        };
        Some((encode(|r| &r.forward)?, encode(|r| &r.masked)?))
    }
}

/// `data` with each edit's range replaced by the JSON string of what `pick` takes.
fn rewrite(data: &[u8], edits: &[Edit<'_>], pick: impl Fn(&Release) -> &String) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 16);
    let mut at = 0;
    for e in edits {
        out.extend_from_slice(&data[at..e.at.start]);
        // Serialising a string cannot fail.
        out.extend_from_slice(
            serde_json::to_string(pick(&e.release))
                .unwrap_or_default()
                .as_bytes(),
        );
        at = e.at.end;
    }
    out.extend_from_slice(&data[at..]);
    Bytes::from(out)
}

#[cfg(test)]
mod tests;
