"""Keys, browser tokens and per-key limits on their own: no sockets, an injected clock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stream_server.protocol import ErrorCode, ProtocolError
from stream_server.security import Client, ClientLimits, KeyStore, KeyStoreError, TokenBucket, TokenIssuer
from stream_server.security.keys import ANONYMOUS, key_line
from stream_server.security.limits import KeyDefaults
from stream_server.security.tokens import MAX_OUTSTANDING_PER_KEY


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- keys ----------------------------------------------------------------------------------------


def test_plain_keys_are_found_and_unknown_ones_are_not() -> None:
    store = KeyStore.load(("sk-alpha", "sk-beta"), None)
    assert store.enabled and len(store) == 2
    assert store.lookup("sk-beta") == Client("key-2")
    assert store.lookup("sk-alph") is None and store.lookup("") is None and store.lookup("sk-alpha ") is None


def test_a_keys_file_holds_hashes_names_and_limits(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(
        "# operators' keys\n"
        f"{key_line('alice', 'sk-alice-secret')} max_streams=2 chars_per_minute=100\n"
        "\n"
        f"{key_line('bot', 'sk-bot-secret')}   # the LLM backend\n"
    )
    assert "sk-alice-secret" not in path.read_text()
    store = KeyStore.load((), str(path))
    alice = store.lookup("sk-alice-secret")
    assert alice is not None and alice.key == "alice" and alice.limits == {"max_streams": 2, "chars_per_minute": 100}
    assert store.lookup("sk-bot-secret") == Client("bot")
    assert store.get("bot") == Client("bot") and store.get("nobody") is None


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("alice sk-plain-key-pasted-here", "sha256:"),
        ("alice", "expected"),
        ("al ice sha256:" + "0" * 64, "sha256:"),
        ("alice sha256:" + "0" * 64 + " max_streams=lots", "unknown limit"),
        ("alice sha256:" + "0" * 64 + " colour=3", "unknown limit"),
    ],
)
def test_a_bad_keys_file_line_is_refused_without_echoing_it(tmp_path: Path, line: str, complaint: str) -> None:
    path = tmp_path / "keys"
    path.write_text(line + "\n")
    with pytest.raises(KeyStoreError) as refused:
        KeyStore.load((), str(path))
    assert complaint in str(refused.value) and "line 1" in str(refused.value)
    assert "sk-plain-key-pasted-here" not in str(refused.value)


def test_two_keys_with_one_name_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{key_line('a', 'one')}\n{key_line('a', 'two')}\n")
    with pytest.raises(KeyStoreError, match="same name"):
        KeyStore.load((), str(path))
    with pytest.raises(KeyStoreError, match="cannot read"):
        KeyStore.load((), str(tmp_path / "missing"))


def hash_key_command(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_server.security", "hash-key", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_hash_key_command_prints_a_file_line() -> None:
    done = hash_key_command("ops", stdin="sk-ops-key-0123456789\n")
    assert done.returncode == 0
    assert done.stdout.strip() == key_line("ops", "sk-ops-key-0123456789")
    assert "sk-ops-key" not in done.stdout


def test_hash_key_refuses_a_short_key_and_generates_a_long_one(tmp_path: Path) -> None:
    short = hash_key_command("ops", stdin="abcde\n")
    assert (short.returncode, short.stdout) == (2, "")
    assert short.stderr.count("\n") == 1 and "5 characters" in short.stderr and "at least 16" in short.stderr

    made = hash_key_command("--generate", "alice")
    assert made.returncode == 0
    key = made.stderr.strip().rsplit(" ", 1)[-1]
    assert len(key) >= 16 and key not in made.stdout
    keys_file = tmp_path / "keys"
    keys_file.write_text(made.stdout)
    store = KeyStore.load((), str(keys_file))
    found = store.lookup(key)
    assert found is not None and found.label == "alice"


# -- tokens --------------------------------------------------------------------------------------


def test_a_token_names_its_key_and_works_once() -> None:
    issuer = TokenIssuer(120, clock=Clock())
    token = issuer.mint("alice")
    assert token.count(".") == 1  # payload.signature
    assert issuer.redeem(token) == "alice"
    with pytest.raises(ProtocolError) as again:
        issuer.redeem(token)
    assert again.value.code == ErrorCode.UNAUTHORIZED


def test_an_expired_token_is_refused() -> None:
    clock = Clock()
    issuer = TokenIssuer(120, clock=clock)
    token = issuer.mint("alice")
    clock.now += 120
    with pytest.raises(ProtocolError):
        issuer.redeem(token)


@pytest.mark.parametrize("tamper", ["payload", "signature", "truncate", "garbage", "empty", "unicode"])
def test_a_forged_or_broken_token_is_refused(tamper: str) -> None:
    issuer = TokenIssuer(120, clock=Clock())
    token = issuer.mint("alice")
    payload, signature = token.split(".")
    other = TokenIssuer(120, clock=Clock()).mint("alice")  # signed with another secret
    forged = {
        "payload": other.split(".")[0] + "." + signature,
        "signature": payload + "." + other.split(".")[1],
        "truncate": token[:-3],
        "garbage": "not a token at all",
        "empty": "",
        "unicode": payload + ".é" + signature,
    }[tamper]
    with pytest.raises(ProtocolError) as refused:
        issuer.redeem(forged)
    assert refused.value.code == ErrorCode.UNAUTHORIZED
    assert issuer.redeem(token) == "alice"  # the genuine one is still good


def test_outstanding_tokens_are_capped_per_key_until_used_or_expired() -> None:
    clock = Clock()
    issuer = TokenIssuer(60, clock=clock)
    tokens = [issuer.mint("alice") for _ in range(MAX_OUTSTANDING_PER_KEY)]
    with pytest.raises(ProtocolError) as capped:
        issuer.mint("alice")
    assert capped.value.code == ErrorCode.RATE_LIMITED and capped.value.retry_after_s
    issuer.mint("bob")  # other keys are not affected
    issuer.redeem(tokens[0])
    issuer.mint("alice")  # a used one frees a place
    clock.now += 61
    for _ in range(MAX_OUTSTANDING_PER_KEY):
        issuer.mint("alice")  # the expired ones were forgotten


# -- limits --------------------------------------------------------------------------------------


def test_a_bucket_allows_a_minutes_burst_then_the_rate() -> None:
    bucket = TokenBucket.full(60, now=0.0)
    assert bucket.take(60, now=0.0) == 0
    assert bucket.take(1, now=0.0) == pytest.approx(1.0)  # one per second
    assert bucket.take(1, now=1.0) == 0
    # More than a minute's worth at once: taken from a full bucket, which then owes it.
    assert bucket.take(100, now=61.0) == 0
    assert bucket.take(1, now=61.0) == pytest.approx(41.0)


def limits(clock: Clock, **defaults: int) -> ClientLimits:
    base = {"max_streams": 2, "streams_per_minute": 5, "chars_per_minute": 600}
    return ClientLimits(KeyDefaults(**{**base, **defaults}), clock=clock)


def test_concurrent_streams_per_key() -> None:
    clock, alice, bob = Clock(), Client("alice"), Client("bob")
    lim = limits(clock)
    lim.open_stream(alice)
    lim.open_stream(alice)
    with pytest.raises(ProtocolError) as full:
        lim.open_stream(alice)
    assert full.value.code == ErrorCode.TOO_MANY_STREAMS
    lim.open_stream(bob)
    lim.close_stream(alice)
    lim.open_stream(alice)
    assert lim.streams_of(alice) == 2


def test_new_streams_per_minute_with_retry_after() -> None:
    clock, alice = Clock(), Client("alice")
    lim = limits(clock, max_streams=0)
    for _ in range(5):
        lim.open_stream(alice)
    with pytest.raises(ProtocolError) as limited:
        lim.open_stream(alice)
    assert limited.value.code == ErrorCode.RATE_LIMITED
    assert limited.value.retry_after_s == pytest.approx(12.0)  # 5 per minute: one every 12 s
    assert limited.value.retry_after_ms == 12_000
    clock.now += 12
    lim.open_stream(alice)


def test_characters_per_minute_refuse_without_charging() -> None:
    clock, alice = Clock(), Client("alice")
    lim = limits(clock)
    lim.take_chars(alice, 500)
    with pytest.raises(ProtocolError) as limited:
        lim.take_chars(alice, 200)
    assert limited.value.code == ErrorCode.RATE_LIMITED
    assert limited.value.retry_after_s == pytest.approx(10.0)  # 100 more chars at 10/s
    lim.take_chars(alice, 100)  # the refused 200 were not charged


def test_a_keys_own_limits_override_the_defaults_and_anonymous_has_none() -> None:
    clock = Clock()
    lim = limits(clock)
    vip = Client("vip", {"max_streams": 0, "chars_per_minute": 0})
    for _ in range(5):
        lim.open_stream(vip)
    lim.take_chars(vip, 10**6)
    for _ in range(100):
        lim.open_stream(ANONYMOUS)
        lim.take_chars(ANONYMOUS, 10**6)
