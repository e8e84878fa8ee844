#!/usr/bin/env python3
"""Generates the labelled test corpus for Switchyard's PII and secret detectors.

Output: JSON Lines on stdout, one case per line:

    {"id": "email-007", "text": "...", "findings": [{"detector": "email", "match": "ana.lopez@example.org"}]}

`findings` lists every sensitive item in `text` (in order of appearance) with the detector that
should report it and the exact substring. Negatives (hard look-alikes) have `"findings": []`.
Positive ids are `<detector>-NNN` (detector of the first finding), negatives are `neg-NNN`.

Run from the repository root:

    python3 scripts/gen-guardrail-corpus.py > tests/fixtures/guardrails/corpus.jsonl

Pass `--stats` to also print per-detector counts to stderr. The script uses only the standard
library and a fixed seed, so its output is byte-for-byte reproducible.

How it works: every case is a template with placeholders such as `{email}` or `{phone:fr_intl}`.
Each placeholder is replaced with a freshly generated random value (with a valid checksum where
the format has one). Placeholders named after a detector become findings; `{neg_*}` placeholders
produce look-alike values (UUIDs, hashes, Luhn-failing numbers, ...) that must not be reported.
Before printing, the script checks the corpus (see `self_check`) and fails loudly if anything is
off.
"""

import argparse
import base64
import ipaddress
import json
import random
import re
import string
import struct
import sys
import uuid
from collections import Counter

SEED = 20260301
rng = random.Random(SEED)

DETECTORS = [
    # PII
    "email", "phone", "card", "ssn", "iban", "ip_address",
    # secrets
    "openai_key", "anthropic_key", "aws_access_key_id", "aws_secret_key", "github_token",
    "gitlab_token", "slack_token", "google_api_key", "stripe_key", "huggingface_token",
    "private_key", "jwt", "generic_secret",
]

UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
DIGITS = string.digits
LETTERS = UPPER + LOWER
ALNUM = LETTERS + DIGITS
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
HEX = "0123456789abcdef"
# Symbols used in generic secrets: no quotes, whitespace, commas, '@', '.', '/', '&', '=', '$'
# so that the value's end is never ambiguous in the surrounding text.
SECRET_SYMBOLS = "!#%*^~+_-"


# --------------------------------------------------------------------------------------------
# Small random helpers
# --------------------------------------------------------------------------------------------

def rand_str(alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def rand_digits(n):
    """n digits, the first one non-zero."""
    return str(rng.randint(1, 9)) + rand_str(DIGITS, n - 1)


def rand_bytes(n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def mixed(s):
    return any(c in UPPER for c in s) and any(c in LOWER for c in s) and any(c in DIGITS for c in s)


# Random secrets must not contain words that detectors use to recognise placeholders.
PLACEHOLDER_WORDS = re.compile(r"example|your|xxxx|placeholder|dummy|sample|redacted|changeme"
                               r"|test|fake", re.I)


def rand_token(alphabet, n):
    """Random token of length n with upper, lower and digits, alphanumeric at both ends
    (so '-' or '_' never sits next to surrounding punctuation)."""
    while True:
        s = rng.choice(ALNUM) + rand_str(alphabet, n - 2) + rng.choice(ALNUM)
        if mixed(s) and not PLACEHOLDER_WORDS.search(s):
            return s


def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def cycle(name, variant, variants):
    """Explicit variant if the template names one, else the next default variant in turn,
    so that every format gets used."""
    if variant:
        return variant
    i = _cycle_state.get(name, 0)
    _cycle_state[name] = i + 1
    return variants[i % len(variants)]


_cycle_state = {}


# --------------------------------------------------------------------------------------------
# Checksums and validators (also used by the self-check)
# --------------------------------------------------------------------------------------------

def luhn_ok(digits):
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_complete(partial):
    for c in DIGITS:
        if luhn_ok(partial + c):
            return partial + c
    raise AssertionError("unreachable")


IBAN_SPECS = {  # country -> BBAN layout as (length, "n" digits / "a" upper letters)
    "DE": [(8, "n"), (10, "n")],
    "GB": [(4, "a"), (6, "n"), (8, "n")],
    "FR": [(5, "n"), (5, "n"), (11, "n"), (2, "n")],
    "ES": [(4, "n"), (4, "n"), (2, "n"), (10, "n")],
    "NL": [(4, "a"), (10, "n")],
    "IT": [(1, "a"), (5, "n"), (5, "n"), (12, "n")],
    "BE": [(3, "n"), (7, "n"), (2, "n")],
    "CH": [(5, "n"), (12, "n")],
    "AT": [(5, "n"), (11, "n")],
    "PL": [(8, "n"), (16, "n")],
    "IE": [(4, "a"), (6, "n"), (8, "n")],
    "PT": [(21, "n")],
}
IBAN_LENGTHS = {c: 4 + sum(n for n, _ in spec) for c, spec in IBAN_SPECS.items()}


def iban_number(s):
    return int("".join(str(int(c, 36)) for c in s))


def iban_check_digits(country, bban):
    return "%02d" % (98 - iban_number(bban + country + "00") % 97)


def iban_ok(text):
    s = text.replace(" ", "")
    return (IBAN_LENGTHS.get(s[:2]) == len(s) and s[2:4].isdigit()
            and iban_number(s[4:] + s[:4]) % 97 == 1)


def ssn_ok(s):
    m = re.fullmatch(r"(\d{3})-(\d{2})-(\d{4})", s)
    if not m:
        return False
    area, group, serial = m.groups()
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


# Documentation test cards: Luhn-valid on purpose, but published, so never findings.
TEST_CARDS = {
    "4242424242424242", "4111111111111111", "5555555555554444", "4000056655665556",
    "378282246310005", "6011111111111117", "5105105105105100",
}

# Values that look real but are published examples: never findings.
KNOWN_EXAMPLE_SSNS = {"078-05-1120", "219-09-9999", "123-45-6789"}


# --------------------------------------------------------------------------------------------
# Positive value generators: gen_<detector>(variant) -> string that appears in the text
# --------------------------------------------------------------------------------------------

FIRST = ["ana", "lukas", "sofia", "jean", "maria", "kenji", "priya", "omar", "chloe", "mateo",
         "fatima", "noah", "elena", "yusuf", "ines", "li", "hannah", "pablo", "camille", "jonas",
         "amara", "diego", "lea", "raj", "sven", "lucia", "marc", "aiko", "tobias", "nadia"]
LAST = ["lopez", "becker", "rossi", "dupont", "garcia", "sato", "natarajan", "haddad", "martin",
        "fernandez", "khan", "miller", "schmidt", "duarte", "wei", "mueller", "moreau", "novak",
        "okafor", "jensen", "bianchi", "ramirez", "fischer", "lefebvre", "tanaka", "costa"]
EMAIL_DOMAINS = ["example.org", "example.com", "example.net", "acme-corp.io", "mail.example.de",
                 "correo.example.es", "exemple.fr", "contoso.co.uk", "northwind-traders.com",
                 "uni-example.de", "dept.cs.example.edu", "fabrikam.eu", "example.com.mx",
                 "startup.dev", "tailspin-toys.fr"]


def gen_email(variant):
    style = cycle("email_style", None, ["dot", "initial", "plus", "digits", "upper", "under",
                                         "dash", "plain"])
    f, l = rng.choice(FIRST), rng.choice(LAST)
    local = {
        "dot": f"{f}.{l}",
        "initial": f"{f[0]}.{l}",
        "plus": f"{f}+{rng.choice(['billing', 'news', 'work', 'gw'])}",
        "digits": f"{f}{l}{rng.randint(1, 99)}",
        "upper": f"{f.capitalize()}.{l.capitalize()}",
        "under": f"{f}_{l}",
        "dash": f"{f}-{l}",
        "plain": f,
    }[style]
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


def us_parts():
    while True:
        area = f"{rng.randint(2, 9)}{rng.randint(0, 8)}{rng.randint(0, 9)}"
        exch = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
        if area[1:] != "11" and exch[1:] != "11":
            return area, exch, rand_str(DIGITS, 4)


def d(n):
    return rand_str(DIGITS, n)


PHONE_FORMATS = {
    "us_intl": lambda: "+1 %s %s %s" % us_parts(),
    "us_paren": lambda: "(%s) %s-%s" % us_parts(),
    "us_intl_paren": lambda: "+1 (%s) %s-%s" % us_parts(),
    "us_dash": lambda: "%s-%s-%s" % us_parts(),
    "us_dot": lambda: "%s.%s.%s" % us_parts(),
    "us_e164": lambda: "+1%s%s%s" % us_parts(),
    "us_intl_dash": lambda: "+1-%s-%s-%s" % us_parts(),
    "uk_london": lambda: f"+44 20 7{d(3)} {d(4)}",
    "uk_mobile": lambda: f"+44 7{rng.randint(400, 999)} {d(6)}",
    "uk_paren0": lambda: f"+44 (0)20 7{d(3)} {d(4)}",
    "de_berlin": lambda: f"+49 30 {rand_digits(rng.choice([6, 7, 8]))}",
    "de_mobile": lambda: f"+49 1{rng.choice(['51', '52', '60', '70', '71', '76'])} {rand_digits(8)}",
    "de_paren0": lambda: f"+49 (0)89 {rand_digits(7)}",
    "fr_intl": lambda: f"+33 {rng.randint(1, 7)} {d(2)} {d(2)} {d(2)} {d(2)}",
    "fr_nat": lambda: f"0{rng.randint(1, 7)} {d(2)} {d(2)} {d(2)} {d(2)}",
    "es_fixed": lambda: f"+34 91{d(1)} {d(3)} {d(3)}",
    "es_mobile": lambda: f"+34 6{d(2)} {d(2)} {d(2)} {d(2)}",
    "mx": lambda: f"+52 55 {d(4)} {d(4)}",
    "jp": lambda: f"+81 3-{d(4)}-{d(4)}",
    "in": lambda: f"+91 {rng.randint(7, 9)}{d(4)} {d(5)}",
    "au": lambda: f"+61 2 {d(4)} {d(4)}",
    "ie": lambda: f"+353 1 {d(3)} {d(4)}",
}
PHONE_DEFAULTS = ["us_intl", "us_paren", "uk_london", "de_berlin", "fr_intl", "us_dot",
                  "es_mobile", "us_intl_paren", "de_mobile", "us_dash", "uk_mobile", "mx",
                  "us_e164", "jp", "in", "au", "ie", "us_intl_dash", "de_paren0", "uk_paren0",
                  "es_fixed"]


def gen_phone(variant):
    return PHONE_FORMATS[cycle("phone", variant, PHONE_DEFAULTS)]()


CARD_BRANDS = {  # brand -> (prefix generator, length)
    "visa": (lambda: "4", 16),
    "visa13": (lambda: "4", 13),
    "visa19": (lambda: "4", 19),
    "mc": (lambda: str(rng.randint(51, 55)), 16),
    "mc2": (lambda: str(rng.randint(2221, 2720)), 16),
    "amex": (lambda: rng.choice(["34", "37"]), 15),
    "discover": (lambda: rng.choice(["6011", "65", str(rng.randint(644, 649))]), 16),
}
CARD_GROUPS = {13: [13], 15: [4, 6, 5], 16: [4, 4, 4, 4], 19: [4, 4, 4, 4, 3]}
CARD_DEFAULTS = ["visa_space", "mc_space", "amex_space", "discover_space", "visa_none",
                 "mc_dash", "amex_dash", "visa_dash", "mc2_space", "discover_none", "amex_none",
                 "visa13_none", "visa19_space", "mc2_none", "discover_dash"]


def format_card(number, sep):
    if sep == "none":
        return number
    out, i = [], 0
    for g in CARD_GROUPS[len(number)]:
        out.append(number[i:i + g])
        i += g
    return {"space": " ", "dash": "-"}[sep].join(out)


def card_number(brand):
    prefix_fn, length = CARD_BRANDS[brand]
    while True:
        prefix = prefix_fn()
        number = luhn_complete(prefix + d(length - len(prefix) - 1))
        if number not in TEST_CARDS and len(set(number)) > 3:
            return number


def gen_card(variant):
    brand, sep = cycle("card", variant, CARD_DEFAULTS).split("_")
    return format_card(card_number(brand), sep)


def gen_ssn(variant):
    while True:
        area = rng.randint(1, 899)
        s = "%03d-%02d-%04d" % (area, rng.randint(1, 99), rng.randint(1, 9999))
        if ssn_ok(s) and s not in KNOWN_EXAMPLE_SSNS:
            return s


def iban_compact(country):
    bban = ""
    for n, kind in IBAN_SPECS[country]:
        bban += rand_str(UPPER, n) if kind == "a" else d(n)
    if country == "BE":  # Belgian national check: first 10 digits mod 97 (0 -> 97)
        bban = bban[:10] + "%02d" % (int(bban[:10]) % 97 or 97)
    return country + iban_check_digits(country, bban) + bban


def group4(s):
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


IBAN_DEFAULTS = ["DE_grouped", "GB_compact", "FR_grouped", "ES_compact", "NL_grouped",
                 "IT_compact", "BE_grouped", "CH_compact", "AT_grouped", "PL_compact",
                 "IE_grouped", "PT_compact"]


def gen_iban(variant):
    country, fmt = cycle("iban", variant, IBAN_DEFAULTS).split("_")
    s = iban_compact(country)
    return group4(s) if fmt == "grouped" else s


def h16():
    return "%x" % rng.randint(1, 0xFFFF)


def ipv4_public():
    while True:
        first = rng.randint(1, 223)
        if first not in (10, 100, 127, 169, 172, 192, 198, 203):
            return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


IP_FORMATS = {
    "v4pub": ipv4_public,
    "v4priv": lambda: rng.choice([
        f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"]),
    "v4doc": lambda: rng.choice(["192.0.2", "198.51.100", "203.0.113"]) + f".{rng.randint(1, 254)}",
    "v6full": lambda: rng.choice(["2001:db8", "2a02:%x" % rng.randint(0x1000, 0xffff),
                                  "2606:%x" % rng.randint(0x1000, 0xffff)])
    + ":" + ":".join(h16() for _ in range(6)),
    "v6comp": lambda: rng.choice([
        f"2001:db8::{h16()}",
        f"2001:db8:{h16()}::{h16()}",
        f"2001:db8:{h16()}:{h16()}::{h16()}:{h16()}",
        f"2a01:{h16()}::{h16()}"]),
    "v6ll": lambda: f"fe80::{h16()}:{h16()}:{h16()}:{h16()}",
    "v6upper": lambda: ("2001:DB8:%X:%X::%X" % (rng.randint(1, 0xffff), rng.randint(1, 0xffff),
                                                 rng.randint(1, 0xffff))),
}
IP_DEFAULTS = ["v4pub", "v6comp", "v4priv", "v6full", "v4doc", "v6ll", "v4pub", "v6upper"]


def gen_ip_address(variant):
    return IP_FORMATS[cycle("ip", variant, IP_DEFAULTS)]()


def gen_openai_key(variant):
    v = cycle("openai", variant, ["legacy", "proj", "legacy_t3", "proj_long", "svcacct"])
    if v == "legacy":
        return "sk-" + rand_token(ALNUM, 48)
    if v == "legacy_t3":  # older keys carry the "T3BlbkFJ" marker in the middle
        return "sk-" + rand_token(ALNUM, 20) + "T3BlbkFJ" + rand_token(ALNUM, 20)
    if v == "proj":
        return "sk-proj-" + rand_token(B64URL, 48)
    if v == "proj_long":
        return "sk-proj-" + rand_token(B64URL, 74) + "T3BlbkFJ" + rand_token(B64URL, 74)
    if v == "svcacct":
        return "sk-svcacct-" + rand_token(B64URL, 74) + "T3BlbkFJ" + rand_token(B64URL, 74)
    raise KeyError(v)


def gen_anthropic_key(variant):
    return "sk-ant-api03-" + rand_token(B64URL, 93) + "AA"


def gen_aws_access_key_id(variant):
    prefix = {"akia": "AKIA", "asia": "ASIA"}[cycle("akid", variant, ["akia", "akia", "asia"])]
    while True:
        body = rand_str(UPPER + "234567", 16)
        if not PLACEHOLDER_WORDS.search(body) and any(c in DIGITS for c in body):
            return prefix + body


def gen_aws_secret_key(variant):
    while True:
        s = rand_str(B64, 40)
        if mixed(s) and s[0] in ALNUM and s[-1] in ALNUM and not PLACEHOLDER_WORDS.search(s):
            return s


def gen_github_token(variant):
    v = cycle("github", variant, ["ghp", "github_pat", "gho", "ghs", "ghp", "ghu", "ghr"])
    if v == "github_pat":
        return "github_pat_" + rand_token(ALNUM, 22) + "_" + rand_token(ALNUM, 59)
    return v + "_" + rand_token(ALNUM, 36)


def gen_gitlab_token(variant):
    return "glpat-" + rand_token(B64URL, 20)


def gen_slack_token(variant):
    v = cycle("slack", variant, ["xoxb", "xoxp", "xoxb", "xoxa", "xoxr", "xoxs"])
    if v == "xoxp":
        return f"xoxp-{rand_digits(12)}-{rand_digits(12)}-{rand_digits(13)}-{rand_str(HEX, 32)}"
    if v == "xoxa":
        return f"xoxa-2-{rand_digits(12)}-{rand_digits(13)}-{rand_token(ALNUM, 24)}"
    return f"{v}-{rand_digits(rng.choice([10, 11, 12]))}-{rand_digits(13)}-{rand_token(ALNUM, 24)}"


def gen_google_api_key(variant):
    v = cycle("google", variant, ["sy", "sy", "any"])
    return "AIza" + ("Sy" + rand_token(B64URL, 33) if v == "sy" else rand_token(B64URL, 35))


def gen_stripe_key(variant):
    v = cycle("stripe", variant, ["sk", "rk", "sk_long", "sk", "rk_long"])
    prefix = "sk_live_" if v.startswith("sk") else "rk_live_"
    if v.endswith("long"):  # current-style keys: "51" + ~97 chars
        return prefix + "51" + rand_token(ALNUM, 97)
    return prefix + rand_token(ALNUM, rng.choice([24, 24, 34]))


def gen_huggingface_token(variant):
    while True:
        s = rand_str(LETTERS, 34)
        if any(c in UPPER for c in s) and any(c in LOWER for c in s) and not PLACEHOLDER_WORDS.search(s):
            return "hf_" + s


def der_len(n):
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der_filled(header_hex, total):
    """DER-looking blob: a realistic fixed header followed by random bytes up to `total`."""
    head = bytes.fromhex(header_hex)
    return head + rand_bytes(total - len(head))


def pem(label, der, width=64):
    b = base64.b64encode(der).decode()
    lines = [b[i:i + width] for i in range(0, len(b), width)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])


def ssh_string(b):
    return struct.pack(">I", len(b)) + b


def openssh_ed25519_private():
    pub = rand_bytes(32)
    pub_blob = ssh_string(b"ssh-ed25519") + ssh_string(pub)
    check = rand_bytes(4)
    comment = rng.choice([b"deploy@ci", b"ana@laptop", b"backup-key", b""])
    priv = (check + check + ssh_string(b"ssh-ed25519") + ssh_string(pub)
            + ssh_string(rand_bytes(32) + pub) + ssh_string(comment))
    priv += bytes(range(1, 1 + (-len(priv)) % 8))
    blob = (b"openssh-key-v1\x00" + ssh_string(b"none") + ssh_string(b"none") + ssh_string(b"")
            + struct.pack(">I", 1) + ssh_string(pub_blob) + ssh_string(priv))
    return pem("OPENSSH PRIVATE KEY", blob, width=70)


def rsa_pkcs1():
    if rng.random() < 0.5:  # 1024-bit
        return pem("RSA PRIVATE KEY", der_filled("3082025d02010002818100", 0x25d + 4))
    return pem("RSA PRIVATE KEY", der_filled("308204a40201000282010100", 0x4a4 + 4))


def ec_sec1():
    der = (bytes.fromhex("30770201010420") + rand_bytes(32)
           + bytes.fromhex("a00a06082a8648ce3d030107a14403420004") + rand_bytes(64))
    return pem("EC PRIVATE KEY", der)


def pkcs8():
    if rng.random() < 0.4:  # ed25519, a single short line
        return pem("PRIVATE KEY", bytes.fromhex("302e020100300506032b657004220420") + rand_bytes(32))
    return pem("PRIVATE KEY", der_filled(
        "308204be020100300d06092a864886f70d0101010500048204a8308204a40201000282010100",
        0x4be + 4))


def pkcs8_encrypted():
    return pem("ENCRYPTED PRIVATE KEY", der_filled(
        "308202e3304e06092a864886f70d01050d3041302906092a864886f70d01050c301c0408", 0x2e3 + 4))


PRIVATE_KEY_KINDS = {"rsa": rsa_pkcs1, "ec": ec_sec1, "openssh": openssh_ed25519_private,
                     "pkcs8": pkcs8, "encrypted": pkcs8_encrypted}


def gen_private_key(variant):
    """Variants: <kind>[_json|_indent]. _json: newlines written as the two characters '\\n'
    (PEM inside a JSON or .env string). _indent: inner lines indented by 4 spaces (YAML block)."""
    v = cycle("pk", variant, ["rsa", "openssh", "ec", "pkcs8"])
    kind, _, render = v.partition("_")
    block = PRIVATE_KEY_KINDS[kind]()
    if render == "json":
        return block.replace("\n", "\\n")
    if render == "indent":
        return block.replace("\n", "\n    ")
    return block


def gen_jwt(variant):
    alg = cycle("jwt", variant, ["hs256", "rs256", "es256"])
    header = {"hs256": {"alg": "HS256", "typ": "JWT"},
              "rs256": {"alg": "RS256", "typ": "JWT", "kid": rand_str(HEX, 16)},
              "es256": {"alg": "ES256", "typ": "JWT"}}[alg]
    iat = rng.randint(1735689600, 1798761600)
    payload = {"sub": rng.choice(["user_", "usr-", ""]) + rand_digits(rng.randint(4, 9)),
               "iat": iat, "exp": iat + rng.choice([900, 3600, 86400])}
    if rng.random() < 0.5:
        payload["scope"] = rng.choice(["read", "read write", "chat:completions", "admin"])
    if rng.random() < 0.5:
        payload["iss"] = rng.choice(["https://auth.example.com", "switchyard", "acme-idp"])
    sig_len = {"hs256": 32, "rs256": 256, "es256": 64}[alg]
    compact = lambda o: json.dumps(o, separators=(",", ":")).encode()
    return ".".join([b64url(compact(header)), b64url(compact(payload)), b64url(rand_bytes(sig_len))])


def gen_generic_secret(variant):
    alphabet = ALNUM + SECRET_SYMBOLS
    while True:
        s = rng.choice(ALNUM) + rand_str(alphabet, rng.randint(13, 27))
        if (mixed(s) and any(c in SECRET_SYMBOLS for c in s) and not re.search(r"(.)\1\1", s)
                and not PLACEHOLDER_WORDS.search(s)):
            return s


POSITIVE_GENERATORS = {name: globals()["gen_" + name] for name in DETECTORS}


# --------------------------------------------------------------------------------------------
# Negative (look-alike) generators: never findings
# --------------------------------------------------------------------------------------------

def hex_with_letter(n):
    while True:
        s = rand_str(HEX, n)
        if any(c in "abcdef" for c in s) and any(c in DIGITS for c in s):
            return s


def neg_badluhn(variant):
    """A 16-digit card-looking number whose Luhn check fails."""
    sep = cycle("neg_badluhn", variant, ["space", "none", "dash"])
    n = card_number(rng.choice(["visa", "mc", "discover"]))
    n = n[:-1] + str((int(n[-1]) + rng.randint(1, 9)) % 10)
    return format_card(n, sep)


def neg_badiban(variant):
    fmt = cycle("neg_badiban", variant, ["grouped", "compact"])
    good = iban_compact(rng.choice(sorted(IBAN_SPECS)))
    while True:
        cd = "%02d" % rng.randint(2, 98)
        if cd != good[2:4]:
            break
    s = good[:2] + cd + good[4:]
    return group4(s) if fmt == "grouped" else s


def neg_badssn(variant):
    v = cycle("neg_badssn", variant, ["area000", "area666", "area9xx", "group00", "serial0000"])
    area = {"area000": "000", "area666": "666", "area9xx": "9" + d(2)}.get(v, "%03d" % rng.randint(1, 665))
    group = "00" if v == "group00" else "%02d" % rng.randint(1, 99)
    serial = "0000" if v == "serial0000" else "%04d" % rng.randint(1, 9999)
    return f"{area}-{group}-{serial}"


def neg_tsms(variant):
    while True:
        s = str(rng.randint(1735689600000, 1798761600000))
        if not luhn_ok(s):
            return s


def neg_stripe_test(variant):
    kind = cycle("neg_stripe_test", variant, ["sk", "rk", "sk"])
    return f"{kind}_test_" + rand_token(ALNUM, rng.choice([24, 99]))


def neg_pubpem(variant):
    der = der_filled("30820122300d06092a864886f70d01010105000382010f003082010a0282010100",
                     0x122 + 4 - 5) + bytes.fromhex("0203010001")
    return pem("PUBLIC KEY", der)


def neg_certpem(variant):
    return pem("CERTIFICATE", der_filled("30820301308201e9a0030201020214", 0x301 + 4))


def neg_sshpub(variant):
    blob = ssh_string(b"ssh-ed25519") + ssh_string(rand_bytes(32))
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


NEGATIVE_GENERATORS = {
    "neg_uuid": lambda v: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    "neg_sha40": lambda v: hex_with_letter(40),
    "neg_sha7": lambda v: hex_with_letter(7),
    "neg_sha256": lambda v: hex_with_letter(64),
    "neg_md5": lambda v: hex_with_letter(32),
    "neg_hex16": lambda v: hex_with_letter(16),
    "neg_order": lambda v: "1" + d(11),
    "neg_tsms": neg_tsms,
    "neg_badluhn": neg_badluhn,
    "neg_badiban": neg_badiban,
    "neg_badssn": neg_badssn,
    "neg_stripe_test": neg_stripe_test,
    "neg_b64img": lambda v: "iVBORw0KGgoAAAANSUhEUgAA" + base64.b64encode(rand_bytes(72)).decode(),
    "neg_pubpem": neg_pubpem,
    "neg_certpem": neg_certpem,
    "neg_sshpub": neg_sshpub,
}


# --------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------

LOG_TS = ["2026-01-15T08:01:12Z", "2026-02-01 12:00:03", "2026-03-14T09:12:44.512Z",
          "2026-04-02T10:22:11+02:00", "2026-05-05 17:45:00,118"]

# Single-detector cases: one list per detector. Templates may use a `{det:variant}` placeholder.
POSITIVE_TEMPLATES = {
    "email": [
        "{email} wrote: can you summarize the thread below in three bullet points?",
        "Please forward the signed contract to {email}.",
        "From: Ana López <{email}>\nSubject: Re: Q3 budget\n\nSee attached.",
        '{"user": {"id": 4821, "email": "{email}", "plan": "pro"}}',
        "2026-03-14T09:12:44Z INFO auth.login succeeded user={email} method=sso",
        "id,name,email,country\n17,Lukas Becker,{email},DE",
        "| Name | Email |\n|---|---|\n| Sofia Rossi | {email} |",
        "Hallo, bitte schick die Rechnung an {email}, danke!",
        "Hola, mi correo es {email} por si necesitas algo.",
        "Bonjour, vous pouvez me joindre à l'adresse {email}.",
        '<a href="mailto:{email}">Contact support</a>',
        "cc: ({email})",
        "Write a polite reply to '{email}' declining the meeting on Friday.",
        "Reply-To: {email}",
        'user_email = "{email}"  # TODO remove before commit',
        "Kannst du prüfen, warum Mails an «{email}» zurückkommen?",
    ],
    "phone": [
        "Call me at {phone} tomorrow after 10.",
        "{phone} is the number on the invoice, can you check who it belongs to?",
        '{"contact": {"name": "Kenji Sato", "phone": "{phone}"}}',
        "Tel.: {phone:de_berlin} (Zentrale)",
        "Mi número es {phone:es_mobile}, llámame cuando puedas.",
        "Vous pouvez m'appeler au {phone:fr_intl} ou passer au bureau.",
        "Rappelez-moi au {phone:fr_nat}, merci.",
        "name,phone\nPriya Natarajan,{phone}",
        "2026-02-01 12:00:03 WARN sms.send failed to={phone} reason=carrier_timeout",
        "Support hotline (24/7): {phone:uk_london}.",
        "- **Mobil:** {phone:de_mobile}",
        "Please text me [{phone:us_paren}] when you arrive.",
        "Summarize this voicemail from {phone:us_dot}: 'Hi, it's Omar, call me back.'",
        "<phone>{phone:us_e164}</phone>",
        "Nuestra oficina en CDMX: {phone:mx}.",
        "Erreichbar unter {phone:de_paren0} – Mo bis Fr, 9 bis 17 Uhr.",
        "WhatsApp me on {phone:in}",
        "phone_number = '{phone:uk_mobile}'",
        "Für Rückfragen: {phone:us_intl_dash}",
    ],
    "card": [
        "My card number is {card} and it was charged twice, can you help?",
        "{card} exp 09/28 — is it safe to paste this here?",
        '{"payment": {"card_number": "{card:visa_none}", "exp_month": 9, "exp_year": 2028}}',
        "card_number,amount,currency\n{card:mc_none},129.90,EUR",
        "2026-04-02T10:22:11+02:00 ERROR payment declined pan={card:visa_dash} code=05",
        "Meine Kreditkarte ({card:amex_space}) wurde gestern abgelehnt.",
        "Pagué con la tarjeta {card:visa_space}, pero no llegó el pedido.",
        "J'ai payé avec ma carte {card:discover_space}.",
        "Amex: {card:amex_dash}",
        "Charge the card “{card:mc2_space}” again please.",
        "| Card | Status |\n|---|---|\n| {card:visa13_none} | blocked |",
        "INSERT INTO payments (pan) VALUES ('{card:discover_none}');",
        "Use {card:visa19_space} for the corporate account.",
        "The customer read out their card, {card:amex_none}, over the phone.",
        "Bitte die Karte {card:mc_dash} sperren",
    ],
    "ssn": [
        "My SSN is {ssn}, do I need to include it on the W-4?",
        "{ssn} — employee social security number for payroll",
        '{"employee": "Noah Miller", "ssn": "{ssn}"}',
        "ssn,first,last\n{ssn},Chloe,Martin",
        "2026-01-15T08:01:12Z DEBUG kyc.verify ssn={ssn} result=match",
        "Meine US-Sozialversicherungsnummer lautet {ssn}.",
        "Mi número de seguro social (SSN) es {ssn}, ¿lo necesitan?",
        "Mon numéro de sécurité sociale américain : {ssn}.",
        "Social Security No.: ({ssn})",
        "- SSN: `{ssn}`",
        "Please redact '{ssn}' from the transcript before sharing it.",
        "<ssn>{ssn}</ssn>",
        "Applicant SSN {ssn}; DOB 1985-07-14.",
        'ssn = "{ssn}"',
    ],
    "iban": [
        "Please wire the deposit to {iban:DE_grouped}.",
        "IBAN: {iban:GB_compact}\nBIC: NWBKGB2L",
        '{"beneficiary": "Elena García", "iban": "{iban:ES_compact}"}',
        "Bitte überweisen Sie den Betrag auf das Konto {iban:DE_compact} bis zum 15.03.",
        "Por favor, haz la transferencia a la cuenta {iban:ES_grouped}, gracias.",
        "Merci de verser l'acompte sur l'IBAN {iban:FR_grouped}.",
        "name;iban;amount\nInes Duarte;{iban:PT_compact};250,00",
        "2026-05-05 17:45:00,118 INFO sepa.transfer created debtor_iban={iban:NL_compact} amount=1200.00",
        "| Lieferant | IBAN |\n|---|---|\n| Müller GmbH | {iban:AT_grouped} |",
        "Rekening: {iban:NL_grouped} (ING)",
        "IBAN «{iban:IT_grouped}» – intestato a Marco Bianchi",
        "Can you check if {iban:BE_grouped} is a valid Belgian IBAN?",
        "{iban:CH_grouped} is my Swiss account, please update your records.",
        "iban = '{iban:PL_compact}'",
        "Account (IE): {iban:IE_grouped}",
        "Le virement vers {iban:FR_compact} a été rejeté.",
    ],
    "ip_address": [
        "Connection refused from {ip_address:v4priv} on port 5432",
        "2026-03-14T09:12:44.512Z sshd[812]: Failed login for root from {ip_address:v4pub} port 52144 ssh2",
        "Why can't I ping {ip_address:v6comp}?",
        '{"client_ip": "{ip_address:v6full}", "status": 403}',
        "server {\n  listen [{ip_address:v6comp}]:443 ssl;\n}",
        "Der Server hat die Adresse {ip_address:v4priv}, erreichbar nur im VPN.",
        "La IP pública del cliente era {ip_address:v4pub}.",
        "L'adresse link-local est {ip_address:v6ll}.",
        "curl http://{ip_address:v4priv}:8080/health",
        "ip,hits\n{ip_address:v4pub},1532",
        "- allowed: `{ip_address:v6full}`",
        "Blocked {ip_address:v6comp} (too many requests).",
        'host = "{ip_address:v4doc}"',
        "Ping to {ip_address:v6upper} timed out",
        "{ip_address:v4pub} - - [14/Mar/2026:09:12:44 +0000] \"GET /v1/models HTTP/1.1\" 200 512",
        "ssh root@{ip_address:v4pub} -i ~/.ssh/deploy.pem",
    ],
    "openai_key": [
        "OPENAI_API_KEY={openai_key}",
        'client = OpenAI(api_key="{openai_key:proj}")',
        "Here's my key {openai_key} why does it say insufficient_quota?",
        "{openai_key:proj} — is this key still active?",
        '{"provider": "openai", "api_key": "{openai_key}"}',
        'curl https://api.openai.com/v1/models -H "Authorization: Bearer {openai_key:proj_long}"',
        "Mein OpenAI-Schlüssel: {openai_key:legacy}",
        "Mi clave de OpenAI es {openai_key:proj}.",
        "Ma clé OpenAI ({openai_key:legacy_t3}) ne marche plus.",
        "2026-02-01 12:00:03 WARN upstream=openai key={openai_key:svcacct} status=401",
        "- `{openai_key:proj}`",
        "provider,key\nopenai,{openai_key:legacy}",
        "openai.api_key = '{openai_key:proj_long}'",
        'export OPENAI_API_KEY="{openai_key:proj}"',
    ],
    "anthropic_key": [
        "ANTHROPIC_API_KEY={anthropic_key}",
        'client = anthropic.Anthropic(api_key="{anthropic_key}")',
        "x-api-key: {anthropic_key}",
        '{"anthropic": {"api_key": "{anthropic_key}"}}',
        "Why is {anthropic_key} returning 401?",
        "{anthropic_key} leaked in the CI logs, rotate it",
        "Mein Claude-API-Key lautet {anthropic_key}.",
        "Mi clave de Anthropic: {anthropic_key}",
        "Voici ma clé Anthropic : {anthropic_key}.",
        "2026-01-15T08:01:12Z DEBUG anthropic request x-api-key={anthropic_key} model=claude",
        "| env | key |\n|---|---|\n| prod | {anthropic_key} |",
        "anthropic_key,owner\n{anthropic_key},platform-team",
        "curl https://api.anthropic.com/v1/messages -H 'x-api-key: {anthropic_key}' -H 'anthropic-version: 2023-06-01'",
    ],
    "aws_access_key_id": [
        "Is {aws_access_key_id} an access key for our prod account?",
        "export AWS_ACCESS_KEY_ID={aws_access_key_id}",
        '{"AccessKeyId": "{aws_access_key_id:asia}", "Expiration": "2026-07-01T12:00:00Z"}',
        "2026-04-02T10:22:11+02:00 ERROR s3.put denied for key {aws_access_key_id}: AccessDenied",
        "Mein Access Key ist {aws_access_key_id}, warum geht der Upload nicht?",
        "La clave de acceso {aws_access_key_id} ya no funciona.",
        "La clé d'accès ({aws_access_key_id}) a été désactivée.",
        "- key: `{aws_access_key_id}`",
        "user,access_key_id\nci-bot,{aws_access_key_id}",
        "<AccessKeyId>{aws_access_key_id:asia}</AccessKeyId>",
        "{aws_access_key_id} was found in the public repo, rotate it!",
        "aws configure set aws_access_key_id {aws_access_key_id}",
    ],
    "aws_secret_key": [
        "[default]\nregion = eu-central-1\naws_secret_access_key = {aws_secret_key}",
        "export AWS_SECRET_ACCESS_KEY={aws_secret_key}",
        '{"SecretAccessKey": "{aws_secret_key}", "Expiration": "2026-07-01T12:00:00Z"}',
        "The AWS secret is {aws_secret_key} — please rotate it.",
        "Das AWS-Secret lautet {aws_secret_key}, bitte nicht weitergeben.",
        'La clave secreta de AWS es "{aws_secret_key}".',
        "Le secret AWS : {aws_secret_key}",
        "boto3.client('s3', aws_secret_access_key='{aws_secret_key}')",
        'AWS_SECRET_ACCESS_KEY: "{aws_secret_key}"',
        "2026-02-01 12:00:03 DEBUG aws secret key: {aws_secret_key}",
        'provider "aws" {\n  region     = "us-east-1"\n  secret_key = "{aws_secret_key}"\n}',
        "- AWS secret access key: `{aws_secret_key}`",
    ],
    "github_token": [
        "GITHUB_TOKEN={github_token:ghp}",
        "Authorization: token {github_token:gho}",
        '{"github": {"token": "{github_token:ghs}"}}',
        "Found {github_token:ghp} in .env.example — revoke it.",
        "{github_token:github_pat} is my fine-grained PAT, does it have repo scope?",
        "Mein GitHub-Token: {github_token:ghu}",
        "Mi token de GitHub es {github_token:ghp}.",
        "Mon jeton GitHub ({github_token:ghr}) a expiré.",
        "echo {github_token:github_pat} | gh auth login --with-token",
        "- name: Checkout\n  env:\n    GH_TOKEN: {github_token:ghp}",
        "2026-05-05 17:45:00,118 INFO git.fetch auth=bearer token={github_token:ghs}",
        "user,token\nrelease-bot,{github_token:github_pat}",
        "gh_token = '{github_token:gho}'",
    ],
    "gitlab_token": [
        "GITLAB_TOKEN={gitlab_token}",
        "PRIVATE-TOKEN: {gitlab_token}",
        'curl --header "PRIVATE-TOKEN: {gitlab_token}" https://gitlab.example.com/api/v4/projects',
        '{"gitlab_token": "{gitlab_token}"}',
        "{gitlab_token} is the deploy token, right?",
        "Das GitLab-Token ({gitlab_token}) läuft morgen ab.",
        "Mi token de GitLab: {gitlab_token}",
        "Le jeton GitLab est {gitlab_token}.",
        "2026-03-14T09:12:44.512Z WARN ci.runner token={gitlab_token} scope=api",
        "| project | token |\n|---|---|\n| infra | {gitlab_token} |",
        "token,expires\n{gitlab_token},2026-12-31",
        "gitlab:\n  token: '{gitlab_token}'",
        "Use {gitlab_token}, not the old one.",
    ],
    "slack_token": [
        "SLACK_BOT_TOKEN={slack_token:xoxb}",
        "Authorization: Bearer {slack_token:xoxp}",
        '{"slack": {"bot_token": "{slack_token:xoxb}"}}',
        "{slack_token:xoxa} belongs to which workspace?",
        "Das Slack-Token lautet {slack_token:xoxb}.",
        "El token de Slack ({slack_token:xoxr}) ya no sirve.",
        "Le jeton Slack : {slack_token:xoxs}",
        "2026-01-15T08:01:12Z ERROR slack.post invalid_auth token={slack_token:xoxp}",
        "- bot: `{slack_token:xoxb}`",
        "name,token\nalerts-bot,{slack_token:xoxb}",
        'client = WebClient(token="{slack_token:xoxb}")',
        "Rotate {slack_token:xoxp} asap.",
    ],
    "google_api_key": [
        "GOOGLE_API_KEY={google_api_key}",
        '<script src="https://maps.googleapis.com/maps/api/js?key={google_api_key}&callback=initMap"></script>',
        '{"gemini": {"api_key": "{google_api_key}"}}',
        "{google_api_key} keeps hitting quota limits",
        "Mein Gemini-Key: {google_api_key}",
        "La API key de Google es {google_api_key}.",
        "Ma clé Google Maps ({google_api_key}) est exposée.",
        "2026-04-02T10:22:11+02:00 INFO upstream=gemini key={google_api_key}",
        'curl "https://generativelanguage.googleapis.com/v1beta/models?key={google_api_key}"',
        "- maps: {google_api_key}",
        "service,key\nmaps,{google_api_key}",
        "genai.configure(api_key='{google_api_key}')",
    ],
    "stripe_key": [
        "STRIPE_SECRET_KEY={stripe_key:sk}",
        'stripe.api_key = "{stripe_key:sk}"',
        "Restricted key for reporting: {stripe_key:rk}",
        '{"stripe": {"secret_key": "{stripe_key:sk_long}"}}',
        "{stripe_key:sk} accidentally pushed to GitHub",
        "Der Stripe-Live-Key ({stripe_key:sk}) muss rotiert werden.",
        "La clave de Stripe en producción es {stripe_key:rk}.",
        "La clé Stripe live : {stripe_key:sk_long}",
        "2026-05-05 17:45:00,118 ERROR stripe.charge key={stripe_key:sk} err=card_declined",
        "curl https://api.stripe.com/v1/charges -u {stripe_key:sk}:",
        "env,key\nprod,{stripe_key:rk_long}",
        "- live: `{stripe_key:sk}`",
    ],
    "huggingface_token": [
        "HF_TOKEN={huggingface_token}",
        "huggingface-cli login --token {huggingface_token}",
        'from huggingface_hub import login\nlogin(token="{huggingface_token}")',
        '{"hf_token": "{huggingface_token}"}',
        "{huggingface_token} — read-only token for the private model",
        "Mein Hugging-Face-Token lautet {huggingface_token}.",
        "Mi token de Hugging Face: {huggingface_token}",
        "Mon token Hugging Face ({huggingface_token}) est public par erreur.",
        "2026-02-01 12:00:03 DEBUG hub.download token={huggingface_token} repo=acme/private-model",
        "Authorization: Bearer {huggingface_token}",
        "- `{huggingface_token}`",
        "user,token\nml-bot,{huggingface_token}",
    ],
    "private_key": [
        "Why does ssh say 'invalid format' for this key?\n\n{private_key:openssh}",
        "{private_key:rsa}\n\nThat's the deploy key, put it into the vault.",
        "tls:\n  cert_file: /etc/ssl/certs/api.pem\n  key: |\n    {private_key:ec_indent}\n",
        "Hier ist mein privater Schlüssel:\n{private_key:ec}\nWarum funktioniert er nicht?",
        "Esta es la clave privada del servidor:\n{private_key:rsa}",
        "Voici la clé privée :\n{private_key:pkcs8}\nMerci de la supprimer après usage.",
        "```\n{private_key:openssh}\n```",
        'PRIVATE_KEY="{private_key:rsa_json}"',
        "{private_key:pkcs8}",
        "$ cat ~/.ssh/id_ed25519\n{private_key:openssh}\n$ ",
        "{private_key:encrypted}\nThe passphrase is in the team password manager.",
        'resource "tls_cert" "api" {\n  private_key = <<EOF\n{private_key:ec}\nEOF\n}',
        '{"kid": "signing-2026", "pem": "{private_key:pkcs8_json}"}',
    ],
    "jwt": [
        "Authorization: Bearer {jwt}",
        "Can you decode this token? {jwt}",
        '{"access_token": "{jwt}", "token_type": "Bearer", "expires_in": 3600}',
        "Set-Cookie: session={jwt}; Path=/; HttpOnly",
        "https://app.example.com/callback?id_token={jwt}&state=af0ifjsldkj",
        "Das Token {jwt} ist abgelaufen, oder?",
        "El JWT que recibo es {jwt}.",
        "Le jeton ({jwt}) est refusé par l'API.",
        "2026-03-14T09:12:44.512Z WARN auth.verify failed token={jwt} reason=expired",
        "- token: `{jwt}`",
        "user_id,token\n42,{jwt}",
        "{jwt}",
        "localStorage.setItem('token', '{jwt}');",
    ],
    "generic_secret": [
        "DB_HOST=db.internal\nDB_USER=app\nDB_PASSWORD={generic_secret}\n",
        "passwd: {generic_secret}",
        'api_key = "{generic_secret}"',
        "secret_token: '{generic_secret}'",
        "grant_type=client_credentials&client_id=switchyard&client_secret={generic_secret}",
        '{"db": {"user": "app", "password": "{generic_secret}"}}',
        "mysql_password = '{generic_secret}'  # prod",
        'En el fichero config.yml puse `db_password: "{generic_secret}"`, ¿está bien?',
        "In der .env steht SECRET_KEY={generic_secret} – ist das sicher?",
        'Dans le fichier de conf : client_secret = "{generic_secret}".',
        "2026-05-05 17:45:00,118 DEBUG connecting with password={generic_secret} host=db-01",
        "- `api_key: {generic_secret}`",
        "auth_token = '{generic_secret}'",
        'ADMIN_PASSWORD: "{generic_secret}"',
        'const apiSecret = "{generic_secret}";',
        "mysql -u root --password='{generic_secret}' shop",
    ],
}

# Cases with several findings. The id prefix is the detector of the first finding in the text.
MIXED_TEMPLATES = [
    "Hi, I'm Ana López ({email}), you can reach me at {phone} or on LinkedIn.",
    "Name: Lukas Becker\nEmail: {email}\nTel: {phone:de_berlin}\nIBAN: {iban:DE_grouped}",
    "[default]\naws_access_key_id = {aws_access_key_id}\naws_secret_access_key = {aws_secret_key}",
    "export AWS_ACCESS_KEY_ID={aws_access_key_id}\nexport AWS_SECRET_ACCESS_KEY={aws_secret_key}",
    '{"AccessKeyId": "{aws_access_key_id:asia}", "SecretAccessKey": "{aws_secret_key}", "Expiration": "2026-07-01T12:00:00Z"}',
    "Access key ID,Secret access key\n{aws_access_key_id},{aws_secret_key}",
    "Customer {email} paid with {card} from IP {ip_address:v4pub}.",
    "2026-01-15T08:01:12Z INFO login ok user={email} ip={ip_address:v6comp}",
    "Full name: Noah Miller; SSN: {ssn}; card: {card}; phone: {phone:us_paren}",
    "OPENAI_API_KEY={openai_key}\nANTHROPIC_API_KEY={anthropic_key}\nGEMINI_API_KEY={google_api_key}",
    "providers:\n  openai:\n    api_key: {openai_key:proj}\n  anthropic:\n    api_key: {anthropic_key}\n",
    "Hola, soy Elena ({email}). Mi teléfono es {phone:es_mobile} y mi IBAN {iban:ES_grouped}.",
    "Bonjour, je suis Chloé Martin, {email}, tél. {phone:fr_intl}.",
    "Sehr geehrte Damen und Herren,\nbitte buchen Sie von {iban:DE_compact} ab. Rückfragen an {email} oder {phone:de_mobile}.\nMit freundlichen Grüßen",
    "GITHUB_TOKEN={github_token:ghp}\nGITLAB_TOKEN={gitlab_token}\nSLACK_BOT_TOKEN={slack_token:xoxb}",
    "Leaked in the screenshot: {stripe_key:sk} and {huggingface_token}.",
    "session token {jwt} for user {email}",
    "Server {ip_address:v4priv}\n{private_key:ec}",
    "Mi tarjeta es {card:visa_space} y mi correo {email}.",
    "X-Forwarded-For: {ip_address:v4pub}, {ip_address:v6comp}",
    "cc {email}, {email}",
    "Tokyo office {phone:jp}, Sydney office {phone:au}.",
    '{"name": "Chloe Martin", "email": "{email}", "phone": "{phone:us_intl}", "ssn": "{ssn}", "address": "123 Main St, Springfield, IL 62704"}',
    "name,email,phone,iban\nAna,{email},{phone:es_fixed},{iban:ES_compact}\nLukas,{email},{phone:de_berlin},{iban:DE_compact}",
    "2026-04-02T10:22:11+02:00 WARN ip={ip_address:v4pub} token={jwt} reason=replay",
    "password={generic_secret} aws_access_key_id={aws_access_key_id}",
    'Here\'s my setup: api_key = "{generic_secret}" and my Slack bot {slack_token:xoxb}, why does the bot fail?',
    "Envoyez la facture à {email} ; IBAN {iban:FR_compact}.",
    "Kontakt: <{email}>, Tel. {phone:de_paren0}",
    "Kreditkarte {card:mc_space}, Sozialversicherungsnummer (USA) {ssn}.",
    "POST /v1/chat/completions HTTP/1.1\nHost: {ip_address:v4priv}:8080\nAuthorization: Bearer {openai_key}\nX-User-Email: {email}",
    "jobs:\n  sync:\n    env:\n      HF_TOKEN: {huggingface_token}\n      GH_TOKEN: {github_token:github_pat}",
    "2026-03-14T09:12:44.512Z ERROR upstream=anthropic client={ip_address:v6ll} key={anthropic_key}",
    "Maps key {google_api_key} registered by {email}",
    '{"type": "service_account", "project_id": "acme-prod", "private_key": "{private_key:pkcs8_json}", "client_email": "{email}"}',
    "Refund {card:amex_space} and notify {email} (ticket opened from {ip_address:v4pub}).",
    "DATABASE_PASSWORD={generic_secret}\nSTRIPE_SECRET_KEY={stripe_key:rk}\nSENTRY_ENV=prod",
    "Llama al {phone:mx} o escribe a {email}; IP del incidente: {ip_address:v4pub}",
    "Token GitLab {gitlab_token} und JWT {jwt} bitte sofort widerrufen.",
]

# Hard negatives: nothing here may be reported. `{neg_*}` placeholders produce look-alikes.
NEGATIVE_TEMPLATES = [
    # order / invoice / tracking / reference numbers
    "Your order #{neg_order} has shipped and should arrive on 2026-12-01.",
    "Invoice INV-2026-004512 is overdue since 12/01/2026 14:30 — please remind the client.",
    "Tracking: 1Z999AA10123456784 (UPS Ground)",
    "Reference number {neg_badluhn:space} — please quote it in all correspondence.",
    "customer_id,total\n{neg_badluhn:none},129.90",
    "Bestellnummer {neg_badluhn:none} vom 01.12.2026",
    "Número de pedido: {neg_order}. Gracias por su compra.",
    "Numéro de commande : {neg_badluhn:dash}",
    "Loyalty card {neg_badluhn:space} has 1,250 points.",
    "Ticket JIRA-4821 blocks SWY-1203 and SWY-1207.",
    "SELECT * FROM orders WHERE id = {neg_order};",
    "Sendungsnummer: 00340434161234567890",
    "Amex-like but wrong checksum: 3782 822463 10006",
    "Order #100234556781 was refunded.",
    # UUIDs, hashes, digests
    "request_id={neg_uuid} status=200 latency_ms=183",
    '{"trace_id": "{neg_uuid}", "span_id": "{neg_hex16}"}',
    "Die Session-ID lautet {neg_uuid}.",
    "Fixed in commit {neg_sha40}.",
    "git cherry-pick {neg_sha7} && git push",
    "Merge pull request #4512 from acme/feature-x ({neg_sha40})",
    "image: ghcr.io/acme/switchyard@sha256:{neg_sha256}",
    "{neg_sha256}  switchyard-x86_64-unknown-linux-gnu.tar.gz",
    'ETag: "{neg_md5}"',
    "checksum: {neg_sha40}\nsize: 48213",
    "El identificador de la transacción es {neg_uuid}.",
    # versions
    "Please upgrade to 1.2.3 or later.",
    "Microsoft Windows [Version 10.0.19045.2364]",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36",
    "node v20.11.1, npm 10.2.4, rustc 1.83.0",
    "Die Version 2.14.0-rc.1 behebt den Fehler.",
    "| Crate | Version |\n|---|---|\n| tokio | 1.41.1 |\n| serde | 1.0.215 |",
    "docker run -p 8080:8080 switchyard:1.4.2",
    # dates, times, timestamps
    "Meeting moved to 2026-12-01 at 14:30 (CET).",
    "Der Termin ist am 01.12.2026 um 09:15 Uhr.",
    "La reunión es el 12/01/2026 a las 14:30.",
    "Le rendez-vous est fixé au 1er décembre 2026 à 14h30.",
    "created_at: {neg_tsms}",
    'ts=1764547200 level=info msg="cache warmed"',
    "Elapsed 12:30:45 since start.",
    "Build finished at 23:59:59.999",
    '{"updated_ms": {neg_tsms}, "ok": true}',
    "Dates: 1999-2024, 2025–2026",
    # ISBNs, prices, addresses, ports, misc numbers
    "ISBN 978-3-16-148410-0",
    "ISBN-13: 9780306406157",
    "Total: $1,299.99 (incl. 8.25% tax)",
    "Preis: 1.234,56 € inkl. MwSt.",
    "Precio final: 49,95 € (IVA incluido).",
    "Prix : 12,50 € TTC.",
    "Ship to: 1 Market St, San Francisco, CA 94103-1234",
    "Adresse: Invalidenstraße 116, 10115 Berlin",
    "Dirección: Calle de Alcalá 42, 28014 Madrid",
    "listening on port 8080",
    "EXPOSE 5432/tcp",
    "Set SWITCHYARD_PORT=9090 and restart.",
    "Port range 49152-65535 is reserved for ephemeral ports.",
    "Coordinates: 52.5200, 13.4050",
    "error code 0x80070005",
    "Temperature 21.5 °C, humidity 45%",
    "HTTP/1.1 200 OK",
    "AWS account 123456789012 in eu-central-1",
    "GitHub run https://github.com/acme/switchyard/actions/runs/7834512345",
    "Kubernetes pod switchyard-7d9f8b6c5d-x2k4p restarted",
    "Lottery numbers: 4 8 15 16 23 42",
    # IP look-alikes
    "The sequence 1.2.3.4.5 is not an address.",
    "Invalid input: 999.999.999.999",
    "ping: cannot resolve 256.300.1.1: Unknown host",
    "OID 1.3.6.1.4.1.311.21.8 identifies the certificate template.",
    "MAC address 00:1A:2B:3C:4D:5E is blocked.",
    "Die MAC-Adresse ist a4-5e-60-c2-11-9f.",
    "Cisco format: 001a.2b3c.4d5e",
    "use std::collections::HashMap;",
    "arn:aws:iam::123456789012:user/ci-bot",
    "Aspect ratio 16:9, final score 3-1.",
    "IPv6 addresses are written as eight groups of four hex digits.",
    # CSS, base64 blobs, lorem ipsum, plain prompts
    "color: #ff00aa; background-color: #1e90ff; border: 1px solid rgba(12, 34, 56, 0.5);",
    '<img src="data:image/png;base64,{neg_b64img}">',
    "base64 of 'hello': aGVsbG8=",
    "hex dump: de ad be ef 00 11 22 33",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.",
    "Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.",
    "Bitte fasse den folgenden Text in drei Sätzen zusammen.",
    "¿Puedes traducir este párrafo al inglés?",
    "Peux-tu corriger les fautes dans ce paragraphe ?",
    "Write a haiku about distributed systems.",
    # documentation test cards
    "Use the test card 4242 4242 4242 4242 in Stripe's sandbox with any future expiry date.",
    "4111 1111 1111 1111 is the classic Visa test number.",
    "Mastercard test number: 5555 5555 5555 4444",
    "Für Debit-Tests nimm 4000 0566 5566 5556.",
    "Amex de prueba: 3782 822463 10005",
    "Carte de test Discover : 6011 1111 1111 1117",
    "Sandbox Mastercard 5105 1051 0510 5100 (always approved)",
    '{"test_card": "4242424242424242", "cvc": "123"}',
    # vendor example keys and placeholders
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "stripe.api_key = 'sk_test_4eC39HqLyjWDarjtT1zdp7dc'",
    "pk_test_TYooMQauvdEDq54NiTphI7jx is the publishable test key from the docs.",
    "In the sandbox I call Stripe with {neg_stripe_test:sk} and it works.",
    "STRIPE_SECRET_KEY={neg_stripe_test:sk}",
    "Restricted test key: {neg_stripe_test:rk}",
    "OPENAI_API_KEY=sk-your-key-here",
    "Replace sk-xxxxxxxx with your real key.",
    'client = OpenAI(api_key="YOUR_API_KEY")',
    "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "Authorization: Bearer <your-token>",
    "ANTHROPIC_API_KEY=sk-ant-api03-...",
    "AWS_ACCESS_KEY_ID=AKIAXXXXXXXXXXXXXXXX",
    "GITLAB_TOKEN=glpat-xxxxxxxxxxxxxxxxxxxx",
    "SLACK_BOT_TOKEN=xoxb-your-bot-token",
    "slack_token: xoxb-not-a-real-token-this-will-not-work",
    "GOOGLE_API_KEY=AIza...",
    "HF_TOKEN=hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "Stripe dashboard shows the key as sk_live_...Xy12",
    "jwt.io example: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    # password / secret assignments with placeholders or low-entropy values
    "password=changeme",
    "password=<password>",
    "password: ********",
    "password=${DB_PASSWORD}",
    "api_key = os.environ['OPENAI_API_KEY']",
    "api_key: process.env.API_KEY",
    'db_password: "{{ vault_db_password }}"',
    "password = None  # set via env",
    'secret_token: ""',
    "client_secret=<CLIENT_SECRET>",
    "password=hunter2",
    "passwd: admin123",
    "password_reset_token_ttl=3600",
    "The password must be at least 12 characters long and contain upper case, digits and a symbol.",
    "password: correcthorsebatterystaple",
    'api_key = ""',
    "token=[REDACTED]",
    'export OPENAI_API_KEY="$OPENAI_API_KEY"',
    'api_key = getenv("API_KEY")',
    "Das Passwort muss mindestens 12 Zeichen lang sein.",
    "La contraseña se envía por un canal separado.",
    # key material that is public or only a placeholder
    "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
    "Paste your key (it starts with -----BEGIN OPENSSH PRIVATE KEY-----) into the field below.",
    "{neg_pubpem}",
    "Here is the server certificate:\n{neg_certpem}",
    "{neg_sshpub} ana@laptop",
    'ssh-keygen -t ed25519 -C "work laptop"',
    "openssl genpkey -algorithm RSA -out key.pem",
    # invalid SSNs
    "SSN 000-12-3456 is not valid (area 000).",
    "666-12-3456 can never be issued.",
    "Numbers starting with 9 like 912-34-5678 are ITINs, not SSNs.",
    "Group 00 is invalid: 123-00-4567",
    "Serial 0000 is invalid: 123-45-0000",
    "Die Nummer {neg_badssn:area9xx} ist keine gültige SSN.",
    "El número {neg_badssn:group00} no es válido.",
    "Le numéro {neg_badssn:serial0000} est invalide.",
    "ssn,valid\n{neg_badssn:area000},false",
    "SSN format: XXX-XX-XXXX",
    # invalid IBANs and IBAN look-alikes
    "IBAN {neg_badiban:grouped} — the bank says the checksum is wrong.",
    "Die IBAN {neg_badiban:compact} wurde abgelehnt (Prüfziffer falsch).",
    "La cuenta {neg_badiban:grouped} no existe.",
    "L'IBAN {neg_badiban:compact} est invalide.",
    '{"iban": "{neg_badiban:compact}", "valid": false}',
    "USt-IdNr.: DE123456789",
    "BIC: COBADEFFXXX",
    "IBAN: DE** **** **** **** **34 56",
    # email look-alikes
    "Send it to user@ — I forgot the domain.",
    "Follow @switchyard_dev on Twitter for updates.",
    "Write to name at example dot com.",
    "@Override\npublic String toString() {\n    return name;\n}",
    "npm i -D @types/node typescript",
    "@media (max-width: 600px) { .nav { display: none; } }",
    "npm install react@18.2.0 lodash@4.17.21",
    "ana@devbox:~$ make check",
    "Kontakt: ana.lopez [at] example [dot] org",
    "Slack mention: @channel please review",
    "Email: a***@e*****.com",
    # phone look-alikes
    "Call ext. 42 for the front desk.",
    "Our company history spans 1999-2024.",
    "π is approximately 3.14159.",
    "Use the 10-20-30 rule for presentations.",
    "Downloads: 1,234,567 and counting.",
    "In case of emergency call 911 or 112.",
    "Seite 12 von 345",
    "Room 3-204, building B",
    "Phone format hint: +XX XXX XXXXXXX",
    "+1, same issue here on v0.9.3",
    "Telefonzeiten: 8–17 Uhr",
    "card number: **** **** **** 4242",
    # JWT look-alikes
    "The header always starts with eyJhbGciOi, which is just base64 for the alg field.",
    "Header only: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
    "A JWT looks like header.payload.signature",
    "package com.example.switchyard.gateway;",
    "archive.tar.gz and backup.2026.sql.gz",
    # secret-prefix look-alikes
    "risk-assessment-framework-guidelines-for-the-2026-release-cycle",
    "task-scheduler-worker-pool-configuration-reference-v2",
    "The hf_hub_download function caches files locally.",
    "AKIA is the prefix of long-term AWS access key IDs, ASIA of temporary ones.",
    "ghp_ tokens are classic PATs; github_pat_ tokens are fine-grained.",
    "sk_live_ keys must never be committed.",
    "Gemini keys start with AIza.",
    "Bot tokens start with xoxb- and user tokens with xoxp-.",
    "glpat- prefix tokens are personal access tokens in GitLab.",
    "Stripe customer cus_NffrFeUfNV2Hib, charge ch_3MmlLrLkdIwHu7ix0snN0B15",
    "Slack channel C024BE91L, user U012AB3CD",
    "ULID 01ARZ3NDEKTSV4RRFFQ69G5FAV",
]


# --------------------------------------------------------------------------------------------
# Filling templates
# --------------------------------------------------------------------------------------------

ALL_GENERATORS = {**POSITIVE_GENERATORS, **NEGATIVE_GENERATORS}
PLACEHOLDER = re.compile(r"\{(" + "|".join(sorted(ALL_GENERATORS, key=len, reverse=True))
                         + r")(?::([A-Za-z0-9_]+))?\}")

POSITIVE_VALUES = set()   # every generated positive value (all unique)
NEGATIVE_VALUES = []      # every generated look-alike value


def fill_with(template, placeholder, positive, negative, positive_values, negative_values,
              taken=frozenset()):
    """Returns (text, findings) with findings in order of appearance. Positive values are
    unique within `positive_values` and never one of `taken`."""
    out, findings, pos = [], [], 0
    for m in placeholder.finditer(template):
        out.append(template[pos:m.start()])
        name, variant = m.group(1), m.group(2)
        if name in positive:
            while True:
                value = positive[name](variant)
                if value not in positive_values and value not in taken:
                    break
            positive_values.add(value)
            findings.append({"detector": name, "match": value})
        else:
            value = negative[name](variant)
            negative_values.append(value)
        out.append(value)
        pos = m.end()
    out.append(template[pos:])
    return "".join(out), findings


def fill(template):
    return fill_with(template, PLACEHOLDER, POSITIVE_GENERATORS, NEGATIVE_GENERATORS,
                     POSITIVE_VALUES, NEGATIVE_VALUES)


def assemble(fill, detectors, positive_templates, mixed_templates, negative_templates,
             only_detector):
    """Every template filled, in order, with ids `<first detector>-NNN` / `neg-NNN`.
    `only_detector(findings, detector)` checks a single-detector template's findings."""
    cases = []
    for detector in detectors:
        for template in positive_templates[detector]:
            text, findings = fill(template)
            assert only_detector(findings, detector), template
            cases.append((text, findings))
    for template in mixed_templates:
        text, findings = fill(template)
        assert len(findings) >= 2, template
        cases.append((text, findings))
    for template in negative_templates:
        text, findings = fill(template)
        assert not findings, template
        cases.append((text, findings))

    counters, out = Counter(), []
    for text, findings in cases:
        prefix = findings[0]["detector"] if findings else "neg"
        counters[prefix] += 1
        out.append({"id": "%s-%03d" % (prefix, counters[prefix]), "text": text,
                    "findings": findings})
    return out


def build_cases():
    return assemble(fill, DETECTORS, POSITIVE_TEMPLATES, MIXED_TEMPLATES, NEGATIVE_TEMPLATES,
                    lambda findings, d: [f["detector"] for f in findings] == [d])


def write_corpus(cases, per_detector, negatives, stats):
    """The cases as JSON lines on stdout; with `stats`, per-detector counts on stderr."""
    sys.stdout.reconfigure(encoding="utf-8", newline="\n")
    for case in cases:
        sys.stdout.write(json.dumps(case, ensure_ascii=False) + "\n")

    if stats:
        findings = Counter(f["detector"] for c in cases for f in c["findings"])
        mixed_cases = sum(1 for c in cases if len(c["findings"]) > 1)
        print("detector              cases  findings", file=sys.stderr)
        for det in DETECTORS:
            print(f"{det:<20} {per_detector[det]:>6} {findings[det]:>9}", file=sys.stderr)
        print(f"positive cases: {len(cases) - negatives} (mixed: {mixed_cases}), "
              f"negatives: {negatives}, total: {len(cases)}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Self-check
# --------------------------------------------------------------------------------------------

# Shape of each detector's values (full match).
SHAPES = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "phone": r"\+?[0-9 ()./-]+",
    "card": r"\d[\d -]{11,21}\d",
    "ssn": r"\d{3}-\d{2}-\d{4}",
    "iban": r"[A-Z]{2}\d{2}[A-Z0-9 ]+",
    "ip_address": r"[0-9A-Fa-f:.]+",
    "openai_key": r"sk-(proj-|svcacct-)?[A-Za-z0-9_-]{40,}",
    "anthropic_key": r"sk-ant-api03-[A-Za-z0-9_-]{90,}",
    "aws_access_key_id": r"(AKIA|ASIA)[A-Z0-9]{16}",
    "aws_secret_key": r"[A-Za-z0-9/+]{40}",
    "github_token": r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82}",
    "gitlab_token": r"glpat-[A-Za-z0-9_-]{20}",
    "slack_token": r"xox[bpars]-\d+(-\d+)+-[A-Za-z0-9]+",
    "google_api_key": r"AIza[A-Za-z0-9_-]{35}",
    "stripe_key": r"(sk|rk)_live_[A-Za-z0-9]{24,}",
    "huggingface_token": r"hf_[A-Za-z]{34}",
    "private_key": r"-----BEGIN (RSA |EC |OPENSSH |ENCRYPTED |)PRIVATE KEY-----.+-----END \1PRIVATE KEY-----",
    "jwt": r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+",
    "generic_secret": r"[A-Za-z0-9" + re.escape(SECRET_SYMBOLS) + r"]{12,}",
}

# Crude scanners for things that are recognisable without context. In positive cases every hit
# must lie inside a labelled finding (nothing sensitive is left unlabelled); in negative cases the
# validating ones must not fire at all.
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
SSN_RE = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
CARD_RES = [re.compile(p) for p in (
    r"(?<![\d-])\d{13,19}(?![\d-])",
    r"(?<![\d-])(?<!\d )\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?(?![\d-])",
    r"(?<![\d-])(?<!\d )\d{4}([ -])\d{6}\1\d{5}(?![\d-])")]
IPV4_RE = re.compile(r"(?<![\d.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\.?\d)")
IPV6_RE = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
PREFIX_RES = [re.compile(p) for p in (
    r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{36}\b",
    r"github_pat_\w{82}",
    r"glpat-[\w-]{20}",
    r"xox[bpars]-\d+-[\w-]+",
    r"AIza[\w-]{35}",
    r"[sr]k_live_[A-Za-z0-9]{24,}",
    r"\bhf_[A-Za-z]{34}\b",
    r"\bsk-[\w-]{20,}",
    r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
)]


def ip_ok(s):
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def validated_hits(text):
    """Spans of things that are sensitive by their own validation rules."""
    hits = [m.span() for m in EMAIL_RE.finditer(text)]
    hits += [m.span() for m in SSN_RE.finditer(text) if ssn_ok(m.group())]
    hits += [m.span() for m in IBAN_RE.finditer(text) if iban_ok(m.group())]
    for rx in CARD_RES:
        for m in rx.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if luhn_ok(digits) and digits not in TEST_CARDS:
                hits.append(m.span())
    hits += [m.span() for m in IPV4_RE.finditer(text) if ip_ok(m.group())]
    hits += [m.span() for m in IPV6_RE.finditer(text) if ip_ok(m.group())]
    return hits


def self_check(cases):
    positives = [c for c in cases if c["findings"]]
    negatives = [c for c in cases if not c["findings"]]

    assert all(luhn_ok(c) for c in TEST_CARDS), "documentation test cards must pass Luhn"
    assert len({c["id"] for c in cases}) == len(cases), "duplicate ids"

    for case in positives:
        text, spans = case["text"], []
        for f in case["findings"]:
            det, match = f["detector"], f["match"]
            assert det in DETECTORS, case["id"]
            assert text.count(match) == 1, (case["id"], match)
            start = text.index(match)
            spans.append((start, start + len(match)))
            assert re.fullmatch(SHAPES[det], match, re.S), (case["id"], det, match)
            if det == "card":
                digits = re.sub(r"[ -]", "", match)
                assert 13 <= len(digits) <= 19 and luhn_ok(digits), (case["id"], match)
                assert digits not in TEST_CARDS, (case["id"], match)
            elif det == "iban":
                assert iban_ok(match), (case["id"], match)
            elif det == "ssn":
                assert ssn_ok(match), (case["id"], match)
            elif det == "ip_address":
                assert ip_ok(match), (case["id"], match)
            elif det == "phone":
                assert 7 <= len(re.sub(r"\D", "", match)) <= 15, (case["id"], match)
            elif det == "openai_key":
                assert not match.startswith("sk-ant-"), case["id"]
            elif det in ("aws_secret_key", "generic_secret"):
                assert mixed(match), (case["id"], match)
            if det not in ("email", "private_key"):  # PEM bodies are long random base64
                assert not PLACEHOLDER_WORDS.search(match), (case["id"], match)
            elif det == "jwt":
                for part in match.split(".")[:2]:
                    json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        assert spans == sorted(spans), ("findings not in order of appearance", case["id"])
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), ("overlapping findings", case["id"])
        # nothing recognisable may be left unlabelled
        hits = validated_hits(text)
        hits += [m.span() for rx in PREFIX_RES for m in rx.finditer(text)]
        for hs, he in hits:
            assert any(s <= hs and he <= e for s, e in spans), \
                ("unlabelled item", case["id"], text[hs:he])

    for case in negatives:
        text = case["text"]
        for value in POSITIVE_VALUES:
            assert value not in text, ("positive value in negative", case["id"])
        for hs, he in validated_hits(text):
            raise AssertionError(("negative contains a valid item", case["id"], text[hs:he]))

    # random look-alikes must not accidentally be real-looking secrets
    for value in NEGATIVE_VALUES:
        for rx in PREFIX_RES:
            assert not rx.search(value), ("look-alike matches a secret pattern", value)
        assert value not in POSITIVE_VALUES, value

    per_detector = Counter(det for c in positives for det in {f["detector"] for f in c["findings"]})
    for det in DETECTORS:
        assert per_detector[det] >= 12, (det, per_detector[det])
    assert len(negatives) >= 120, len(negatives)
    assert len(cases) >= 400, len(cases)
    return per_detector, len(negatives)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stats", action="store_true", help="print per-detector counts to stderr")
    args = parser.parse_args()

    cases = build_cases()
    per_detector, negatives = self_check(cases)
    write_corpus(cases, per_detector, negatives, args.stats)

if __name__ == "__main__":
    main()
