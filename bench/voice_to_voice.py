"""Voice-to-voice latency of the offline cascade: 20 spoken turns, real time.

A SimulatedCaller speaks each sentence (Piper speech, 20 ms frames at real-time
pace) into a Conversation running CascadeEngine(Silero, Whisper tiny.en,
EchoResponder, Piper), waits for the whole reply to play, then says the next.

voice-to-voice (caller side) = first reply audio received − the moment the last
audible frame of the caller's speech was sent. The split comes from the engine's
TurnMetrics: end-of-turn wait, STT, time from the confirmed turn to the
transcript, brain first token, TTS first byte.

Prints one JSON line per endpointing mode (``--endpointing``, default both, in
the order given, same process and warm models): ``acoustic`` ends the turn after
``end_of_turn_silence_ms`` of silence; ``transcript`` lets the speculative
transcript shorten or lengthen that wait (parley.endpointing); ``model`` is the
signal-combining EndOfTurn (the TurnDetector then waits its ``pending_ms`` until
the transcript is in; the cascade passes no dialogue context yet). ``--stt quick``
swaps Whisper for QuickWhisperSTT (the same model with a short encoder window). Reference:
Pipecat 1.14 with the same models measured p50 1.51 s on this machine (issue 3);
the goal is p50 ≤ 600 ms on 2 cores.

    .venv/bin/python bench/voice_to_voice.py [--turns 20] [--eot-ms 640]
        [--endpointing acoustic,transcript,model] [--spec-ms MS] [--stt whisper|quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from dataclasses import replace

import numpy as np

from parley.conversation import Conversation
from parley.endpointing import EndOfTurn, EndpointConfig
from parley.engines import CascadeConfig, CascadeEngine
from parley.events import Event, TurnMetrics
from parley.providers.piper import PiperTTS
from parley.providers.quick_whisper import QuickWhisperSTT
from parley.providers.responders import EchoResponder
from parley.providers.silero import SileroVAD
from parley.providers.whisper import WhisperSTT
from parley.testing.caller import SimulatedCaller
from parley.testing.transport import memory_transport_pair
from parley.turns import TurnConfig

SENTENCES = [
    "What time do you open tomorrow?",
    "I would like to book a table.",
    "Can you send me the invoice?",
    "My order has not arrived yet.",
    "Is the shop open on Sunday?",
    "Please cancel my subscription.",
    "How much does delivery cost?",
    "I need to change my address.",
    "Do you have this in blue?",
    "Can I speak to a person?",
    "The app keeps crashing on my phone.",
    "When will my refund be paid?",
    "I forgot my password again.",
    "Where is your nearest store?",
    "Can I pay by bank transfer?",
    "My card was charged twice.",
    "I want to upgrade my plan.",
    "Is there parking near you?",
    "Thank you, that was helpful.",
    "Goodbye and have a nice day.",
]


def pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(xs, q)), 1) if xs else None


async def main(
    turns: int, eot_ms: float | None, mode: str, spec_ms: float | None, stt_name: str = "whisper"
) -> dict[str, object]:
    stt: WhisperSTT | QuickWhisperSTT = QuickWhisperSTT() if stt_name == "quick" else WhisperSTT()
    vad, tts = SileroVAD(), PiperTTS()
    await asyncio.gather(vad.warmup(), stt.warmup(), tts.warmup())
    stream, peer = memory_transport_pair()
    turn = TurnConfig()
    if mode == "model":
        turn = EndOfTurn().turn_config(turn)
    if eot_ms is not None:
        turn = replace(turn, end_of_turn_silence_ms=eot_ms)
    if spec_ms is not None:
        turn = replace(turn, speculative_silence_ms=spec_ms)
    endpoint = EndpointConfig(mode=mode)  # type: ignore[arg-type]
    config = CascadeConfig(turn=turn, endpointing=endpoint)
    engine = CascadeEngine(vad, stt, EchoResponder(), tts, config)
    m: list[TurnMetrics] = []  # the engine's per-turn figures, as the call reports them

    async def on_event(_conv: Conversation, event: Event) -> None:
        if isinstance(event, TurnMetrics):
            m.append(event)

    conv = Conversation(stream, engine, on_event=on_event)
    sentences = (SENTENCES * (turns // len(SENTENCES) + 1))[:turns]
    v2v: list[float] = []
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(conv.run())
        async with SimulatedCaller(peer, tts, speed=1.0) as caller:
            await caller.prepare(*sentences)
            await caller.pause(500)
            for sentence in sentences:
                utt = await caller.say(sentence)
                reply = await asyncio.wait_for(caller.wait_for_reply(after=utt.speech_end_t), 30)
                assert reply.first_audio_t is not None
                v2v.append((reply.first_audio_t - utt.speech_end_t) * 1000)
                await asyncio.wait_for(caller.wait_quiet(600), 60)
    await task

    def field(name: str) -> list[float]:
        return [v for t in m if (v := getattr(t, name)) is not None]

    wait = [t.extra["stt_wait_ms"] for t in m if "stt_wait_ms" in t.extra]
    hits = [t.extra.get("speculative_stt_hit", 0.0) for t in m]
    waits = [t.extra["end_of_turn_wait_ms"] for t in m if "end_of_turn_wait_ms" in t.extra]
    runs = [t.extra.get("speculative_stt_runs", 0.0) for t in m]
    verdicts = [t.extra["endpoint_verdict"] for t in m if "endpoint_verdict" in t.extra]
    user = [t.text for t in conv.transcript if t.role.value == "user"]
    return {
        "bench": "voice_to_voice",
        "turns": len(v2v),
        "cpus": os.cpu_count(),
        "endpointing": mode,
        "stt": stt_name,
        "end_of_turn_silence_ms": turn.end_of_turn_silence_ms,
        "speculative_silence_ms": turn.speculative_silence_ms,
        "complete_wait_ms": endpoint.complete_wait_ms if mode == "transcript" else None,
        "model_short_ms": endpoint.model.short_ms if mode == "model" else None,
        "incomplete_wait_ms": endpoint.incomplete_wait_ms if mode == "transcript" else None,
        "eot_wait_in_force_p50_ms": pct(waits, 50),
        "judged_complete": sum(v == 1.0 for v in verdicts),
        "judged_incomplete": sum(v == -1.0 for v in verdicts),
        "speculative_stt_runs_per_turn": round(float(np.mean(runs)), 2) if runs else None,
        "v2v_p50_ms": pct(v2v, 50),
        "v2v_p90_ms": pct(v2v, 90),
        "engine_v2v_p50_ms": pct(field("voice_to_voice_ms"), 50),
        "engine_v2v_p90_ms": pct(field("voice_to_voice_ms"), 90),
        "end_of_turn_p50_ms": pct(field("end_of_turn_ms"), 50),
        "stt_p50_ms": pct(field("stt_ms"), 50),
        "stt_wait_after_turn_end_p50_ms": pct(wait, 50),
        "brain_first_token_p50_ms": pct(field("llm_first_token_ms"), 50),
        "tts_first_byte_p50_ms": pct(field("tts_first_byte_ms"), 50),
        "speculative_stt_hit_rate": round(float(np.mean(hits)), 2) if hits else None,
        "transcripts_exact": sum(
            _norm(a) == _norm(b) for a, b in zip(user, sentences, strict=False)
        ),
        # Per turn, to see where a p90 comes from (wait in force, verdict 1/0/-1).
        "v2v_ms_per_turn": [round(x) for x in v2v],
        "eot_wait_per_turn": [round(x) for x in waits],
        "verdict_per_turn": [t.extra.get("endpoint_verdict") for t in m],
        "stt_ms_per_turn": [round(t.stt_ms) if t.stt_ms is not None else None for t in m],
        "reference": {"name": "pipecat-1.14 same models", "v2v_p50_ms": 1510},
        "ratio_vs_reference": round(pct(v2v, 50) / 1510, 3) if v2v else None,  # type: ignore[operator]
    }


def _norm(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--eot-ms", type=float, default=None, help="end-of-turn silence")
    parser.add_argument("--spec-ms", type=float, default=None, help="speculative silence")
    parser.add_argument("--endpointing", default="acoustic,transcript")
    parser.add_argument("--stt", choices=("whisper", "quick"), default="whisper")
    args = parser.parse_args()
    for mode in args.endpointing.split(","):
        result = asyncio.run(main(args.turns, args.eot_ms, mode, args.spec_ms, args.stt))
        print(json.dumps(result), flush=True)
