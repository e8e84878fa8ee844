//! Personal data: what each detector's pattern finds and the check that confirms a candidate
//! (checksums, ranges, boundaries), so that order numbers, dates, versions and documentation test
//! numbers are not taken for personal data.

use super::{Class, Spec};

pub(super) const SPECS: &[Spec] = &[
    Spec {
        name: "email",
        placeholder: "EMAIL",
        class: Class::Pii,
        pattern: r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}",
        group: 0,
        confirm: email,
    },
    Spec {
        name: "phone",
        placeholder: "PHONE",
        class: Class::Pii,
        pattern: r"\+\d{1,3}(?:[ .\-]?\(0\))?[ .\-]?\(?\d{1,5}\)?(?:[ .\-]?\d{1,8}){1,5}|\(\d{2,4}\)[ .\-]?\d{2,4}[ .\-]?\d{2,4}|\d{2,4}(?:[ .\-]\d{2,4}){2,4}",
        group: 0,
        confirm: phone,
    },
    Spec {
        name: "card",
        placeholder: "CARD",
        class: Class::Pii,
        pattern: r"\d(?:[ \-]?\d){12,18}",
        group: 0,
        confirm: card,
    },
    Spec {
        name: "ssn",
        placeholder: "SSN",
        class: Class::Pii,
        pattern: r"\d{3}-\d{2}-\d{4}",
        group: 0,
        confirm: ssn,
    },
    Spec {
        name: "iban",
        placeholder: "IBAN",
        class: Class::Pii,
        pattern: r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?",
        group: 0,
        confirm: iban,
    },
    Spec {
        name: "ip_address",
        placeholder: "IP",
        class: Class::Pii,
        pattern: r"(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}",
        group: 0,
        confirm: ip,
    },
];

fn before(text: &str, start: usize) -> Option<u8> {
    start.checked_sub(1).map(|i| text.as_bytes()[i])
}

fn after(text: &str, end: usize) -> Option<u8> {
    text.as_bytes().get(end).copied()
}

/// The match is not glued to more of the same kind of token on either side: a `glue`
/// character, or a `joiner` (`.`, `-`, `/`) with more of the token behind it. A sentence's
/// final period is not glue.
fn standalone(text: &str, start: usize, end: usize, glue: impl Fn(u8) -> bool) -> bool {
    let b = text.as_bytes();
    let joiner = |c: u8| matches!(c, b'.' | b'-' | b'/');
    let left = match before(text, start) {
        Some(c) if glue(c) => false,
        Some(c) if joiner(c) => !start.checked_sub(2).is_some_and(|i| glue(b[i])),
        _ => true,
    };
    let right = match after(text, end) {
        Some(c) if glue(c) => false,
        Some(c) if joiner(c) => !b.get(end + 1).is_some_and(|&n| glue(n)),
        _ => true,
    };
    left && right
}

fn email(text: &str, start: usize, end: usize) -> bool {
    let m = &text[start..end];
    // `scheme://user:password@host`: a URL's user info, not an address.
    let token_start = text[..start]
        .rfind(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '('))
        .map_or(0, |i| i + 1);
    if text[token_start..start].contains("://") {
        return false;
    }
    let Some((local, domain)) = m.split_once('@') else {
        return false;
    };
    let local_char = |b: u8| b.is_ascii_alphanumeric() || b"_%+@".contains(&b);
    !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && domain
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
        && standalone(text, start, end, local_char)
}

fn digits(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// Phone numbers: international (`+`, 8–15 digits, a `(0)` trunk prefix aside), national with
/// an area code in parentheses, or one of the national shapes written with one kind of separator:
/// North American `ddd-ddd-dddd`, French `0d dd dd dd dd`, British `0dd dddd dddd`. Dates,
/// ranges, versions and decimals fail these shapes.
fn phone(text: &str, start: usize, end: usize) -> bool {
    let m = &text[start..end];
    if !standalone(text, start, end, |b| b.is_ascii_alphanumeric() || b == b'+') {
        return false;
    }
    if let Some(rest) = m.strip_prefix('+') {
        let n = digits(&rest.replace("(0)", "")).len();
        return (8..=15).contains(&n);
    }
    if m.starts_with('(') {
        return (9..=11).contains(&digits(m).len());
    }
    let seps: std::collections::BTreeSet<char> =
        m.chars().filter(|c| matches!(c, ' ' | '.' | '-')).collect();
    if seps.len() != 1 {
        return false;
    }
    let groups: Vec<usize> = m.split([' ', '.', '-']).map(str::len).collect();
    match groups.as_slice() {
        [3, 3, 4] => !m.starts_with(['0', '1']),
        [2, 2, 2, 2, 2] | [3, 4, 4] => m.starts_with('0') && !m.starts_with("00"),
        _ => false,
    }
}

/// Luhn's check over the digits.
pub(super) fn luhn(ds: &[u8]) -> bool {
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Test numbers the card networks and processors publish for sandboxes: documentation, not
/// anyone's card.
const TEST_CARDS: &[&str] = &[
    "4242424242424242",
    "4111111111111111",
    "4012888888881881",
    "4000056655665556",
    "4000000000000002",
    "4000000000009995",
    "4000000000000077",
    "5555555555554444",
    "5200828282828210",
    "5105105105105100",
    "2223003122003222",
    "378282246310005",
    "371449635398431",
    "6011111111111117",
    "6011000990139424",
    "3056930009020004",
    "36227206271667",
    "3566002020360505",
    "6200000000000005",
];

fn card(text: &str, start: usize, end: usize) -> bool {
    let m = &text[start..end];
    if !standalone(text, start, end, |b| b.is_ascii_alphanumeric() || b == b'-') {
        return false;
    }
    let ds = digits(m);
    if !(13..=19).contains(&ds.len()) || !luhn(&ds) {
        return false;
    }
    // One separator kind, and groups of at least 3 digits (phone-like 2-digit groups are not
    // how cards are written).
    let has_space = m.contains(' ');
    let has_dash = m.contains('-');
    if has_space && has_dash {
        return false;
    }
    if (has_space || has_dash) && m.split([' ', '-']).any(|g| g.len() < 3) {
        // Cards are grouped 4-4-4-4(-3) or 4-6-5: no group under 3 digits.
        return false;
    }
    let compact: String = ds.iter().map(|d| char::from(b'0' + d)).collect();
    if TEST_CARDS.contains(&compact.as_str()) {
        return false;
    }
    // A network's prefix: Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay.
    let p2: u32 = compact[..2].parse().unwrap_or(0);
    let p4: u32 = compact[..4].parse().unwrap_or(0);
    matches!(ds[0], 4)
        || (51..=55).contains(&p2)
        || (2221..=2720).contains(&p4)
        || p2 == 34
        || p2 == 37
        || p4 == 6011
        || p2 == 65
        || (644..=649).contains(&(p4 / 10))
        || p2 == 35
        || p2 == 36
        || p2 == 38
        || (300..=305).contains(&(p4 / 10))
        || p2 == 62
}

/// SSNs printed in advertisements and documentation (the Woolworth wallet card, the SSA's own
/// ad, the textbook sequence): examples, not anyone's number.
const EXAMPLE_SSNS: &[&str] = &["078-05-1120", "219-09-9999", "123-45-6789"];

fn ssn(text: &str, start: usize, end: usize) -> bool {
    let m = &text[start..end];
    if EXAMPLE_SSNS.contains(&m) {
        return false;
    }
    if !standalone(text, start, end, |b| b.is_ascii_alphanumeric() || b == b'-') {
        return false;
    }
    let area: u32 = m[0..3].parse().unwrap_or(0);
    let group: u32 = m[4..6].parse().unwrap_or(0);
    let serial: u32 = m[7..11].parse().unwrap_or(0);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// IBAN lengths by country (ISO 13616 registry), for the countries most often seen.
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AT", 20),
    ("BE", 16),
    ("BG", 22),
    ("CH", 21),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("EE", 20),
    ("ES", 24),
    ("FI", 18),
    ("FR", 27),
    ("GB", 22),
    ("GR", 27),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IS", 26),
    ("IT", 27),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MT", 31),
    ("NL", 18),
    ("NO", 15),
    ("PL", 28),
    ("PT", 25),
    ("RO", 24),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("TR", 26),
    ("UA", 29),
    ("AE", 23),
    ("SA", 24),
    ("IL", 23),
    ("BR", 29),
];

/// ISO 7064 mod 97-10 over the rearranged IBAN.
pub(super) fn iban_checksum(compact: &str) -> bool {
    let (head, rest) = compact.split_at(4);
    let mut rem: u32 = 0;
    for c in rest.chars().chain(head.chars()) {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// The IBANs of the standard's and the banks' documentation.
const EXAMPLE_IBANS: &[&str] = &[
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "GB29NWBK60161331926819",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
    "CH9300762011623852957",
    "BE68539007547034",
    "AT611904300234573201",
];

fn iban(text: &str, start: usize, end: usize) -> bool {
    if !standalone(text, start, end, |b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let compact: String = text[start..end].chars().filter(|c| *c != ' ').collect();
    if EXAMPLE_IBANS.contains(&compact.as_str()) {
        return false;
    }
    let expected = IBAN_LENGTHS
        .iter()
        .find(|(cc, _)| compact.starts_with(cc))
        .map(|(_, n)| *n);
    let length_ok = match expected {
        Some(n) => compact.len() == n,
        None => (15..=34).contains(&compact.len()),
    };
    length_ok && iban_checksum(&compact)
}

/// `end`, or past a CIDR prefix length (`/24`) right after it.
fn past_prefix(text: &str, end: usize) -> usize {
    let rest = &text.as_bytes()[end..];
    let digits = rest
        .iter()
        .skip(1)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if rest.first() == Some(&b'/') && (1..=3).contains(&digits) {
        end + 1 + digits
    } else {
        end
    }
}

fn ip(text: &str, start: usize, end: usize) -> bool {
    let m = &text[start..end];
    let token_end = past_prefix(text, end);
    if m.contains('.') {
        // Versions are written v1.2.3.4 or 1.2.3.4.5: glued to more dotted numbers or a `v`.
        return standalone(text, start, token_end, |b| b.is_ascii_alphanumeric())
            && !text[..start].ends_with(['v', 'V'])
            && m.parse::<std::net::Ipv4Addr>().is_ok()
            && m.split('.').all(|o| o == "0" || !o.starts_with('0'));
    }
    let glue = |b: u8| b.is_ascii_alphanumeric() || b == b':' || b == b'_';
    if !standalone(text, start, token_end, glue) {
        return false;
    }
    let groups: Vec<&str> = m.split(':').filter(|g| !g.is_empty()).collect();
    // `::1`, or a C++ path's `a::b`, are not addresses worth flagging: a compressed address
    // needs three groups, or two with a full one (`fe80::1`).
    let enough = groups.len() >= 3 || (groups.len() == 2 && groups.iter().any(|g| g.len() == 4));
    enough && (m.contains("::") || groups.len() == 8) && m.parse::<std::net::Ipv6Addr>().is_ok()
}
