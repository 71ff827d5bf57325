"""A flow phase's ``turn_taking``: validated with the flow, and it changes the end of
turn of the cascade engine it drives (the deterministic fakes: energy VAD, scripted
STT), from the initial phase on and across a phase change."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from parley.endpointing import EndOfTurn, EndOfTurnInput, Expectation, PhasePolicy
from parley.engines import CascadeEngine
from parley.errors import ConfigError
from parley.events import PhaseChanged, ResponseDone, Role, TranscriptFinal, TurnMetrics
from parley.flows import FlowConfig, FlowController, FlowEngine
from parley.testing.events import EventLog
from parley.testing.fakes import FakeLLM, FakeTTS, FakeVAD, silence, tone
from waits import WatchedSTT

RATE = 16000

CALLBACK = {"expect": "digits", "digits": 10, "label": "phone number", "eagerness": "low"}


def flow(turn_taking: dict[str, Any] | None = CALLBACK) -> FlowConfig:
    callback: dict[str, Any] = {
        "name": "callback",
        "instructions": "Ask for a callback number.",
        "next": ["chat"],
    }
    if turn_taking is not None:
        callback["turn_taking"] = turn_taking
    return FlowConfig.from_dict(
        {
            "goal": "Get a callback number.",
            "initial": "callback",
            "phases": [callback, {"name": "chat", "instructions": "Chat."}],
        }
    )


def test_turn_taking_is_read_into_the_phase_policy() -> None:
    phase = flow().phase("callback")
    assert phase.turn_taking == PhasePolicy(
        Expectation("digits", 10, "phone number"), eagerness="low"
    )
    assert flow().phase("chat").turn_taking is None
    bounded = flow({"eagerness": "high", "min_wait_ms": 200, "max_wait_ms": 900})
    assert bounded.phase("callback").turn_taking == PhasePolicy(None, "high", 200.0, 900.0)


@pytest.mark.parametrize(
    ("turn_taking", "says"),
    [
        ({"digits": 10}, "digits needs expect: digits"),
        ({"expect": "digits", "digits": 0}, "greater than or equal to 1"),
        ({"eagerness": "eager"}, "turn_taking.eagerness"),
        ({"min_wait_ms": 900, "max_wait_ms": 200}, "min_wait_ms is longer than max_wait_ms"),
        ({"wait": 100}, "turn_taking.wait"),
    ],
)
def test_bad_turn_taking_is_refused_naming_the_phase(
    turn_taking: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigError, match=says) as info:
        flow(turn_taking)
    assert info.value.field == "phase 'callback'"


def test_the_phase_changes_the_models_decision() -> None:
    model, policy = EndOfTurn(), flow().phase("callback").turn_taking
    text = "It's 555 123"  # six digits: no agent question says what is coming
    free = model.decide(EndOfTurnInput(text))
    held = model.decide(EndOfTurnInput(text, phase=policy))
    assert held.verdict == "incomplete" and held.wait_ms == 2016.0  # low eagerness' long wait
    assert held.wait_ms > free.wait_ms
    done = model.decide(EndOfTurnInput("It's 555 123 4567.", phase=policy))
    assert done.verdict == "complete" and done.wait_ms == 320.0


class Run(EventLog):
    engine: FlowEngine

    async def feed(self, pcm: bytes, *, chunk_ms: int = 20) -> None:
        step = 2 * RATE * chunk_ms // 1000
        for i in range(0, len(pcm), step):
            await self.engine.send_audio(pcm[i : i + step])
            await asyncio.sleep(0)  # no pacing: only lets the engine take the chunk


@asynccontextmanager
async def running(controller: FlowController, stt: WatchedSTT) -> AsyncIterator[Run]:
    engine = CascadeEngine(
        FakeVAD(RATE), stt, FakeLLM(["Thanks."]), FakeTTS(RATE, ms_per_char=1.0), tools=controller
    )
    run = Run(controller.attach(engine))
    async with asyncio.TaskGroup() as tg:
        tg.create_task(run.engine.run())
        tg.create_task(run.collect())
        yield run
        await run.engine.close()


async def read_out_a_number(run: Run, stt: WatchedSTT) -> None:
    """Digits, a 1.1 s pause, the rest of the digits, then silence."""
    await run.feed(silence(100) + tone(600) + silence(200))
    # The speculative transcript is in (it is judged before the next frame).
    await stt.watch.until(lambda: stt.returned == 1)
    await run.feed(silence(900) + tone(500) + silence(200))
    await stt.watch.until(lambda: stt.returned == 2)  # the next pause's transcript
    await run.feed(silence(2500))


def answered(run: Run, turns: int) -> bool:
    """``turns`` user turns transcribed, and the last one answered."""
    at = [i for i, e in enumerate(run.events) if isinstance(e, TranscriptFinal)]
    return len(at) == turns and any(isinstance(e, ResponseDone) for e in run.events[at[-1] :])


@pytest.mark.parametrize("phase", ["callback", "chat"])
async def test_a_phase_collecting_a_phone_number_waits_for_the_digits(phase: str) -> None:
    # The STT's runs: the speculation at the pause, then at the next pause what was
    # said since the turn began (the whole number, or the cut turn's rest).
    rest = "It's 555 123 4567." if phase == "callback" else "4567."
    stt = WatchedSTT(["It's 555 123", rest])
    controller = FlowController(flow())
    async with running(controller, stt) as run:
        if phase == "chat":  # the next phase has no turn_taking of its own
            assert (await controller.transition_to("chat"))["ok"]  # the engine is updated
        await read_out_a_number(run, stt)
        await run.until(lambda: answered(run, 1 if phase == "callback" else 2))
    finals = [t.text for t in run.of(TranscriptFinal) if t.role is Role.USER]
    metrics = run.of(TurnMetrics)
    if phase == "callback":
        # One turn: the pause after six of ten digits was not its end; the ten end it
        # after the low eagerness' short wait.
        assert finals == ["It's 555 123 4567."]
        assert metrics[0].extra["end_of_turn_wait_ms"] == 320.0
    else:
        # Today's rule: a trailing number waits 960 ms, so the 1.1 s pause cut the turn.
        assert finals == ["It's 555 123", "4567."]
        assert stt.calls[0] != stt.calls[1]  # the second turn's audio alone
        assert metrics[-1].extra["end_of_turn_wait_ms"] == 960.0  # it ends on a number too
        assert run.of(PhaseChanged) == [PhaseChanged("callback", "chat")]
