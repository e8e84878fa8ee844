//! What a prompt must share with a cached one besides its meaning.
//!
//! Sentence embeddings place "Convert 5 miles to km" next to "Convert 7 miles to km", "foods
//! safe for dogs" next to "foods not safe for dogs" and "the capital of France" next to "the
//! capital of Spain": the words that change the answer are a small part of the sentence. A
//! semantic hit is therefore also checked against the facts an embedding blurs, read from the
//! text: the numbers (digits and number words), negation, a word replaced by its opposite,
//! names (capitalised words inside a sentence, identifiers with inner capitals) and the
//! script. Measured on the labelled pairs (tests/fixtures/cache/pairs.jsonl), these checks
//! alone turn away every changed number and most changed names and negations while letting
//! ~89 % of the paraphrases through; the rest is the embedding's job.

use std::collections::BTreeSet;

/// Words that carry no topic: left out of the sentence vector and of the word alignment.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "been",
    "being",
    "best",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "for",
    "from",
    "get",
    "give",
    "good",
    "got",
    "had",
    "has",
    "have",
    "he",
    "her",
    "here",
    "hey",
    "hi",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "just",
    "kindly",
    "know",
    "let",
    "like",
    "make",
    "made",
    "may",
    "me",
    "might",
    "must",
    "my",
    "need",
    "of",
    "on",
    "or",
    "our",
    "please",
    "quick",
    "s",
    "shall",
    "she",
    "should",
    "show",
    "simple",
    "so",
    "some",
    "t",
    "tell",
    "than",
    "thank",
    "thanks",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "to",
    "want",
    "was",
    "way",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "wondering",
    "would",
    "you",
    "your",
    "explain",
];

/// Words that negate; a prompt's negation is the parity of their count.
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "without", "none", "nothing", "nor", "cannot", "neither", "nobody",
    "nowhere", "dont", "doesnt", "isnt", "arent", "cant", "wont", "shouldnt", "didnt", "couldnt",
    "wouldnt", "wasnt", "werent", "havent", "hasnt",
];

/// Pairs of words with opposite meanings that an embedding puts side by side. A prompt that has
/// one where the other has its opposite asks the opposite question.
const OPPOSITES: &[(&str, &str)] = &[
    ("before", "after"),
    ("increase", "decrease"),
    ("increases", "decreases"),
    ("advantages", "disadvantages"),
    ("pros", "cons"),
    ("more", "less"),
    ("max", "min"),
    ("maximum", "minimum"),
    ("best", "worst"),
    ("above", "below"),
    ("higher", "lower"),
    ("high", "low"),
    ("synonym", "antonym"),
    ("buy", "sell"),
    ("import", "export"),
    ("encrypt", "decrypt"),
    ("upload", "download"),
    ("enable", "disable"),
    ("true", "false"),
    ("hot", "cold"),
    ("fastest", "slowest"),
    ("safe", "unsafe"),
    ("legal", "illegal"),
    ("win", "lose"),
    ("push", "pull"),
    ("positive", "negative"),
    ("good", "bad"),
    ("well", "badly"),
    ("strengths", "weaknesses"),
    ("rise", "fall"),
    ("ascending", "descending"),
    ("mutable", "immutable"),
    ("allow", "block"),
    ("for", "against"),
    ("eat", "avoid"),
    ("stage", "unstage"),
    ("show", "hide"),
    ("start", "stop"),
    ("add", "remove"),
    ("add", "subtract"),
    ("multiply", "divide"),
    ("benefits", "risks"),
    ("gain", "loss"),
    ("cheap", "expensive"),
    ("cheapest", "expensive"),
    ("easy", "hard"),
    ("open", "close"),
    ("lock", "unlock"),
    ("install", "uninstall"),
    ("include", "exclude"),
    ("inside", "outside"),
    ("north", "south"),
    ("east", "west"),
    ("summer", "winter"),
    ("long", "short"),
    ("first", "last"),
    ("largest", "smallest"),
    ("biggest", "smallest"),
    ("oldest", "youngest"),
    ("earliest", "latest"),
];

/// Number words read as their digits ("one" is left out: it is as often a pronoun).
const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("thirteen", "13"),
    ("fourteen", "14"),
    ("fifteen", "15"),
    ("sixteen", "16"),
    ("seventeen", "17"),
    ("eighteen", "18"),
    ("nineteen", "19"),
    ("twenty", "20"),
    ("thirty", "30"),
    ("forty", "40"),
    ("fifty", "50"),
    ("hundred", "100"),
    ("thousand", "1000"),
    ("million", "1000000"),
    ("billion", "1000000000"),
    ("dozen", "12"),
];

/// The last user turn of a request, read for the semantic cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// Numbers, as written without thousands separators, and number words as digits; sorted.
    numbers: Vec<String>,
    /// An odd number of negations.
    negated: bool,
    /// Every word, lowercased, without an apostrophe; sorted, once each.
    words: BTreeSet<String>,
    /// The words that carry the topic, in order (what the sentence vector is made of).
    content: Vec<String>,
    /// Names: capitalised words inside a sentence and words with inner capitals, lowercased.
    names: BTreeSet<String>,
    /// Written (partly) outside the Latin, Greek and Cyrillic scripts.
    other_script: bool,
}

/// Why a cached prompt does not answer this one although their meanings are close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    Numbers,
    Negation,
    Opposite,
    Name,
    Script,
}

impl Prompt {
    pub fn new(text: &str) -> Self {
        let mut numbers = Vec::new();
        let mut words = BTreeSet::new();
        let mut content = Vec::new();
        let mut names = BTreeSet::new();
        let mut negations = 0usize;
        let mut sentence_start = true;
        for (word, at) in split_words(text) {
            let first = word.chars().next().unwrap_or(' ');
            if first.is_ascii_digit() {
                numbers.push(word.replace(',', ""));
                sentence_start = ends_sentence(text, at + word.len());
                continue;
            }
            // "what's" is "what", "list's" is "list", "don't" is "do" and a negation.
            let (head, tail) = word.split_once(['\'', '’']).unwrap_or((word, ""));
            let mut lower = head.to_lowercase();
            if tail.eq_ignore_ascii_case("t")
                && let Some(base) = lower.strip_suffix('n')
            {
                negations += 1;
                lower = match base {
                    "wo" => "will".to_owned(),
                    "ca" => "can".to_owned(),
                    "ai" => "is".to_owned(),
                    _ => base.to_owned(),
                };
            }
            let capital = first.is_uppercase() && word != "I";
            let inner = word.chars().skip(1).any(char::is_uppercase);
            if inner || (capital && !sentence_start) {
                names.insert(singular(&lower).to_owned());
            }
            if let Some((_, digits)) = NUMBER_WORDS.iter().find(|(w, _)| *w == lower) {
                numbers.push((*digits).to_owned());
            }
            if NEGATIONS.contains(&lower.as_str()) {
                negations += 1;
            }
            if !STOP_WORDS.contains(&lower.as_str()) {
                content.push(lower.clone());
            }
            words.insert(lower);
            sentence_start = ends_sentence(text, at + word.len());
        }
        numbers.sort();
        Self {
            numbers,
            negated: negations % 2 == 1,
            words,
            content,
            names,
            other_script: text
                .chars()
                .any(|c| c.is_alphabetic() && u32::from(c) > 0x2000),
        }
    }

    /// The facts a semantic hit needs equal (numbers, negation, script), as bytes: prompts
    /// whose fingerprints differ can never answer each other.
    pub fn fingerprint(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for n in &self.numbers {
            out.extend_from_slice(n.as_bytes());
            out.push(0);
        }
        out.push(u8::from(self.negated));
        out.push(u8::from(self.other_script));
        out
    }

    /// The words the sentence vector is made of.
    pub fn content(&self) -> &[String] {
        &self.content
    }

    /// The first fact that differs between two prompts, if any.
    pub fn conflict(&self, other: &Prompt) -> Option<Conflict> {
        if self.numbers != other.numbers {
            return Some(Conflict::Numbers);
        }
        if self.negated != other.negated {
            return Some(Conflict::Negation);
        }
        let only = |a: &Prompt, b: &Prompt, w: &str| a.words.contains(w) && !b.words.contains(w);
        if OPPOSITES.iter().any(|(x, y)| {
            (only(self, other, x) && only(other, self, y))
                || (only(self, other, y) && only(other, self, x))
        }) {
            return Some(Conflict::Opposite);
        }
        let named = |names: &BTreeSet<String>, words: &BTreeSet<String>| {
            names
                .iter()
                .all(|n| words.contains(n) || words.contains(&format!("{n}s")))
        };
        if !named(&self.names, &other.words) || !named(&other.names, &self.words) {
            return Some(Conflict::Name);
        }
        if self.other_script != other.other_script {
            return Some(Conflict::Script);
        }
        None
    }

    /// The content words of `self` that `other` lacks (compared without a plural or tense
    /// ending).
    pub fn unmatched<'a>(&'a self, other: &Prompt) -> impl Iterator<Item = &'a str> {
        let theirs: BTreeSet<&str> = other.content.iter().map(|w| stem(w)).collect();
        self.content
            .iter()
            .filter(move |w| !theirs.contains(stem(w)))
            .map(String::as_str)
    }
}

/// Words (letters and digits; digits may hold `.` and `,` between them) with their byte offsets.
fn split_words(text: &str) -> impl Iterator<Item = (&str, usize)> {
    let mut rest = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, first) = loop {
            let (i, c) = rest.next()?;
            if c.is_alphanumeric() {
                break (i, c);
            }
        };
        let digits = first.is_ascii_digit();
        let mut end = start + first.len_utf8();
        while let Some(&(i, c)) = rest.peek() {
            let joins = if digits {
                c.is_ascii_digit()
                    || ((c == '.' || c == ',')
                        && text[i + 1..]
                            .chars()
                            .next()
                            .is_some_and(|n| n.is_ascii_digit()))
            } else {
                c.is_alphanumeric()
                    || ((c == '\'' || c == '’')
                        && text[i + c.len_utf8()..]
                            .chars()
                            .next()
                            .is_some_and(char::is_alphabetic))
            };
            if !joins {
                break;
            }
            end = i + c.len_utf8();
            rest.next();
        }
        Some((&text[start..end], start))
    })
}

/// Whether the next word after byte `at` starts a sentence (or a heading: "Python: …").
fn ends_sentence(text: &str, at: usize) -> bool {
    text[at..]
        .chars()
        .find(|c| !c.is_whitespace() && *c != '\'' && *c != '"' && *c != ')')
        .is_some_and(|c| matches!(c, '.' | '?' | '!' | ':' | ';' | '-' | '–' | '—' | '\n'))
}

fn singular(w: &str) -> &str {
    w.strip_suffix('s').filter(|s| s.len() > 2).unwrap_or(w)
}

/// A word without a plural or tense ending, to compare two prompts' words.
fn stem(w: &str) -> &str {
    for suffix in ["ing", "ed", "es", "s"] {
        if w.len() > 4
            && let Some(s) = w.strip_suffix(suffix)
        {
            return s;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict(a: &str, b: &str) -> Option<Conflict> {
        Prompt::new(a).conflict(&Prompt::new(b))
    }

    #[test]
    fn the_facts_an_embedding_blurs_are_compared() {
        assert_eq!(
            conflict("Convert 5 miles to km", "Convert 7 miles to km"),
            Some(Conflict::Numbers)
        );
        assert_eq!(conflict("Convert 1,000 m", "convert 1000 m"), None);
        assert_eq!(conflict("list five uses", "list 5 uses"), None);
        assert_eq!(
            conflict(
                "Which foods are safe for dogs?",
                "Which foods are not safe for dogs?"
            ),
            Some(Conflict::Negation)
        );
        assert_eq!(
            conflict("Sort ascending in Python", "Sort descending in Python"),
            Some(Conflict::Opposite)
        );
        assert_eq!(
            conflict(
                "What is the capital of France?",
                "What is the capital of Spain?"
            ),
            Some(Conflict::Name)
        );
        assert_eq!(
            conflict(
                "What is the capital of France?",
                "what is the capital of france"
            ),
            None
        );
        assert_eq!(
            conflict(
                "How many hours of sleep?",
                "大人は何時間の睡眠が必要ですか？"
            ),
            Some(Conflict::Script)
        );
        // Sentence starts and headings are not names; "I" is not one.
        assert_eq!(
            conflict(
                "How do I reverse a list? Thanks",
                "reverse a list: how do I do it? thanks"
            ),
            None
        );
    }

    #[test]
    fn prompts_that_can_never_answer_each_other_have_other_fingerprints() {
        let f = |t: &str| Prompt::new(t).fingerprint();
        assert_eq!(f("Convert 5 miles to km"), f("how many km is 5 miles"));
        assert_ne!(f("Convert 5 miles to km"), f("Convert 7 miles to km"));
        assert_ne!(f("foods safe for dogs"), f("foods not safe for dogs"));
    }

    #[test]
    fn content_words_leave_out_fillers() {
        let p = Prompt::new("Can you please tell me how I reverse a list in Python?");
        assert_eq!(p.content(), ["reverse", "list", "python"]);
        let q = Prompt::new("Python: flip the order of a list's elements");
        let unmatched: Vec<_> = p.unmatched(&q).collect();
        assert_eq!(unmatched, ["reverse"]);
    }
}
