"""The ``parley`` command: ``serve``, ``call``, ``talk``, ``local``, ``realtime-server``
and ``version`` (typer + rich).

``parley serve`` builds the settings (YAML file < environment < flags, see
:mod:`parley.config`), says which engine and brain are live and why, loads and
warms the local models before it accepts a call, and runs uvicorn on the
:class:`~parley.app.Parley` app. ``parley call`` is a Twilio caller in a box: it
speaks a sentence with Piper (or plays a WAV) into a ``/twilio/stream`` URL at
real-time pace, transcribes what the agent said back with Whisper, and prints it
with the latency of each turn.

Exit codes: 0 success, 1 the call failed (no connection, refused, no reply),
2 invalid settings or arguments (the message names the field).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

import parley
from parley.config import EngineKind, ParleySettings, load_settings
from parley.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from parley.app import Parley
    from parley.client import CallResult
    from parley.engines.factory import EngineFactory
    from parley.providers.registry import ProviderKind

__all__ = [
    "DEFAULT_APP_FACTORY",
    "app",
    "brain_description",
    "call",
    "default_asgi",
    "engine_description",
    "local",
    "main",
    "realtime_server",
    "serve",
    "talk",
    "version",
]

app = typer.Typer(
    name="parley",
    help="Parley: real-time AI voice conversations, offline by default.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _console(*, stderr: bool = False) -> Console:
    # Made per command, not at import: CliRunner swaps sys.stdout per invocation.
    return Console(stderr=stderr, highlight=False)


def _fail(message: str, *, code: int) -> typer.Exit:
    _console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def _config_error(exc: ConfigError) -> typer.Exit:
    return _fail(f"invalid settings: {exc}", code=2)


# ---------------------------------------------------------------------------- version


@app.command()
def version() -> None:
    """Print Parley's version."""
    typer.echo(f"parley {parley.__version__}")


# ------------------------------------------------------------------------------ serve


def _factory(settings: ParleySettings) -> EngineFactory:
    from parley.config import engine_spec, provider_options
    from parley.engines.factory import EngineFactory
    from parley.providers.registry import ProviderRegistry

    return EngineFactory(engine_spec(settings), ProviderRegistry(provider_options(settings)))


def engine_description(settings: ParleySettings) -> str:
    """One line: which engine is live and what it is made of (what is configured)."""
    choice = _factory(settings).describe()
    if settings.engine is EngineKind.LOOPBACK:
        return "loopback — each caller's audio straight back (transport and load testing)"
    if settings.engine is EngineKind.REALTIME:
        return f"realtime — speech to speech: {choice.reason}"
    return f"local — cascade: {choice.reason}"


def brain_description(settings: ParleySettings) -> str:
    """One line: which brain answers and why that one."""
    if settings.engine is EngineKind.LOOPBACK:
        return "none — the loopback engine does not think"
    if settings.engine is EngineKind.REALTIME:
        return f"{settings.realtime_model} — the realtime model answers (no separate LLM)"
    kind, _, model = settings.brain.partition(":")
    if kind == "echo":
        return (
            'echo — no LLM configured, so it answers "You said: …" '
            "(use --brain openai:MODEL or anthropic:MODEL for an assistant)"
        )
    if kind == "template":
        source = settings.template_file or "the built-in templates"
        return f"template — canned answers from {source} (no LLM configured)"
    if kind == "openai":
        where = settings.llm_base_url or "api.openai.com"
        return f"openai:{model} — an OpenAI-compatible chat endpoint at {where}"
    where = settings.llm_base_url or "api.anthropic.com"
    return f"anthropic:{model} — Anthropic Messages API at {where}"


def _banner(settings: ParleySettings) -> Panel:
    host = settings.host
    shown = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
    base = f"http://{shown}:{settings.port}"
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", justify="right")
    table.add_column()
    table.add_row("talk page", f"{base}/")
    table.add_row("engine", engine_description(settings))
    table.add_row("brain", brain_description(settings))
    for warning in _factory(settings).describe().warnings:
        table.add_row("", f"[yellow]{escape(warning)}[/]")
    table.add_row(
        "twilio", f"POST {base}/twilio/voice · ws://{shown}:{settings.port}/twilio/stream"
    )
    if settings.twilio_auth_token is None:
        table.add_row(
            "",
            "[yellow]Twilio requests are NOT authenticated[/] "
            "(set PARLEY_TWILIO_AUTH_TOKEN to check X-Twilio-Signature)",
        )
    table.add_row("REST", f"{base}/conversations · API docs {base}/docs")
    table.add_row("workers", str(settings.workers))
    return Panel(table, title=f"parley {parley.__version__}", expand=False)


async def _warm_with_progress(parley_app: Parley, console: Console) -> None:
    """Load and warm the very models the app's engine factory will hand to calls."""
    board = parley_app.switchboard
    if parley_app.settings.engine is not EngineKind.LOCAL or board.setup.engine_maker:
        return
    spec, providers = board.factory.spec, board.factory.providers
    parts: dict[ProviderKind, str] = {"vad": spec.vad, "stt": spec.stt, "tts": spec.tts}
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        names = {kind: providers.describe(kind, text) for kind, text in parts.items()}
        tasks = {
            kind: progress.add_task(f"waiting {name}", total=1) for kind, name in names.items()
        }
        for kind, text in parts.items():
            progress.update(tasks[kind], description=f"loading {names[kind]}")
            await providers.warmup({kind: text})
            progress.update(tasks[kind], completed=1, description=f"[green]ready[/] {names[kind]}")


def default_asgi() -> FastAPI:
    """A Parley app configured only by settings (environment, ``PARLEY_CONFIG``): what
    each worker process builds with ``--workers N`` (its own registry and switchboard;
    the model files are shared through the OS page cache)."""
    from parley.app import Parley

    return Parley().asgi


#: Import string of :func:`default_asgi`, for ``workers > 1`` without a user module.
DEFAULT_APP_FACTORY = "parley.cli:default_asgi"


def _export_for_workers(config: Path | None, overrides: dict[str, Any]) -> None:
    """Hand the flags to worker processes the way they read settings: ``PARLEY_*``.

    Each worker builds its app from the environment (:func:`default_asgi`);
    flags outrank the environment, so overwriting the variables keeps the precedence.
    """
    if config is not None:
        os.environ["PARLEY_CONFIG"] = str(config.resolve())
    for name, value in overrides.items():
        os.environ[f"PARLEY_{name.upper()}"] = str(value)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    engine: Annotated[
        EngineKind | None,
        typer.Option(help="local (offline cascade, default), loopback or realtime."),
    ] = None,
    brain: Annotated[
        str | None,
        typer.Option(help="echo | template | openai:MODEL | anthropic:MODEL (default echo)."),
    ] = None,
    llm_base_url: Annotated[
        str | None, typer.Option(help="Base URL of an OpenAI-compatible or Anthropic API.")
    ] = None,
    stt: Annotated[
        str | None, typer.Option(help="whisper:tiny.en (default) | openai:MODEL.")
    ] = None,
    tts: Annotated[str | None, typer.Option(help="piper:joe (default) | openai:MODEL.")] = None,
    vad: Annotated[str | None, typer.Option(help="silero (default) | webrtc | energy.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML settings file (flags and PARLEY_* env win).")
    ] = None,
) -> None:
    """Run the Parley server: talk page, Twilio endpoints and REST API."""
    from parley.app import Parley

    flags = {
        "host": host,
        "port": port,
        "engine": engine.value if engine is not None else None,
        "brain": brain,
        "llm_base_url": llm_base_url,
        "stt": stt,
        "tts": tts,
        "vad": vad,
        "workers": workers,
    }
    overrides = {k: v for k, v in flags.items() if v is not None}
    try:
        settings = load_settings(config, overrides)
        parley_app = Parley(settings=settings)  # checks engine, brain and voice now
    except ConfigError as exc:
        raise _config_error(exc) from None
    console = _console()
    console.print(_banner(settings))
    if settings.workers > 1:
        # Each worker loads and warms its own models before it serves (app lifespan).
        _export_for_workers(config, overrides)
        parley_app.run(app_import=DEFAULT_APP_FACTORY)
        return
    asyncio.run(_warm_with_progress(parley_app, console))
    parley_app.run()


# ------------------------------------------------------------------------------- call


def _to_ulaw_8k(pcm: bytes, rate: int) -> bytes:
    from parley.audio import StreamResampler, ulaw_encode

    if rate != 8000:
        resampler = StreamResampler(rate, 8000)
        pcm = resampler.process(pcm) + resampler.flush()
    return ulaw_encode(pcm)


def _speak(texts: list[str]) -> list[bytes]:
    from parley.providers.piper import PiperTTS

    voice = PiperTTS(noise_scale=0.0, noise_w_scale=0.0)  # same sentence, same call
    return [_to_ulaw_8k(voice.synthesize_blocking(text), voice.sample_rate) for text in texts]


def _load_wavs(paths: list[Path]) -> list[bytes]:
    from parley.audio import read_wav, stereo_to_mono
    from parley.errors import RemoteProtocolError

    out = []
    for path in paths:
        try:
            pcm, rate, channels = read_wav(path)
        except (OSError, RemoteProtocolError) as exc:
            raise _fail(f"cannot read {path}: {exc}", code=2) from None
        if channels == 2:
            pcm = stereo_to_mono(pcm)
        elif channels != 1:
            raise _fail(f"{path}: {channels} channels; use a mono or stereo WAV", code=2)
        out.append(_to_ulaw_8k(pcm, rate))
    return out


async def _transcribe(result: CallResult) -> list[str]:
    from parley.audio import StreamResampler, ulaw_decode
    from parley.providers.whisper import WhisperSTT

    stt = WhisperSTT()
    texts = []
    for turn in result.turns:
        if not turn.reply_ulaw:
            texts.append("")
            continue
        resampler = StreamResampler(8000, stt.sample_rate)
        pcm = ulaw_decode(bytes(turn.reply_ulaw))
        transcript = await stt.transcribe(resampler.process(pcm) + resampler.flush())
        texts.append(transcript.text.strip())
    return texts


@app.command()
def call(
    url: Annotated[str, typer.Argument(help="ws:// or wss:// URL of a /twilio/stream endpoint.")],
    say: Annotated[
        list[str] | None,
        typer.Option("--say", help="Sentence to speak (Piper); repeat for several turns."),
    ] = None,
    wav: Annotated[
        list[Path] | None,
        typer.Option("--wav", help="WAV file to play; repeat for several turns."),
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="One-time token, sent as customParameters.token.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 60.0,
    reply_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for a reply after each utterance.")
    ] = 20.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON line instead of a table.")
    ] = False,
) -> None:
    """Call a Twilio Media Streams endpoint as a phone would, and print the agent's reply."""
    from parley.client import CallFailed, place_call, trim_trailing_silence

    if bool(say) == bool(wav):
        raise _fail("give either --say TEXT or --wav FILE (one or more times)", code=2)
    if not url.startswith(("ws://", "wss://")):
        raise _fail(f"URL must start with ws:// or wss://, not {url!r}", code=2)
    console = _console(stderr=as_json)
    with console.status("preparing speech…"):
        texts = list(say or [])
        utterances = _speak(texts) if texts else _load_wavs(list(wav or []))
        utterances = [trim_trailing_silence(u) for u in utterances]
    if not any(utterances):
        raise _fail("the audio to send is silent", code=2)

    async def run() -> CallResult:
        async with asyncio.timeout(timeout):
            return await place_call(url, utterances, token=token, reply_timeout_s=reply_timeout)

    started = time.monotonic()
    try:
        with console.status(f"calling {url} …"):
            result = asyncio.run(run())
    except CallFailed as exc:
        raise _fail(str(exc), code=1) from None
    except TimeoutError:
        raise _fail(f"the call did not finish within {timeout:g} s", code=1) from None
    call_s = time.monotonic() - started
    with console.status("transcribing the agent's replies (Whisper)…"):
        heard = asyncio.run(_transcribe(result))

    problems = _problems(result)
    if as_json:
        typer.echo(json.dumps(_as_json(result, texts, heard, call_s, problems)))
    else:
        _print_call(console, result, texts, heard, call_s)
        for problem in problems:
            _console(stderr=True).print(f"[bold red]error:[/] {escape(problem)}", soft_wrap=True)
    if problems:
        raise typer.Exit(1)


def _problems(result: CallResult) -> list[str]:
    out = []
    if result.protocol_error is not None:
        out.append(f"the server sent a malformed frame: {result.protocol_error}")
    if result.close_code is not None:
        reason = f": {result.close_reason}" if result.close_reason else ""
        out.append(f"the server closed the call (code {result.close_code}{reason})")
    missing = [i + 1 for i, t in enumerate(result.turns) if t.latency_ms is None]
    if missing or not result.turns:
        out.append(f"no reply audio for turn(s) {missing or [1]}")
    return out


def _as_json(
    result: CallResult, said: list[str], heard: list[str], call_s: float, problems: list[str]
) -> dict[str, Any]:
    return {
        "stream_sid": result.stream_sid,
        "ok": not problems,
        "problems": problems,
        "call_s": round(call_s, 3),
        "frames_sent": result.frames_sent,
        "marks_received": result.marks_received,
        "marks_echoed": result.marks_echoed,
        "turns": [
            {
                "said": said[i] if i < len(said) else None,
                "agent": heard[i] if i < len(heard) else "",
                "latency_ms": None if t.latency_ms is None else round(t.latency_ms, 1),
                "speech_ms": round(t.speech_ms),
                "reply_ms": round(t.reply_ms),
                "clears": t.clears,
            }
            for i, t in enumerate(result.turns)
        ],
    }


def _print_call(
    console: Console, result: CallResult, said: list[str], heard: list[str], call_s: float
) -> None:
    # Plain lines with soft wrapping: a transcript stays on one line, easy to grep.
    for i, turn in enumerate(result.turns):
        caller = said[i] if i < len(said) else f"(WAV, {turn.speech_ms / 1000:.1f} s)"
        agent = (heard[i] if i < len(heard) else "") or "(no reply)"
        latency = "—" if turn.latency_ms is None else f"{turn.latency_ms:.0f} ms"
        console.print(f"[bold]turn {i + 1}[/]", soft_wrap=True)
        console.print(f"  [cyan]caller:[/] {escape(caller)}", soft_wrap=True)
        console.print(f"  [green]agent:[/]  {escape(agent)}", soft_wrap=True)
        console.print(
            f"  latency {latency} (end of speech → first reply audio), "
            f"reply {turn.reply_ms / 1000:.1f} s" + (", cleared" if turn.clears else ""),
            soft_wrap=True,
        )
    console.print(
        f"call {result.stream_sid}: {call_s:.1f} s, {result.frames_sent} frames sent, "
        f"marks echoed {result.marks_echoed}/{result.marks_received}",
        soft_wrap=True,
    )


# ------------------------------------------------------------------ realtime and talk


@app.command("realtime-server")
def realtime_server(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8001,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="PARLEY_REALTIME_SERVER_API_KEY",
            help="Key clients must send (Authorization: Bearer); unset = open.",
        ),
    ] = None,
    brain: Annotated[
        str | None,
        typer.Option(help="echo | template | openai:MODEL | anthropic:MODEL (default echo)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML settings file (flags and PARLEY_* env win).")
    ] = None,
) -> None:
    """Serve only the OpenAI-Realtime-compatible endpoint at /v1/realtime, on the
    configured cascade (offline by default)."""
    import uvicorn

    from parley.app import Parley
    from parley.server.app import create_app

    overrides: dict[str, Any] = {"host": host, "port": port}
    if api_key:
        overrides["realtime_server_api_key"] = api_key
    if brain:
        overrides["brain"] = brain
    try:
        parley_app = Parley(settings=load_settings(config, overrides))
    except ConfigError as exc:
        raise _config_error(exc) from None
    console = _console()
    console.print(
        f"Realtime API (GA protocol) at ws://{host}:{port}/v1/realtime — "
        f"{escape(parley_app.engine_choice().reason)}"
        + ("" if api_key else " — [yellow]no API key required[/yellow]")
    )
    from parley.server.uvicorn_ws import WS_PROTOCOL

    try:
        if not api_key:  # a key guards /v1/realtime, the only route served here
            parley_app.switchboard.security.check_exposure(host)
    except ConfigError as exc:
        raise _config_error(exc) from None
    uvicorn.run(
        create_app(parley_app.switchboard, endpoints={"realtime"}, rest=False),
        host=host,
        port=port,
        ws=WS_PROTOCOL,
        log_level="warning",
    )


@app.command()
def talk(
    url: Annotated[
        str | None,
        typer.Argument(
            help="A Parley server (http://host:port) or a Realtime URL; "
            "default: OpenAI's Realtime API."
        ),
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="API key (else from the env).")] = None,
    model: Annotated[str | None, typer.Option(help="Realtime model.")] = None,
    voice: Annotated[str | None, typer.Option(help="Voice of the agent.")] = None,
    latency_mode: Annotated[
        str, typer.Option(help="low | balanced | quality (chunk size, jitter buffer).")
    ] = "balanced",
    wav: Annotated[
        Path | None, typer.Option(help="Speak this WAV instead of the microphone.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the agent's audio here instead of playing it.")
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    input_device: Annotated[
        str | None, typer.Option(help="Microphone: a PortAudio device name or index.")
    ] = None,
    output_device: Annotated[
        str | None, typer.Option(help="Speaker: a PortAudio device name or index.")
    ] = None,
) -> None:
    """Talk to a voice agent from the terminal (microphone and speaker, or WAV files)."""
    from parley.client.talk import talk as run_talk
    from parley.errors import ParleyError

    if latency_mode not in {"low", "balanced", "quality"}:
        raise _fail(
            f"--latency-mode must be low, balanced or quality, not {latency_mode!r}", code=2
        )
    try:
        metrics = asyncio.run(
            run_talk(
                url,
                api_key=api_key,
                model=model,
                voice=voice,
                latency_mode=latency_mode,  # type: ignore[arg-type]
                input_wav=wav,
                output_wav=out,
                duration_s=duration,
                input_device=_device(input_device),
                output_device=_device(output_device),
            )
        )
    except ConfigError as exc:
        raise _config_error(exc) from None
    except ParleyError as exc:
        raise _fail(str(exc), code=1) from None  # _fail says "error:" itself
    except KeyboardInterrupt:
        return
    if metrics.median_latency_ms is not None:
        _console().print(f"median voice-to-voice: {metrics.median_latency_ms:.0f} ms")


@app.command()
def local(
    brain: Annotated[
        str | None,
        typer.Option(help="echo | template | openai:MODEL | anthropic:MODEL (default echo)."),
    ] = None,
    stt: Annotated[
        str | None, typer.Option(help="whisper:tiny.en (default) | openai:MODEL.")
    ] = None,
    tts: Annotated[str | None, typer.Option(help="piper:joe (default) | openai:MODEL.")] = None,
    vad: Annotated[str | None, typer.Option(help="silero (default) | webrtc | energy.")] = None,
    input_device: Annotated[
        str | None, typer.Option(help="Microphone: a PortAudio device name or index.")
    ] = None,
    output_device: Annotated[
        str | None, typer.Option(help="Speaker: a PortAudio device name or index.")
    ] = None,
    wav: Annotated[
        Path | None, typer.Option(help="Speak this WAV instead of the microphone.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the agent's audio here instead of playing it.")
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML settings file (flags and PARLEY_* env win).")
    ] = None,
) -> None:
    """Talk to the offline cascade through this machine's microphone and speaker (no server)."""
    from parley.errors import ParleyError

    flags = {"brain": brain, "stt": stt, "tts": tts, "vad": vad, "engine": "local"}
    try:
        settings = load_settings(config, {k: v for k, v in flags.items() if v is not None})
        asyncio.run(_run_local(settings, input_device, output_device, wav, out, duration))
    except ConfigError as exc:
        raise _config_error(exc) from None
    except ParleyError as exc:
        raise _fail(str(exc), code=1) from None
    except KeyboardInterrupt:
        return


def _device(name: str | None) -> int | str | None:
    return int(name) if name is not None and name.isdigit() else name


async def _run_local(
    settings: ParleySettings,
    input_device: str | None,
    output_device: str | None,
    wav: Path | None,
    out: Path | None,
    duration: float | None,
) -> None:
    from parley.client.devices import (
        AudioSink,
        AudioSource,
        BufferSpeaker,
        SoundDeviceMicrophone,
        SoundDeviceSpeaker,
        WavFileSource,
    )
    from parley.client.local import run_local
    from parley.engines.spec import EngineRequest

    factory = _factory(settings)
    console = _console()
    console.print(f"engine: {engine_description(settings)}")
    console.print(f"brain: {brain_description(settings)}")
    await factory.warmup()
    rate, out_rate = 16000, 24000
    engine = factory.build(
        EngineRequest(
            "local",
            EngineKind.LOCAL,
            settings.brain,
            settings.conversation.voice,
            settings.conversation.system_prompt,
            None,
            rate,
            "pcm16",
        )
    )
    microphone: AudioSource = (
        WavFileSource(wav, sample_rate=rate)
        if wav is not None
        else SoundDeviceMicrophone(rate, device=_device(input_device))
    )
    speaker: AudioSink = (
        BufferSpeaker(out_rate, realtime=True, path=out)
        if out is not None
        else SoundDeviceSpeaker(out_rate, device=_device(output_device))
    )
    console.print("listening (Ctrl-C to stop; use headphones: there is no echo canceller)")
    try:
        await run_local(engine, microphone, speaker, duration_s=duration, echo=console.print)
    finally:
        await factory.aclose()


def main() -> None:
    """Entry point of the ``parley`` script."""
    app(prog_name="parley")
