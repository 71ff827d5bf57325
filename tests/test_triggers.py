"""Context triggers: stem matching, validation, and a call's TriggerRunner."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from parley.conversation.context import ContextManager, ContextProvider
from parley.conversation.triggers import (
    ContextTrigger,
    KeywordMatcher,
    TriggerRunner,
    TriggerType,
    stem_words,
)
from parley.errors import ConfigError
from parley.events import Interrupted, ResponseDone, ResponseStarted, Role, TranscriptFinal
from waits import Watch


class Sink:
    def __init__(self, watch: Watch | None = None) -> None:
        self.sent: list[tuple[str, object]] = []
        self.watch = watch or Watch()

    async def inject_context(self, key: str, data: object) -> None:
        self.sent.append((key, data))
        self.watch.notify()


def test_stems_fold_inflections() -> None:
    assert stem_words("Refunds, refunded; REFUNDING!") == ["refund", "refund", "refund"]
    assert stem_words("") == []


def test_stems_are_right_when_threads_stem_at_once() -> None:
    # The live call's triggers stem on the loop while an analytics processor stems in
    # the model executor: a stemmer shared between threads garbled stems and raised
    # IndexError (a finished call's analysis failed in the dashboard test).
    texts = [
        "I would like to reschedule my appointment for tomorrow afternoon please",
        "The cancellation of the subscriptions happened unexpectedly yesterday",
        "Refunding the overcharged payments is our responsibility",
    ]
    expected = [stem_words(t) for t in texts]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    wrong: list[object] = []

    def stem_many() -> None:
        for _ in range(200):
            for text, want in zip(texts, expected, strict=True):
                try:
                    got = stem_words(text)
                except Exception as exc:  # the race raises, so the test reports it
                    wrong.append(exc)
                else:
                    if got != want:
                        wrong.append(got)

    threads = [threading.Thread(target=stem_many) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("I'd like a refund please", ["refund"]),
        ("Was it refunded yet?", ["refund"]),
        ("Where are my orders", ["order"]),
        ("I ordered two things", ["order"]),
        ("My credit cards were declined", ["credit card"]),
        ("a card with some credit", []),  # the words of a phrase must come in order
        ("I refuse to pay", []),  # a different stem
        ("the weather is nice today", []),
        ("", []),
    ],
)
def test_keyword_matcher(text: str, found: list[str]) -> None:
    matcher = KeywordMatcher(["refund", "order", "credit card"])
    assert matcher.match(text) == found


async def _noop(*_: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"type": TriggerType.SEMANTIC}, "keywords"),
        ({"type": TriggerType.SEMANTIC, "keywords": ("...",)}, "keywords"),
        ({"type": TriggerType.PERIODIC}, "interval_seconds"),
        ({"type": TriggerType.PERIODIC, "interval_seconds": 0}, "interval_seconds"),
        ({"type": TriggerType.EVENT}, "event"),
        (
            {"type": TriggerType.SEMANTIC, "keywords": ("x",), "similarity_threshold": 0},
            "similarity_threshold",
        ),
    ],
)
def test_bad_triggers_fail_at_registration(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        ContextTrigger(handler=_noop, **kwargs)
    assert info.value.field == field


def runner(*triggers: ContextTrigger, **kw: Any) -> tuple[TriggerRunner, Sink]:
    """A runner on a sink; the handlers notify ``sink.watch`` too, for a test to wait."""
    sink = Sink()
    return TriggerRunner("conv_1", ContextManager(sink), triggers=triggers, **kw), sink


async def test_semantic_trigger_fires_on_user_and_agent_words_only_when_matched() -> None:
    calls: list[tuple[str, list[str]]] = []

    async def orders(session_id: str, detected: list[str]) -> dict[str, Any]:
        calls.append((session_id, detected))
        sink.watch.notify()
        return {"last_order": "A-17", "status": "shipped"}

    r, sink = runner(ContextTrigger(TriggerType.SEMANTIC, orders, keywords=("order", "refund")))
    await r.start()
    await r.observe(TranscriptFinal(Role.USER, "What a lovely day"))
    # Each transcript is checked in a task of its own, in order: once the next one's
    # injection is in, the first check is long over, and it called nothing.
    await r.observe(TranscriptFinal(Role.USER, "Where is my order? I want a refund."))
    await sink.watch.until(lambda: bool(sink.sent))
    assert calls == [("conv_1", ["order", "refund"])]
    assert sink.sent == [("orders", '{"last_order":"A-17","status":"shipped"}')]
    assert r.manager.entries["orders"].source == "trigger:semantic"
    await r.observe(ResponseDone("resp_1", text="Your order has shipped."))
    await sink.watch.until(lambda: len(calls) == 2)
    assert calls[1] == ("conv_1", ["order"])
    await r.close()


async def test_semantic_trigger_roles_and_cooldown() -> None:
    calls: list[list[str]] = []
    checked: list[list[str]] = []  # a second trigger: its run says the first was checked

    async def billing(session_id: str, detected: list[str]) -> None:
        calls.append(detected)
        sink.watch.notify()

    async def after(session_id: str, detected: list[str]) -> None:
        checked.append(detected)
        sink.watch.notify()

    r, sink = runner(
        ContextTrigger(
            TriggerType.SEMANTIC,
            billing,
            keywords=("invoice",),
            roles=frozenset({Role.USER}),
            cooldown_seconds=60,
        ),
        ContextTrigger(TriggerType.SEMANTIC, after, keywords=("invoice",)),
    )
    await r.observe(ResponseDone("resp_1", text="Here is your invoice"))  # agent: ignored
    await r.observe(TranscriptFinal(Role.USER, "send the invoice"))
    await sink.watch.until(lambda: bool(calls) and len(checked) == 2)
    await r.observe(TranscriptFinal(Role.USER, "the invoice again"))  # within the cooldown
    # The triggers are checked in order, each in a task: the second one's run comes
    # after the first one's check.
    await sink.watch.until(lambda: len(checked) == 3)
    assert calls == [["invoice"]]
    await r.close()


class BagOfWords:
    """A toy embedder over a fixed vocabulary: similarity = shared topic words."""

    vocab = ("money", "back", "refund", "return", "weather")

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            words = set(stem_words(text))
            synonyms = {"refund": {"money", "back", "return"}}
            for w in list(words):
                words |= synonyms.get(w, set())
            out.append([1.0 if v in words else 0.0 for v in self.vocab])
        return out


async def test_embedder_adds_similarity_matches() -> None:
    calls: list[list[str]] = []

    async def refunds(session_id: str, detected: list[str]) -> None:
        calls.append(detected)

    trigger = ContextTrigger(
        TriggerType.SEMANTIC,
        refunds,
        keywords=("refund",),
        embedder=BagOfWords(),
        similarity_threshold=0.6,
    )
    assert await trigger.detect("can I get my money back") == ["refund"]
    assert await trigger.detect("how is the weather") == []


async def test_periodic_trigger_fires_at_its_interval() -> None:
    times: list[float] = []

    async def tick(session_id: str) -> dict[str, int]:
        times.append(time.monotonic())
        sink.watch.notify()
        return {"tick": len(times)}

    r, sink = runner(ContextTrigger(TriggerType.PERIODIC, tick, interval_seconds=0.05))
    t0 = time.monotonic()
    await r.start()
    await sink.watch.until(lambda: len(times) >= 4)
    await r.close()
    gaps = [b - a for a, b in zip([t0, *times], times, strict=False)]
    assert all(0.03 <= g <= 0.12 for g in gaps), gaps
    assert sink.sent[0] == ("tick", '{"tick":1}')
    n = len(times)
    await asyncio.sleep(0.12)  # a window of two intervals: a tick still scheduled would come
    assert len(times) == n  # closed: no more ticks


async def test_event_trigger_fires_by_name_with_its_data() -> None:
    got: list[dict[str, Any]] = []

    async def authenticated(session_id: str, data: dict[str, Any]) -> dict[str, Any]:
        got.append(data)
        return {"account": data["account"], "verified": True}

    r, sink = runner(ContextTrigger(TriggerType.EVENT, authenticated, event="user_authenticated"))
    assert await r.fire("something_else", {}) == 0
    assert await r.fire("user_authenticated", {"account": "ACC-9"}) == 1
    assert got == [{"account": "ACC-9"}]
    assert sink.sent == [("authenticated", '{"account":"ACC-9","verified":true}')]
    await r.close()


async def test_a_failing_handler_is_logged_and_the_call_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(session_id: str, data: dict[str, Any]) -> None:
        raise RuntimeError("database down")

    r, sink = runner(ContextTrigger(TriggerType.EVENT, broken, event="e"))
    with caplog.at_level(logging.ERROR, "parley.context"):
        assert await r.fire("e") == 1
    assert "broken" in caplog.text and "database down" in caplog.text
    assert sink.sent == []
    await r.close()


async def test_providers_run_at_start_and_again_when_their_cache_expires() -> None:
    versions = iter(range(1, 100))

    async def account(user_id: str | None) -> Mapping[str, Any]:
        return {"user": user_id, "version": next(versions)}

    provider = ContextProvider(account, ttl_seconds=0.05)
    r, sink = runner(providers=(provider,), user_id="u7")
    await r.start()
    assert sink.sent == [("account", '{"user":"u7","version":1}')]  # before start returns
    await sink.watch.until(lambda: len(sink.sent) >= 3)
    assert sink.sent[1] == ("account", '{"user":"u7","version":2}')
    await r.close()


async def test_reply_boundaries_release_deferred_injections() -> None:
    sink = Sink()
    r = TriggerRunner("c", ContextManager(sink, async_injection=False))
    await r.observe(ResponseStarted("resp_1"))
    await r.inject("k", "v")
    assert sink.sent == []
    await r.observe(Interrupted("resp_1", played_text="", played_ms=0))
    assert sink.sent == [("k", "v")]
    await r.close()
