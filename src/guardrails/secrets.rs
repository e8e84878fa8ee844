//! Credentials: vendor tokens by their documented prefixes and lengths, private key blocks, JWTs,
//! and `password=`-style assignments whose value looks random. Vendors' published example keys,
//! placeholders (`sk-your-key-here`, `ghp_xxxx…`, `${DB_PASSWORD}`) and test-mode keys are not
//! secrets.

use super::{Class, Spec};

pub(super) const SPECS: &[Spec] = &[
    Spec {
        name: "anthropic_key",
        placeholder: "ANTHROPIC_KEY",
        class: Class::Secret,
        pattern: r"sk-ant-[a-z]{2,8}\d{2}-[A-Za-z0-9_\-]{32,}",
        group: 0,
        confirm: token,
    },
    Spec {
        name: "openai_key",
        placeholder: "OPENAI_KEY",
        class: Class::Secret,
        pattern: r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{32,}",
        group: 0,
        confirm: openai,
    },
    Spec {
        name: "aws_access_key_id",
        placeholder: "AWS_ACCESS_KEY_ID",
        class: Class::Secret,
        pattern: r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}",
        group: 0,
        confirm: token,
    },
    Spec {
        name: "aws_secret_key",
        placeholder: "AWS_SECRET_KEY",
        class: Class::Secret,
        pattern: r"[A-Za-z0-9/+]{40}",
        group: 0,
        confirm: aws_secret,
    },
    Spec {
        name: "github_token",
        placeholder: "GITHUB_TOKEN",
        class: Class::Secret,
        pattern: r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82}",
        group: 0,
        confirm: token,
    },
    Spec {
        name: "gitlab_token",
        placeholder: "GITLAB_TOKEN",
        class: Class::Secret,
        pattern: r"glpat-[A-Za-z0-9_\-]{20}",
        group: 0,
        confirm: token,
    },
    Spec {
        name: "slack_token",
        placeholder: "SLACK_TOKEN",
        class: Class::Secret,
        pattern: r"xox[abposr]-[A-Za-z0-9\-]{20,}",
        group: 0,
        confirm: slack,
    },
    Spec {
        name: "google_api_key",
        placeholder: "GOOGLE_API_KEY",
        class: Class::Secret,
        pattern: r"AIza[A-Za-z0-9_\-]{35}",
        group: 0,
        confirm: token,
    },
    Spec {
        name: "stripe_key",
        placeholder: "STRIPE_KEY",
        class: Class::Secret,
        pattern: r"(?:sk|rk)_live_[A-Za-z0-9]{24,}",
        group: 0,
        confirm: token,
    },
    Spec {
        name: "huggingface_token",
        placeholder: "HF_TOKEN",
        class: Class::Secret,
        pattern: r"hf_[A-Za-z0-9]{34}",
        group: 0,
        confirm: token,
    },
    Spec {
        name: "private_key",
        placeholder: "PRIVATE_KEY",
        class: Class::Secret,
        // The body up to the first run of five dashes: a match ends at the first END line,
        // and a stream stops holding a block once it is complete.
        pattern: r"-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----(?:[^-]|-{1,4}[^-])*-----END (?:[A-Z0-9]+ )?PRIVATE KEY-----",
        group: 0,
        confirm: pem,
    },
    Spec {
        name: "jwt",
        placeholder: "JWT",
        class: Class::Secret,
        pattern: r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        group: 0,
        confirm: jwt,
    },
    Spec {
        name: "generic_secret",
        placeholder: "SECRET",
        class: Class::Generic,
        // A secret's name (English, or the word for password in the languages we see most;
        // also inside a longer name, `PGPASSWORD`, and inflected, `lösenordet`), not in an
        // ARN-like `:secret:` path, then `:`, `=`, `=>`, an XML tag's `>`, a few words before a
        // colon or before a copula (`is`, `è`, `es`, `est`, `ist`, `är`, `er`, `jest`), or
        // spaces; then the value.
        pattern: r#"(?:^|[^:])(?i:password|passwd|pwd|passphrase|passwort|kennwort|contraseña|senha|mot de passe|wachtwoord|lösenord|hasło|haslo|heslo|şifre|sifre|salasana|adgangskode|пароль|パスワード|密码|secret|api[_\-]?key|access[_\-]?token|auth[_\-]?token|client[_\-]?secret|secret[_\-]?key|private[_\-]?key|encryption[_\-]?key|signing[_\-]?key|private[_\-]?token|requirepass|token)(?i:et|en|s)?(?:["']?\s*(?:=>|[:=])|>|(?:\s+[^\s:="'<>]{1,12}){1,4}\s*:|(?:\s+[A-Za-z]{1,12}){0,5}\s+(?i:is|è|es|est|ist|är|er|jest)\s|\s+)\s*["']?([^\s"'`,;)}\]<]{12,})"#,
        group: 1,
        confirm: assigned,
    },
    Spec {
        name: "generic_secret",
        placeholder: "SECRET",
        class: Class::Generic,
        // The password of a URL's user info: `scheme://user:password@host`.
        pattern: r"[a-z][a-z0-9+.\-]*://[^:/\s@]+:([^@\s/]{8,})@",
        group: 1,
        confirm: assigned,
    },
];

/// A PEM block with a body (not `...`, not a `<paste your key here>` placeholder).
fn pem(text: &str, start: usize, end: usize) -> bool {
    let m = &text[start..end];
    let body = m
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .count();
    body >= 64 && !m.contains(['<', '>'])
}

/// The token on jwt.io's front page, quoted in countless tutorials.
const JWT_IO_SIGNATURE: &str = "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

fn jwt(text: &str, start: usize, end: usize) -> bool {
    !text[start..end].ends_with(JWT_IO_SIGNATURE) && token(text, start, end)
}

fn slack(text: &str, start: usize, end: usize) -> bool {
    text[start..end].bytes().filter(u8::is_ascii_digit).count() >= 6 && token(text, start, end)
}

/// An AWS secret access key has no prefix: 40 characters of base64's alphabet, random, with AWS
/// or a secret named within the 160 bytes before it.
fn aws_secret(text: &str, start: usize, end: usize) -> bool {
    let m = &text[start..end];
    let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'/' || b == b'+';
    // `=` is padding: it may follow a base64 run, not precede one (`KEY=…` is an assignment).
    let glued = start
        .checked_sub(1)
        .is_some_and(|i| b64(text.as_bytes()[i]))
        || text
            .as_bytes()
            .get(end)
            .is_some_and(|&b| b64(b) || b == b'=');
    let mixed = m.bytes().any(|b| b.is_ascii_uppercase())
        && m.bytes().any(|b| b.is_ascii_lowercase())
        && m.bytes().any(|b| b.is_ascii_digit());
    if glued || !mixed || placeholder(m) || entropy(m) < 4.0 {
        return false;
    }
    let mut from = start.saturating_sub(160);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let context = text[from..start].to_ascii_lowercase();
    ["aws", "secret", "akia", "asia"]
        .iter()
        .any(|w| context.contains(w))
}

/// Shannon entropy of `s`, in bits per character.
pub(super) fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Words that mark a documentation example or a placeholder rather than a credential.
const PLACEHOLDERS: &[&str] = &[
    "example",
    "your",
    "xxxx",
    "placeholder",
    "dummy",
    "sample",
    "redacted",
    "changeme",
    "insert",
    "replace",
    "token_here",
    "key_here",
    "...",
];

fn placeholder(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    PLACEHOLDERS.iter().any(|p| lower.contains(p))
}

fn glued(text: &str, start: usize, end: usize) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    start
        .checked_sub(1)
        .is_some_and(|i| word(text.as_bytes()[i]))
        || text.as_bytes().get(end).is_some_and(|&b| word(b))
}

/// A vendor token: not part of a longer word, not a placeholder, random-looking.
fn token(text: &str, start: usize, end: usize) -> bool {
    let m = &text[start..end];
    !glued(text, start, end) && !placeholder(m) && entropy(m) >= 3.0
}

fn openai(text: &str, start: usize, end: usize) -> bool {
    !text[start..end].starts_with("sk-ant-") && token(text, start, end)
}

/// The value of a `password = …` assignment: random-looking (entropy, three character classes),
/// not a reference to somewhere else (`${VAR}`, `os.environ[…]`, `<password>`), not masked.
fn assigned(text: &str, start: usize, end: usize) -> bool {
    let v = &text[start..end];
    let classes = [
        v.bytes().any(|b| b.is_ascii_lowercase()),
        v.bytes().any(|b| b.is_ascii_uppercase()),
        v.bytes().any(|b| b.is_ascii_digit()),
        v.bytes().any(|b| !b.is_ascii_alphanumeric()),
    ]
    .iter()
    .filter(|c| **c)
    .count();
    let test_mode = ["sk_test_", "rk_test_", "pk_test_", "pk_live_"]
        .iter()
        .any(|p| v.starts_with(p));
    let reference = test_mode
        || v.contains("${")
        || v.contains("os.environ")
        || v.contains("process.env")
        || v.contains("getenv")
        || v.starts_with('<')
        || v.starts_with('$')
        || v.starts_with('%')
        || v.starts_with('{')
        || v.contains("****");
    // A name in code (`settings.OPENAI_API_KEY`, `get_token()`), a URL or a path: pointers to
    // a secret, not the secret.
    let bare = v.trim_end_matches("()");
    let identifiers = bare.split('.').all(|part| {
        part.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    let env_name = v
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    let code_name = env_name || (identifiers && (bare.contains('.') || bare.len() < v.len()));
    let located = v.contains("://") || v.starts_with('/');
    // Three kinds of character, or a long random run of letters and digits (a hex secret).
    let alnum_run = v.len() >= 24
        && v.bytes().all(|b| b.is_ascii_alphanumeric())
        && v.bytes().any(|b| b.is_ascii_digit());
    let random = (classes >= 3 && entropy(v) >= 3.2) || (alnum_run && entropy(v) >= 3.5);
    !reference && !code_name && !located && !placeholder(v) && random
}
