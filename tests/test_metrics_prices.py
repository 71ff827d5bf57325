"""Price tables as dated data: lookups by day, overrides, sources, and each unit's cost."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from parley.events import Usage
from parley.metrics import (
    DEFAULT_PRICE_BOOK,
    PRICES,
    REALTIME,
    CallMeter,
    ChatPrices,
    CostMeter,
    CostPlan,
    Dated,
    EnginePlan,
    PriceTable,
    TelephonyPrices,
    chat_cost_usd,
    is_local,
)
from parley.metrics.table import today


def test_the_realtime_alias_followed_the_dec_2024_price_cut() -> None:
    before = REALTIME.at("gpt-4o-realtime-preview", date(2024, 11, 1))
    after = REALTIME.at("gpt-4o-realtime-preview", date(2025, 1, 1))
    assert before is not None and after is not None
    assert (before.audio_in, before.audio_cached, before.audio_out) == (100.0, 20.0, 200.0)
    assert (after.audio_in, after.audio_cached, after.audio_out) == (40.0, 2.5, 80.0)
    # The launch snapshot kept its price; nothing was priced before the launch.
    assert REALTIME.at("gpt-4o-realtime-preview-2024-10-01", date(2025, 6, 1)) == before
    assert REALTIME.at("gpt-4o-realtime-preview", date(2024, 9, 30)) is None
    # A dated snapshot without a row of its own follows its base model's history.
    assert REALTIME.at("gpt-realtime-2026-01-15") == PRICES["gpt-realtime"]


def test_prices_is_the_newest_row_of_every_realtime_model() -> None:
    assert set(PRICES) == set(REALTIME.names)
    for name in REALTIME.names:
        assert PRICES[name] == REALTIME.latest(name)


def test_every_row_is_dated_in_the_past_and_cites_a_source() -> None:
    book = DEFAULT_PRICE_BOOK
    for table in (book.realtime, book.chat, book.stt, book.tts, book.telephony):
        assert len(table) > 0
        for name in table.names:
            for row in table.history(name):
                assert row.effective <= today(), name
                assert "." in row.source and len(row.source) > 10, name  # a URL-ish cite
            assert table.at(name) is not None, name


def test_chat_tables_have_both_vendors_and_the_cache_discounts() -> None:
    chat = DEFAULT_PRICE_BOOK.chat
    assert chat.at("gpt-4o-mini") == ChatPrices(0.15, 0.60, 0.075)
    assert chat.at("claude-haiku-4-5") == ChatPrices(1.00, 5.00, 0.10)
    # gpt-4o's alias moved to the 2024-08-06 prices on 2024-10-02.
    assert chat.at("gpt-4o", date(2024, 9, 1)) == ChatPrices(5.00, 15.00)
    assert chat.at("gpt-4o", date(2024, 10, 2)) == ChatPrices(2.50, 10.00, 1.25)


def test_chat_cost_by_hand() -> None:
    u = Usage(input_text_tokens=10_000, cached_text_tokens=8_000, output_text_tokens=500)
    mini = ChatPrices(0.15, 0.60, 0.075)
    assert chat_cost_usd(u, mini) == pytest.approx((2000 * 0.15 + 8000 * 0.075 + 500 * 0.6) / 1e6)
    # A model without a cache discount bills cached tokens as input.
    assert chat_cost_usd(u, ChatPrices(5.0, 15.0)) == pytest.approx(
        (10_000 * 5.0 + 500 * 15.0) / 1e6
    )


def test_stt_tts_and_line_units() -> None:
    book = DEFAULT_PRICE_BOOK
    whisper = book.stt.at("whisper-1")
    assert whisper is not None and whisper.per_minute == 0.006
    tts1 = book.tts.at("tts-1")
    hd = book.tts.at("tts-1-hd")
    assert tts1 is not None and hd is not None
    assert (tts1.per_million_characters, hd.per_million_characters) == (15.0, 30.0)
    line = book.telephony.at("twilio-us")
    assert line == TelephonyPrices(0.0085, 0.013)


def test_a_token_billed_tts_model_prices_characters_and_audio_minutes() -> None:
    plan = CostPlan((EnginePlan("cascade", tts="gpt-4o-mini-tts"),))
    meter = CostMeter(plan)
    meter.add_spoken(4_000, 60_000.0)
    cost = meter.breakdown(60_000.0)
    assert cost.tts == pytest.approx(4_000 * 0.15 / 1e6 + 0.015)


def test_the_telephony_default_is_overridable() -> None:
    mine = DEFAULT_PRICE_BOOK.telephony.override(
        "twilio-us", TelephonyPrices(0.004, 0.009), "our contract"
    )
    book = dataclasses.replace(DEFAULT_PRICE_BOOK, telephony=mine)
    inbound = CostMeter(CostPlan(telephony="twilio-us"), book=book).breakdown(120_000.0)
    outbound = CostMeter(CostPlan(telephony="twilio-us", direction="outbound"), book=book)
    assert inbound.telephony == pytest.approx(0.008)
    assert outbound.breakdown(60_000.0).telephony == pytest.approx(0.009)
    # The published default is untouched; the override holds on any day.
    assert DEFAULT_PRICE_BOOK.telephony.at("twilio-us") == TelephonyPrices(0.0085, 0.013)
    assert mine.at("twilio-us", date(2020, 1, 1)) == TelephonyPrices(0.004, 0.009)
    row = mine.row("twilio-us")
    assert row is not None and row.source == "our contract"


def test_a_dated_price_change_applies_from_its_day() -> None:
    cut = Dated(ChatPrices(0.10, 0.40, 0.05), date(2030, 1, 1), "a future price cut")
    chat = DEFAULT_PRICE_BOOK.chat.with_row("gpt-4o-mini", cut)
    assert chat.at("gpt-4o-mini") == ChatPrices(0.15, 0.60, 0.075)
    assert chat.at("gpt-4o-mini", date(2030, 1, 1)) == cut.prices
    assert chat.latest("gpt-4o-mini") == cut.prices


def test_a_call_is_priced_on_its_day() -> None:
    plan = CostPlan((EnginePlan("realtime", realtime_model="gpt-4o-realtime-preview"),))
    usage = Usage(input_audio_tokens=1000, output_audio_tokens=1000)
    old, new = (CostMeter(plan, on=date(2024, 11, 1)), CostMeter(plan, on=date(2025, 2, 1)))
    old.add_usage(usage)
    new.add_usage(usage)
    assert old.breakdown(0).realtime == pytest.approx((100 + 200) * 1000 / 1e6)
    assert new.breakdown(0).realtime == pytest.approx((40 + 80) * 1000 / 1e6)
    before_launch = CallMeter("c", 0.0, plan=plan, on=date(2024, 9, 1)).cost(1.0)
    assert before_launch is not None
    assert before_launch.unpriced == ("realtime:gpt-4o-realtime-preview",)


def test_local_models_are_free() -> None:
    assert all(is_local(m) for m in ("local", "local:whisper-tiny.en", "echo", "template"))
    assert not any(is_local(m) for m in ("whisper-1", "gpt-4o-mini", "localhost-model"))


def test_a_table_row_needs_prices() -> None:
    with pytest.raises(ValueError):
        PriceTable({"x": ()})
