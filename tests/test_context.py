"""ContextManager: blending, token budget, time window, newest-wins, deferral; providers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from parley.conversation.context import (
    EXPIRED_TEXT,
    BPETokenCounter,
    ContextManager,
    ContextProvider,
    EstimateTokenCounter,
    default_token_counter,
    render,
)
from parley.errors import ConfigError


class Sink:
    """Records what the manager hands to the engine (the engine seam's one method)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []

    async def inject_context(self, key: str, data: object) -> None:
        self.sent.append((key, data))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_real_tokenizer_counts_exactly() -> None:
    counter = default_token_counter()
    assert isinstance(counter, BPETokenCounter)  # bpe-openai ships its tables: no download
    assert counter.count("hello world") == 2
    assert counter.count("") == 0
    # Control-token text is data, not a special token (tiktoken's encode would raise).
    assert counter.count("<|endoftext|>") > 1
    assert counter.truncate("one two three four", 2) == "one two"


def test_estimate_is_four_chars_per_token() -> None:
    est = EstimateTokenCounter()
    assert est.count("abcd") == 1
    assert est.count("abcde") == 2
    assert est.truncate("abcdefghij", 2) == "abcdefgh"


def test_render_is_compact_json_or_text() -> None:
    assert render("as is") == "as is"
    assert render({"name": "Ana", "tier": "gold"}) == '{"name":"Ana","tier":"gold"}'
    assert render({"when": object}).startswith('{"when":')


async def test_newer_value_for_a_key_replaces_the_older() -> None:
    sink = Sink()
    ctx = ContextManager(sink)
    await ctx.inject("order", {"status": "packed"})
    await ctx.inject("weather", "sunny")
    await ctx.inject("order", {"status": "shipped"})
    assert list(ctx.entries) == ["weather", "order"]  # order of last update
    assert ctx.entries["order"].text == '{"status":"shipped"}'
    assert sink.sent == [
        ("order", '{"status":"packed"}'),
        ("weather", "sunny"),
        ("order", '{"status":"shipped"}'),
    ]
    assert ctx.tokens == sum(e.tokens for e in ctx.entries.values())
    assert ctx.blended() == '[weather]\nsunny\n[order]\n{"status":"shipped"}'
    await ctx.close()


async def test_budget_evicts_the_oldest_entries() -> None:
    sink = Sink()
    counter = default_token_counter()
    ctx = ContextManager(sink, max_tokens=30)
    ten = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    per = counter.count(ten)
    assert 10 <= per <= 15
    await ctx.inject("a", ten)
    await ctx.inject("b", ten)
    result = await ctx.inject("c", ten)
    assert result.evicted == ("a",)
    assert list(ctx.entries) == ["b", "c"]
    assert ctx.tokens <= 30
    assert ("a", EXPIRED_TEXT) in sink.sent  # the engine cannot remove: overwritten
    # Refreshing b makes c the oldest.
    await ctx.inject("b", ten)
    result = await ctx.inject("d", ten)
    assert result.evicted == ("c",)
    await ctx.close()


async def test_an_entry_larger_than_the_budget_is_truncated() -> None:
    sink = Sink()
    ctx = ContextManager(sink, max_tokens=20)
    await ctx.inject("small", "x")
    result = await ctx.inject("big", " ".join(f"word{i}" for i in range(200)))
    assert result.truncated
    assert result.tokens <= 20
    assert result.evicted == ("small",)
    assert ctx.entries["big"].text.endswith("[truncated]")
    assert ctx.entries["big"].text.startswith("word0 word1")
    await ctx.close()


async def test_a_removed_entry_is_withdrawn_from_the_engine() -> None:
    sink = Sink()
    ctx = ContextManager(sink)
    await ctx.inject("k", "v")
    assert await ctx.remove("k")
    assert not await ctx.remove("k")
    assert sink.sent[-1] == ("k", EXPIRED_TEXT)
    await ctx.close()


async def test_window_expires_old_entries_on_the_next_injection() -> None:
    sink = Sink()
    clock = Clock()
    ctx = ContextManager(sink, window_seconds=60, clock=clock)
    await ctx.inject("old", "stale")
    clock.t += 30
    await ctx.inject("mid", "recent")
    clock.t += 31  # "old" is now 61 s old, "mid" 31 s
    result = await ctx.inject("new", "fresh")
    assert result.evicted == ("old",)
    assert list(ctx.entries) == ["mid", "new"]
    await ctx.close()


async def test_window_expiry_needs_no_new_injection() -> None:
    sink = Sink()
    ctx = ContextManager(sink, window_seconds=0.05)
    await ctx.inject("flash", "sale ends soon")
    assert "flash" in ctx.entries
    await asyncio.sleep(0.15)  # the clock under test: the 50 ms window passes
    assert "flash" not in ctx.entries
    assert sink.sent[-1] == ("flash", EXPIRED_TEXT)
    await ctx.close()


async def test_without_async_injection_changes_wait_for_the_reply_to_end() -> None:
    sink = Sink()
    ctx = ContextManager(sink, async_injection=False)
    await ctx.inject("before", 1)
    assert sink.sent == [("before", "1")]
    assert not ctx.set_responding(True)
    result = await ctx.inject("during", 2)
    assert result.deferred
    await ctx.inject("during", 3)  # newest wins while waiting too
    assert sink.sent == [("before", "1")]
    assert ctx.set_responding(False)
    await ctx.flush()
    assert sink.sent == [("before", "1"), ("during", "3")]
    await ctx.close()


async def test_with_async_injection_changes_go_during_a_reply() -> None:
    sink = Sink()
    ctx = ContextManager(sink, async_injection=True)
    ctx.set_responding(True)
    result = await ctx.inject("during", "now")
    assert not result.deferred
    assert sink.sent == [("during", "now")]
    await ctx.close()


async def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        ContextManager(Sink(), max_tokens=0)
    assert info.value.field == "max_context_size"
    ctx = ContextManager(Sink())
    with pytest.raises(ConfigError):
        await ctx.inject("", "x")
    await ctx.close()
    with pytest.raises(ConfigError):
        await ctx.inject("k", "after close")


async def test_provider_is_cached_per_user_for_its_ttl() -> None:
    clock = Clock()
    seen: list[str | None] = []

    async def profile(user_id: str | None) -> dict[str, Any]:
        seen.append(user_id)
        return {"user": user_id, "n": len(seen)}

    provider = ContextProvider(profile, ttl_seconds=60, clock=clock)
    assert provider.key == "profile"
    data, fresh = await provider.get("u1")
    assert fresh and data == {"user": "u1", "n": 1}
    data, fresh = await provider.get("u1")
    assert not fresh and data == {"user": "u1", "n": 1}
    await provider.get("u2")
    assert provider.expires_in("u1") == 60
    clock.t += 61
    assert provider.expires_in("u1") == 0
    data, fresh = await provider.get("u1")
    assert fresh and data == {"user": "u1", "n": 3}
    assert seen == ["u1", "u2", "u1"]
    assert provider.calls == 3
