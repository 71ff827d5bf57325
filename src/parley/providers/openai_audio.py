"""OpenAI speech to text (``audio.transcriptions``) and text to speech (``audio.speech``).

STT uploads the utterance as a WAV file (multipart) and returns the text. TTS asks
for ``response_format="pcm"`` — raw PCM16 little-endian mono at 24 kHz — and yields
it as the HTTP body streams in, so playback can start before synthesis ends.
Both work with any server that implements these two endpoints.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import openai
from openai import AsyncOpenAI, Omit, omit

from parley.audio.wav import wav_bytes
from parley.providers.client import OwnedClient
from parley.providers.openai_llm import openai_client, openai_provider_error
from parley.providers.seams import Transcript
from parley.providers.voices import OpenAIVoice

__all__ = ["OPENAI_TTS_SAMPLE_RATE", "OpenAISTT", "OpenAITTS"]

OPENAI_TTS_SAMPLE_RATE = 24_000  # what response_format="pcm" always is


class OpenAISTT(OwnedClient):
    _client: AsyncOpenAI
    """Transcribes one utterance of PCM16 mono at ``sample_rate`` per request.

    ``model`` is ``gpt-4o-mini-transcribe``, ``gpt-4o-transcribe`` or ``whisper-1``
    on OpenAI, or whatever a compatible server (e.g. faster-whisper-server) names.
    """

    def __init__(
        self,
        model: str = "gpt-4o-mini-transcribe",
        *,
        sample_rate: int = 16_000,
        language: str | None = "en",
        prompt: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        client: AsyncOpenAI | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        provider: str = "openai",
    ) -> None:
        self.model = model
        self.provider = provider
        self._sample_rate = sample_rate
        self._language = language
        self._prompt = prompt
        self._owns_client = client is None
        self._client = openai_client(client, api_key, base_url, timeout, max_retries)

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    async def transcribe(self, pcm: bytes) -> Transcript:
        if len(pcm) % 2:
            pcm = pcm[:-1]  # a torn last sample is not audio
        language: str | Omit = self._language if self._language else omit
        prompt: str | Omit = self._prompt if self._prompt else omit
        try:
            result = await self._client.audio.transcriptions.create(
                model=self.model,
                file=("utterance.wav", wav_bytes(pcm, self._sample_rate), "audio/wav"),
                language=language,
                prompt=prompt,
                response_format="json",
            )
        except openai.OpenAIError as exc:
            raise openai_provider_error(exc, self.provider) from exc
        return Transcript(
            text=result.text.strip(),
            language=self._language or "",
            is_final=True,
            duration_s=len(pcm) / 2 / self._sample_rate,
        )


Voice = OpenAIVoice


class OpenAITTS(OwnedClient):
    _client: AsyncOpenAI
    """Streams PCM16 mono at 24 kHz from ``audio.speech`` as it is synthesised.

    Chunks are whole samples (an odd byte from the network is held back until its
    partner arrives). ``instructions`` steers tone on ``gpt-4o-mini-tts``.
    """

    def __init__(
        self,
        model: str = "gpt-4o-mini-tts",
        *,
        voice: Voice | str = "alloy",
        instructions: str | None = None,
        speed: float | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        client: AsyncOpenAI | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        chunk_bytes: int = 4800,  # 100 ms at 24 kHz
        provider: str = "openai",
    ) -> None:
        self.model = model
        self.voice = voice
        self.provider = provider
        self._instructions = instructions
        self._speed = speed
        self._chunk_bytes = chunk_bytes
        self._owns_client = client is None
        self._client = openai_client(client, api_key, base_url, timeout, max_retries)

    @property
    def sample_rate(self) -> int:
        return OPENAI_TTS_SAMPLE_RATE

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        """Yield PCM16 chunks; raises ``ProviderError``. Closing the iterator
        (barge-in) closes the HTTP response."""
        if not text.strip():
            return
        instructions: str | Omit = self._instructions if self._instructions else omit
        speed: float | Omit = self._speed if self._speed is not None else omit
        carry = b""
        try:
            async with self._client.audio.speech.with_streaming_response.create(
                model=self.model,
                voice=self.voice,
                input=text,
                response_format="pcm",
                instructions=instructions,
                speed=speed,
            ) as response:
                async for data in response.iter_bytes(self._chunk_bytes):
                    data = carry + data
                    cut = len(data) & ~1
                    carry = data[cut:]
                    if cut:
                        yield data[:cut]
        except openai.OpenAIError as exc:
            raise openai_provider_error(exc, self.provider) from exc
