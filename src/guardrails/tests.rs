use super::*;
use std::collections::BTreeMap;

fn found(text: &str) -> Vec<(String, String)> {
    let s = Scanner::new(&[]).unwrap();
    s.scan(text)
        .into_iter()
        .map(|f| {
            (
                s.detectors()[f.detector].name.clone(),
                text[f.start..f.end].to_owned(),
            )
        })
        .collect()
}

#[test]
fn checksums() {
    let ds = |s: &str| -> Vec<u8> { s.bytes().map(|b| b - b'0').collect() };
    assert!(pii::luhn(&ds("4539578763621486")));
    assert!(!pii::luhn(&ds("4539578763621487")));
    assert!(pii::iban_checksum("GB82WEST12345698765432"));
    assert!(!pii::iban_checksum("GB82WEST12345698765433"));
    assert!(secrets::entropy("aaaaaaaa") < 0.1);
    assert!(secrets::entropy("aZ3$kP9!qL2@") > 3.4);
}

#[test]
fn finds_each_kind_in_context() {
    let text = "Mail ana.lopez@example.org or call +44 20 7946 0958; card 4539 5787 6362 1486, \
                IBAN DE44 5001 0517 5407 3249 31, host 10.20.30.40, key sk-proj-3Fv9Tq2LmX8pZr4Kw7Yb1Nc6Hd0Js5Ge.";
    let got = found(text);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["email", "phone", "card", "iban", "ip_address", "openai_key"],
        "{got:?}"
    );
    assert_eq!(got[2].1, "4539 5787 6362 1486");
    assert_eq!(got[5].1, "sk-proj-3Fv9Tq2LmX8pZr4Kw7Yb1Nc6Hd0Js5Ge");
}

#[test]
fn hard_negatives_stay_quiet() {
    for text in [
        "Order #100234556781 shipped on 2026-12-01 at 14:30:05",
        "use the test card 4242 4242 4242 4242 in the sandbox",
        "AWS docs use AKIAIOSFODNN7EXAMPLE as the key id",
        "version 10.0.19045.2364 and v1.2.3.4",
        "password=${DB_PASSWORD} and api_key = os.environ['OPENAI_API_KEY']",
        "std::vector<int> and a::b, MAC 00:1A:2B:3C:4D:5E",
        "SSN 000-12-3456 and 666-12-3456 are invalid",
        "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ] {
        assert_eq!(found(text), vec![], "{text}");
    }
}

#[test]
fn a_vendor_token_wins_over_the_generic_assignment_it_sits_in() {
    let got = found("token = ghp_Z8xK2mQ9vL4nR7tY1wE5sA3dF6gH0jB2cN8p");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "github_token");
}

#[test]
fn custom_words_and_patterns() {
    let s = Scanner::new(&[
        Custom {
            name: "codename".into(),
            pattern: CustomPattern::Words(vec!["Project Falcon".into()]),
        },
        Custom {
            name: "employee_id".into(),
            pattern: CustomPattern::Regex(r"EMP-\d{6}".into()),
        },
    ])
    .unwrap();
    let text = "project falcon staffing: EMP-004211";
    let got: Vec<&str> = s
        .scan(text)
        .iter()
        .map(|f| s.detectors()[f.detector].name.as_str())
        .collect();
    assert_eq!(got, ["codename", "employee_id"]);
    assert!(
        Scanner::new(&[Custom {
            name: "bad".into(),
            pattern: CustomPattern::Regex("(".into()),
        }])
        .is_err()
    );
}

/// detector → (true positives, false positives, false negatives).
type Tally = BTreeMap<String, (u32, u32, u32)>;

/// The [`Tally`], every miss and the number of cases, over a
/// labelled corpus under tests/fixtures/guardrails/. A found item counts when it overlaps a
/// labelled one of the same detector.
fn evaluate(file: &str) -> (Tally, Vec<String>, usize) {
    let path = format!(
        "{}/tests/fixtures/guardrails/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let corpus = std::fs::read_to_string(path).expect("corpus");
    let scanner = Scanner::new(&[]).unwrap();
    let mut tally = Tally::new();
    let mut misses = Vec::new();
    let mut cases = 0;
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        cases += 1;
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = case["text"].as_str().unwrap();
        let mut expected: Vec<(String, usize, usize, bool)> = Vec::new();
        for f in case["findings"].as_array().unwrap() {
            let m = f["match"].as_str().unwrap();
            let mut from = 0;
            // The first occurrence not labelled already.
            let start = loop {
                let at = from + text[from..].find(m).expect("match in text");
                if !expected.iter().any(|e| e.1 == at) {
                    break at;
                }
                from = at + 1;
            };
            expected.push((
                f["detector"].as_str().unwrap().to_owned(),
                start,
                start + m.len(),
                false,
            ));
        }
        for f in scanner.scan(text) {
            let name = &scanner.detectors()[f.detector].name;
            let hit = expected
                .iter_mut()
                .find(|e| !e.3 && &e.0 == name && f.start < e.2 && e.1 < f.end);
            let t = tally.entry(name.clone()).or_default();
            match hit {
                Some(e) => {
                    e.3 = true;
                    t.0 += 1;
                }
                None => {
                    t.1 += 1;
                    misses.push(format!(
                        "FP {name}: {:?} in {}",
                        &text[f.start..f.end],
                        case["id"]
                    ));
                }
            }
        }
        for e in expected.iter().filter(|e| !e.3) {
            tally.entry(e.0.clone()).or_default().2 += 1;
            misses.push(format!(
                "FN {}: {:?} in {}",
                e.0,
                &text[e.1..e.2],
                case["id"]
            ));
        }
    }
    (tally, misses, cases)
}

/// Print the table; the detectors below `precision` or `recall`.
fn report(
    tally: &Tally,
    misses: &[String],
    precision_floor: f64,
    recall_floor: f64,
) -> Vec<String> {
    println!(
        "{:<20} {:>5} {:>5} {:>5} {:>9} {:>9}",
        "detector", "tp", "fp", "fn", "precision", "recall"
    );
    let mut below = Vec::new();
    for (name, (tp, fp, fneg)) in tally {
        let precision = f64::from(*tp) / f64::from((tp + fp).max(1));
        let recall = f64::from(*tp) / f64::from((tp + fneg).max(1));
        println!("{name:<20} {tp:>5} {fp:>5} {fneg:>5} {precision:>9.3} {recall:>9.3}");
        if precision < precision_floor || recall < recall_floor {
            below.push(format!(
                "{name}: precision {precision:.3}, recall {recall:.3}"
            ));
        }
    }
    for m in misses {
        println!("{m}");
    }
    below
}

/// The corpus the detectors were tuned on (`scripts/gen-guardrail-corpus.py`): in-sample.
#[test]
fn precision_and_recall_over_the_tuning_corpus() {
    let (tally, misses, cases) = evaluate("corpus.jsonl");
    assert!(cases >= 300, "the corpus has {cases} cases");
    let names: std::collections::BTreeSet<_> = builtin_names().collect();
    assert_eq!(tally.len(), names.len(), "every detector is exercised");
    let below = report(&tally, &misses, 0.95, 0.95);
    assert!(below.is_empty(), "below the floors: {below:?}");
}

/// A held-out corpus written blind to the detectors (`scripts/gen-guardrail-heldout.py`: new
/// templates, document kinds and languages, new values): the honest figures.
#[test]
fn precision_and_recall_over_the_held_out_corpus() {
    let (tally, misses, cases) = evaluate("heldout.jsonl");
    assert!(cases >= 250, "the corpus has {cases} cases");
    let below = report(&tally, &misses, HELD_OUT_PRECISION, HELD_OUT_RECALL);
    assert!(below.is_empty(), "below the floors: {below:?}");
}

/// Floors for the held-out corpus. Its first, blind measurement: every detector 1.000 / 1.000
/// except `generic_secret` (precision 0.846, recall 0.647: netrc, XML, SQL, URL user info and
/// non-English names it did not know), `iban` (precision 0.895) and `ssn` (0.875), which took
/// the standard's example IBANs and the SSA's published example SSNs for real ones. Those were
/// fixed in ways meant to generalise (more assignment shapes, the published examples), after
/// which it reads 1.000 everywhere, so it is no longer blind: `blind.jsonl` is the next honest
/// measurement.
const HELD_OUT_PRECISION: f64 = 0.95;
const HELD_OUT_RECALL: f64 = 0.95;

/// A third corpus, written by a helper that never saw the detectors, their code or the other
/// corpora (`scripts/gen-guardrail-blind.py`: new document kinds, languages and values).
#[test]
fn precision_and_recall_over_the_blind_corpus() {
    let (tally, misses, cases) = evaluate("blind.jsonl");
    assert!(cases >= 300, "the corpus has {cases} cases");
    let below = report(&tally, &misses, BLIND_PRECISION, BLIND_RECALL);
    assert!(below.is_empty(), "below the floors: {below:?}");
}

/// Floors for the blind corpus. Its first measurement (505 cases, 186 negatives): every
/// detector 1.000 / 1.000 except `generic_secret` (recall 0.739: the word for password in
/// Polish, Dutch, French, Japanese, Turkish, Swedish, a few words between the name and `is`,
/// `PrivateKey`, `ENCRYPTION_KEY`, `requirepass`, hex secrets, a URL's password taken for an
/// e-mail address), `ip_address` (recall 0.886: addresses with a CIDR prefix, `/32`),
/// `private_key` (precision 0.917: a `<paste your key here>` block) and `email` (precision
/// 0.976: that URL user info). Fixed in ways meant to generalise; all three corpora now read
/// 1.000, so this one is no longer blind either.
const BLIND_PRECISION: f64 = 0.95;
const BLIND_RECALL: f64 = 0.95;
