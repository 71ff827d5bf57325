"""The price table and the cost formula against hand computations of recorded usage
blocks (protocols.md §1.8, §1.9, §6)."""

from __future__ import annotations

import json

import pytest

from parley.errors import ConfigError
from parley.events import Usage
from parley.metrics import PRICES, ModelPrices, cost_usd, prices_for
from parley.protocols.openai_realtime import ResponseDone, parse_server_event

# The GA spec's response.done example (real ids; openapi.yaml x-oaiMeta), field for field.
GA_RESPONSE_DONE = json.dumps(
    {
        "type": "response.done",
        "event_id": "event_CCXHxcMy86rrKhBLDdqCh",
        "response": {
            "object": "realtime.response",
            "id": "resp_CCXHw0UJld10EzIUXQCNh",
            "status": "completed",
            "status_details": None,
            "output": [
                {
                    "id": "item_CCXHwGjjDUfOXbiySlK7i",
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {
                            "type": "output_audio",
                            "transcript": "Loud and clear! I can hear you perfectly. "
                            "How can I help you today?",
                        }
                    ],
                }
            ],
            "conversation_id": "conv_CCXHsurMKcaVxIZvaCI5m",
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}},
            "usage": {
                "total_tokens": 253,
                "input_tokens": 132,
                "output_tokens": 121,
                "input_token_details": {
                    "text_tokens": 119,
                    "audio_tokens": 13,
                    "image_tokens": 0,
                    "cached_tokens": 64,
                    "cached_tokens_details": {
                        "text_tokens": 64,
                        "audio_tokens": 0,
                        "image_tokens": 0,
                    },
                },
                "output_token_details": {"text_tokens": 30, "audio_tokens": 91},
            },
            "metadata": None,
        },
    }
)

# The real Dec 2024 usage block (community.openai.com/t/…/1060242, protocols.md §6).
BETA_RESPONSE_DONE = json.dumps(
    {
        "type": "response.done",
        "event_id": "event_1",
        "response": {
            "id": "resp_1",
            "object": "realtime.response",
            "status": "completed",
            "usage": {
                "total_tokens": 821,
                "input_tokens": 789,
                "output_tokens": 32,
                "input_token_details": {
                    "text_tokens": 313,
                    "audio_tokens": 476,
                    "cached_tokens": 640,
                    "cached_tokens_details": {"text_tokens": 256, "audio_tokens": 384},
                },
                "output_token_details": {"text_tokens": 9, "audio_tokens": 23},
            },
        },
    }
)


def usage_of(frame: str) -> Usage:
    event = parse_server_event(frame)
    assert isinstance(event, ResponseDone)
    usage = event.parley_usage()
    assert usage is not None
    return usage


def test_ga_example_block_on_gpt_realtime() -> None:
    usage = usage_of(GA_RESPONSE_DONE)
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (132, 121, 253)
    # By hand: 55 uncached text × $4 + 64 cached × $0.40 + 13 audio × $32
    #          + 30 text out × $16 + 91 audio out × $64 = 6965.6 per 1M.
    assert cost_usd(usage, PRICES["gpt-realtime"]) == pytest.approx(0.0069656, rel=1e-12)
    # gpt-realtime-2 bills text output at $24: +30 × 8 = 7205.6 per 1M.
    assert cost_usd(usage, PRICES["gpt-realtime-2"]) == pytest.approx(0.0072056, rel=1e-12)


def test_beta_era_block_with_cached_audio() -> None:
    usage = usage_of(BETA_RESPONSE_DONE)
    assert usage.cached_text_tokens == 256 and usage.cached_audio_tokens == 384
    # gpt-4o-realtime-preview (2024-12-17): 57×5 + 256×2.5 + 92×40 + 384×2.5 + 9×20 + 23×80
    preview = prices_for("gpt-4o-realtime-preview-2024-12-17")
    assert preview is not None
    assert cost_usd(usage, preview) == pytest.approx(0.007585, rel=1e-12)
    # The launch snapshot charged $100/$20/$200 for audio: 57×5 + 256×2.5 + 92×100
    # + 384×20 + 9×20 + 23×200 = 22585.
    launch = prices_for("gpt-4o-realtime-preview-2024-10-01")
    assert launch is not None
    assert cost_usd(usage, launch) == pytest.approx(0.022585, rel=1e-12)
    # gpt-realtime-2.1-mini: text cached $0.06 differs from audio cached $0.30.
    mini = prices_for("gpt-realtime-2.1-mini")
    assert mini is not None
    by_hand = 57 * 0.60 + 256 * 0.06 + 92 * 10 + 384 * 0.30 + 9 * 2.40 + 23 * 20
    assert cost_usd(usage, mini) == pytest.approx(by_hand / 1e6, rel=1e-12)


def test_costs_add_up_per_conversation() -> None:
    a, b = usage_of(GA_RESPONSE_DONE), usage_of(BETA_RESPONSE_DONE)
    p = PRICES["gpt-realtime"]
    assert cost_usd(a + b, p) == pytest.approx(cost_usd(a, p) + cost_usd(b, p), rel=1e-12)


def test_snapshot_names_resolve_to_their_rows() -> None:
    assert prices_for("gpt-realtime-2025-08-28") is PRICES["gpt-realtime"]
    assert prices_for("gpt-4o-realtime-preview-2025-06-03") == PRICES["gpt-4o-realtime-preview"]
    assert prices_for("gpt-4o-mini-realtime-preview-2024-12-17") == ModelPrices(
        0.60, 0.30, 2.40, 10.00, 0.30, 20.00
    )
    assert prices_for("gpt-realtime-1.5") is PRICES["gpt-realtime-1.5"]
    # Unknown models have no price rather than a wrong one.
    assert prices_for("gpt-realtime-mini-2025-10-06") is None
    assert prices_for("my-local-model") is None


def test_image_tokens_need_an_image_price() -> None:
    usage = Usage(input_image_tokens=100, cached_image_tokens=40)
    assert cost_usd(usage, PRICES["gpt-realtime"]) == pytest.approx(
        (60 * 5.00 + 40 * 0.50) / 1e6, rel=1e-12
    )
    with pytest.raises(ConfigError):
        cost_usd(usage, PRICES["gpt-realtime-2"])
