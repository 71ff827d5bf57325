"""Every price a call can incur, as dated data: chat tokens, STT, TTS, the phone line.

One :class:`PriceBook` holds a :class:`~parley.metrics.table.PriceTable` per kind of
service; :data:`DEFAULT_PRICE_BOOK` is the published list prices below, each row
with the day it applies from and its source (read 2026-12-03 unless said otherwise).
Override a row for a negotiated rate with ``PriceTable.override`` (or add a dated
change with ``with_row``) and ``dataclasses.replace(book, telephony=...)``.

Units follow how each provider bills:

- chat completions: USD per 1M tokens — input, cached input, output (OpenAI's
  cached input is a subset of input; Anthropic's cache reads are billed at "cache
  hits", cache writes at 1.25× input, which :class:`~parley.events.Usage` cannot
  express: a call that writes the cache is under-estimated by that 25 %);
- STT: USD per minute of audio sent (``whisper-1`` is billed per minute; the
  ``gpt-4o*-transcribe`` models per token, for which OpenAI publishes an estimated
  cost per minute — that estimate is the figure here);
- TTS: USD per 1M characters (``tts-1``, ``tts-1-hd``) plus, for token-billed
  models (``gpt-4o-mini-tts``), OpenAI's estimated cost per minute of audio out;
- telephony: USD per minute, inbound and outbound (Twilio bills per started minute;
  the meter prorates per second — an estimate that is at most a minute's rate low).

Local models (``"local"``, ``"local:whisper-tiny.en"``, the ``echo``/``template``
brains) cost nothing; their CPU seconds are reported instead (:func:`is_local`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from parley.events import Usage
from parley.metrics.pricing import REALTIME, ModelPrices
from parley.metrics.table import Dated, PriceTable

__all__ = [
    "CHAT",
    "DEFAULT_PRICE_BOOK",
    "STT",
    "TELEPHONY",
    "TTS",
    "ChatPrices",
    "PriceBook",
    "SttPrices",
    "TelephonyPrices",
    "TtsPrices",
    "chat_cost_usd",
    "is_local",
]

_LOCAL_BRAINS = frozenset({"echo", "template", "loopback"})


def is_local(model: str) -> bool:
    """Whether ``model`` runs on this machine at no per-use price."""
    return model == "local" or model.startswith("local:") or model in _LOCAL_BRAINS


@dataclass(frozen=True, slots=True)
class ChatPrices:
    """Chat-completion tokens, USD per 1M. ``cached_input`` ``None``: no cache discount."""

    input: float
    output: float
    cached_input: float | None = None


@dataclass(frozen=True, slots=True)
class SttPrices:
    """USD per minute of audio transcribed."""

    per_minute: float


@dataclass(frozen=True, slots=True)
class TtsPrices:
    """USD per 1M characters of text in, plus USD per minute of audio out (token-billed
    models, at the provider's published per-minute estimate)."""

    per_million_characters: float = 0.0
    per_audio_minute: float = 0.0


@dataclass(frozen=True, slots=True)
class TelephonyPrices:
    """USD per minute of a call the line carries in each direction."""

    inbound_per_minute: float
    outbound_per_minute: float


def chat_cost_usd(usage: Usage, prices: ChatPrices) -> float:
    """USD of a chat completion's text tokens (cached tokens are a subset of input)."""
    cached = usage.cached_text_tokens if prices.cached_input is not None else 0
    per_million = (
        (usage.input_text_tokens - cached) * prices.input
        + cached * (prices.cached_input or 0.0)
        + usage.output_text_tokens * prices.output
    )
    return per_million / 1_000_000


_READ = date(2026, 12, 3)
_OPENAI = "developers.openai.com/api/docs/models/"
_OPENAI_PRICING = "developers.openai.com/api/docs/pricing"
_ANTHROPIC = "platform.claude.com/docs/en/about-claude/pricing"
_TWILIO = f"support.twilio.com/hc/en-us/articles/223183328 (listed on {_READ})"


def _openai(model: str, prices: ChatPrices, launched: date | None) -> tuple[Dated[ChatPrices], ...]:
    when = launched or _READ
    note = "" if launched else f" (listed on {_READ}; launch date not on the page)"
    return (Dated(prices, when, f"{_OPENAI}{model}; {_OPENAI_PRICING}{note}"),)


def _claude(prices: ChatPrices, released: date | None, name: str) -> tuple[Dated[ChatPrices], ...]:
    if released is None:
        return (Dated(prices, _READ, f"{_ANTHROPIC} ({name}; listed on {_READ})"),)
    return (Dated(prices, released, f"{_ANTHROPIC} ({name}, released {released})"),)


_SONNET_4 = ChatPrices(3.00, 15.00, 0.30)
_OPUS_4 = ChatPrices(15.00, 75.00, 1.50)
_OPUS_4_5 = ChatPrices(5.00, 25.00, 0.50)
_SONNET_5 = ChatPrices(2.00, 10.00, 0.20)

#: Chat-completion models → dated prices (USD per 1M tokens).
CHAT: PriceTable[ChatPrices] = PriceTable(
    {
        # OpenAI
        "gpt-4o-mini": _openai("gpt-4o-mini", ChatPrices(0.15, 0.60, 0.075), date(2024, 7, 18)),
        # The alias moved to the cheaper 2024-08-06 snapshot on 2024-10-02, the day after
        # prompt caching launched (openai.com/index/api-prompt-caching).
        "gpt-4o": (
            Dated(ChatPrices(5.00, 15.00), date(2024, 5, 13), "openai.com/index/hello-gpt-4o"),
            *_openai("gpt-4o", ChatPrices(2.50, 10.00, 1.25), date(2024, 10, 2)),
        ),
        "gpt-4.1": _openai("gpt-4.1", ChatPrices(2.00, 8.00, 0.50), date(2025, 4, 14)),
        "gpt-4.1-mini": _openai("gpt-4.1-mini", ChatPrices(0.40, 1.60, 0.10), date(2025, 4, 14)),
        "gpt-4.1-nano": _openai("gpt-4.1-nano", ChatPrices(0.10, 0.40, 0.025), date(2025, 4, 14)),
        "gpt-5": _openai("gpt-5", ChatPrices(1.25, 10.00, 0.125), date(2025, 8, 7)),
        "gpt-5-mini": _openai("gpt-5-mini", ChatPrices(0.25, 2.00, 0.025), date(2025, 8, 7)),
        "gpt-5-nano": _openai("gpt-5-nano", ChatPrices(0.05, 0.40, 0.005), date(2025, 8, 7)),
        "gpt-5.4": _openai("gpt-5.4", ChatPrices(2.50, 15.00, 0.25), None),
        "gpt-5.4-mini": _openai("gpt-5.4-mini", ChatPrices(0.75, 4.50, 0.075), None),
        # Anthropic: base input, output, cache hits (5-minute cache writes are 1.25× input)
        "claude-haiku-4-5": _claude(ChatPrices(1.00, 5.00, 0.10), date(2025, 10, 15), "Haiku 4.5"),
        "claude-sonnet-4-5": _claude(_SONNET_4, date(2025, 9, 29), "Sonnet 4.5"),
        "claude-sonnet-4-6": _claude(_SONNET_4, None, "Sonnet 4.6"),
        "claude-sonnet-4-0": _claude(_SONNET_4, date(2025, 5, 22), "Sonnet 4"),
        "claude-opus-4-1": _claude(_OPUS_4, date(2025, 8, 5), "Opus 4.1"),
        "claude-opus-4-5": _claude(_OPUS_4_5, date(2025, 11, 24), "Opus 4.5"),
        "claude-opus-4-6": _claude(_OPUS_4_5, None, "Opus 4.6"),
        "claude-sonnet-5": _claude(_SONNET_5, date(2026, 6, 30), "Sonnet 5"),
        "claude-opus-5": _claude(_OPUS_4_5, date(2026, 7, 24), "Opus 5"),
    }
)

#: Speech-to-text models → dated prices (USD per audio minute).
STT: PriceTable[SttPrices] = PriceTable(
    {
        "whisper-1": (Dated(SttPrices(0.006), date(2023, 3, 1), _OPENAI + "whisper-1"),),
        "gpt-4o-transcribe": (
            Dated(
                SttPrices(0.006),
                date(2025, 3, 20),
                _OPENAI + "gpt-4o-transcribe (token-billed; OpenAI's estimated $/minute)",
            ),
        ),
        "gpt-4o-mini-transcribe": (
            Dated(
                SttPrices(0.003),
                date(2025, 3, 20),
                _OPENAI + "gpt-4o-mini-transcribe (token-billed; OpenAI's estimated $/minute)",
            ),
        ),
        "gpt-realtime-whisper": (
            Dated(
                SttPrices(0.017),
                _READ,
                _OPENAI + f"gpt-realtime-whisper (listed on {_READ}; per minute of audio)",
            ),
        ),
    }
)

#: Text-to-speech models → dated prices.
TTS: PriceTable[TtsPrices] = PriceTable(
    {
        "tts-1": (Dated(TtsPrices(15.00), date(2023, 11, 6), _OPENAI + "tts-1"),),
        "tts-1-hd": (Dated(TtsPrices(30.00), date(2023, 11, 6), _OPENAI + "tts-1-hd"),),
        # $0.60 / 1M text tokens in (≈ 4 characters a token: $0.15 / 1M characters) and
        # $12 / 1M audio tokens out, which OpenAI estimates at $0.015 a minute.
        "gpt-4o-mini-tts": (
            Dated(
                TtsPrices(0.15, 0.015),
                date(2025, 3, 20),
                _OPENAI + "gpt-4o-mini-tts (token-billed; OpenAI's estimated $/minute)",
            ),
        ),
    }
)

#: Phone lines → dated per-minute prices. Twilio's US pay-as-you-go voice rates as its
#: own volume-pricing article states them (support.twilio.com/hc/en-us/articles/223183328,
#: crawled copy read 2026-12-03, no rate date given): local numbers receive at
#: $0.0085/min, calls out $0.013/min, toll-free numbers receive at $0.022/min.
#: Before volume discounts and without the phone number's monthly fee. Override for your
#: account's rates.
TELEPHONY: PriceTable[TelephonyPrices] = PriceTable(
    {
        "twilio-us": (
            Dated(
                TelephonyPrices(0.0085, 0.013),
                _READ,
                _TWILIO + " (US local numbers)",
            ),
        ),
        "twilio-us-toll-free": (
            Dated(
                TelephonyPrices(0.022, 0.013),
                _READ,
                _TWILIO + " (US toll-free numbers)",
            ),
        ),
    }
)


@dataclass(frozen=True, slots=True)
class PriceBook:
    """All the price tables a cost meter reads; swap one with ``dataclasses.replace``."""

    realtime: PriceTable[ModelPrices] = REALTIME
    chat: PriceTable[ChatPrices] = CHAT
    stt: PriceTable[SttPrices] = STT
    tts: PriceTable[TtsPrices] = TTS
    telephony: PriceTable[TelephonyPrices] = TELEPHONY


#: The published list prices above.
DEFAULT_PRICE_BOOK = PriceBook()
