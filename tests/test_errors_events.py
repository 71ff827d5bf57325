from __future__ import annotations

import dataclasses
import typing

import pytest

from parley import errors, events


def test_error_tree_says_who_is_at_fault() -> None:
    assert issubclass(errors.LocalProtocolError, errors.ProtocolError)
    assert issubclass(errors.RemoteProtocolError, errors.ProtocolError)
    for cls in (
        errors.ProtocolError,
        errors.ProviderError,
        errors.ConfigError,
        errors.AuthError,
        errors.RateLimited,
    ):
        assert issubclass(cls, errors.ParleyError)
    assert not issubclass(errors.RemoteProtocolError, errors.LocalProtocolError)


def test_protocol_error_carries_code_and_message() -> None:
    err = errors.RemoteProtocolError("media arrived before start", code="media_before_start")
    assert err.code == "media_before_start"
    assert "media arrived before start" in str(err)
    assert str(err).startswith("media_before_start")


def test_config_error_names_the_field() -> None:
    err = errors.ConfigError("must be positive", field="rate_limit_per_minute")
    assert err.field == "rate_limit_per_minute"
    assert "rate_limit_per_minute" in str(err)


def test_provider_and_rate_limit_details() -> None:
    assert errors.ProviderError("x", provider="openai", retryable=True).retryable
    assert errors.RateLimited("slow down", retry_after=2.5).retry_after == 2.5


def test_every_event_in_the_union_is_frozen() -> None:
    members = typing.get_args(events.Event)
    assert len(members) >= 14
    for cls in members:
        assert dataclasses.is_dataclass(cls)
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        assert params.frozen, cls


def test_events_cannot_be_mutated() -> None:
    ev = events.TextDelta(response_id="r1", text="hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.text = "changed"  # type: ignore[misc]


def test_usage_totals_and_sum() -> None:
    a = events.Usage(
        input_text_tokens=119,
        input_audio_tokens=13,
        cached_text_tokens=64,
        output_text_tokens=30,
        output_audio_tokens=91,
    )
    assert (a.input_tokens, a.output_tokens, a.total_tokens) == (132, 121, 253)
    b = a + a
    assert b.total_tokens == 506 and b.cached_text_tokens == 128
