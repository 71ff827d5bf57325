"""End of turn: has the caller finished, and how long should the silence last?

The :class:`~parley.turns.TurnDetector` finds pauses; at the first short pause the
engine transcribes speculatively and asks the policy how much silence should end
*this* turn. One module per part:

- :mod:`~parley.endpointing.syntax` — does the transcript read finished;
- :mod:`~parley.endpointing.context` — is it a finished answer to what the agent asked;
- :mod:`~parley.endpointing.estimate` — a signal's opinion and how opinions combine;
- :mod:`~parley.endpointing.model` — :class:`EndOfTurn`: signals in, a wait out; the
  ``semantic_vad`` eagerness curves; a flow phase's :class:`PhasePolicy`;
- :mod:`~parley.endpointing.rule` — the first three-way rule (:func:`judge`) and
  :class:`EndpointPolicy`, which the engines hold (``mode`` picks rule or model).

Wiring (phase 2; all sans-I/O, nothing here awaits):

- per call: ``model = EndOfTurn(eagerness_config(eagerness))`` and the TurnDetector
  built with ``model.turn_config(turn_config)`` (its wait until a transcript is in is
  the model's ``pending_ms``, 1.5 s);
- at ``SpeechPaused``: transcribe ``signal.audio`` with
  :class:`~parley.providers.quick_whisper.QuickWhisperSTT` (``run_blocking``); when
  it is in (and no ``SpeechResumed`` came): ``d = model.decide(EndOfTurnInput(text,
  pause_ms, last_agent_text=<the agent's last reply as heard>, phase=<the flow
  phase's PhasePolicy or None>))`` then ``detector.set_end_of_turn_silence(d.wait_ms)``
  (it may return the ``TurnEnded`` at once); ``d.verdict``/``d.confidence``/
  ``d.reasons`` go to the turn metrics;
- ``audio_p_finished`` only if ``EndOfTurnConfig.audio_weight > 0`` (off by default):
  ``await SmartTurn().p_finished(signal.audio)`` alongside the STT;
- ``/v1/realtime`` (:mod:`parley.realtime_server.settings`): ``semantic_vad`` →
  ``eagerness_config(td.eagerness)``; ``server_vad`` → the model with the client's
  ``silence_duration_ms`` as its unsure and pending wait;
- a flow phase's ``turn_taking:`` → ``Engine.update(turn_taking=PhasePolicy)`` →
  :attr:`SpeechFrontEnd.phase <parley.engines.speech.SpeechFrontEnd.phase>`.

Measured on the held-out half of the turn-taking corpus (``bench/turns.py``: 54
pause utterances, 46 finished ones; Whisper in the loop on the audio clock;
Twilio-faithful 8 kHz µ-law audio; the resampler's 60 ms counted; two runs on a
shared, busy 2-core box, so ± a few points)::

    setting (STT)                     early cut-offs   finished delay p50 / p90
    acoustic 640 ms (no STT)              0.85           754 / 792 ms
    rule, today's default (Whisper)       0.70–0.76      649–719 / 1067 ms
    model (QuickWhisper)                  0.43–0.44      399–400 / 1310 ms
    model (full Whisper)                  0.35–0.37      630–709 / 1393 ms
    syntax only / context only (Quick)    0.46 / 0.32    408 / 1067 ms
    model + Smart Turn v3.2 (Quick)       0.59–0.63      406–426 / 490–525 ms
    eagerness low / high (Quick)          0.39 / 0.65    490 / 374 ms

The model cuts pause utterances about half as often as today's rule and answers
finished ones ~300 ms sooner; the faster transcript is what puts finished turns
at p50 ≤ 400 ms (with full Whisper the model waits ~300 ms longer, and cuts less
because its long pending wait holds until Whisper is done). Digits, phone numbers
and emails are no longer cut (0/18 held-out) thanks to the dialogue context. The
goal of ≤ 5 % cut-offs is NOT met: what is left is pauses after a prefix that is a
finished sentence as text — "I would like a large pizza with mushrooms." |
"olives", "I live at 123 Maple Street." | "apartment 4B", "Can you check my
balance?" | "my last payment" — which only prosody can tell, and Smart Turn,
trained on human voices, hears Piper's mid-sentence pauses as finished (it made
every setting worse here, so it stays off). The trade-off curve (grid in the
bench): a "surely finished" wait of 160 / 320 / 480 / 640 ms gives 43 / 41 / 41 /
37 % cut-offs at a finished p50 of 400 / 488 / 636 / 796 ms.
"""

from parley.endpointing.context import Expectation, context_estimate, expectation_from
from parley.endpointing.estimate import Estimate, combine
from parley.endpointing.model import (
    EAGERNESS,
    Decision,
    Eagerness,
    EndOfTurn,
    EndOfTurnConfig,
    EndOfTurnInput,
    PhasePolicy,
    Verdict,
    eagerness_config,
)
from parley.endpointing.rule import Completeness, EndpointConfig, EndpointPolicy, judge
from parley.endpointing.syntax import count_digits, syntax_estimate

__all__ = [
    "EAGERNESS",
    "Completeness",
    "Decision",
    "Eagerness",
    "EndOfTurn",
    "EndOfTurnConfig",
    "EndOfTurnInput",
    "EndpointConfig",
    "EndpointPolicy",
    "Estimate",
    "Expectation",
    "PhasePolicy",
    "Verdict",
    "combine",
    "context_estimate",
    "count_digits",
    "eagerness_config",
    "expectation_from",
    "judge",
    "syntax_estimate",
]
