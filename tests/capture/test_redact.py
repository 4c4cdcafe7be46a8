"""claude_bc.capture.redact: the one redactor every captured string passes.

Every fake secret here is built at run time from pieces (and mostly from a seeded RNG),
so that no secret-looking string is committed.
"""

from __future__ import annotations

import base64
import copy
import importlib
import inspect
import json
import pkgutil
import random
import string
import time
import uuid
from collections.abc import Callable
from typing import Any

import detect_secrets.plugins
import pytest
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_bc.capture import redact as redact_mod
from claude_bc.capture.redact import (
    DETECT_SECRETS_PLUGINS,
    DETECT_SECRETS_SKIPPED,
    UNSCANNABLE,
    Redactor,
    is_credential_key,
    marker,
    redact,
    redact_text,
)
from claude_bc.capture.secrets_rules import is_placeholder

R = Redactor()

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
LOWER_DIGITS = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
B64URL = ALNUM + "-_"


def tok(n: int, alphabet: str = ALNUM, seed: int = 0) -> str:
    """``n`` random characters, different per (n, alphabet, seed), stable across runs."""
    rng = random.Random(f"{n}:{alphabet}:{seed}")
    return "".join(rng.choice(alphabet) for _ in range(n))


def mixed(n: int, seed: int = 0) -> str:
    """Random alphanumerics with at least one upper, lower and digit (like real keys)."""
    return "Aa1" + tok(n - 3, ALNUM, seed)


def b64url(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def pem(kind: str = "RSA PRIVATE KEY", lines: int = 12, seed: int = 0) -> str:
    body = "\n".join(tok(64, ALNUM + "+/", seed * 100 + i) for i in range(lines))
    return "-----" + "BEGIN " + kind + "-----\n" + body + "\n-----" + "END " + kind + "-----"


def assert_gone(out: str, secret: str, context: str = "") -> None:
    """Neither the secret nor any piece of it of 12 characters or more survives (pieces
    that the text around the secret also holds aside)."""
    assert secret not in out
    for i in range(len(secret) - 11):
        piece = secret[i : i + 12]
        if piece not in context:
            assert piece not in out, f"{piece!r} of a planted secret survived in {out!r}"


def redacted_once(text: str) -> str:
    out = R.redact_text(text)
    assert R.redact_text(out) == out, "not idempotent"
    return out


# --------------------------------------------------------------------------------------
# Fake secrets
# --------------------------------------------------------------------------------------

ANTHROPIC_API = "sk-ant-" + "api03-" + tok(80, B64URL, 1) + "AA"
ANTHROPIC_ADMIN = "sk-ant-" + "admin01-" + tok(80, B64URL, 2)
ANTHROPIC_OAT = "sk-ant-" + "oat01-" + tok(80, B64URL, 3)
ANTHROPIC_ORT = "sk-ant-" + "ort01-" + tok(80, B64URL, 4)
AWS_KEY_ID = "AK" + "IA" + tok(16, UPPER_DIGITS, 5)
AWS_SECRET = tok(40, ALNUM + "/+", 6)
GH_PAT = "gh" + "p_" + tok(36, ALNUM, 7)
JWT = (
    b64url({"alg": "HS256", "typ": "JWT"})
    + "."
    + b64url({"sub": "1234567890", "name": "Jane", "iat": 1516239022})
    + "."
    + tok(43, B64URL, 8)
)


# --------------------------------------------------------------------------------------
# detect-secrets plugins: each sample is a positive for the library itself, and is gone
# after redaction
# --------------------------------------------------------------------------------------

PLUGIN_CASES: list[tuple[str, str, str]] = [
    ("AWSKeyDetector", "aws_access_key_id = " + AWS_KEY_ID + "\n", AWS_KEY_ID),
    ("AWSKeyDetector", 'aws_secret_key = "' + AWS_SECRET + '"', AWS_SECRET),
    (
        "ArtifactoryDetector",
        "artifactory_api: AK" + "C" + "p8" + tok(60, ALNUM, 9) + "\n",
        "AK" + "C" + "p8" + tok(60, ALNUM, 9),
    ),
    (
        "AzureStorageKeyDetector",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey="
        + tok(86, ALNUM + "+/", 10)
        + "==;EndpointSuffix=core.windows.net",
        tok(86, ALNUM + "+/", 10) + "==",
    ),
    (
        "BasicAuthDetector",
        "git clone https://deploy:" + mixed(16, 11) + "@git.example.com/repo.git",
        mixed(16, 11),
    ),
    ("CloudantDetector", "cloudant_password = '" + tok(64, HEX, 12) + "'", tok(64, HEX, 12)),
    (
        "CloudantDetector",
        "https://acct-1:" + tok(64, HEX, 13) + "@acct-1.cloudant.com",
        tok(64, HEX, 13),
    ),
    (
        "DiscordBotTokenDetector",
        "DISCORD="
        + "M"
        + tok(23, B64URL, 14)
        + "."
        + tok(6, B64URL, 15)
        + "."
        + tok(27, B64URL, 16),
        "M" + tok(23, B64URL, 14) + "." + tok(6, B64URL, 15) + "." + tok(27, B64URL, 16),
    ),
    ("GitHubTokenDetector", "token " + GH_PAT + " end", GH_PAT),
    (
        "GitLabTokenDetector",
        "export GL=" + "gl" + "pat-" + tok(20, B64URL, 17),
        tok(20, B64URL, 17),
    ),
    (
        "IbmCloudIamDetector",
        'ibm_cloud_iam_api_key = "' + tok(44, B64URL, 18) + '"',
        tok(44, B64URL, 18),
    ),
    (
        "IbmCosHmacDetector",
        'ibm_cos_hmac_secret_access_key = "' + tok(48, HEX, 19) + '"',
        tok(48, HEX, 19),
    ),
    ("JwtTokenDetector", "Authorization-ish " + JWT + " trailing", JWT),
    (
        "MailchimpDetector",
        "mc = " + tok(32, LOWER_DIGITS, 20) + "-us" + "12",
        tok(32, LOWER_DIGITS, 20) + "-us12",
    ),
    (
        "OpenAIDetector",
        "key: " + "sk-" + mixed(20, 21) + "T3Blbk" + "FJ" + mixed(20, 22),
        "sk-" + mixed(20, 21) + "T3Blbk" + "FJ" + mixed(20, 22),
    ),
    (
        "PypiTokenDetector",
        "password = " + "pypi-" + "AgEIcHlwaS5vcmc" + tok(80, B64URL, 23),
        "AgEIcHlwaS5vcmc" + tok(80, B64URL, 23),
    ),
    (
        "SendGridDetector",
        "SG" + "." + tok(22, B64URL, 24) + "." + tok(43, B64URL, 25),
        tok(22, B64URL, 24) + "." + tok(43, B64URL, 25),
    ),
    (
        "SlackDetector",
        "xox"
        + "b-"
        + tok(11, string.digits, 26)
        + "-"
        + tok(12, string.digits, 27)
        + "-"
        + tok(24, LOWER_DIGITS, 28),
        tok(11, string.digits, 26)
        + "-"
        + tok(12, string.digits, 27)
        + "-"
        + tok(24, LOWER_DIGITS, 28),
    ),
    (
        "SlackDetector",
        "curl https://hooks.slack.com/services/T"
        + tok(10, UPPER_DIGITS, 29)
        + "/B"
        + tok(10, UPPER_DIGITS, 30)
        + "/"
        + tok(24, ALNUM, 31),
        tok(10, UPPER_DIGITS, 29) + "/B" + tok(10, UPPER_DIGITS, 30) + "/" + tok(24, ALNUM, 31),
    ),
    (
        "SoftlayerDetector",
        'softlayer_api_key = "' + tok(64, LOWER_DIGITS, 32) + '"',
        tok(64, LOWER_DIGITS, 32),
    ),
    (
        "SoftlayerDetector",
        "https://api.softlayer.com/soap/v3/" + tok(64, LOWER_DIGITS, 33),
        tok(64, LOWER_DIGITS, 33),
    ),
    ("SquareOAuthDetector", "sq0" + "csp-" + tok(43, B64URL, 34), tok(43, B64URL, 34)),
    ("StripeDetector", "stripe: " + "sk_" + "live_" + tok(24, ALNUM, 35), tok(24, ALNUM, 35)),
    (
        "TelegramBotTokenDetector",
        "bot" + tok(9, "123456789", 36) + ":" + tok(35, B64URL, 37) + " ok",
        tok(9, "123456789", 36) + ":" + tok(35, B64URL, 37),
    ),
    ("TwilioKeyDetector", "sid AC" + tok(32, LOWER_DIGITS, 38) + " ok", tok(32, LOWER_DIGITS, 38)),
    ("TwilioKeyDetector", "key SK" + tok(32, LOWER_DIGITS, 39) + " ok", tok(32, LOWER_DIGITS, 39)),
]


def _plugin_class(name: str) -> type[Any]:
    for info in pkgutil.iter_modules(detect_secrets.plugins.__path__):
        module = importlib.import_module(f"detect_secrets.plugins.{info.name}")
        if hasattr(module, name):
            return getattr(module, name)  # type: ignore[no-any-return]
    raise LookupError(name)


@pytest.mark.parametrize(("plugin", "text", "secret"), PLUGIN_CASES)
def test_detect_secrets_plugin_samples_are_redacted(plugin: str, text: str, secret: str) -> None:
    assert plugin in DETECT_SECRETS_PLUGINS
    flagged = list(_plugin_class(plugin)().analyze_string(text))
    assert flagged, f"{plugin} itself does not flag the sample; fix the sample"
    out = redacted_once(text)
    assert_gone(out, secret)
    assert R.found(text)


def test_every_detect_secrets_regex_plugin_is_used_or_excluded_on_purpose() -> None:
    """A detect-secrets upgrade that adds a plugin fails here until it is looked at."""
    names = set()
    for info in pkgutil.iter_modules(detect_secrets.plugins.__path__):
        module = importlib.import_module(f"detect_secrets.plugins.{info.name}")
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, RegexBasedDetector)
                and obj is not RegexBasedDetector
                and obj.__module__ == module.__name__
            ):
                names.add(obj.__name__)
    assert names
    unknown = names - set(DETECT_SECRETS_PLUGINS) - set(DETECT_SECRETS_SKIPPED)
    assert not unknown
    assert "HexHighEntropyString" in DETECT_SECRETS_SKIPPED
    assert "Base64HighEntropyString" in DETECT_SECRETS_SKIPPED


@pytest.mark.parametrize("pattern", PrivateKeyDetector.denylist, ids=lambda p: p.pattern)
def test_every_private_key_header_of_detect_secrets_is_redacted_as_a_block(pattern: Any) -> None:
    header = pattern.pattern
    if header.startswith("BEGIN "):
        kind = header[len("BEGIN ") :]
        block = pem(kind, seed=len(kind))
        body_line = block.splitlines()[3]
    else:  # PuTTY-User-Key-File-2
        body_line = tok(64, ALNUM + "+/", 41)
        block = "\n".join(
            [
                header + ": ssh-rsa",
                "Encryption: none",
                "Comment: imported-openssh-key",
                "Public-Lines: 2",
                tok(64, ALNUM + "+/", 40),
                tok(20, ALNUM + "+/", 42),
                "Private-Lines: 3",
                body_line,
                tok(64, ALNUM + "+/", 43),
                tok(12, ALNUM + "+/", 44),
                "Private-MAC: " + tok(40, HEX, 45),
            ]
        )
    text = "cat key\n" + block + "\n$ echo done\n"
    out = redacted_once(text)
    assert out == "cat key\n" + marker("private-key") + "\n$ echo done\n"
    assert_gone(out, body_line)


# --------------------------------------------------------------------------------------
# Our own rules
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "kind"),
    [
        (ANTHROPIC_API, "anthropic-api-key"),
        (ANTHROPIC_ADMIN, "anthropic-admin-key"),
        (ANTHROPIC_OAT, "anthropic-oauth-token"),
        (ANTHROPIC_ORT, "anthropic-oauth-refresh-token"),
        ("sk-ant-" + "api03-" + tok(20, B64URL, 50), "anthropic-api-key"),
        ("sk-ant-" + "sid99-" + tok(30, B64URL, 51), "anthropic-key"),
    ],
)
def test_anthropic_keys(secret: str, kind: str) -> None:
    for template in ("{}", "key={}", 'ANTHROPIC_API_KEY="{}"', "x-api-key: {}\n", "({})"):
        text = template.format(secret)
        out = redacted_once(text)
        assert_gone(out, secret)
        assert marker(kind) in out or marker("credential") in out
    out = redacted_once("using " + secret + " now")
    assert out == "using " + marker(kind) + " now"
    assert R.found("using " + secret) == [kind]


@pytest.mark.parametrize(
    ("secret", "kind"),
    [
        (AWS_KEY_ID, "aws-access-key"),
        ("AS" + "IA" + tok(16, UPPER_DIGITS, 52), "aws-access-key"),
        (GH_PAT, "github-token"),
        ("gh" + "o_" + tok(36, ALNUM, 53), "github-token"),
        ("gh" + "s_" + tok(24, ALNUM, 54), "github-token"),
        ("github_" + "pat_" + tok(22, ALNUM, 55) + "_" + tok(59, ALNUM, 56), "github-token"),
        ("xox" + "p-" + tok(12, string.digits, 57) + "-" + tok(30, ALNUM, 58), "slack-token"),
        ("xox" + "e.xoxp-1-" + tok(40, ALNUM, 59), "slack-token"),
        ("AI" + "za" + tok(35, B64URL, 60), "google-api-key"),
        ("ya" + "29." + tok(80, B64URL, 61), "google-oauth-token"),
        ("GOC" + "SPX-" + tok(28, B64URL, 62), "google-oauth-client-secret"),
        ("h" + "f_" + tok(34, string.ascii_letters, 63), "huggingface-token"),
        ("np" + "m_" + tok(36, ALNUM, 64), "npm-token"),
        ("sk-" + "proj-" + mixed(120, 65), "openai-api-key"),
        ("sk-" + mixed(48, 66), "openai-api-key"),
        ("sk" + "_test_" + tok(24, ALNUM, 67), "stripe-key"),
        ("wh" + "sec_" + tok(32, ALNUM, 68), "stripe-key"),
        (JWT, "jwt"),
    ],
)
def test_token_shapes(secret: str, kind: str) -> None:
    text = "before " + secret + " after"
    out = redacted_once(text)
    assert out == "before " + marker(kind) + " after"
    assert kind in R.found(text)


def test_jwt_without_signature_and_with_five_parts() -> None:
    two = JWT.rsplit(".", 1)[0]
    five = JWT + "." + tok(22, B64URL, 70) + "." + tok(16, B64URL, 71)
    for t in (two, two + ".", five):
        assert redacted_once("a=" + t + "\n") == "a=" + marker("jwt") + "\n"


@pytest.mark.parametrize(
    ("line", "secret", "kept"),
    [
        ("Authorization: Bearer {s}", mixed(40, 80), "Authorization: Bearer "),
        ("authorization: bearer {s}\r\n", mixed(24, 81), "authorization: bearer "),
        (
            "Authorization: Basic {s}",
            base64.b64encode(b"user:" + tok(12).encode()).decode(),
            "Authorization: Basic ",
        ),
        ("Authorization: token {s}", GH_PAT, "Authorization: token "),
        ("Proxy-Authorization: Bearer {s}", mixed(30, 82), "Proxy-Authorization: Bearer "),
        ("curl -H 'Authorization: Bearer {s}' https://api.example.com", mixed(32, 83), "curl -H"),
        ('-H "x-api-key: {s}" \\', mixed(32, 84), '-H "x-api-key: '),
        ("X-Api-Key: {s}", mixed(24, 85), "X-Api-Key: "),
        ("x-goog-api-key: {s}", mixed(39, 86), "x-goog-api-key: "),
        ("PRIVATE-TOKEN: {s}", mixed(20, 87), "PRIVATE-TOKEN: "),
        ("Cookie: sessionid={s}; theme=dark", mixed(32, 88), "Cookie: "),
        ("Set-Cookie: sid={s}; Path=/; HttpOnly", mixed(32, 89), "Set-Cookie: "),
        ('{{"Authorization": "Bearer {s}"}}', mixed(40, 90), '{"Authorization": "'),
        ("sent Bearer {s} upstream", mixed(40, 91), "sent Bearer "),
    ],
)
def test_header_lines(line: str, secret: str, kept: str) -> None:
    text = line.format(s=secret)
    out = redacted_once(text)
    assert_gone(out, secret)
    assert out.startswith(kept)
    assert "[REDACTED:" in out


def test_header_line_keeps_the_rest_byte_for_byte() -> None:
    secret = mixed(40, 92)
    text = "GET / HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer " + secret + "\r\n\r\n"
    assert redacted_once(text) == (
        "GET / HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer "
        + marker("bearer-token")
        + "\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("postgres://app:{p}@db.internal:5432/app", mixed(14, 93)),
        ("mysql://root:{p}@127.0.0.1/test", "p" + tok(10, ALNUM, 94) + "!x"),
        ("redis://:{p}@cache:6379/0", mixed(20, 95)),
        ("https://user:{p}@example.com/path?q=1", "p@" + mixed(10, 96)),
        ("amqp://guest:{p}@rabbit//", mixed(12, 97)),
    ],
)
def test_password_in_url_keeps_user_and_host(url: str, password: str) -> None:
    text = "DATABASE_URL=" + url.format(p=password)
    out = redacted_once(text)
    assert out == "DATABASE_URL=" + url.format(p=marker("url-password"))


def test_url_password_placeholders_are_kept() -> None:
    for text in (
        "postgres://app:${DB_PASSWORD}@db/app",
        "https://u:$TOKEN@h/",
        "https://example.com:443/x",
    ):
        assert redacted_once(text) == text


# --- private keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        "RSA PRIVATE KEY",
        "PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "EC PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "DSA PRIVATE KEY",
        "PGP PRIVATE KEY BLOCK",
    ],
)
def test_pem_block_inside_a_larger_file(kind: str) -> None:
    block = pem(kind, lines=25, seed=len(kind))
    before = "# deploy notes\nssh-keygen -t ed25519\n\n"
    after = "\n\nssh -i key host\n"
    out = redacted_once(before + block + after)
    assert out == before + marker("private-key") + after
    for line in block.splitlines()[1:-1]:
        assert_gone(out, line)


def test_pem_with_headers_and_crlf() -> None:
    body = "\r\n".join(tok(64, ALNUM + "+/", 200 + i) for i in range(6))
    block = (
        "-----" + "BEGIN RSA PRIVATE" + " KEY-----\r\nProc-Type: 4,ENCRYPTED\r\n"
        "DEK-Info: AES-128-CBC,"
        + tok(32, HEX.upper(), 1)
        + "\r\n\r\n"
        + body
        + "\r\n-----"
        + "END RSA PRIVATE"
        + " KEY-----\r\n"
    )
    out = redacted_once("x\r\n" + block + "y")
    assert out == "x\r\n" + marker("private-key") + "\r\ny"


def test_pem_in_a_json_string_with_escaped_newlines() -> None:
    key = pem("PRIVATE KEY", lines=8, seed=3)
    doc = json.dumps(
        {
            "type": "service_account",
            "project_id": "demo-project",
            "private_key_id": tok(40, HEX, 4),
            "private_key": key + "\n",
            "client_email": "svc@demo-project.iam.gserviceaccount.com",
        },
        indent=2,
    )
    out = redacted_once(doc)
    for line in key.splitlines()[1:-1]:
        assert_gone(out, line)
    assert '"client_email": "svc@demo-project.iam.gserviceaccount.com"' in out
    assert '"project_id": "demo-project"' in out
    loaded = json.loads(out)  # still valid JSON
    assert loaded["private_key"].startswith("[REDACTED:")


def test_pem_truncated_head_and_tail() -> None:
    block = pem("OPENSSH PRIVATE KEY", lines=20, seed=5)
    lines = block.splitlines()
    head = "\n".join(lines[:8])  # `head -8 id_ed25519`
    out = redacted_once("$ head -8 key\n" + head + "\n$ ")
    assert out == "$ head -8 key\n" + marker("private-key") + "\n$ "
    tail = "\n".join(lines[-6:])  # `tail -6 id_ed25519`
    out = redacted_once("$ tail -6 key\n" + tail + "\n$ ")
    assert out == "$ tail -6 key\n" + marker("private-key") + "\n$ "
    for line in lines[1:-1]:
        assert_gone(out, line)


def test_pem_flattened_on_one_line() -> None:
    block = pem("RSA PRIVATE KEY", lines=4, seed=6).replace("\n", " ")
    assert redacted_once("key: " + block + " done") == "key: " + marker("private-key") + " done"


def test_public_keys_and_certificates_are_kept() -> None:
    cert = pem("CERTIFICATE", lines=5, seed=7)
    pub = pem("PUBLIC KEY", lines=5, seed=8)
    ssh_pub = "ssh-ed25519 " + tok(68, ALNUM + "+/", 9) + " dev@laptop"
    text = cert + "\n" + pub + "\n" + ssh_pub + "\n"
    assert redacted_once(text) == text


# --- .env / YAML / INI / code ---------------------------------------------------------


def test_dotenv_file_read_by_a_tool() -> None:
    s = {
        "anthropic": ANTHROPIC_API,
        "openai": "sk-" + "proj-" + mixed(60, 100),
        "gh": GH_PAT,
        "akia": AWS_KEY_ID,
        "aws": AWS_SECRET,
        "stripe": "sk_" + "live_" + tok(24, ALNUM, 101),
        "session": "correct horse battery " + tok(6, string.ascii_lowercase, 102),
        "smtp": "hunter" + tok(6, ALNUM, 103),
        "db": mixed(16, 104),
        "custom": tok(30, ALNUM, 105),
    }
    lines = [
        "# Local development settings",
        "DEBUG=true",
        "PORT=8080",
        "LOG_LEVEL=info",
        "DATABASE_URL=postgres://app:{db}@localhost:5432/app",
        "ANTHROPIC_API_KEY={anthropic}",
        'OPENAI_API_KEY="{openai}"',
        "GITHUB_TOKEN='{gh}'",
        "export AWS_ACCESS_KEY_ID={akia}",
        "export AWS_SECRET_ACCESS_KEY={aws}",
        "STRIPE_SECRET_KEY={stripe}",
        "SESSION_SECRET={session}",
        "SMTP_PASSWORD={smtp}   ",
        "MY_SERVICE_API_KEY={custom}",
        "JWT_SECRET=",
        "MAX_TOKENS=4096",
        "TOKEN_COUNT_LIMIT=100",
        "NEXT_PUBLIC_API_URL=https://api.example.com",
        "REDIS_PASSWORD=${{REDIS_PASSWORD_FROM_VAULT}}",
        "",
    ]
    env = "\n".join(lines).format(**s)
    want = "\n".join(lines).format(
        db=marker("url-password"),
        anthropic=marker("anthropic-api-key"),
        openai=marker("openai-api-key"),
        gh=marker("github-token"),
        akia=marker("aws-access-key"),
        aws=marker("credential"),
        stripe=marker("stripe-key"),
        session=marker("credential"),
        smtp=marker("credential"),
        custom=marker("credential"),
    )
    out = redacted_once(env)
    assert out == want
    for value in s.values():
        assert_gone(out, value)


@pytest.mark.parametrize(
    "gutter",
    ["     7\u2192", "     7\t", "app/.env:7:", "7:", "   7|"],
    ids=["Read", "cat -n", "grep -n", "grep -n one file", "bat"],
)
def test_dotenv_lines_with_a_line_number_gutter(gutter: str) -> None:
    value = "correct horse " + mixed(10, 106)
    text = "     6\u2192DEBUG=1\n" + gutter + "SESSION_SECRET=" + value + "\n"
    out = redacted_once(text)
    assert out == "     6\u2192DEBUG=1\n" + gutter + "SESSION_SECRET=" + marker("credential") + "\n"


@pytest.mark.parametrize(
    "template",
    [
        "curl -u admin:{p} https://api.example.com",
        "curl --user 'admin:{p}' https://api.example.com",
        'curl -s --proxy-user "proxy:{p}" -x http://proxy:3128 https://x',
    ],
)
def test_curl_user_password(template: str) -> None:
    pw = mixed(14, 107)
    out = redacted_once(template.format(p=pw))
    assert out == template.format(p=marker("credential"))
    assert redacted_once("curl -u admin:$PASSWORD https://x") == "curl -u admin:$PASSWORD https://x"
    assert redacted_once("pip install -U pkg && git push -u origin main") == (
        "pip install -U pkg && git push -u origin main"
    )


def test_yaml_ini_json_and_netrc_config() -> None:
    pw, key, aws, tokn, net = (
        mixed(14, 110),
        mixed(32, 111),
        AWS_SECRET,
        mixed(40, 112),
        mixed(40, 113),
    )
    files = [
        (
            "database:\n  host: db.internal\n  port: 5432\n  user: app\n  password: {pw}\n"
            'api:\n  key_name: primary\n  api_key: "{key}"\n  timeout: 30\n'
        ),
        "[default]\naws_access_key_id = {akia}\n"
        "aws_secret_access_key = {aws}\nregion = us-east-1\n",
        '{{"name": "svc", "client_secret": "{key}", '
        '"auth": {{"token": "{tokn}"}}, "max_tokens": 4096}}',
        "machine api.example.com login dev@example.com password {net}\n",
        "machine git.example.com\n  login dev\n  password {net}\n",
        "environment:\n  - POSTGRES_PASSWORD={pw}\n  - POSTGRES_USER=app\n",
        "services:\n  db:\n    environment:\n      POSTGRES_PASSWORD: {pw}\n",
        "spring.datasource.password={pw}\nspring.datasource.url=jdbc:postgresql://db/app\n",
        "Server=db;Database=app;User Id=sa;Password={pw};Encrypt=true",
        "//registry.npmjs.org/:_authToken={tokn}\n",
    ]
    for f in files:
        text = f.format(pw=pw, key=key, aws=aws, tokn=tokn, net=net, akia=AWS_KEY_ID)
        out = redacted_once(text)
        for value in (pw, key, aws, tokn, net, AWS_KEY_ID):
            assert_gone(out, value)
        assert "[REDACTED:" in out
    # what is not secret in them stays
    out = redacted_once(files[0].format(pw=pw, key=key))
    assert "host: db.internal\n  port: 5432\n  user: app\n" in out
    assert "key_name: primary" in out and "timeout: 30" in out
    out = redacted_once(files[8].format(pw=pw))
    assert (
        out
        == "Server=db;Database=app;User Id=sa;Password=" + marker("credential") + ";Encrypt=true"
    )


@pytest.mark.parametrize(
    "template",
    [
        'password = "{v}"',
        "db_password: '{v}'",
        'self.api_key = "{v}"',
        'const clientSecret = "{v}";',
        '$config["secret"] = "{v}";',
        'token := "{v}"',
        '{{"access_token": "{v}", "token_type": "bearer"}}',
        '{{\\"password\\": \\"{v}\\"}}',
        "mysql --password {v} -u root",
        "deploy --api-key='{v}'",
        "https://host/cb?code=1&access_token={v}&state=x",
    ],
)
def test_assignments_redact_the_value_only(template: str) -> None:
    value = mixed(24, len(template))
    out = redacted_once(template.format(v=value))
    assert out == template.format(v=marker("credential"))
    assert_gone(out, value)


@pytest.mark.parametrize(
    "line",
    [
        "gh auth login --with-token --hostname github.com",
        "npm publish --otp --dry-run",
        "vault login --token -v",
        "deploy --api-key --help",
        "tool --password --config=./deploy.yml",
    ],
)
def test_a_flag_followed_by_another_option_is_left_alone(line: str) -> None:
    # the flag's value is missing: the next word is an option of the command, not a secret
    assert redacted_once(line) == line


def test_a_flag_value_with_a_single_dash_is_still_a_value() -> None:
    value = "-" + mixed(20, 7)
    out = redacted_once(f"mysql --password {value} -u root")
    assert out == f"mysql --password {marker('credential')} -u root"


PYTHON_SOURCE = """\
import getpass
import hashlib
import os

from anthropic import Anthropic

API_KEY_ENV = "ANTHROPIC_API_KEY"
MAX_TOKENS = 4096
TOKEN_URL = "https://auth.example.com/oauth/token"
AUTH_PASSWORD_VALIDATORS = [{"NAME": "MinimumLengthValidator"}]


class Client:
    def __init__(self, api_key: str | None = None, token: str | None = None) -> None:
        self.api_key = api_key or os.environ.get(API_KEY_ENV)
        self._token = token
        self.password_field = "password"
        self.headers = {"x-api-key": self.api_key, "anthropic-version": "2023-06-01"}
        self.client = Anthropic(api_key=self.api_key)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def login(self, username: str, password: str) -> str:
        if not password:
            raise ValueError("password: required")
        secret = getpass.getpass("Secret: ")
        key = hashlib.sha256(secret.encode()).hexdigest()
        token = self._session.post(url, data={"user": username, "password": password})
        tokens = tokenizer.encode(text)
        for key, value in sorted(d.items(), key=lambda kv: kv[0]):
            print(f"{key}={value}")
        usage = {"input_tokens": 12, "output_tokens": 3, "max_tokens": MAX_TOKENS}
        password_hash = make_hash(password, salt=salt)
        if token == "":
            return token.json()["access_token"]
        return self.tokenizer.decode(tokens, skip_special_tokens=True)


def main(argv: list[str]) -> int:
    parser.add_argument("--api-key", default=None, help="API key (default: $ANTHROPIC_API_KEY)")
    parser.add_argument("--token", metavar="TOKEN")
    client = Client(
        api_key=args.api_key,
        token=args.token,
    )
    print("Password: ", end="")
    return 0
"""

JS_SOURCE = """\
const token = localStorage.getItem("token");
const res = await fetch(url, {
  credentials: "include",
  headers: { Authorization: `Bearer ${token}`, "x-api-key": apiKey },
});
export const config = { apiKey: process.env.API_KEY, password: hashedPassword };
const [secret, setSecret] = useState("");
if (password !== confirmPassword) throw new Error("passwords differ");
"""

GO_SOURCE = """\
type Config struct {
\tPassword string `json:"password" yaml:"password"`
\tAPIKey   string `json:"api_key"`
}

func load() {
\ttoken := os.Getenv("GITHUB_TOKEN")
\tsecret, err := vault.Read(ctx, "kv/app")
\tif cfg.Password == "" {
\t\treturn
\t}
}
"""

SHELL_SESSION = """\
$ export GITHUB_TOKEN=$(gh auth token)
$ curl -s -H "Authorization: Bearer $GITHUB_TOKEN" https://api.github.com/user
$ curl -H "x-api-key: ${ANTHROPIC_API_KEY}" https://api.anthropic.com/v1/messages
$ env | grep -i path
PATH=/usr/local/bin:/usr/bin:/bin
PWD=/home/dev/project
OLDPWD=/home/dev
SSH_AUTH_SOCK=/tmp/ssh-XXXXabc/agent.1234
$ git log -1
commit 3f2a9c1e5b7d4f6a8c0e2b4d6f8a0c2e4b6d8f0a
Author: Dev <dev@example.com>
"""


@pytest.mark.parametrize("source", [PYTHON_SOURCE, JS_SOURCE, GO_SOURCE, SHELL_SESSION])
def test_code_and_shell_output_without_secrets_is_untouched(source: str) -> None:
    out = R.redact_text(source)
    assert out == source, [
        (a, b) for a, b in zip(source.splitlines(), out.splitlines(), strict=False) if a != b
    ]


def test_false_positives_stay_unchanged() -> None:
    rng = random.Random(7)
    sha = f"{rng.getrandbits(160):040x}"
    uid = str(uuid.UUID(int=rng.getrandbits(128)))
    toolu = "toolu_01" + tok(22, ALNUM, 120)
    signature = base64.b64encode(rng.randbytes(600)).decode()
    texts = [
        sha,
        f"commit {sha}\nMerge: {sha[:7]} {sha[7:14]}",
        uid,
        f"request_id={uid} session_id={uid}",
        toolu,
        f'{{"type": "tool_use", "id": "{toolu}", "name": "Bash"}}',
        f'{{"type": "thinking", "thinking": "Let me look.", "signature": "{signature}"}}',
        signature,
        "max_tokens: 4096",
        '"max_tokens": 4096, "input_tokens": 17, "output_tokens": 250',
        "tokens: 1234\ntoken_count = 56\ntotalTokens: 99",
        '{"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}',
        "sha256:" + tok(64, HEX, 122),
        "integrity sha512-" + tok(86, ALNUM + "+/", 123) + "==",
        "https://example.com/path?page=2&sort=desc#top",
        "Basic authentication is configured; use a bearer token for the API.",
        "The password must be at least 12 characters.",
        "risk-management-framework-documentation-index",
        "docker run -p 8080:8080 -e DEBUG=1 image:latest",
        "2024-05-01T12:00:00Z INFO auth: ok user=dev duration=12ms",
        "data:image/png;base64," + base64.b64encode(rng.randbytes(300)).decode(),
    ]
    for text in texts:
        assert R.redact_text(text) == text, text
        assert R.found(text) == [], text


# --------------------------------------------------------------------------------------
# Structured data
# --------------------------------------------------------------------------------------


def hook_payload(env_text: str) -> dict[str, Any]:
    return {
        "session_id": str(uuid.UUID(int=1)),
        "transcript_path": "/home/dev/.claude/projects/-home-dev-app/abc.jsonl",
        "cwd": "/home/dev/app",
        "permission_mode": "default",
        "hook_event_name": "PostToolUse",
        "tool_name": "Bash",
        "tool_input": {
            "command": "cat .env && curl -H 'x-api-key: " + ANTHROPIC_API + "' https://x",
            "description": "Show the environment file",
        },
        "tool_response": {
            "stdout": env_text,
            "stderr": "",
            "interrupted": False,
            "isImage": False,
        },
        "tool_use_id": "toolu_01" + tok(22, ALNUM, 130),
    }


def anthropic_message() -> dict[str, Any]:
    return {
        "id": "msg_01" + tok(22, ALNUM, 131),
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {
                "type": "thinking",
                "thinking": "I should read the config.",
                "signature": base64.b64encode(random.Random(3).randbytes(400)).decode(),
            },
            {
                "type": "tool_use",
                "id": "toolu_01" + tok(22, ALNUM, 132),
                "name": "Read",
                "input": {"file_path": "/home/dev/app/.env"},
            },
        ],
        "stop_reason": "tool_use",
        "usage": {
            "input_tokens": 1523,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 14233,
            "output_tokens": 87,
            "service_tier": "standard",
        },
    }


def test_a_long_string_repeated_in_an_object_is_redacted_everywhere_and_scanned_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a tool's output is also in its structured result: 64 KB outputs were scanned twice
    r = Redactor(prefilter=False)
    text = "compiled module\n" * 100 + f"export TOKEN={GH_PAT}\n"
    scanned: list[str] = []
    scan = r._redact_text

    def counted(t: str) -> str:
        scanned.append(t)
        return scan(t)

    monkeypatch.setattr(r, "_redact_text", counted)
    out = r.redact({"output": text, "tool_response": {"stdout": text}, "also": [text, "x"]})
    assert out["output"] == out["tool_response"]["stdout"] == out["also"][0]
    assert GH_PAT not in out["output"] and out["output"] == scan(text)
    assert scanned.count(text) == 1


def test_hook_payload_is_redacted_deeply() -> None:
    pw = mixed(18, 140)
    env = "DEBUG=1\nDB_PASSWORD=" + pw + "\nANTHROPIC_API_KEY=" + ANTHROPIC_API + "\n"
    payload = hook_payload(env)
    before = copy.deepcopy(payload)
    out = redact(payload)
    assert payload == before, "input mutated"
    assert out is not payload and out["tool_response"] is not payload["tool_response"]
    assert out["tool_response"]["stdout"] == (
        "DEBUG=1\nDB_PASSWORD="
        + marker("credential")
        + "\nANTHROPIC_API_KEY="
        + marker("anthropic-api-key")
        + "\n"
    )
    assert out["tool_input"]["command"] == (
        "cat .env && curl -H 'x-api-key: " + marker("anthropic-api-key") + "' https://x"
    )
    for k in ("session_id", "transcript_path", "cwd", "tool_use_id", "hook_event_name"):
        assert out[k] == payload[k]
    assert out["tool_response"]["interrupted"] is False
    dumped = json.dumps(out)
    assert_gone(dumped, pw)
    assert_gone(dumped, ANTHROPIC_API)
    assert redact(out) == out


def test_anthropic_message_and_usage_are_untouched() -> None:
    msg = anthropic_message()
    assert redact(msg) == msg
    usage = {"input_tokens": 10, "output_tokens": 5, "max_tokens": 4096, "token_count": 3}
    assert redact(usage) == usage
    assert redact({"tokens": ["a", "b"], "totalTokens": 15}) == {
        "tokens": ["a", "b"],
        "totalTokens": 15,
    }


def test_credential_keys_replace_the_whole_value() -> None:
    obj = {
        "api_key": "abc",
        "apiKey": "plain words here",
        "x-api-key": "k",
        "Authorization": "Bearer xyz",
        "password": "p",
        "passwd": "p",
        "secret": "s",
        "client_secret": "s",
        "token": "t",
        "access_token": "t",
        "refresh_token": "t",
        "id_token": "t",
        "session_token": "t",
        "private_key": "k",
        "cookie": "a=b",
        "Set-Cookie": "a=b",
        "credentials": "c",
        "AWS_SECRET_ACCESS_KEY": "x",
        "empty_password": "",
        "token_number": 5,
        "nested": {"headers": {"X-Api-Key": "v"}, "list": [{"password": "p"}, "plain"]},
        "env": [{"name": "GITHUB_TOKEN", "value": "v"}, {"name": "PORT", "value": "80"}],
        "creds": {"password": None, "token": 12345, "secret": {"inner": "text"}},
    }
    out = redact(obj)
    cred = marker("credential")
    for k in list(obj)[:18]:
        assert out[k] == cred, k
    assert out["empty_password"] == ""
    assert out["token_number"] == 5
    assert out["nested"] == {"headers": {"X-Api-Key": cred}, "list": [{"password": cred}, "plain"]}
    assert out["env"] == [{"name": "GITHUB_TOKEN", "value": cred}, {"name": "PORT", "value": "80"}]
    assert out["creds"] == {"password": None, "token": 12345, "secret": {"inner": "text"}}
    assert list(out) == list(obj)  # keys kept, in order


@pytest.mark.parametrize(
    "name",
    [
        "api_key", "apiKey", "APIKey", "x-api-key", "X-API-KEY", "authorization",
        "Proxy-Authorization", "password", "passwd", "db_pass", "secret", "client_secret",
        "token", "access_token", "refresh_token", "id_token", "session_token", "sessionToken",
        "private_key", "privateKey", "cookie", "set-cookie", "Set-Cookie", "credentials",
        "credential", "AWS_SECRET_ACCESS_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
        "GITHUB_TOKEN", "secret_key_base", "password_hash", "x-amz-security-token",
        "basic_auth", "passphrase", "webhookSecret", "csrf_token", "contraseña",
    ],
)  # fmt: skip
def test_credential_key_names(name: str) -> None:
    assert is_credential_key(name)


@pytest.mark.parametrize(
    "name",
    [
        "tokens", "input_tokens", "output_tokens", "max_tokens", "token_count",
        "cache_creation_input_tokens", "cache_read_input_tokens", "totalTokens",
        "max_output_tokens", "token_type", "tokenizer", "eos_token", "bos_token_id",
        "pad_token", "next_page_token", "NextToken", "session_id", "secret_name",
        "password_reset_url", "api_key_helper", "apiKeyHelper", "private_key_id",
        "access_key_id", "public_key", "primary_key", "key", "keys", "signature",
        "author", "PWD", "OLDPWD", "DATABASE_URL", "SSH_AUTH_SOCK", "auth_type", "id", "",
    ],
)  # fmt: skip
def test_not_credential_key_names(name: str) -> None:
    assert not is_credential_key(name)


def test_redact_keeps_types_and_handles_any_depth() -> None:
    obj: Any = {"a": (1, "x", [True, None, 1.5]), 3: "three", None: ["k"]}
    assert redact(obj) == obj
    assert isinstance(redact(obj)["a"], tuple)
    deep: Any = "sk-ant-" + "api03-" + tok(30, B64URL, 150)
    for _ in range(20_000):
        deep = [deep]
    out = redact(deep)
    for _ in range(20_000):
        out = out[0]
    assert out == marker("anthropic-api-key")
    assert redact(b"bytes") == b"bytes"


def test_module_level_functions_use_one_default_redactor() -> None:
    assert redact_text("k=" + GH_PAT) == "k=" + marker("github-token")
    assert redact({"k": GH_PAT}) == {"k": marker("github-token")}
    assert redact_mod.default_redactor() is redact_mod.default_redactor()


def test_found_reports_kinds_in_order() -> None:
    text = "a " + GH_PAT + " b " + AWS_KEY_ID + " c " + GH_PAT
    assert R.found(text) == ["github-token", "aws-access-key"]
    assert R.found("nothing here") == []


def test_extra_rules() -> None:
    r = Redactor(extra=[("internal-token", r"itk_[a-z0-9]{16}")])
    value = "itk_" + tok(16, LOWER_DIGITS, 160)
    assert r.redact_text("x " + value) == "x " + marker("internal-token")
    assert "internal-token" in r.kinds


# --------------------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------------------


def test_odd_strings_never_raise_and_still_redact() -> None:
    weird = "\x00\x01\ud800\udfff\ufeff\u0130\u212a" + "\x7f" * 3 + "é" * 5
    text = weird + " " + GH_PAT + " " + weird
    assert R.redact_text(text) == weird + " " + marker("github-token") + " " + weird
    assert R.redact_text("") == ""
    binaryish = bytes(range(256)).decode("latin-1") * 100
    assert R.redact_text(binaryish) == binaryish
    # İ lower-cases to two characters: positions must not shift
    text = "\u0130" * 10 + " PASSWORD=" + mixed(12, 170) + "\n"
    assert R.redact_text(text) == "\u0130" * 10 + " PASSWORD=" + marker("credential") + "\n"


def test_a_failing_rule_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Redactor()

    def boom(*_: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(r._rules[0], "find", boom)
    assert r.redact_text("anything") == UNSCANNABLE


PATHOLOGICAL = {
    "a": "a" * 1_000_000,
    "dash": "-" * 1_000_000,
    "equals": "=" * 1_000_000,
    "spaces": " " * 1_000_000,
    "newlines": "\n" * 1_000_000,
    "A": "A" * 1_000_000,
    "eyJ": "eyJ" * 333_333,
    "jwt-ish": "eyJabcdefgh." * 83_333,
    "begin": ("-----" + "BEGIN PRIVATE" + " KEY-----\n") * 35_000,
    "end": ("-----" + "END PRIVATE" + " KEY-----") * 40_000,
    "base64 lines": ("A" * 64 + "\n") * 15_000,
    "password=": "password=" * 110_000,
    "password: ": "password: " * 100_000,
    "quoted name": '"password": "' * 75_000,
    "scheme": "://" * 333_333,
    "user:pass@": "http://u:p@" * 90_000,
    "sk-": "sk-" * 333_333,
    "AKIA": "AKIA" * 250_000,
    "bearer": "Bearer " * 140_000,
    "x-api-key": "x-api-key: " * 90_000,
    "--token": "--token " * 125_000,
    "--token value": "--token s3cr3tV4lu3 " * 50_000,
    "env": "A_TOKEN=x " * 100_000,
    "backslashes": "\\" * 1_000_000,
    "escaped newlines": "\\n" * 500_000,
    "aws": 'aws_key="' * 110_000,
    "putty": ("PuTTY-User-Key-File-" + "2: x\n") * 40_000,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_inputs_are_linear(name: str) -> None:
    text = PATHOLOGICAL[name]
    R.use_prefilter()  # built once, not inside a timing
    t0 = time.process_time()
    R.redact_text(text[: len(text) // 10])
    small = time.process_time() - t0
    t0 = time.process_time()
    out = R.redact_text(text)
    elapsed = time.process_time() - t0
    assert isinstance(out, str)
    assert out != UNSCANNABLE
    # ten times the text: about ten times the time (a quadratic rule: a hundred), with
    # room for noise on timings under a second; and a budget a slow machine still keeps
    took = f"{name}: {small:.2f}s for 100 KB, {elapsed:.2f}s for 1 MB"
    assert elapsed < max(1.0, 25 * small), took
    assert elapsed < 10.0, f"{name}: {elapsed:.2f}s of CPU for 1 MB"


def test_throughput_on_ordinary_text() -> None:
    rng = random.Random(11)
    chunks = [PYTHON_SOURCE, JS_SOURCE, GO_SOURCE, SHELL_SESSION]
    for _ in range(3000):
        sha = f"{rng.getrandbits(160):040x}"
        chunks.append(
            f"2024-05-01T10:00:{rng.randrange(60):02d}Z INFO "
            f"req={uuid.UUID(int=rng.getrandbits(128))} "
            f"commit={sha} tokens={rng.randrange(9999)} path=/api/v1/items/{rng.randrange(999)}\n"
        )
    text = "".join(chunks) * 3
    text = (text * (2_000_000 // len(text) + 1))[:2_000_000]
    t0 = time.process_time()
    out = R.redact_text(text)
    elapsed = time.process_time() - t0
    assert out == text
    assert elapsed < 4.0, f"{elapsed:.2f}s of CPU for 2 MB"


def test_planted_secrets_leave_no_piece_behind() -> None:
    secrets = [
        ANTHROPIC_API, ANTHROPIC_OAT, AWS_KEY_ID, GH_PAT, JWT,
        "sk-" + "proj-" + mixed(90, 180),
        "xox" + "b-" + tok(10, string.digits, 184) + "-" + tok(24, ALNUM, 181),
        "AI" + "za" + tok(35, B64URL, 182), "h" + "f_" + tok(34, string.ascii_letters, 183),
    ]  # fmt: skip
    rng = random.Random(5)
    lines = PYTHON_SOURCE.splitlines() * 5
    seps = [" ", "=", ": ", '"', "'", "(", "\t", "\n", "`", "<", ">", ",", "/"]
    for s in secrets:
        sep = rng.choice(seps)
        lines.insert(rng.randrange(len(lines)), "value" + sep + s + rng.choice(seps) + "tail")
    text = "\n".join(lines)
    out = redacted_once(text)
    for s in secrets:
        assert_gone(out, s)


# --- property tests -------------------------------------------------------------------

FRAGMENTS = [
    "sk-ant-", "api03-", "oat01-", "A" * 24, tok(24, B64URL, 190), "password", "PASSWORD",
    "_TOKEN", "API_KEY", "secret", "token", "key", "auth", "cookie", "Authorization",
    "Bearer ", "x-api-key", "=", ":", ": ", " = ", ":=", "=>", " ", "\t", "\n", "\r\n", '"',
    "'", "`", "\\", '\\"', "\\n", "[REDACTED:", "[REDACTED:credential]", "]", "[", "{", "}",
    "(", ")", ",", ";", "&", "?", "#", "$", "${", "@", "://", "http://u:", "/", "-----",
    "BEGIN ", "END ", "RSA ", "PRIVATE KEY", "-----BEGIN PRIVATE", " KEY-----", "eyJ", ".",
    "eyJhbGciOiJIUzI1NiJ9", "AK" + "IA", "ghp_", tok(36, ALNUM, 191), "hunter2",
    "export ", "--password ", "--token=", "login x ", "Set-Cookie: a=", "AccountKey=",
    "\u0130", "\ud800", "\x00", "é", "MIIE", tok(64, ALNUM + "+/", 192), "- ", "# ",
]  # fmt: skip

fragment_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=40
).map("".join)
any_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=200),  # includes surrogates
    fragment_text,
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_text)
def test_redact_text_is_idempotent_and_never_raises(text: str) -> None:
    once = R.redact_text(text)
    assert isinstance(once, str)
    assert once != UNSCANNABLE
    assert R.redact_text(once) == once
    assert isinstance(R.found(text), list)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fragment_text, st.sampled_from([ANTHROPIC_API, GH_PAT, AWS_KEY_ID, JWT]), fragment_text)
def test_a_token_secret_never_survives_its_context(before: str, secret: str, after: str) -> None:
    # a separator on each side: glued to other base64url characters a token is a
    # different string
    out = R.redact_text(before + " " + secret + " " + after)
    assert_gone(out, secret, context=before + after)


json_keys = st.one_of(
    st.sampled_from(
        ["password", "api_key", "token", "max_tokens", "input_tokens", "name", "value", "env"]
    ),
    st.text(max_size=8),
)
json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), any_text),
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(json_keys, children, max_size=5)
    ),
    max_leaves=25,
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_like)
def test_redact_is_idempotent_and_keeps_shape(obj: Any) -> None:
    before = copy.deepcopy(obj)
    out = redact(obj)
    assert obj == before
    assert redact(out) == out

    def same_shape(a: Any, b: Any) -> None:
        assert type(a) is type(b)
        if isinstance(a, dict):
            assert list(a) == list(b)
            for k in a:
                same_shape(a[k], b[k])
        elif isinstance(a, list):
            assert len(a) == len(b)
            for x, y in zip(a, b, strict=True):
                same_shape(x, y)
        elif not isinstance(a, str):
            assert a == b

    same_shape(obj, out)


def test_kinds_are_listed() -> None:
    kinds = R.kinds
    for k in ("private-key", "jwt", "credential", "aws-access-key", "url-password"):
        assert k in kinds


_: Callable[[str], str] = redact_text


def test_a_replacement_that_completes_a_new_match_is_rescanned() -> None:
    # found by hypothesis: the first replacement turns the rest into a new assignment
    text = '--token=\\"--password \\"'
    out = R.redact_text(text)
    assert out == R.redact_text(out)
    assert "--password" not in out


# --- gitleaks' false-positive examples no longer changed ------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # an XSD type name is no Telegram bot token (the digits are the tail of a word)
        '<xsd:element name="AgencyIdentificationCode" '
        'type="clm52552192:AgencyIdentificationCodeContentType"/>',
        # the first 35 characters of a longer run are no bot token either
        "id 61406230:A-some-other-thing-j0x5-s2dy046k89jimf1yw7zfm-9gih69r",
        # a query value that is its own name in capitals: a stand-in
        "https://qyapi.weixin.qq.com/cgi-bin/department/create?access_token=ACCESS_TOKEN",
    ],
)
def test_gitleaks_false_positive_shapes_are_left_alone(text: str) -> None:
    assert R.redact_text(text) == text


TELEGRAM_BOT = "582039174:" + tok(35, ALNUM + "_-", 41)
ASANA_PAT = "1/" + tok(16, string.digits, 42) + ":" + tok(32, ALNUM, 43)
ASANA_PAT_V2 = (
    "2/" + tok(16, string.digits, 44) + "/" + tok(16, string.digits, 45) + ":" + tok(64, ALNUM, 46)
)
TOKEN_PLACES = [
    "TELEGRAM_BOT_TOKEN={}",
    "connected with {} in 42 ms",
    "deploy-tool login -t {} --region eu",
    "[x] {}.",
]


@pytest.mark.parametrize("secret", [TELEGRAM_BOT, ASANA_PAT, ASANA_PAT_V2])
@pytest.mark.parametrize("place", TOKEN_PLACES)
def test_telegram_and_asana_tokens_are_still_found(secret: str, place: str) -> None:
    assert secret not in R.redact_text(place.format(secret))


def test_a_bot_token_in_a_telegram_api_url_is_found() -> None:
    url = f"curl https://api.telegram.org/bot{TELEGRAM_BOT}/getMe"
    assert TELEGRAM_BOT not in R.redact_text(url)


def test_asana_tokens_have_their_own_kind() -> None:
    assert R.found(ASANA_PAT) == ["asana-token"]
    assert R.found(f"token {ASANA_PAT_V2} ok") == ["asana-token"]


# --- provider shapes with no keyword near, assignment forms, copies in one text --------

# built at run time from the providers' documented formats (no secret-shaped literal)
PROVIDER_SHAPES = [
    ("A" * 22 + tok(40, ALNUM, 60) + "%" + tok(50, ALNUM, 61), "twitter-bearer-token"),
    ("fo1" + "_" + tok(43, B64URL, 62), "flyio-token"),
    ("tfp" + "_" + tok(59, LOWER_DIGITS, 63), "typeform-token"),
    ("spu" + "-" + tok(32, HEX, 64), "spectralops-token"),
    ("cfk" + "_" + tok(40, ALNUM, 65) + tok(8, HEX, 66), "cloudflare-token"),
    ("aio" + "_" + tok(28, ALNUM, 67), "adafruit-io-key"),
    ("figp" + "_" + tok(40, B64URL, 68), "figma-token"),
    ("sntryu" + "_" + tok(64, HEX, 69), "sentry-token"),
    ("SG" + "." + tok(22, B64URL, 70) + "." + tok(43, B64URL, 71), "sendgrid-key"),
    ("NRAK" + "-" + tok(27, UPPER_DIGITS, 72), "new-relic-key"),
    ("FLWSECK" + "-" + tok(32, LOWER_DIGITS, 73) + "-X", "flutterwave-key"),
    ("nfp" + "_" + tok(40, ALNUM, 74), "netlify-token"),
    ("CFPAT" + "-" + tok(43, B64URL, 75), "contentful-token"),
    ("apify_api" + "_" + tok(36, ALNUM, 76), "apify-token"),
    ("tkn.v1" + "_" + tok(60, ALNUM, 77), "teamwork-token"),
    ("BBFF" + "-" + tok(30, ALNUM, 78), "ubidots-token"),
    (
        "sdk-"
        + "-".join(tok(n, LOWER_DIGITS, 79 + n) for n in (8, 4, 4, 4))
        + "-"
        + tok(12, LOWER_DIGITS, 83),
        "launchdarkly-key",
    ),
    (
        "https://hooks.slack.com/services/T"
        + tok(10, UPPER_DIGITS, 84)
        + "/B"
        + tok(10, UPPER_DIGITS, 85)
        + "/"
        + tok(24, ALNUM, 86),
        "webhook-url",
    ),
    (
        "https://discord.com/api/webhooks/"
        + tok(18, string.digits, 87)
        + "/"
        + tok(68, B64URL, 88),
        "webhook-url",
    ),
    # a tenant's own Teams host may have capitals (``uQu9x.webhook.office.com``)
    (
        "https://"
        + tok(10, ALNUM, 120)
        + ".webhook.office.com/webhookb2/"
        + str(uuid.UUID(int=random.Random(121).getrandbits(128)))
        + "@"
        + str(uuid.UUID(int=random.Random(137).getrandbits(128)))
        + "/IncomingWebhook/"
        + tok(32, HEX, 138),
        "webhook-url",
    ),
    ("apify_api" + "_" + tok(20, ALNUM, 122) + "-" + tok(15, ALNUM, 123), "apify-token"),
    (
        "1.A" + tok(50, B64URL, 124) + ".AgAB" + tok(400, B64URL, 125),
        "azure-refresh-token",
    ),
    ("1000" + "." + tok(32, HEX, 126) + "." + tok(32, HEX, 127), "zoho-token"),
    ("sl" + "." + tok(135, B64URL, 128), "dropbox-token"),
    ("secret" + "_" + tok(43, ALNUM, 129), "notion-token"),
    ("NF" + "-" + tok(32, ALNUM, 130), "nightfall-key"),
    ("v1.0" + "-" + tok(24, HEX, 131) + "-" + tok(146, HEX, 132), "cloudflare-ca-key"),
    (tok(42, LOWER_DIGITS, 133) + "-NRMA", "new-relic-key"),
    ("shltm" + "_" + tok(40, B64URL, 134), "flexport-token"),
    ("thog-key" + "-" + tok(16, HEX, 135), "trufflehog-key"),
    ("sk_pr" + "_" + "mykey_" + tok(40, HEX, 136), "photoroom-key"),
    ("squ" + "_" + tok(40, HEX, 201), "sonar-token"),
    ("sqa" + "_" + tok(40, HEX, 202), "sonar-token"),
    ("sqco" + "_" + tok(59, ALNUM, 203), "sonar-token"),
]


@pytest.mark.parametrize(("secret", "kind"), PROVIDER_SHAPES)
@pytest.mark.parametrize("place", TOKEN_PLACES[1:])
def test_provider_shapes_are_found_without_a_keyword(secret: str, kind: str, place: str) -> None:
    out = redacted_once(place.format(secret))
    assert secret not in out and f"[REDACTED:{kind}]" in out


@pytest.mark.parametrize(
    "text",
    [
        'var stripeToken string = "{}"',  # Go, a declared type
        'val stripeToken: String = "{}"',  # Kotlin
        'token: str = "{}"',  # Python, annotated
        '$stripeSecret .= "{}";',  # PHP
        "STRIPE_TOKEN ?= {}",  # make
        'STRIPE_TOKEN ::= "{}"',
        'System.setProperty("STRIPE_TOKEN", "{}");',  # Java: two quoted strings
        '{{"name": "STRIPE_TOKEN", "value": "{}"}}',  # a container's env, JSON
        "env:\n  - name: STRIPE_TOKEN\n    value: {}\n",  # and YAML
        "<secret>{{AQAAABAAAA {}}}</secret>",  # Jenkins' credentials.xml
        "discordToken={}",
    ],
)
def test_assignment_forms_are_found(text: str) -> None:
    secret = tok(18, string.digits, 90) if "discord" in text else tok(32, ALNUM, 91)
    out = redacted_once(text.format(secret))
    assert secret not in out and "[REDACTED:credential]" in out


@pytest.mark.parametrize(
    "text",
    [
        'os.environ.get("API_TOKEN", "default")',  # an argument list, not a secret
        'headers.get("Authorization", "")',
        "max_tokens=4096",
        "token_count=123456789012345678",
        "<password>Enter your password here</password>",
        '{"name": "LOG_LEVEL", "value": "debug"}',
        "env:\n  - name: LOG_LEVEL\n    value: debug\n",
    ],
)
def test_assignment_forms_leave_ordinary_code_alone(text: str) -> None:
    assert R.redact_text(text) == text


def test_a_long_quoted_value_is_redacted_whole() -> None:
    # an Azure AD refresh token runs to 1-2 KB
    secret = "0.A" + tok(1500, B64URL + ".", 92)
    out = redacted_once(f'"refresh_token": "{secret}"')
    assert out == '"refresh_token": "[REDACTED:credential]"'


def test_every_copy_of_a_secret_in_one_text_goes() -> None:
    secret = tok(40, ALNUM, 93)
    out = redacted_once(f"svc token = '{secret}' | '{secret}' and later {secret}.")
    assert secret not in out and out.count("[REDACTED:credential]") == 3


def test_a_random_tail_after_a_run_is_no_stand_in() -> None:
    assert not is_placeholder("A" * 22 + tok(60, ALNUM, 94))
    assert not is_placeholder("xoxb-" + "123456789012-" + tok(24, ALNUM, 95))
    assert is_placeholder("AKIA" + "X" * 16)
    assert is_placeholder("12345678-ABCD-ABCD-ABCD-1234567890AB")


def test_a_google_key_shape_inside_a_longer_run_is_not_one() -> None:
    key = "AIza" + tok(35, B64URL, 96)
    assert key not in R.redact_text(f"key {key} ok")
    for text in (tok(20, ALNUM, 97) + key, key + tok(7, ALNUM, 98)):
        assert R.redact_text(text) == text


# --- forms found on the tune half of the corpus (issue 14): by format, not by example --

LETTERS = string.ascii_letters


@pytest.mark.parametrize(
    "text",
    [
        "mailgun:\n  api_key: {}\n  timeout: 30",  # YAML, a key drawn without a digit
        "[mailgun]\napi_key = {}\n",  # INI
        'mailgun_key: "{}"',  # a bare ``*_key`` name: random mixed case is enough
        "mailgun token - '{}'",  # a label in notes
    ],
)
def test_random_letters_without_a_digit_are_a_secret(text: str) -> None:
    secret = tok(24, LETTERS, 101)
    out = redacted_once(text.format(secret))
    assert secret not in out and "[REDACTED:credential]" in out


@pytest.mark.parametrize(
    "text",
    [
        "api_key: getApiKeyFromEnvironment",
        "sort_key: createdAtTimestampValue",
        'cache_key = "HTTPServerConfiguration"',
        "api_key: settings.mailgun_api_key",
        "api_key: get_key(config)",
        "token: tokens[0]",
        'password: os.environ["DB_PASSWORD"]',
        'token - "see the docs for how to make one"',
        "the api token - 'abc'",
    ],
)
def test_identifiers_and_calls_under_a_credential_name_are_left_alone(text: str) -> None:
    assert R.redact_text(text) == text


def test_a_password_with_unbalanced_brackets_is_no_call() -> None:
    # drawn from a generator that includes punctuation: ``)`` before ``(`` is no code
    secret = tok(8, ALNUM, 102) + ")" + tok(5, ALNUM, 103) + ">" + "(" + tok(6, ALNUM, 104) + "]"
    for text in (f"api_key: {secret}\n", f"[smtp]\napi_key = {secret}\n", f"TOKEN ?= {secret}"):
        out = redacted_once(text)
        assert secret not in out, text


@pytest.mark.parametrize(
    "value",
    [tok(12, UPPER_DIGITS, 105), tok(14, HEX, 106), tok(18, string.digits, 107)],
)
def test_set_property_keeps_a_short_literal_secret_out(value: str) -> None:
    out = redacted_once(f'System.setProperty("UPLOAD_TOKEN", "{value}");')
    assert value not in out and "[REDACTED:credential]" in out


@pytest.mark.parametrize(
    "text",
    [
        'System.setProperty("API_TOKEN", "changeme");',
        'os.getenv("API_TOKEN", "v1.2.3")',
        'config.get("SECRET_KEY", "settings.secret_key")',
    ],
)
def test_set_property_defaults_are_left_alone(text: str) -> None:
    assert R.redact_text(text) == text


def test_a_dotted_token_is_no_attribute_access() -> None:
    secret = tok(100, ALNUM, 108) + "." + tok(40, ALNUM + "_", 109)
    out = redacted_once(f'{{"convert_api_key": "{secret}", "region": "eu-west-1"}}')
    assert secret not in out
    assert R.redact_text('"Cookie": "http.cookies"') == '"Cookie": "http.cookies"'


@pytest.mark.parametrize(
    "text",
    ['<add key="AzureRefreshToken" value="{}" />', "<refreshToken>{}</refreshToken>"],
)
def test_a_long_xml_value_is_redacted_whole(text: str) -> None:
    secret = "0.A" + tok(1500, B64URL + ".", 110)
    out = redacted_once(text.format(secret))
    assert secret not in out and "[REDACTED:credential]" in out


@pytest.mark.parametrize(
    "url",
    [
        "https://acct.blob.core.windows.net/backups?sp=r&st=2026-03-04T07:24:52Z"
        "&se=2026-04-04T15:24:52Z&spr=https&sv=2022-11-02&sr=c&sig={}",
        "https://prod-12.westeurope.logic.azure.com:443/workflows/"
        + tok(32, HEX, 140)
        + "/triggers/manual/paths/invoke?api-version=2016-06-01&sig={}",
        "https://bucket.s3.amazonaws.com/report.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Signature={}",
    ],
)
def test_a_signed_urls_signature_is_redacted(url: str) -> None:
    sig = tok(30, ALNUM, 141) + "%2B" + tok(12, ALNUM, 142) + "%3D"
    out = redacted_once(url.format(sig))
    assert sig not in out and "[REDACTED:" in out


@pytest.mark.parametrize(
    "text",
    [
        "https://example.com/design?signature=none",
        "verify with ?sig=abc and &signature=" + "deadbeef",
        "git log --show-signature=" + "true",
    ],
)
def test_a_short_or_plain_signature_parameter_is_left_alone(text: str) -> None:
    assert R.redact_text(text) == text
