"""The middleware chain and its built-ins, without engines (those are in
test_middleware_engines.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from parley.conversation.middleware import (
    AnalyticsMiddleware,
    AsyncAudioChain,
    LoggingMiddleware,
    Middleware,
    MiddlewareChain,
    MiddlewareContext,
    MiddlewareError,
    MiddlewareRegistry,
    Next,
    TextTransform,
    TimingMiddleware,
    TokenAuthMiddleware,
)
from parley.conversation.pii import PIIRedactionMiddleware, find_pii, luhn_valid, redact_pii
from parley.engines.text_hooks import HeldSplitter
from parley.errors import AuthError, ConfigError
from parley.providers.sentences import SentenceSplitter


class Tag:
    """Appends its name on the way in and out, to show the order."""

    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen

    async def process(self, context: MiddlewareContext, next: Next) -> MiddlewareContext:
        self.seen.append(f"{self.name}>")
        context.text += self.name
        result = await next(context)
        self.seen.append(f"<{self.name}")
        return result


class Stop:
    async def process(self, context: MiddlewareContext, next: Next) -> MiddlewareContext:
        context.text = "stopped"
        return context  # never calls next


class Broken:
    async def process(self, context: MiddlewareContext, next: Next) -> MiddlewareContext:
        raise KeyError("bug")


def ctx(text: str = "hi", **kw: object) -> MiddlewareContext:
    return MiddlewareContext(text, **kw)  # type: ignore[arg-type]


async def test_chain_runs_in_registration_order_outermost_first() -> None:
    seen: list[str] = []
    chain = MiddlewareChain([Tag("a", seen), Tag("b", seen), Tag("c", seen)])
    assert isinstance(chain.middleware[0], Middleware)
    out = await chain(ctx("x"))
    assert out.text == "xabc"
    assert seen == ["a>", "b>", "c>", "<c", "<b", "<a"]


async def test_a_middleware_that_does_not_call_next_short_circuits() -> None:
    seen: list[str] = []
    out = await MiddlewareChain([Tag("a", seen), Stop(), Tag("c", seen)])(ctx("x"))
    assert out.text == "stopped"
    assert seen == ["a>", "<a"]  # c never ran


async def test_empty_chain_returns_the_context_unchanged() -> None:
    c = ctx("same")
    assert await MiddlewareChain([])(c) is c


async def test_user_bug_becomes_a_typed_error_and_outer_middleware_sees_it() -> None:
    analytics = AnalyticsMiddleware()
    chain = MiddlewareChain([analytics, Broken()])
    with pytest.raises(MiddlewareError, match="Broken failed"):
        await chain(ctx())
    assert analytics.counts["request_errors"] == 1


async def test_parley_errors_pass_through_unwrapped() -> None:
    chain = MiddlewareChain([TokenAuthMiddleware({"good": ["read"]})])
    with pytest.raises(AuthError):
        await chain(ctx(token="bad"))


async def test_returning_something_else_than_a_context_is_an_error() -> None:
    class Wrong:
        async def process(self, context: MiddlewareContext, next: Next) -> MiddlewareContext:
            return "text"  # type: ignore[return-value]

    with pytest.raises(MiddlewareError, match="not a MiddlewareContext"):
        await MiddlewareChain([Wrong()])(ctx())


async def test_text_transform_adapts_a_decorator_function() -> None:
    async def shout(text: str, c: MiddlewareContext) -> str:
        return f"{text.upper()} ({c.context['plan']})"

    out = await MiddlewareChain([TextTransform(shout)])(ctx("hello", context={"plan": "gold"}))
    assert out.text == "HELLO (gold)"

    def not_async(text: str, c: MiddlewareContext) -> str:
        return text

    with pytest.raises(ConfigError):
        TextTransform(not_async)  # type: ignore[arg-type]


async def test_token_auth_grants_permissions_and_refuses() -> None:
    auth = TokenAuthMiddleware({"t1": ["orders:read"], "t2": []}, required=["orders:read"])
    c = ctx(token="t1")
    assert (await MiddlewareChain([auth])(c)).permissions == {"orders:read"}
    with pytest.raises(AuthError, match="no token"):
        await auth.process(ctx(), _identity)
    with pytest.raises(AuthError, match="unknown token"):
        await auth.process(ctx(token="nope"), _identity)
    with pytest.raises(AuthError, match="orders:read"):
        await auth.process(ctx(token="t2"), _identity)
    # Responses are not authenticated (there is no caller input to check).
    assert (await auth.process(ctx(direction="response"), _identity)).text == "hi"


async def test_token_auth_with_an_async_lookup() -> None:
    async def lookup(token: str) -> list[str] | None:
        return ["admin"] if token == "root" else None

    auth = TokenAuthMiddleware(lookup)
    assert (await auth.process(ctx(token="root"), _identity)).permissions == {"admin"}
    with pytest.raises(AuthError):
        await auth.process(ctx(token="x"), _identity)


async def _identity(c: MiddlewareContext) -> MiddlewareContext:
    return c


async def test_timing_and_analytics_measure_the_rest_of_the_chain() -> None:
    import asyncio

    class Slow:
        async def process(self, context: MiddlewareContext, next: Next) -> MiddlewareContext:
            await asyncio.sleep(0.02)  # a middleware that takes time: what is measured
            return await next(context)

    timing, analytics = TimingMiddleware("all"), AnalyticsMiddleware()
    chain = MiddlewareChain([analytics, timing, Slow()])
    out = await chain(ctx("abc"))
    await chain(ctx("de", direction="response"))
    assert out.metadata["timings_ms"]["all"] >= 15
    snap = analytics.snapshot()
    assert snap["request"] == 1 and snap["response"] == 1
    assert snap["request_chars"] == 3 and snap["response_chars"] == 2
    assert snap["request_latency_ms"]["p50"] >= 15


async def test_logging_logs_lengths_not_text_by_default(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="parley.middleware")
    await MiddlewareChain([LoggingMiddleware()])(ctx("my card is secret", conversation_id="c1"))
    assert "c1 request (17 chars)" in caplog.text and "secret" not in caplog.text
    await MiddlewareChain([LoggingMiddleware(log_text=True)])(ctx("visible"))
    assert "visible" in caplog.text


# -- PII ------------------------------------------------------------------------------

PII_CASES: list[tuple[str, list[str]]] = [
    # positives
    ("mail me at jane.doe+work@example.co.uk today", ["email"]),
    ("card 4111 1111 1111 1111 please", ["card"]),
    ("card 4111-1111-1111-1111.", ["card"]),
    ("amex 378282246310005 ok", ["card"]),
    ("my ssn is 123-45-6789", ["ssn"]),
    ("call (415) 555-2671 now", ["phone"]),
    ("call 415-555-2671.", ["phone"]),
    ("call +1 415 555 2671", ["phone"]),
    ("in London +44 20 7946 0958", ["phone"]),
    ("a@b.io and 212.555.0199", ["email", "phone"]),
    # negatives
    ("order 4111 1111 1111 1112 fails Luhn", []),
    ("ssn 000-12-3456 has area 000", []),
    ("ssn 666-12-3456 has area 666", []),
    ("ssn 912-34-5678 has a 9xx area", []),
    ("ssn 123-00-4567 has group 00", []),
    ("version 1.2.3 and v10.4.1234", []),
    ("on 2024-01-15 and 12/31/2024", []),
    ("ip 192.168.100.200", []),
    ("area 123-456-7890 starts with 1", []),
    ("mixed 415-555.2671 separators", []),
    ("user@localhost has no domain", []),
    ("price $1,234,567.89", []),
    ("just 12 items and +1", []),
]


@pytest.mark.parametrize(("text", "kinds"), PII_CASES)
def test_pii_detection_table(text: str, kinds: list[str]) -> None:
    assert [m.kind for m in find_pii(text)] == kinds


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112") and not luhn_valid("79927398710")


def test_redaction_replaces_only_the_match() -> None:
    text, counts = redact_pii("Card 4111 1111 1111 1111, mail bo@x.org.")
    assert text == "Card [redacted card number], mail [redacted email address]."
    assert counts == {"card": 1, "email": 1}
    only_mail, _ = redact_pii("bo@x.org 415-555-2671", kinds=["email"], replacement="<{kind}>")
    assert only_mail == "<email> 415-555-2671"


async def test_pii_middleware_counts_and_rejects_unknown_kinds() -> None:
    mw = PIIRedactionMiddleware()
    out = await MiddlewareChain([mw])(ctx("ssn 123-45-6789 and 123-45-6789"))
    assert out.text == "ssn [redacted social security number] and [redacted social security number]"
    assert mw.redacted["ssn"] == 2 and out.metadata["pii_redacted"]["ssn"] == 2
    with pytest.raises(ConfigError):
        PIIRedactionMiddleware(kinds=["passport"])  # type: ignore[list-item]


# -- registry, audio, splitter ----------------------------------------------------------


def test_registry_builds_nothing_when_empty() -> None:
    reg = MiddlewareRegistry()
    assert reg.pipeline(conversation_id="c") is None
    assert reg.audio_chain(16000) is None


async def test_pipeline_shares_permissions_across_turns_and_sees_context() -> None:
    reg = MiddlewareRegistry()
    reg.add(TokenAuthMiddleware({"t": ["vip"]}), response=False)
    seen: list[tuple[str, set[str], dict[str, str]]] = []

    async def note(text: str, c: MiddlewareContext) -> str:
        seen.append((c.direction, set(c.permissions), dict(c.context)))
        return text

    reg.add(TextTransform(note))
    data = {"plan": "gold"}
    pipe = reg.pipeline(conversation_id="c", metadata={"token": "t"}, context=lambda: data)
    assert pipe is not None
    assert await pipe.request("hi") == "hi"
    data["plan"] = "silver"  # the context is read at each pass, not frozen at start
    assert await pipe.response("yo") == "yo"
    assert seen == [
        ("request", {"vip"}, {"plan": "gold"}),
        ("response", {"vip"}, {"plan": "silver"}),
    ]


def test_audio_chain_composes_and_builds_per_call_state() -> None:
    reg = MiddlewareRegistry()
    reg.add_audio(lambda pcm: pcm + b"a")
    made: list[int] = []

    def factory(rate: int) -> object:
        made.append(rate)
        return lambda pcm: pcm + b"b"

    reg.add_audio(factory, per_call=True)
    chain = reg.audio_chain(8000)
    assert not isinstance(chain, AsyncAudioChain)  # all synchronous: a plain function
    assert chain is not None and chain(b"x") == b"xab" and made == [8000]

    async def louder(pcm: bytes) -> bytes:  # seed 000's async form, awaited in order
        return pcm + b"c"

    reg.add_audio(louder)
    chained = reg.audio_chain(8000)
    assert isinstance(chained, AsyncAudioChain)
    assert asyncio.run(chained(b"x")) == b"xabc" and made == [8000, 8000]

    async def factory_async(rate: int) -> object:
        return louder

    with pytest.raises(ConfigError, match="per_call"):
        reg.add_audio(factory_async, per_call=True)

    async def wrong(pcm: bytes) -> str:
        return "not audio"

    reg.add_audio(wrong)
    broken = reg.audio_chain(8000)
    assert isinstance(broken, AsyncAudioChain)
    with pytest.raises(MiddlewareError, match="wrong"):
        asyncio.run(broken(b"x"))


def test_held_splitter_keeps_a_number_cut_at_a_space_together() -> None:
    # A 250-char run with no punctuation is cut at a space: here inside the number
    # (the plain splitter shows it), streamed word by word as a model would.
    text = "word " * 46 + "number 4111 1111 1111 1111 ends here. Next"

    def split(sp: SentenceSplitter | HeldSplitter) -> list[str]:
        pieces = [p for w in text.split(" ") for p in sp.push(w + " ")]
        return pieces + sp.flush()

    plain = split(SentenceSplitter(first_clause_chars=8))
    assert not any("4111 1111 1111 1111" in p for p in plain), plain
    held = split(HeldSplitter(first_clause_chars=8))
    assert any("4111 1111 1111 1111" in p for p in held), held
    assert " ".join(held) == " ".join(text.split())


def test_audio_preprocessor_sees_pcm16_on_a_g711_pass_through_line() -> None:
    from parley.audio.format import TWILIO_FORMAT
    from parley.audio.g711 import ulaw_decode, ulaw_encode
    from parley.conversation.session import _inbound_path

    seen: list[bytes] = []

    def pre(pcm: bytes) -> bytes:
        seen.append(pcm)
        return bytes(len(pcm))  # silence

    line = ulaw_encode(b"\x00\x10" * 160)
    path = _inbound_path(None, pre, TWILIO_FORMAT)
    assert path is not None
    out = path(line)
    assert seen == [ulaw_decode(line)]  # PCM16, two bytes per µ-law byte
    assert out == ulaw_encode(bytes(320)) and len(out) == len(line)
    assert _inbound_path(None, None, TWILIO_FORMAT) is None  # pass-through stays free
