"""``VoiceChatEngine``: the VoiceChatEngine document's API, over :class:`VoiceClient`.

A thin layer, not a second client: every call goes to one
:class:`~parley.client.voice.VoiceClient` (``engine.client``), which does the work —
the Realtime session, devices, VAD, playback, metrics. What this module adds is the
document's shape where it differs from Parley's typed one:

================================  ===================================================
the document                      Parley
================================  ===================================================
``VoiceChatEngine(api_key=…)``,   ``VoiceClient(VoiceEngineConfig(api_key=…))``; any
``VoiceEngine(…)``                config field is a keyword here too
``VoiceEngine.create_simple()``   the same, with the defaults
``await start_listening()``       ``VoiceClient.start_listening()`` (it starts at once;
                                  awaiting what it returns is optional)
``on_response_done = lambda: …``  a callback taking no argument is called without the
                                  :class:`ResponseInfo`
``get_metrics()`` → ``dict``      ``VoiceClient.get_metrics()`` → :class:`VoiceMetrics`
``await get_usage()``             ``VoiceClient.get_usage()`` → :class:`Usage`
``await estimate_cost()``         ``VoiceClient.cost_breakdown()`` →
                                  :class:`~parley.metrics.cost.CostBreakdown` (``.total``
                                  in USD); ``VoiceClient.estimate_cost()`` is the float
``on_function_call``              runs the functions declared with :meth:`add_function`
                                  (or ``tools=``): ``(name, arguments) → result``
================================  ===================================================

Where the conversation goes: ``mode="fast"`` is a Realtime API (OpenAI's, or the one
``PARLEY_REALTIME_URL`` / ``OPENAI_BASE_URL`` name — ``parley realtime-server`` offline);
``mode="big"`` is Parley's cascade lane (:mod:`parley.client.lane`). Microphone and
speaker: the sound card, or ``PARLEY_MICROPHONE`` / ``PARLEY_SPEAKER``
(:mod:`parley.client.devices`). ``docs/seeds.md`` maps every name of the document.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Generator
from types import TracebackType
from typing import Any, Self

from parley.errors import ConfigError
from parley.events import Usage
from parley.metrics.cost import CostBreakdown
from parley.providers.seams import ToolSpec

from .devices import AudioSink, AudioSource
from .voice import Callback, ResponseInfo, VoiceClient
from .voice_config import Mode, VoiceEngineConfig

__all__ = ["VoiceChatEngine", "VoiceEngine", "VoiceEngineConfig"]

_FIELDS = tuple(f.name for f in dataclasses.fields(VoiceEngineConfig))


class _Started:
    """What :meth:`VoiceChatEngine.start_listening` returns: listening has started;
    ``await`` it or not."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        yield from ()


def _takes_an_argument(callback: Callback) -> bool:
    try:
        params = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: give it the argument
        return True
    positional = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )
    return any(p.kind in positional for p in params)


def _done_callback(callback: Callback) -> Callback:
    """The document's ``on_response_done`` takes nothing; Parley's takes the
    :class:`ResponseInfo`. Both work."""
    if _takes_an_argument(callback):
        return callback

    def call(info: ResponseInfo) -> object:
        return callback()

    return call


class _Forwarded:
    """An attribute callback of the document, set on the client it drives (the user's
    own function is what reading it gives back)."""

    def __init__(self, adapt: Callback | None = None) -> None:
        self._adapt = adapt
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, engine: VoiceChatEngine | None, owner: type | None = None) -> Any:
        return None if engine is None else engine._callbacks.get(self._name)

    def __set__(self, engine: VoiceChatEngine, callback: Callback | None) -> None:
        engine._callbacks[self._name] = callback
        forwarded = callback
        if callback is not None and self._adapt is not None:
            forwarded = self._adapt(callback)
        setattr(engine.client, self._name, forwarded)


class VoiceChatEngine:
    """The document's engine (see the module docstring).

    ``VoiceChatEngine(api_key=…, mode="fast")``, ``VoiceChatEngine(config=VoiceEngineConfig(…))``
    or both (the keywords override the config's fields). ``microphone`` / ``speaker``:
    devices (:class:`~parley.client.devices.AudioSource` / ``AudioSink``) instead of the
    ones the environment or the sound card give.
    """

    on_audio_response = _Forwarded()  # (pcm: bytes) — PCM16 mono at config.sample_rate
    on_text_response = _Forwarded()  # (text: str) — the reply's text as it streams
    on_transcript = _Forwarded()  # (role: str, text: str) — final transcripts (Parley's)
    on_error = _Forwarded()  # (error: ErrorEvent)
    on_response_done = _Forwarded(_done_callback)  # () or (info: ResponseInfo)
    on_function_call = _Forwarded()  # (name: str, arguments: dict) → result

    def __init__(
        self,
        api_key: str | None = None,
        mode: Mode | None = None,
        *,
        config: VoiceEngineConfig | None = None,
        microphone: AudioSource | None = None,
        speaker: AudioSink | None = None,
        **settings: Any,
    ) -> None:
        if api_key is not None:
            settings["api_key"] = api_key
        if mode is not None:
            settings["mode"] = mode
        unknown = sorted(set(settings) - set(_FIELDS))
        if unknown:
            raise ConfigError(
                f"unknown setting {', '.join(unknown)}; VoiceEngineConfig has: "
                + ", ".join(_FIELDS),
                field=unknown[0],
            )
        cfg = dataclasses.replace(config, **settings) if config else VoiceEngineConfig(**settings)
        self._callbacks: dict[str, Callback | None] = {}
        self._client = VoiceClient(cfg, microphone=microphone, speaker=speaker)

    @classmethod
    def create_simple(cls, api_key: str | None = None, **settings: Any) -> Self:
        """An engine with the defaults (fast mode, the sound card or the environment's
        devices)."""
        return cls(api_key, **settings)

    # -- what it is ----------------------------------------------------------------------

    @property
    def client(self) -> VoiceClient:
        """The typed client doing the work."""
        return self._client

    @property
    def config(self) -> VoiceEngineConfig:
        return self._client.config

    @property
    def is_connected(self) -> bool:
        return self._client.connected

    @property
    def is_listening(self) -> bool:
        return self._client.listening

    def add_function(self, spec: ToolSpec) -> None:
        """Offer a function to the model (before ``connect``); ``on_function_call``
        runs it. The document never declares its functions: Parley must know them."""
        if self.is_connected:
            raise ConfigError("declare functions before connect()", field="tools")
        cfg = self._client.config
        self._client.config = dataclasses.replace(cfg, tools=(*cfg.tools, spec))

    # -- lifecycle -----------------------------------------------------------------------

    async def connect(self, retry_count: int = 3) -> None:
        """Open the session (``1 + retry_count`` attempts, exponential backoff)."""
        await self._client.connect(retry_count=retry_count)

    async def disconnect(self) -> None:
        await self._client.disconnect()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    # -- input ---------------------------------------------------------------------------

    def start_listening(self) -> _Started:
        """Start streaming the microphone; it runs in the background at once, so
        ``await engine.start_listening()`` and ``engine.start_listening()`` both work."""
        self._client.start_listening()
        return _Started()

    async def stop_listening(self) -> None:
        await self._client.stop_listening()

    async def send_text(self, text: str) -> None:
        await self._client.send_text(text)

    async def send_audio(self, audio_bytes: bytes) -> None:
        """PCM16 mono at ``config.sample_rate``, as if from the microphone."""
        await self._client.send_audio(audio_bytes)

    async def interrupt(self) -> None:
        await self._client.interrupt()

    # -- results -------------------------------------------------------------------------

    def get_metrics(self) -> dict[str, Any]:
        """The document's nested view of :meth:`VoiceClient.get_metrics`: ``uptime`` in
        seconds, ``audio.capture_rate`` in microphone chunks per second, latencies in ms."""
        m = self._client.get_metrics()
        cfg = self._client.config
        return {
            "mode": cfg.mode,
            "serving": m.serving,
            "switches": m.switches,
            "connected": self.is_connected,
            "listening": self.is_listening,
            "uptime": m.uptime_s,
            "audio": {
                "capture_rate": m.capture_rate,
                "chunks_captured": m.chunks_captured,
                "chunk_ms": cfg.latency.chunk_ms,
                "sent_ms": m.audio_sent_ms,
                "received_ms": m.audio_received_ms,
            },
            "latency": {
                "turns_ms": list(m.latency_ms),
                "median_ms": m.median_latency_ms,
                "measured_from": [t.reference for t in m.turns],
            },
            "responses": m.responses,
            "interruptions": m.interruptions,
            "errors": m.errors,
            "function_calls": m.function_calls,
            "reconnects": m.reconnects,
        }

    async def get_usage(self) -> Usage:
        """Tokens of every response so far (``.total_tokens``, per modality)."""
        return self._client.get_usage()

    async def estimate_cost(self) -> CostBreakdown:
        """USD so far, per part; ``.total`` is the sum (``.unpriced`` names any model
        without a known price, whose share is then missing)."""
        return self._client.cost_breakdown()


#: The document uses both names.
VoiceEngine = VoiceChatEngine
