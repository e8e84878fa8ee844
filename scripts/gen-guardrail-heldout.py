#!/usr/bin/env python3
"""Generates the HELD-OUT labelled test corpus for Switchyard's PII and secret detectors.

Output: JSON Lines on stdout, in exactly the format of `scripts/gen-guardrail-corpus.py`:

    {"id": "iban-004", "text": "...", "findings": [{"detector": "iban", "match": "IT60X0542811101000000123456"}]}

Run from the repository root:

    python3 scripts/gen-guardrail-heldout.py > tests/fixtures/guardrails/heldout.jsonl

Pass `--stats` to also print per-detector counts to stderr. Standard library only, fixed seed
(different from the in-sample script's), byte-for-byte reproducible.

Why a second corpus: the detectors were tuned against `corpus.jsonl`, so their scores there are
in-sample. This corpus reuses only the *value* generators of the first script (the formats of
phones, cards, IBANs, keys, ... are defined by the real world) but draws new random values with
its own seed, and every text template and context is new: support-ticket transcripts, Slack-style
chat logs, YAML/TOML/INI/properties files, shell history, SQL, HTTP request/response dumps, stack
traces, HTML forms, meeting notes, CSV exports, vCards, ... in English, German, Spanish, French,
Italian and Portuguese. The self-check asserts that no template coincides with (or is a near copy
of) an in-sample template and that no positive value of the in-sample corpus is reused.

Labelling conventions (same as the first script):
  * `findings` lists every sensitive item in order of appearance; `match` is the exact substring.
  * One finding per span; the most specific detector wins (a `sk-proj-...` value after
    `api_key:` is `openai_key`, not `generic_secret`; `aws_secret_access_key = ...` is
    `aws_secret_key`).
  * Any syntactically valid IPv4/IPv6 address is an `ip_address` finding, including private and
    documentation ranges (as in the first corpus). Loopback/unspecified addresses are avoided.
  * Vendor example keys (AWS `...EXAMPLE`), test-mode keys (`sk_test_`, `rk_test_`),
    documentation test cards, published example SSNs, placeholders, variable references,
    function calls, empty/None/redacted values and low-entropy dictionary passwords are
    negatives. Public key material (certificates, CSRs, public keys, JWKs) is negative.

Judgment calls new in this corpus (all documented next to the templates that encode them):
  * Two further documentation test cards (Stripe's 4000 0000 0000 0002 "generic decline" and
    4000 0000 0000 9995 "insufficient funds") and the two textbook example IBANs
    (DE89 3704 0044 0532 0130 00, GB82 WEST 1234 5698 7654 32) are negatives, like the test
    cards of the first corpus. They are Luhn/mod-97 valid, so the self-check exempts them
    explicitly (EXTRA_TEST_CARDS / KNOWN_EXAMPLE_IBANS).
  * Published example SSNs (078-05-1120, 219-09-9999: the first script's KNOWN_EXAMPLE_SSNS)
    appear as negatives.
  * Stripe *publishable* live keys (`pk_live_...`) are negatives: they are public by design.
  * A password inside a connection URL (`postgres://user:PASSWORD@host/db`), a password after a
    non-English keyword (`senha do banco de dados: ...`), after SQL `WITH PASSWORD '...'`, in a
    .netrc line, and a secret named in prose (`la nuova client_secret è ...`) are all
    `generic_secret` findings.
  * A 40-character AWS secret is labelled `aws_secret_key` whenever the surrounding text makes
    AWS the context, even without the literal `aws_secret_access_key` (`secretAccessKey` in a
    Secret named `aws-s3-creds`, `BasicAWSCredentials(...)`, rclone `provider = AWS`).
  * An invalid SSN stays a negative even under an explicit `ssn:` label (area 666), as in the
    first corpus.
  * The `X-Amz-Signature` of an S3 presigned URL and `x-amz-id-2` response ids are not
    findings (derived/expiring or public values); only the access key id in the URL is.
"""

import argparse
import base64
import difflib
import importlib.util
import json
import os
import random
import re
from collections import Counter

SEED = 20260719  # the in-sample script uses 20260301
HERE = os.path.dirname(os.path.abspath(__file__))
BASE_PATH = os.path.join(HERE, "gen-guardrail-corpus.py")


def load_base(name):
    spec = importlib.util.spec_from_file_location(name, BASE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Instance used as a library of value generators and validators, reseeded with our own seed.
B = load_base("guardrail_corpus_helpers")
B.rng = random.Random(SEED)
rng = B.rng

DETECTORS = B.DETECTORS
UPPER, LOWER, DIGITS, ALNUM, HEX = B.UPPER, B.LOWER, B.DIGITS, B.ALNUM, B.HEX
rand_str, rand_digits, rand_bytes, rand_token = B.rand_str, B.rand_digits, B.rand_bytes, B.rand_token
luhn_ok, iban_ok, ssn_ok, ip_ok = B.luhn_ok, B.iban_ok, B.ssn_ok, B.ip_ok
d = B.d

# Published values that validate but must never be reported (see the docstring).
TEST_CARDS = set(B.TEST_CARDS)
EXTRA_TEST_CARDS = {"4000000000000002", "4000000000009995"}
ALL_TEST_CARDS = TEST_CARDS | EXTRA_TEST_CARDS
KNOWN_EXAMPLE_SSNS = set(B.KNOWN_EXAMPLE_SSNS)
KNOWN_EXAMPLE_IBANS = {"DE89370400440532013000", "GB82WEST12345698765432"}


# --------------------------------------------------------------------------------------------
# Positive value generators: the first script's, except e-mail (new names and domains, same
# shapes of local part).
# --------------------------------------------------------------------------------------------

FIRST = ["giulia", "matteo", "chiara", "alessandro", "francesca", "joao", "beatriz", "tiago",
         "mariana", "rafael", "ingrid", "mehmet", "zoe", "anders", "carla", "emeka", "yuki",
         "olga", "bruno", "leonor", "finn", "salma", "hugo", "irene", "dario"]
LAST = ["ferrari", "esposito", "romano", "colombo", "ricci", "silva", "santos", "oliveira",
        "pereira", "almeida", "carvalho", "lindqvist", "yilmaz", "conti", "gallo", "moretti",
        "sousa", "nwosu", "takahashi", "petrova", "marchetti", "ribeiro", "vogel", "lambert"]
EMAIL_DOMAINS = ["posta.example.it", "azienda.example.it", "exemplo.com.br", "empresa.example.pt",
                 "helpdesk.fabrikam.eu", "ops.example.net", "clinica-exemplo.pt", "lab.example.ch",
                 "wingtip-toys.com", "adventure-works.co.uk", "studio.example.fr",
                 "bank.example.es", "litware.io", "proseware.de", "univ.example.ac.uk"]


def gen_email(variant):
    style = B.cycle("heldout_email", None, ["under", "dot", "digits", "dash", "plus", "upper",
                                            "initial", "plain"])
    f, l = rng.choice(FIRST), rng.choice(LAST)
    local = {
        "dot": f"{f}.{l}",
        "initial": f"{f[0]}.{l}",
        "plus": f"{f}+{rng.choice(['fatture', 'suporte', 'alerts', 'hr'])}",
        "digits": f"{f}{l}{rng.randint(1, 99)}",
        "upper": f"{f.capitalize()}.{l.capitalize()}",
        "under": f"{f}_{l}",
        "dash": f"{f}-{l}",
        "plain": f,
    }[style]
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


POSITIVE_GENERATORS = dict(B.POSITIVE_GENERATORS)
POSITIVE_GENERATORS["email"] = gen_email


# --------------------------------------------------------------------------------------------
# Negative (look-alike) generators: the first script's plus new kinds
# --------------------------------------------------------------------------------------------

def neg_ups(variant):
    """UPS-style tracking number: 1Z + 6-char shipper (ending in a letter) + 10 digits."""
    return "1Z" + rand_str(UPPER + DIGITS, 5) + rng.choice(UPPER) + d(10)


def neg_s10(variant):
    """UPU S10 postal item id (e.g. RR123456789IT) with its real check digit; variant is the
    country code."""
    body = d(8)
    s = 11 - sum(int(c) * w for c, w in zip(body, [8, 6, 4, 2, 3, 5, 9, 7])) % 11
    check = {10: 0, 11: 5}.get(s, s)
    return rng.choice(["RR", "CP", "LX", "RA"]) + body + str(check) + (variant or "DE")


def neg_ean13(variant):
    """EAN-13 barcode with a valid EAN check digit but failing Luhn."""
    while True:
        body = rng.choice(["80", "560", "400", "84"])
        body += d(12 - len(body))
        total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body))
        code = body + str((10 - total % 10) % 10)
        if not luhn_ok(code):
            return code


def neg_iso_ts(variant):
    frac = rng.choice(["", "", ".%03d" % rng.randint(0, 999), ".%06d" % rng.randint(0, 999999)])
    off = rng.choice(["+02:00", "-03:00", "+05:30", "Z", "+01:00", "-07:00", "+00:00"])
    return "2026-%02d-%02dT%02d:%02d:%02d%s%s" % (rng.randint(1, 12), rng.randint(1, 28),
                                                  rng.randint(0, 23), rng.randint(0, 59),
                                                  rng.randint(0, 59), frac, off)


def neg_semver(variant):
    v = "%d.%d.%d" % (rng.randint(0, 9), rng.randint(0, 40), rng.randint(0, 30))
    return v + rng.choice(["", "", "-rc.%d" % rng.randint(1, 5), "-beta.%d" % rng.randint(1, 9),
                           "+build.%d" % rng.randint(100, 9999)])


def neg_partno(variant):
    return f"{rand_digits(4)}-{d(3)}-{d(3)}"


def neg_sku(variant):
    return f"{rand_str(UPPER, 3)}-{d(5)}-{rand_str(UPPER, 2)}"


def neg_ssh_rsa(variant):
    blob = (B.ssh_string(b"ssh-rsa") + B.ssh_string(b"\x01\x00\x01")
            + B.ssh_string(b"\x00" + rand_bytes(256)))
    return "ssh-rsa " + base64.b64encode(blob).decode()


def neg_csr(variant):
    return B.pem("CERTIFICATE REQUEST", B.der_filled("308202a33082018b020100305e310b3009", 0x2a3 + 4))


def neg_b64json(variant):
    obj = {"theme": rng.choice(["dark", "light"]), "lang": rng.choice(["it", "pt", "de"]),
           "v": rng.randint(1, 9)}
    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


NEGATIVE_GENERATORS = dict(B.NEGATIVE_GENERATORS)
NEGATIVE_GENERATORS.update({
    "neg_ups": neg_ups,
    "neg_fedex": lambda v: rand_digits(12),
    "neg_usps": lambda v: "9400" + d(18),
    "neg_s10": neg_s10,
    "neg_ean13": neg_ean13,
    "neg_iso_ts": neg_iso_ts,
    "neg_semver": neg_semver,
    "neg_partno": neg_partno,
    "neg_sku": neg_sku,
    "neg_ec2": lambda v: "i-0" + B.hex_with_letter(16),
    "neg_ami": lambda v: "ami-0" + B.hex_with_letter(16),
    "neg_subnet": lambda v: "subnet-0" + B.hex_with_letter(16),
    "neg_awsacct": lambda v: rand_digits(12),
    "neg_suffix6": lambda v: rand_token(ALNUM, 6),
    "neg_amzid2": lambda v: base64.b64encode(rand_bytes(57)).decode(),
    "neg_hexupper16": lambda v: B.hex_with_letter(16).upper(),
    "neg_sri512": lambda v: "sha512-" + base64.b64encode(rand_bytes(64)).decode(),
    "neg_gosum": lambda v: "h1:" + base64.b64encode(rand_bytes(32)).decode(),
    "neg_stripe_pi": lambda v: "pi_3" + rand_token(ALNUM, 23),
    "neg_stripe_cus": lambda v: "cus_" + rand_token(ALNUM, 14),
    "neg_pk_live": lambda v: "pk_live_" + rand_token(ALNUM, rng.choice([24, 99])),
    "neg_ssh_rsa": neg_ssh_rsa,
    "neg_csr": neg_csr,
    "neg_jwk_n": lambda v: B.b64url(rand_bytes(256)),
    "neg_b64json": neg_b64json,
    "neg_slack_ts": lambda v: "%d.%s" % (rng.randint(1735689600, 1798761600), d(6)),
    "neg_slack_id": lambda v: rng.choice("CUW") + "0" + rand_str(UPPER + "0123456789", 9),
    "neg_mac": lambda v: ":".join("%02x" % rng.randint(0, 255) for _ in range(6)),
    "neg_last4": lambda v: d(4),
})


# --------------------------------------------------------------------------------------------
# Templates (all new: different sentences, document kinds and languages than the first corpus)
# --------------------------------------------------------------------------------------------

POSITIVE_TEMPLATES = {
    "email": [
        "Ticket #58213\nRequester: {email}\nStatus: open\nPriority: normal\n\nHi, I can't log in since yesterday's update.",
        "[09:58] chiara.ricci: mandami il report a {email} per favore\n[09:59] dario: ok, entro sera",
        "commit {neg_sha40}\nAuthor: Tiago Almeida <{email}>\nDate:   Sun Jul 19 10:04:11 2026 +0100\n\n    fix: retry on 429",
        "alerting:\n  receivers:\n    - name: oncall\n      email_configs:\n        - to: '{email}'\n          send_resolved: true",
        "INSERT INTO users (id, email, created_at) VALUES (9012, '{email}', now());",
        'POST /api/invite HTTP/1.1\nHost: app.switchyard.dev\nContent-Type: application/json\n\n{"invitee": "{email}", "role": "viewer"}',
        "UserNotFoundError: no account registered for {email}\n    at AuthService.login (src/auth/service.ts:41:11)\n    at processTicksAndRejections (node:internal/process/task_queues:95:5)",
        '<form action="/subscribe" method="post"><input type="email" name="email" value="{email}"><button>Iscriviti</button></form>',
        "Olá! O meu e-mail novo é {email} — podem atualizar o cadastro?",
        "Gentile cliente, la conferma dell'ordine è stata inviata all'indirizzo {email}; controlli anche lo spam.",
        'Export generated 2026-07-19\n"Name","Email","Plan"\n"Beatriz Santos","{email}","Team"',
        "Attendees: Luca, Mariana, Sven\nAction items:\n* Mariana to contact {email} about the renewal\n* Sven: update the pricing page",
    ],
    "phone": [
        "Ticket #60117 — Caller: Giulia Romano\nCallback number: {phone:uk_mobile}\nIssue: router keeps rebooting",
        "[14:03] tiago.almeida: liga-me para o {phone:es_mobile} quando puderes\n[14:05] mariana: combinado",
        "customer_id;full_name;phone;segment\n88213;Chiara Ricci;{phone:us_intl_paren};enterprise",
        "INSERT INTO contacts (name, phone) VALUES ('Beatriz Santos', '{phone:fr_nat}');",
        '<input type="tel" name="phone" value="{phone:de_mobile}" autocomplete="tel">',
        'oncall:\n  primary:\n    name: Matteo Ferrari\n    phone: "{phone:us_dash}"\n  escalation_after: 15m',
        "Vendor call — notes\n- Contact: Rafael (sales), {phone:ie}\n- Next sync in two weeks",
        "twilio.base.exceptions.TwilioRestException: Unable to create record: The 'To' number {phone:us_e164} is not a valid phone number.",
        "Per urgenze fuori orario chiamare il reperibile al {phone:uk_london}.",
        "BEGIN:VCARD\nVERSION:3.0\nFN:Mariana Oliveira\nTEL;TYPE=CELL:{phone:au}\nEND:VCARD",
        "Rückruf bitte unter {phone:de_paren0}!",
        "Numéro du livreur : {phone:fr_intl}. Il passe entre 14h et 16h.",
        "O técnico deixou o contacto {phone:in} para dúvidas sobre a instalação.",
        "Llamadas entrantes (última hora): {phone:us_intl}",
        "La sede di Città del Messico risponde al {phone:mx}.",
        "Tokyo support desk: {phone:jp} (JST 9:00–18:00)",
        "Switchboard: {phone:uk_paren0}; ask for accounts payable.",
    ],
    "card": [
        "Agent: Can you confirm the card on file?\nCustomer: sure, it's {card:visa_space}\nAgent: Thanks, I'll mask it in our system.",
        '<input name="cardnumber" inputmode="numeric" autocomplete="cc-number" value="{card:mc_none}">',
        "INSERT INTO cards (holder, pan, exp) VALUES ('R. Almeida', '{card:amex_none}', '2029-03');",
        "[11:20] giulia: il cliente ha dettato {card:discover_dash} al telefono, lo inserisco io?",
        "O pagamento com o cartão {card:mc2_space} foi recusado duas vezes.",
        "PaymentError: gateway rejected pan '{card:visa_dash}' (do_not_honor)\n    at charge (billing/charge.js:88:13)",
        "txn_id,card,amount_eur\nT-88120,{card:visa13_none},74.00",
        '{"source": {"object": "card", "number": "{card:visa19_space}", "exp": "11/30"}}',
        "Numero carta: {card:mc_dash} (scadenza 04/29)",
        "card: '{card:amex_space}'",
        "Call notes: caller read the card number {card:discover_space} and asked for a refund.",
        "curl https://pay.example.com/v1/tokens -d number={card:mc2_none} -d exp=0729",
    ],
    "ssn": [
        'employee:\n  name: Jonas Jensen\n  ssn: "{ssn}"\n  start_date: 2026-08-03',
        "UPDATE employees SET ssn = '{ssn}' WHERE id = 1182;",
        "Customer: I think my SSN was entered wrong, it should be {ssn}.\nAgent: Let me correct that.",
        "[13:37] hannah: the W-2 for Omar shows SSN {ssn} — is that right?",
        "ValueError: duplicate taxpayer id '{ssn}'\n  File \"/srv/payroll/import.py\", line 57, in load_row",
        '<input type="text" name="ssn" value="{ssn}" maxlength="11">',
        "Il dipendente americano ha comunicato il suo Social Security Number: {ssn}.",
        "O número de Segurança Social americano (SSN) do candidato é {ssn}.",
        "emp_id,ssn,state\nE-2291,{ssn},NY",
        "Action: verify SSN {ssn} with the IRS TIN matching service before Friday.",
    ],
    "iban": [
        "Coordinate bancarie per il rimborso: IBAN {iban:IT_grouped}, intestato a Chiara Ricci.",
        "IBAN para transferência: {iban:PT_grouped}",
        "INSERT INTO payees (name, iban) VALUES ('Tiago Almeida', '{iban:PT_compact}');",
        "payout:\n  holder: Fabrikam BV\n  iban: {iban:NL_compact}\n  bic: ABNANL2A",
        "Cliente: ho cambiato banca, il nuovo IBAN è {iban:IT_compact}\nOperatore: ricevuto, aggiorno l'anagrafica.",
        "vendor_id;name;iban;currency\nV-0042;Tailspin SARL;{iban:FR_compact};EUR",
        '<input name="iban" value="{iban:DE_grouped}" pattern="[A-Z]{2}[0-9]{2}.*">',
        "- Payroll: new account for Sven → {iban:CH_grouped} (from August)",
        "[10:12] marc: l'IBAN de la filiale belge c'est {iban:BE_compact}, tu peux vérifier ?",
        '{"creditor": {"name": "Fabrikam GmbH", "iban": "{iban:AT_compact}"}, "amount": "840.00"}',
        "Domiciliación: cuenta {iban:ES_grouped}; titular: Diego Ramírez.",
        "For international transfers use IBAN {iban:GB_grouped}.",
        "Konto (PL): {iban:PL_grouped}",
        "Pagamento al fornitore irlandese su {iban:IE_compact} entro il 30.",
    ],
    "ip_address": [
        "2026/07/19 08:14:02 [error] 31#31: *4821 upstream timed out, client: {ip_address:v4pub}, server: api.switchyard.dev",
        "iptables -A INPUT -s {ip_address:v4pub} -j DROP",
        "{ip_address:v4priv}    db-primary.internal db-primary",
        "NAME                 READY   STATUS    IP\ngw-6f9c7d8b5-qz7lx   1/1     Running   {ip_address:v4priv}",
        "GET /v1/models HTTP/1.1\nHost: api.switchyard.dev\nX-Real-IP: {ip_address:v6full}\nAccept: */*",
        "[11:05] sven: chi sta facendo scraping da {ip_address:v6comp}? 40k richieste in un'ora",
        "O acesso indevido veio do endereço {ip_address:v4pub}, segundo os logs.",
        "allowlist:\n  - {ip_address:v4doc}\n  - {ip_address:v6upper}",
        "ConnectionRefusedError: [Errno 111] Connect call failed ('{ip_address:v4priv}', 6379)",
        "INSERT INTO audit_log (actor, ip, action) VALUES ('ci-bot', '{ip_address:v6ll}', 'token.rotate');",
        '[server]\nlisten = "[{ip_address:v6comp}]:8443"',
        "Il server di staging risponde su {ip_address:v4pub}.",
    ],
    "openai_key": [
        '[providers.openai]\nbase_url = "https://api.openai.com/v1"\napi_key = "{openai_key:proj}"',
        "  512  export OPENAI_API_KEY={openai_key:legacy}\n  513  python eval.py --model gpt-4o",
        "POST /v1/chat/completions HTTP/1.1\nHost: api.openai.com\nAuthorization: Bearer {openai_key:svcacct}\nContent-Type: application/json",
        "openai.AuthenticationError: Error code: 401 - Incorrect API key provided: {openai_key:legacy_t3}. You can find your API key in your account settings.",
        "[10:42] marco.bianchi: qualcuno sa se {openai_key:proj} è ancora valida?",
        "A minha chave da OpenAI é {openai_key:proj_long}; posso partilhá-la com a equipa?",
        "docker run --rm -e OPENAI_API_KEY='{openai_key:proj}' ghcr.io/acme/evals:latest",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: llm-keys\nstringData:\n  OPENAI_API_KEY: {openai_key:legacy}",
        "Action item (Luca): revoke {openai_key:proj}, it was shown during the demo.",
    ],
    "anthropic_key": [
        '[providers.anthropic]\nmodel = "claude-sonnet"\napi_key = "{anthropic_key}"',
        "POST /v1/messages HTTP/1.1\nHost: api.anthropic.com\nx-api-key: {anthropic_key}\nanthropic-version: 2023-06-01",
        "  88  export ANTHROPIC_API_KEY='{anthropic_key}'\n  89  ./run_agent.sh --dry-run",
        "La chiave Anthropic del progetto è {anthropic_key}: non incollarla nei ticket!",
        "Chave da Anthropic (produção): {anthropic_key}",
        "model_list:\n  - model_name: claude\n    litellm_params:\n      model: anthropic/claude-sonnet\n      api_key: {anthropic_key}",
        "[15:22] finn: {anthropic_key} <- is this one still in use?",
        "anthropic.AuthenticationError: invalid x-api-key ({anthropic_key})",
        "Notes 07/21: rotate {anthropic_key} after the contractor leaves.",
    ],
    "aws_access_key_id": [
        "https://acme-reports.s3.eu-west-1.amazonaws.com/q2.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={aws_access_key_id}%2F20260719%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20260719T101500Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature={neg_sha256}",
        '{"eventName": "GetObject", "userIdentity": {"type": "AssumedRole", "accessKeyId": "{aws_access_key_id:asia}"}, "awsRegion": "eu-south-1"}',
        "[08:47] bruno: la access key {aws_access_key_id} è ancora attiva su prod?",
        "A access key {aws_access_key_id} apareceu num repositório público.",
        "aws_access_key_id: {aws_access_key_id}  # ci-deployer",
        "$ aws configure --profile staging\nAWS Access Key ID [None]: {aws_access_key_id}\nDefault region name [None]: eu-south-1",
        "Meeting 2026-07-20: disable {aws_access_key_id} (owner left the company).",
    ],
    "aws_secret_key": [
        '# terraform.tfvars\naws_region     = "eu-south-1"\naws_secret_key = "{aws_secret_key}"',
        "docker run -e AWS_SECRET_ACCESS_KEY={aws_secret_key} amazon/aws-cli s3 ls",
        "- uses: aws-actions/configure-aws-credentials@v4\n  with:\n    aws-region: eu-west-1\n    aws-secret-access-key: {aws_secret_key}",
        "[17:02] irene: aws secret access key per lo staging: {aws_secret_key}",
        "A chave secreta da AWS (secret access key) é {aws_secret_key}.",
        'boto3.Session(aws_access_key_id=os.environ["AWS_KEY"], aws_secret_access_key="{aws_secret_key}")',
        "kind: Secret\nmetadata:\n  name: aws-s3-creds\nstringData:\n  secretAccessKey: {aws_secret_key}\n  region: eu-south-1",
    ],
    "github_token": [
        "github.com:\n    oauth_token: {github_token:gho}\n    user: ci-bot\n    git_protocol: https",
        "//npm.pkg.github.com/:_authToken={github_token:ghp}",
        "GET /repos/acme/switchyard HTTP/1.1\nHost: api.github.com\nAuthorization: Bearer {github_token:ghs}",
        "echo {github_token:ghp} | docker login ghcr.io -u ci-bot --password-stdin",
        "[12:10] leonor: esqueci-me de apagar o token {github_token:github_pat} do README",
        "Il token GitHub {github_token:ghu} è scaduto, ne serve uno nuovo.",
        "github.GithubException.BadCredentialsException: 401 for token {github_token:ghr}",
        '{"hostRules": [{"matchHost": "github.com", "token": "{github_token:github_pat}"}]}',
        "INSERT INTO integrations (kind, secret) VALUES ('github', '{github_token:ghp}');",
    ],
    "gitlab_token": [
        'provider "gitlab" {\n  base_url = "https://gitlab.example.com/api/v4"\n  token    = "{gitlab_token}"\n}',
        "GET /api/v4/projects/42/pipelines HTTP/1.1\nHost: gitlab.example.com\nPRIVATE-TOKEN: {gitlab_token}",
        "  77  glab auth login --hostname gitlab.example.com --token {gitlab_token}",
        "[16:18] dario: ho messo {gitlab_token} nelle variabili CI, ok?",
        "O token do GitLab ({gitlab_token}) tem permissões de api e write_repository.",
        '[gitlab]\nurl = "https://gitlab.example.com"\ntoken = "{gitlab_token}"',
        "project;token_name;token;scopes\ninfra;renovate;{gitlab_token};api,read_repository",
        "Token de acceso de GitLab filtrado en el chat: {gitlab_token}. Revocado a las 10:40.",
    ],
    "slack_token": [
        '[notifications.slack]\nchannel = "#deploys"\ntoken = "{slack_token:xoxb}"',
        "POST /api/chat.postMessage HTTP/1.1\nHost: slack.com\nAuthorization: Bearer {slack_token:xoxp}\nContent-Type: application/json; charset=utf-8",
        "  204  curl -s -d 'token={slack_token:xoxb}' https://slack.com/api/auth.test",
        "Il bot usa il token {slack_token:xoxa}; va ruotato ogni 90 giorni.",
        "O token do Slack ({slack_token:xoxr}) foi revogado ontem.",
        "slack_sdk.errors.SlackApiError: The request to the Slack API failed. (token: {slack_token:xoxs}, error: invalid_auth)",
        "INSERT INTO workspace_tokens (team, token) VALUES ('T0ACME', '{slack_token:xoxp}');",
        "alerts:\n  slack:\n    bot_token: {slack_token:xoxb}",
    ],
    "google_api_key": [
        '<meta-data android:name="com.google.android.geo.API_KEY" android:value="{google_api_key}"/>',
        '[gemini]\nmodel = "gemini-1.5-pro"\napi_key = "{google_api_key}"',
        "GET /maps/api/geocode/json?address=Via+Roma+1,+Milano&key={google_api_key} HTTP/1.1\nHost: maps.googleapis.com",
        "  415  export GEMINI_API_KEY={google_api_key}",
        "La chiave di Google Maps ({google_api_key}) è visibile nel sorgente della pagina.",
        "A chave da API do Google é {google_api_key}.",
        "const GEMINI_KEY = '{google_api_key}';",
        "[09:30] salma: quota exceeded again for {google_api_key}",
    ],
    "stripe_key": [
        '[billing.stripe]\nsecret_key = "{stripe_key:sk}"\nwebhook_path = "/hooks/stripe"',
        "GET /v1/balance HTTP/1.1\nHost: api.stripe.com\nAuthorization: Bearer {stripe_key:sk_long}",
        "  58  stripe charges list --limit 5 --api-key {stripe_key:rk}",
        "La chiave live di Stripe ({stripe_key:sk}) è finita in un log pubblico.",
        "A chave restrita da Stripe para relatórios é {stripe_key:rk_long}.",
        "stripe:\n  api_key: {stripe_key:sk}\n  api_version: 2024-06-20",
        "payments.stripe.secret={stripe_key:sk}",
        "Minutes: Hugo rotated {stripe_key:rk} after the incident; new one is in the vault.",
    ],
    "huggingface_token": [
        "env:\n  HUGGING_FACE_HUB_TOKEN: {huggingface_token}\n  TRANSFORMERS_CACHE: /cache",
        "docker run --gpus all -e HF_TOKEN={huggingface_token} ghcr.io/huggingface/text-generation-inference:2.1",
        "GET /api/whoami-v2 HTTP/1.1\nHost: huggingface.co\nAuthorization: Bearer {huggingface_token}",
        'client = InferenceClient(model="meta-llama/Llama-3.1-8B-Instruct", token="{huggingface_token}")',
        "Il token di Hugging Face è {huggingface_token}, solo lettura.",
        "Token do Hugging Face para o modelo privado: {huggingface_token}",
        "[18:44] yuki: {huggingface_token} -- can someone add it to the runner secrets?",
        '[hub]\ntoken = "{huggingface_token}"\ncache_dir = "/data/hf"',
    ],
    "private_key": [
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: gateway-tls\ntype: kubernetes.io/tls\nstringData:\n  tls.key: |\n    {private_key:rsa_indent}",
        "[09:14] dario: ecco la chiave, non condividerla:\n{private_key:ec}\n[09:15] giulia: grazie!",
        "INSERT INTO signing_keys (kid, pem) VALUES ('k-2026-07', '{private_key:pkcs8_json}');",
        "Cliente: Buongiorno, allego la chiave privata del certificato:\n{private_key:rsa}\nOperatore: La preghiamo di revocarla subito.",
        "Segue a chave privada do servidor:\n{private_key:encrypted}\nA frase-passe está no cofre.",
        'SIGNING_KEY = """{private_key:ec}"""',
        "$ cat deploy_key\n{private_key:openssh}\n$ chmod 600 deploy_key",
        'POST /v1/keys/import HTTP/1.1\nContent-Type: application/json\n\n{"name": "jwt-signer", "private_key": "{private_key:rsa_json}"}',
        '# .env.production\nAPP_ENV=production\nJWT_PRIVATE_KEY="{private_key:pkcs8}"\nJWT_TTL=900',
    ],
    "jwt": [
        "GET /v1/me HTTP/1.1\nHost: api.switchyard.dev\nCookie: theme=dark; access_token={jwt}\nAccept: application/json",
        "https://app.switchyard.dev/auth/callback#access_token={jwt}&token_type=Bearer&expires_in=3600",
        "jwt.exceptions.InvalidSignatureError: Signature verification failed for {jwt}",
        "[10:03] mariana: alguém consegue decodificar isto? {jwt}",
        "Il token {jwt} risulta scaduto, ma l'utente è ancora loggato.",
        "INSERT INTO sessions (user_id, token) VALUES (77, '{jwt}');",
        '"request": {"headers": [{"name": "Authorization", "value": "Bearer {jwt}"}]}',
        "  902  curl -H 'Authorization: Bearer {jwt}' https://api.switchyard.dev/v1/usage",
        "O cabeçalho Authorization traz o JWT {jwt} em todas as chamadas.",
    ],
    "generic_secret": [
        '[database]\nhost = "db-primary"\nuser = "gateway"\npassword = "{generic_secret}"',
        "spring.datasource.url=jdbc:postgresql://db-primary:5432/billing\nspring.datasource.password={generic_secret}",
        "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: \"{generic_secret}\"",
        "machine ftp.example.net login backup password {generic_secret}",
        "  741  PGPASSWORD='{generic_secret}' psql -h db-primary -U gateway billing",
        "<datasource>\n  <username>svc_billing</username>\n  <password>{generic_secret}</password>\n</datasource>",
        "GET /v2/reports HTTP/1.1\nHost: partner.example.com\nX-Api-Key: {generic_secret}",
        "Credenziali VPN — utente: g.romano, password: {generic_secret}",
        "senha do banco de dados: {generic_secret} (não partilhar)",
        "CREATE USER reporting WITH PASSWORD '{generic_secret}';",
        # judgment call: a password inside a connection URL is a generic_secret
        "DATABASE_URL=postgres://gateway:{generic_secret}@db-primary:5432/billing",
        "[16:40] luca.ferrari: la nuova client_secret è {generic_secret}, aggiornate il vault",
        "[smtp]\nserver = mail-relay\nsmtp_password = {generic_secret}",
    ],
}

MIXED_TEMPLATES = [
    # support-ticket transcripts
    "Ticket #71034 (chat)\nCustomer: hi, my email is {email} and I was charged twice on {card:mc_space}\nAgent: I see it. Is {phone:us_paren} still the best number?\nCustomer: yes",
    "Ticket #71102 — Cliente: Giulia Ferrari <{email}>\nTelefono: {phone:uk_mobile}\nMessaggio: vorrei il rimborso sull'IBAN {iban:IT_grouped}",
    "Atendimento #5521\nCliente: {email}\nCartão: {card:visa_dash}\nIBAN para reembolso: {iban:PT_compact}",
    # Slack-style chat logs
    "[10:01] ops-bot: deploy failed on {ip_address:v4priv}\n[10:02] finn: token was {github_token:ghp}, I'll rotate it\n[10:03] zoe: thanks",
    "[19:12] anders: the alerts bot token is {slack_token:xoxb}\n[19:13] anders: owner is {email}",
    # YAML / TOML config
    "providers:\n  openai:\n    key: {openai_key:proj}\n  anthropic:\n    key: {anthropic_key}\ndatabase:\n  password: \"{generic_secret}\"",
    '[stripe]\nkey = "{stripe_key:sk}"\n\n[slack]\nbot_token = "{slack_token:xoxb}"',
    "services:\n  gateway:\n    environment:\n      GEMINI_API_KEY: {google_api_key}\n      REDIS_PASSWORD: {generic_secret}",
    # shell history
    "  310  AWS_ACCESS_KEY_ID={aws_access_key_id} AWS_SECRET_ACCESS_KEY={aws_secret_key} terraform plan\n  311  history -c",
    "  55  export GITLAB_TOKEN={gitlab_token}\n  56  export HF_TOKEN={huggingface_token}\n  57  make release",
    # SQL
    "INSERT INTO customers (email, phone, iban) VALUES ('{email}', '{phone:de_berlin}', '{iban:DE_compact}');",
    "INSERT INTO employees (name, ssn, email) VALUES ('Jonas Jensen', '{ssn}', '{email}');",
    # HTTP dumps
    "POST /v1/chat/completions HTTP/1.1\nHost: gateway.internal\nX-Forwarded-For: {ip_address:v4pub}\nAuthorization: Bearer {jwt}\nX-User-Email: {email}",
    "GET /api/v1/export HTTP/1.1\nHost: {ip_address:v4priv}:9000\nX-Api-Key: {generic_secret}",
    # stack traces
    "Traceback (most recent call last):\n  File \"/srv/app/notify.py\", line 31, in send\n    sms.send(to=\"{phone:us_e164}\", email=\"{email}\")\nTimeoutError: upstream {ip_address:v6comp} did not answer",
    "at com.acme.pay.Gateway.charge(Gateway.java:214)\nCaused by: DeclinedException: card {card:amex_dash} declined for customer {email}",
    # HTML forms
    '<form id="checkout">\n  <input name="email" value="{email}">\n  <input name="tel" value="{phone:fr_intl}">\n  <input name="cc" value="{card:visa_none}">\n</form>',
    # meeting notes
    "Riunione 21/07 — presenti: Luca, Chiara\n- la chiave {huggingface_token} è finita su GitHub, da revocare\n- contattare {email} per il contratto",
    "Notas da reunião\n- Trocar a senha do Postgres: password={generic_secret}\n- Chave antiga da OpenAI: {openai_key:legacy}",
    # CSV exports
    "email,phone,ssn\n{email},{phone:us_dot},{ssn}\n{email},{phone:us_intl_dash},{ssn}",
    "user_name,access_key_id,secret_access_key,created\nci-deployer,{aws_access_key_id},{aws_secret_key},2026-07-01",
    # other config formats
    "# rclone.conf\n[s3-backup]\ntype = s3\nprovider = AWS\naccess_key_id = {aws_access_key_id}\nsecret_access_key = {aws_secret_key}\nregion = eu-south-1\nacl = private",
    '{"AccessKey": {"UserName": "ci-bot", "AccessKeyId": "{aws_access_key_id}", "Status": "Active", "SecretAccessKey": "{aws_secret_key}"}}',
    'AWSCredentials creds = new BasicAWSCredentials("{aws_access_key_id}", "{aws_secret_key}");',
    "apiVersion: v1\nkind: Secret\nstringData:\n  host: {ip_address:v4priv}\n  key.pem: |\n    {private_key:ec_indent}",
    "Le jeton {jwt} a été émis pour {email} depuis {ip_address:v4pub}.",
    "Der Stripe-Key {stripe_key:rk} und der GitLab-Token {gitlab_token} lagen im Wiki.",
    "Por favor anulen {card:mc_space}; el cargo vino de la IP {ip_address:v6full}.",
    "Hugging Face: {huggingface_token}\nGoogle: {google_api_key}\nAnthropic: {anthropic_key}",
    "-- dump parcial\nINSERT INTO tokens VALUES ('{github_token:gho}'), ('{slack_token:xoxp}');",
    "Colaborador: Bruno Ribeiro, SSN {ssn}, e-mail {email}, telefone {phone:es_fixed}",
    "Host bastion\n  HostName {ip_address:v4pub}\n  User ops\n# key below, do not commit\n{private_key:openssh}",
]

# Hard negatives: nothing here may be reported.
NEGATIVE_TEMPLATES = [
    # tracking and postal ids
    "Your parcel is on its way: UPS {neg_ups}, estimated delivery Thu 23 Jul.",
    "FedEx tracking {neg_fedex} — exception: recipient not available",
    "USPS Priority Mail: {neg_usps}",
    "Spedizione tracciabile, numero {neg_s10:IT} (Poste Italiane).",
    "Encomenda registada {neg_s10:PT} entregue em Lisboa às 11:42.",
    "Colis suivi {neg_s10:FR}, remis au point relais.",
    # part numbers, SKUs, barcodes
    "Replacement part: PN {neg_partno}, qty 2",
    "Ersatzteil Art.-Nr. {neg_partno} ist derzeit nicht lieferbar.",
    "BOM line 14: PN {neg_partno} — M3 hex standoff, 12 mm",
    "sku,ean,price_eur\n{neg_sku},{neg_ean13},12.90",
    "EAN {neg_ean13} — Pasta di Gragnano 500 g",
    "Referência do artigo: {neg_sku}",
    # ISO timestamps with offsets
    "deploy finished at {neg_iso_ts} (took 4m12s)",
    '{"created": "{neg_iso_ts}", "status": "queued"}',
    "Ultima sincronizzazione: {neg_iso_ts}",
    "Backup concluído em {neg_iso_ts}; o próximo corre às 03:00.",
    "INSERT INTO audit (id, created_at, action) VALUES ('{neg_uuid}', '{neg_iso_ts}', 'login');",
    # semantic versions
    "Bumped switchyard from {neg_semver} to {neg_semver}",
    '[dependencies]\nreqwest = "0.12.9"\nhyper = { version = "1.5.1", features = ["http2"] }',
    "Release v3.0.0-rc.2+build.20260719 is out.",
    "Versione minima supportata: 4.12.1; consigliata: 4.14.0.",
    "Atualize o cliente para a versão {neg_semver} antes de sexta.",
    # container digests and cloud resource ids
    "docker pull registry.switchyard.dev/gateway@sha256:{neg_sha256}",
    "Digest: sha256:{neg_sha256}\nStatus: Downloaded newer image for nginx:1.27-alpine",
    "FROM rust:1.83-slim@sha256:{neg_sha256} AS build",
    'metadata:\n  name: switchyard-gw\n  uid: {neg_uuid}\n  resourceVersion: "48213377"',
    "ownerReferences:\n- apiVersion: apps/v1\n  kind: ReplicaSet\n  name: gw-6f9c7d8b5\n  uid: {neg_uuid}",
    "Instance {neg_ec2} (t3.medium) in {neg_subnet} stopped.",
    '"source_ami": "{neg_ami}",\n"instance_type": "c7g.large"',
    "arn:aws:secretsmanager:eu-south-1:{neg_awsacct}:secret:prod/gateway/db-{neg_suffix6}",
    "HTTP/1.1 200 OK\nx-amz-id-2: {neg_amzid2}\nx-amz-request-id: {neg_hexupper16}\nETag: \"{neg_md5}\"",
    # Luhn-failing card-length numbers
    "Gift card {neg_badluhn:dash} has a balance of €25.",
    "Numero pratica {neg_badluhn:none} — da evadere entro venerdì.",
    "Protocolo de atendimento: {neg_badluhn:space}",
    "INSERT INTO vouchers (code) VALUES ('{neg_badluhn:none}');",
    "Membership no. {neg_badluhn:space} (expired)",
    # IPv4-like OIDs and other dotted numbers
    "signatureAlgorithm: 1.2.840.113549.1.1.11 (sha256WithRSAEncryption)",
    "snmpwalk -v2c switch01 1.3.6.1.2.1.2.2.1.10",
    "extKeyUsage OID 1.3.6.1.5.5.7.3.1 = serverAuth",
    "Policy OID: 2.16.840.1.101.3.2.1.3.13",
    "Windows Build 10.0.22631.4037",
    "Chapter 12.4.1 explains the retry policy.",
    "DOI 10.1145/3576915.3623132",
    "ffmpeg -ss 00:01:30.500 -t 00:00:10 -i in.mp4 out.mp4",
    "Interface eth0 link/ether {neg_mac} brd ff:ff:ff:ff:ff:ff",
    "std::chrono::milliseconds(250) and Self::default()",
    # CSS / JS snippets
    ".btn-primary{color:#fff;background:#0d6efd}\n.btn-primary:hover{background:#0b5ed7}",
    "const retry = (n) => new Promise(r => setTimeout(r, 2 ** n * 250));",
    "@keyframes spin { from { transform: rotate(0deg); } to { transform: rotate(360deg); } }",
    "grid-template-columns: repeat(auto-fill, minmax(240px, 1fr));",
    "document.querySelector('#card-number').addEventListener('input', formatCardNumber);",
    "input[type=password] { letter-spacing: 0.2em; }",
    '<html lang="sk-SK">\n<div class="sk-spinner sk-spinner-wave"></div>',
    # placeholder / indirect / empty secret values
    'password: "<REDACTED>"',
    "api_key=None",
    "token = get_token()",
    "db:\n  user: app\n  password: ${DB_PASSWORD:?required}",
    "env:\n  - name: OPENAI_API_KEY\n    valueFrom:\n      secretKeyRef:\n        name: llm-credentials\n        key: openai",
    "STRIPE_SECRET_KEY: ${{ secrets.STRIPE_SECRET_KEY }}",
    '{"user": "svc_billing", "password": "***"}',
    "ANTHROPIC_API_KEY=<insert key here>",
    'secret_key_base: <%= ENV["SECRET_KEY_BASE"] %>',
    'password = ""  # lasciare vuoto in sviluppo',
    'senha: "********"   # definida no cofre',
    "api_key: !ENV ${GEMINI_API_KEY}",
    'curl -H "Authorization: Bearer $GITHUB_TOKEN" https://api.github.com/user',
    '{"key": "Authorization", "value": "Bearer {{access_token}}", "type": "text"}',
    "export HF_TOKEN=$(cat ~/.cache/huggingface/token)",
    "aws_secret_access_key = <your-secret-access-key>",
    "GITLAB_TOKEN: $CI_JOB_TOKEN",
    "token: null",
    "password: \"{{ lookup('env', 'DB_PASSWORD') }}\"",
    "api_key = settings.OPENAI_API_KEY",
    'oauth:\n  client_id: switchyard-web\n  client_secret: "[set in vault]"',
    "SLACK_BOT_TOKEN=xoxb-************************",
    "OPENAI_API_KEY=sk-proj-...redacted...",
    # vendor example keys (AWS documentation)
    "aws_access_key_id = AKIAI44QH8DHBEXAMPLE\naws_secret_access_key = je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
    "Nel README c'è la chiave di esempio AKIAIOSFODNN7EXAMPLE: va bene lasciarla.",
    # test-mode and publishable Stripe keys
    "[stripe]\nsecret_key = \"{neg_stripe_test:sk}\"  # sandbox",
    "A chave restrita {neg_stripe_test:rk} só funciona no modo de teste.",
    # judgment call: publishable keys are public by design
    "publishableKey: '{neg_pk_live}'",
    "PaymentIntent {neg_stripe_pi} succeeded for {neg_stripe_cus}",
    # low-entropy passwords
    "[mysql]\nuser=root\npassword=password123",
    "admin_password=letmein",
    "pwd: qwerty123456",
    "La password di default è admin/admin, cambiala al primo accesso.",
    "PASSWORD=12345678",
    "senha=senha123",
    "password: iloveyou",
    # key names and parameters, not values
    'api_key_header = "X-API-Key"',
    "token_type: Bearer\nexpires_in: 3600",
    "secretName: tls-gateway-cert",
    'cache_key = f"user:{user_id}:profile"',
    "password_min_length = 14\npassword_require_symbols = true",
    "AUTH_TOKEN_TTL_SECONDS=86400",
    "The api_key parameter is required; pass it via the X-API-Key header.",
    "session_secret_rotation_days: 30",
    # public key material and key placeholders
    "{neg_csr}",
    "# ~/.ssh/authorized_keys\n{neg_ssh_rsa} deploy@ci",
    "gitlab.example.com {neg_sshpub}",
    "ssl_certificate_key /etc/nginx/ssl/gateway.key;",
    "-----BEGIN EC PRIVATE KEY-----\n<paste your key here>\n-----END EC PRIVATE KEY-----",
    "tls.key: |\n  -----BEGIN PRIVATE KEY-----\n  [REDACTED BY SECURITY]\n  -----END PRIVATE KEY-----",
    'jwks_uri: "https://auth.switchyard.dev/.well-known/jwks.json"',
    '{"kty": "RSA", "e": "AQAB", "use": "sig", "kid": "{neg_hex16}", "n": "{neg_jwk_n}"}',
    "Certificato del server:\n{neg_certpem}",
    # JWT look-alikes
    "Authorization: Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6...<truncated>",
    "data:application/json;base64,{neg_b64json}",
    "Um JWT tem três partes separadas por pontos: cabeçalho, payload e assinatura.",
    # vendor-prefix look-alikes
    "pip install hf_transfer && export HF_HUB_ENABLE_HF_TRANSFER=1",
    'model_id = "mistralai/Mistral-7B-Instruct-v0.3"',
    "hf_dataset_streaming_cache_dir = /data/cache",
    "Slack ts {neg_slack_ts} in channel {neg_slack_id}",
    "ghcr.io/acme/switchyard:gh-pages-20260719",
    "oauth_client_id: 48213377-k2j4h5g6f7d8s9a0.apps.googleusercontent.com",
    "Le chiavi sk_live_ non vanno mai committate: in locale usa quelle sk_test_.",
    "AIza... è solo il prefisso delle chiavi Google, non una chiave.",
    # hashes and integrity strings
    '"integrity": "{neg_sri512}"',
    "github.com/stretchr/testify v1.9.0 {neg_gosum}",
    "Build #48213 (commit {neg_sha7}) passed in 00:12:47",
    "sha1sum: {neg_sha40}  gateway-linux-arm64",
    # phone / SSN / IBAN / card look-alikes
    "Ticket #48213 escalated to L2; SLA 4h; priority P2.",
    "Conto economico 2025: ricavi 1.245.300 €, EBITDA 312.450 €",
    "CEP 01310-100, São Paulo - SP",
    "CAP 20121 Milano (MI)",
    "Código postal 1100-148 Lisboa",
    "P.IVA 04218730961",
    "Fattura n. 2026/00418 del 19/07/2026",
    "Latency p50=182ms p95=1,204ms p99=3,882ms",
    "Coordenadas: -23.5505, -46.6333",
    "R$ 1.299,90 em 10x sem juros",
    "ISSN 2049-3630",
    "Zeitstempel (ms): {neg_tsms}",
    "SSN on file: ***-**-{neg_last4}",
    "The famous Woolworth wallet card SSN 078-05-1120 was used by thousands of people.",
    "Il numero 219-09-9999 compare come esempio negli opuscoli della Social Security.",
    "ssn: \"{neg_badssn:area666}\"",
    "Números que começam por 9, como {neg_badssn:area9xx}, são ITIN e não SSN.",
    "IBAN {neg_badiban:grouped} — il controllo dei check digit non torna.",
    "Conta {neg_badiban:compact} (IBAN inválido, dígitos de controlo errados)",
    # judgment call: textbook example IBANs are negatives like documentation test cards
    "Exemplo de IBAN alemão: DE89 3704 0044 0532 0130 00",
    "Sample IBAN from the docs: GB82 WEST 1234 5698 7654 32",
    "SWIFT/BIC: BCITITMM, ABI 03069, CAB 09606",
    "Codice IBAN: IT** X*** **** **** **** ***4 56",
    "Carta di test Visa: 4111 1111 1111 1111 (ambiente sandbox)",
    "Cartão de teste 5555 5555 5555 4444 — usar apenas em homologação.",
    # judgment call: further Stripe documentation test cards
    "Stripe test card for a generic decline: 4000 0000 0000 0002",
    "insufficient_funds test: 4000000000009995",
    "card: **** **** **** {neg_last4} (Visa)",
    # e-mail look-alikes
    '@app.get("/health")\nasync def health():\n    return {"ok": True}',
    "npm install @angular/core@17.3.12",
    "Menziona @giulia.romano nel canale #infra",
    "Scrivimi a giulia [chiocciola] example [punto] it",
    # plain prompts and chat in the new languages
    "Riassumi questo verbale in cinque punti, per favore.",
    "Podes rever este e-mail antes de eu o enviar?",
    "[09:01] tiago: bom dia! deploy da v1.18.2 às 14h\n[09:02] giulia: ok",
    "Verbale riunione 21/07\n- Rilascio 2.4.0 slittato a lunedì\n- Ticket SWY-2231 da chiudere\n- Prossima riunione 28/07 ore 10:30",
    "GET /v1/models HTTP/2\nHost: api.switchyard.dev\nAccept: application/json\nX-Request-Id: {neg_uuid}\nUser-Agent: switchyard-cli/0.9.3",
    "Traceback (most recent call last):\n  File \"/srv/app/worker.py\", line 88, in run\n    token = fetch_token(cfg)\nKeyError: 'API_TOKEN'",
]


# --------------------------------------------------------------------------------------------
# Filling templates
# --------------------------------------------------------------------------------------------

ALL_GENERATORS = {**POSITIVE_GENERATORS, **NEGATIVE_GENERATORS}
PLACEHOLDER = re.compile(r"\{(" + "|".join(sorted(ALL_GENERATORS, key=len, reverse=True))
                         + r")(?::([A-Za-z0-9_]+))?\}")

POSITIVE_VALUES = set()
NEGATIVE_VALUES = []
IN_SAMPLE_VALUES = set()  # positive values of corpus.jsonl (filled in main)


def fill(template):
    return B.fill_with(template, PLACEHOLDER, POSITIVE_GENERATORS, NEGATIVE_GENERATORS,
                       POSITIVE_VALUES, NEGATIVE_VALUES, taken=IN_SAMPLE_VALUES)


def build_cases():
    return B.assemble(fill, DETECTORS, POSITIVE_TEMPLATES, MIXED_TEMPLATES, NEGATIVE_TEMPLATES,
                      lambda findings, d: {f["detector"] for f in findings} == {d})


# --------------------------------------------------------------------------------------------
# Self-check
# --------------------------------------------------------------------------------------------

def validated_hits(text):
    """Like the first script's, but published examples (test cards, example SSNs and IBANs)
    are not sensitive."""
    hits = [m.span() for m in B.EMAIL_RE.finditer(text)]
    hits += [m.span() for m in B.SSN_RE.finditer(text)
             if ssn_ok(m.group()) and m.group() not in KNOWN_EXAMPLE_SSNS]
    hits += [m.span() for m in B.IBAN_RE.finditer(text)
             if iban_ok(m.group()) and m.group().replace(" ", "") not in KNOWN_EXAMPLE_IBANS]
    for rx in B.CARD_RES:
        for m in rx.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if luhn_ok(digits) and digits not in ALL_TEST_CARDS:
                hits.append(m.span())
    hits += [m.span() for m in B.IPV4_RE.finditer(text) if ip_ok(m.group())]
    hits += [m.span() for m in B.IPV6_RE.finditer(text) if ip_ok(m.group())]
    return hits


def normalized_template(t):
    return re.sub(r"\{([a-z0-9_]+):[A-Za-z0-9_]+\}", r"{\1}", t).strip().lower()


def check_templates_are_new(base):
    mine = ([t for ts in POSITIVE_TEMPLATES.values() for t in ts] + MIXED_TEMPLATES
            + NEGATIVE_TEMPLATES)
    theirs = ([t for ts in base.POSITIVE_TEMPLATES.values() for t in ts] + base.MIXED_TEMPLATES
              + base.NEGATIVE_TEMPLATES)
    assert len(set(map(normalized_template, mine))) == len(mine), "duplicate template"
    theirs_norm = [normalized_template(t) for t in theirs]
    for t in map(normalized_template, mine):
        for u in theirs_norm:
            sm = difflib.SequenceMatcher(None, t, u)
            if sm.real_quick_ratio() > 0.8 and sm.quick_ratio() > 0.8 and sm.ratio() > 0.8:
                raise AssertionError(("template too close to an in-sample one", t, u))


def self_check(cases):
    positives = [c for c in cases if c["findings"]]
    negatives = [c for c in cases if not c["findings"]]

    assert all(luhn_ok(c) for c in ALL_TEST_CARDS), "test cards must pass Luhn"
    assert all(iban_ok(i) for i in KNOWN_EXAMPLE_IBANS), "example IBANs must be valid"
    assert len({c["id"] for c in cases}) == len(cases), "duplicate ids"
    assert len({c["text"] for c in cases}) == len(cases), "duplicate texts"
    assert not POSITIVE_VALUES & IN_SAMPLE_VALUES, "value reused from the in-sample corpus"

    for case in positives:
        text, spans = case["text"], []
        for f in case["findings"]:
            det, match = f["detector"], f["match"]
            assert det in DETECTORS, case["id"]
            assert text.count(match) == 1, (case["id"], match)
            start = text.index(match)
            spans.append((start, start + len(match)))
            assert re.fullmatch(B.SHAPES[det], match, re.S), (case["id"], det, match)
            if det == "card":
                digits = re.sub(r"[ -]", "", match)
                assert 13 <= len(digits) <= 19 and luhn_ok(digits), (case["id"], match)
                assert digits not in ALL_TEST_CARDS, (case["id"], match)
            elif det == "iban":
                assert iban_ok(match), (case["id"], match)
                assert match.replace(" ", "") not in KNOWN_EXAMPLE_IBANS, case["id"]
            elif det == "ssn":
                assert ssn_ok(match) and match not in KNOWN_EXAMPLE_SSNS, (case["id"], match)
            elif det == "ip_address":
                assert ip_ok(match), (case["id"], match)
            elif det == "phone":
                assert 7 <= len(re.sub(r"\D", "", match)) <= 15, (case["id"], match)
            elif det == "openai_key":
                assert not match.startswith("sk-ant-"), case["id"]
            elif det in ("aws_secret_key", "generic_secret"):
                assert B.mixed(match), (case["id"], match)
            elif det == "jwt":
                for part in match.split(".")[:2]:
                    json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            if det not in ("email", "private_key"):
                assert not B.PLACEHOLDER_WORDS.search(match), (case["id"], match)
            # the value must not run into neighbouring characters of its own alphabet
            before = text[start - 1] if start else " "
            after = text[start + len(match)] if start + len(match) < len(text) else " "
            if det != "private_key":
                assert not re.match(r"[A-Za-z0-9]", before), ("value glued to text", case["id"])
                assert not re.match(r"[A-Za-z0-9]", after), ("value glued to text", case["id"])
        assert spans == sorted(spans), ("findings not in order of appearance", case["id"])
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), ("overlap", case["id"])
        hits = validated_hits(text)
        hits += [m.span() for rx in B.PREFIX_RES for m in rx.finditer(text)]
        for hs, he in hits:
            assert any(s <= hs and he <= e for s, e in spans), \
                ("unlabelled item", case["id"], text[hs:he])

    for case in negatives:
        text = case["text"]
        for value in POSITIVE_VALUES | IN_SAMPLE_VALUES:
            assert value not in text, ("positive value in negative", case["id"])
        for hs, he in validated_hits(text):
            raise AssertionError(("negative contains a valid item", case["id"], text[hs:he]))

    for value in NEGATIVE_VALUES:
        for rx in B.PREFIX_RES:
            assert not rx.search(value), ("look-alike matches a secret pattern", value)
        assert value not in POSITIVE_VALUES, value

    per_detector = Counter(det for c in positives for det in {f["detector"] for f in c["findings"]})
    for det in DETECTORS:
        assert per_detector[det] >= 8, (det, per_detector[det])
    assert len(negatives) >= 100, len(negatives)
    assert len(cases) >= 250, len(cases)
    return per_detector, len(negatives)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stats", action="store_true", help="print per-detector counts to stderr")
    args = parser.parse_args()

    # An independent instance of the first script rebuilds the in-sample corpus in memory, so
    # that its templates and values can be kept out of this one.
    base = load_base("guardrail_corpus_in_sample")
    base.build_cases()
    IN_SAMPLE_VALUES.update(base.POSITIVE_VALUES)
    check_templates_are_new(base)

    cases = build_cases()
    per_detector, negatives = self_check(cases)
    B.write_corpus(cases, per_detector, negatives, args.stats)

if __name__ == "__main__":
    main()
