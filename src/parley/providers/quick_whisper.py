"""Whisper ``tiny.en`` with its encoder window cut to the utterance: the transcript sooner.

faster-whisper pads every input to Whisper's 30 s window, so a 2 s utterance costs
as much encoder time as a 30 s one (~330 ms of the ~450 ms a call takes on 2
cores). CTranslate2's Whisper encoder also takes a shorter mel window, and its cost
scales with the window. :class:`QuickWhisperSTT` feeds the utterance's own mel
frames (plus ``pad_s`` of silence, at least ``min_window_s``) straight to
``ctranslate2.models.Whisper.generate`` with greedy decoding — the same bundled
model, loaded once and shared with :class:`~parley.providers.whisper.WhisperSTT`.

Measured by ``bench/turns.py`` (2 cores, shared and noisy; ``stt_candidates``): wall
p50 90–97 ms and CPU p50 ~146 ms per call, against 346–466 ms and ~475 ms for
WhisperSTT on the same audio; the same words on 69–73 % of held-out utterances and
8.6 word edits per 100 words, mostly digit grouping and a dropped final word on
either side. In the cascade (``bench/voice_to_voice.py --endpointing model --stt
quick``) caller-side voice-to-voice p50 413 ms vs 634 ms for today's default. Why
this and not another recogniser: no package on the index that installs with its
English weights inside was found (Moonshine's wheels — ``moonshine-voice``,
``useful-moonshine-onnx``, ``moonshine-lite`` — download their weights at run time;
``sherpa-onnx`` and ``vosk`` ship no English model), and a shorter window keeps
Whisper's accuracy within a word on utterances of the turn-taking corpus.

``no_speech_prob`` (Whisper's own "this was not speech" score) and ``avg_logprob``
(how sure the decode was) come back with each result: the barge-in policy uses
them to tell a cough or a hummed "mm-hmm" (which tiny.en writes as "in a month",
"M. H. N." or "them", at an average log-probability around -2 to -3) from a word
("No.", "Stop." decode at -0.4 to -0.8).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from parley.errors import LocalProtocolError, ProviderError
from parley.providers.models import run_blocking
from parley.providers.seams import Transcript
from parley.providers.whisper import WhisperSTT

__all__ = ["QuickResult", "QuickWhisperSTT"]

_RATE = 16000
_FRAMES_PER_S = 100  # Whisper mel hop: 10 ms
_HOP = _RATE // _FRAMES_PER_S
_MAX_FRAMES = 3000  # the model's 30 s window


@dataclass(frozen=True, slots=True)
class QuickResult:
    """A transcript with Whisper's probability that the audio held no speech."""

    transcript: Transcript
    no_speech_prob: float
    avg_logprob: float = 0.0  # the decode's length-normalised log-probability


def _loops(text: str) -> bool:
    """A three-word run that comes back later (not just a digit said three times)."""
    toks = re.findall(r"[a-z0-9']+", text.lower())
    seen: dict[tuple[str, ...], int] = {}
    for i in range(len(toks) - 2):
        gram = tuple(toks[i : i + 3])
        if len(set(gram)) == 1:
            continue
        if gram in seen and i - seen[gram] >= 3:
            return True
        seen.setdefault(gram, i)
    return False


class QuickWhisperSTT:
    """The :class:`~parley.providers.seams.STT` seam over Whisper with a short window.

    ``min_window_s`` keeps short inputs from a window so small that Whisper drops
    words (1.5 s and under lost "then" in "and then eight" on a 4 s utterance; 10 s
    did not); ``pad_s`` of silence after the audio lets the decoder see an end.
    """

    def __init__(
        self,
        *,
        cpu_threads: int = 2,
        model_path: Path | str | None = None,
        min_window_s: float = 10.0,
        pad_s: float = 1.0,
    ) -> None:
        if not 0.0 < min_window_s <= 30.0:
            raise ValueError(f"min_window_s must be in (0, 30], not {min_window_s!r}")
        if not pad_s >= 0.0:
            raise ValueError(f"pad_s must be ≥ 0, not {pad_s!r}")
        # The same registry name as WhisperSTT: one model in memory for both.
        self._whisper = WhisperSTT(cpu_threads=cpu_threads, model_path=model_path)
        self.model_name = self._whisper.model_name
        self._min_frames = int(min_window_s * _FRAMES_PER_S)
        self._pad = int(pad_s * _RATE)
        self._prompt: list[int] | None = None
        self.fallbacks = 0  # decodes redone with the full window (a loop was seen)

    @property
    def sample_rate(self) -> int:
        return _RATE

    def _model(self) -> Any:
        return self._whisper._model()  # one loader, one registry entry

    def transcribe_blocking(self, pcm: bytes) -> QuickResult:
        """Transcribe PCM16 mono at 16 kHz here and now (blocking: a worker thread)."""
        if len(pcm) % 2:
            raise LocalProtocolError(
                f"PCM16 audio must have an even number of bytes, got {len(pcm)}",
                code="bad_pcm_length",
            )
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) * (1.0 / 32768.0)
        duration = len(audio) / _RATE
        if len(audio) == 0:
            return QuickResult(Transcript(text="", duration_s=0.0), 1.0, 0.0)
        model = self._model()
        # Pad the *audio* with silence to the window (not the features with zeros: a zero
        # log-mel frame is not silence to Whisper, and it hallucinates loops on it).
        frames = min(_MAX_FRAMES, max(self._min_frames, (len(audio) + self._pad) // _HOP + 1))
        frames += frames % 2  # the encoder's stride-2 convolution wants an even length
        need = frames * _HOP - len(audio)
        if need > 0:
            audio = np.concatenate([audio, np.zeros(need, np.float32)])
        feats = model.feature_extractor(audio)  # (80, ≥ frames) log-mel as Whisper wants
        window = np.ascontiguousarray(feats[None, :, :frames], dtype=np.float32)
        if self._prompt is None:
            from faster_whisper.tokenizer import Tokenizer

            tok = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, "transcribe", "en")
            self._prompt = [*tok.sot_sequence, tok.no_timestamps]
        # Bound the decode: ~4 tokens/s is fast speech; a hallucination loop stops here.
        max_length = min(448, len(self._prompt) + 8 + math.ceil(duration * 6))
        result = self._generate(model, window, max_length)
        text = model.hf_tokenizer.decode(result.sequences_ids[0]).strip()
        if frames < _MAX_FRAMES and _loops(text):
            # With a short window tiny.en sometimes repeats itself ("I'm not sure what
            # I'm not sure what"); the full 30 s window did not on the same audio.
            self.fallbacks += 1
            full = np.zeros((1, window.shape[1], _MAX_FRAMES), np.float32)
            feats = model.feature_extractor(
                np.concatenate([audio, np.zeros(_MAX_FRAMES * _HOP, np.float32)])
            )
            full[0] = feats[:, :_MAX_FRAMES]
            result = self._generate(model, full, max_length)
            text = model.hf_tokenizer.decode(result.sequences_ids[0]).strip()
        return QuickResult(
            Transcript(text=text, duration_s=duration),
            float(result.no_speech_prob),
            float(result.scores[0]) if result.scores else 0.0,
        )

    def _generate(self, model: Any, window: np.ndarray[Any, Any], max_length: int) -> Any:
        import ctranslate2

        try:
            return model.model.generate(
                ctranslate2.StorageView.from_array(np.ascontiguousarray(window)),
                [self._prompt],
                beam_size=1,
                max_length=max_length,
                suppress_blank=True,
                suppress_tokens=[-1],
                return_no_speech_prob=True,
                return_scores=True,
            )[0]
        except RuntimeError as exc:  # CTranslate2 reports its failures as RuntimeError
            raise ProviderError(f"whisper failed: {exc}", provider="whisper") from exc

    async def transcribe(self, pcm: bytes) -> Transcript:
        """The STT seam: transcribe one utterance in the model executor."""
        return (await run_blocking(self.transcribe_blocking, pcm)).transcript

    async def transcribe_scored(self, pcm: bytes) -> QuickResult:
        """Like :meth:`transcribe`, with Whisper's no-speech probability."""
        return await run_blocking(self.transcribe_blocking, pcm)

    async def warmup(self) -> None:
        await run_blocking(self.transcribe_blocking, bytes(2 * _RATE))
