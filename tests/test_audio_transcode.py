"""The transcoder against audioop (G.711, channel mixing) and soxr (the resampler it
drives), exhaustively where it is cheap and by property elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.audio import AudioFormat, StreamResampler, Transcoder
from parley.conversation import Conversation
from parley.engines.loopback import LoopbackEngine
from parley.errors import ConfigError, LocalProtocolError, RemoteProtocolError
from parley.testing.transport import memory_transport_pair

try:  # stdlib up to 3.12 (deprecated, warning filtered in pyproject); audioop-lts from 3.13
    import audioop
except ImportError:  # pragma: no cover - Python >= 3.13
    import audioop_lts as audioop  # type: ignore[import-not-found, no-redef]

ALL_CODES = bytes(range(256))
ALL_PCM = np.arange(-32768, 32768, dtype=np.int16).tobytes()
ULAW8K = AudioFormat("ulaw", 8000)
ALAW8K = AudioFormat("alaw", 8000)
PCM8K = AudioFormat("pcm16", 8000)
PCM16K = AudioFormat("pcm16", 16000)
PCM24K = AudioFormat("pcm16", 24000)
PCM24K_STEREO = AudioFormat("pcm16", 24000, 2)
pcm16 = st.binary(max_size=4000).map(lambda b: b[: len(b) // 2 * 2])
stereo16 = st.binary(max_size=4000).map(lambda b: b[: len(b) // 4 * 4])


def _pcm_close(got: bytes, want: bytes) -> bool:
    """Equal but for soxr's dither: libsoxr adds TPDF dither on int16 output, so two
    runs of the same stream may differ by up to 2 LSB in places."""
    a = np.frombuffer(got, dtype="<i2").astype(np.int32)
    b = np.frombuffer(want, dtype="<i2").astype(np.int32)
    return len(a) == len(b) and bool(np.abs(a - b).max(initial=0) <= 2)


def _ulaw_close(got: bytes, want: bytes) -> bool:
    """µ-law codes equal but where dither moved a sample across a quantisation step."""
    a = np.frombuffer(audioop.ulaw2lin(got, 2), dtype="<i2").astype(np.int32)
    b = np.frombuffer(audioop.ulaw2lin(want, 2), dtype="<i2").astype(np.int32)
    return len(a) == len(b) and bool(np.all(np.abs(a - b) <= np.maximum(8, np.abs(b) // 8)))


def _tone(ms: int, rate: int) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()


def test_g711_decode_equals_audioop_for_all_codes() -> None:
    assert Transcoder(ULAW8K, PCM8K).process(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)
    assert Transcoder(ALAW8K, PCM8K).process(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)


def test_g711_encode_equals_audioop_for_all_65536_samples() -> None:
    assert Transcoder(PCM8K, ULAW8K).process(ALL_PCM) == audioop.lin2ulaw(ALL_PCM, 2)
    assert Transcoder(PCM8K, ALAW8K).process(ALL_PCM) == audioop.lin2alaw(ALL_PCM, 2)


def test_ulaw_to_alaw_is_decode_then_encode() -> None:
    want = audioop.lin2alaw(audioop.ulaw2lin(ALL_CODES, 2), 2)
    assert Transcoder(ULAW8K, ALAW8K).process(ALL_CODES) == want


@given(stereo16)
def test_stereo_to_mono_equals_audioop_tomono(pcm: bytes) -> None:
    want = audioop.tomono(pcm, 2, 0.5, 0.5)
    assert Transcoder(PCM24K_STEREO, PCM24K).process(pcm) == want


@given(pcm16)
def test_mono_to_stereo_equals_audioop_tostereo(pcm: bytes) -> None:
    assert Transcoder(PCM24K, PCM24K_STEREO).process(pcm) == audioop.tostereo(pcm, 2, 1, 1)


@given(st.binary(max_size=800))
def test_equal_g711_formats_pass_straight_through(data: bytes) -> None:
    tc = Transcoder(ULAW8K, ULAW8K)
    assert tc.passthrough
    out = tc.process(data)
    assert out == data and (out is data)  # not even copied
    assert tc.flush() == b""


def test_ulaw_line_to_engine_pcm_matches_decode_then_one_stream_resampler() -> None:
    """Twilio in: µ-law 8 kHz → PCM16 16 kHz equals audioop's decode fed to soxr, chunk
    for chunk (the transcoder keeps the filter history across chunks)."""
    ulaw = audioop.lin2ulaw(_tone(500, 8000), 2)
    tc = Transcoder(ULAW8K, PCM16K)
    ref = StreamResampler(8000, 16000)
    for i in range(0, len(ulaw), 160):
        frame = ulaw[i : i + 160]
        assert _pcm_close(tc.process(frame), ref.process(audioop.ulaw2lin(frame, 2)))
    assert _pcm_close(tc.flush(), ref.flush())


def test_engine_voice_to_ulaw_line_matches_resample_then_audioop_encode() -> None:
    """Twilio out: Piper's 22,050 Hz PCM16 → µ-law 8 kHz."""
    pcm = _tone(400, 22050)
    tc = Transcoder(AudioFormat("pcm16", 22050), ULAW8K)
    ref = StreamResampler(22050, 8000)
    got, want = b"", b""
    for i in range(0, len(pcm), 882):
        got += tc.process(pcm[i : i + 882])
        want += ref.process(pcm[i : i + 882])
    got += tc.flush()
    want += ref.flush()
    assert _ulaw_close(got, audioop.lin2ulaw(want, 2))
    assert len(got) == pytest.approx(8 * 400, abs=8)  # one byte a sample, nothing lost


def test_stereo_24k_to_mono_16k_downmixes_before_resampling() -> None:
    left = np.frombuffer(_tone(200, 24000), dtype="<i2")
    right = (left // 3).astype("<i2")
    stereo = np.stack([left, right], axis=1).tobytes()
    tc = Transcoder(PCM24K_STEREO, PCM16K)
    ref = StreamResampler(24000, 16000)
    want = ref.process(audioop.tomono(stereo, 2, 0.5, 0.5)) + ref.flush()
    assert _pcm_close(tc.process(stereo) + tc.flush(), want)


def test_mono_16k_to_stereo_48k_upmixes_after_resampling() -> None:
    pcm = _tone(100, 16000)
    tc = Transcoder(PCM16K, AudioFormat("pcm16", 48000, 2))
    ref = StreamResampler(16000, 48000)
    out = tc.process(pcm) + tc.flush()
    assert _pcm_close(out, audioop.tostereo(ref.process(pcm) + ref.flush(), 2, 1, 1))
    left_right = np.frombuffer(out, dtype="<i2").reshape(-1, 2)
    assert np.array_equal(left_right[:, 0], left_right[:, 1])


def test_reset_drops_the_tail_and_flush_returns_it() -> None:
    pcm = _tone(100, 24000)
    flushed = Transcoder(PCM24K, ULAW8K)
    flushed.process(pcm)
    assert flushed.flush()  # LQ holds ~22 ms of audio
    cut = Transcoder(PCM24K, ULAW8K)
    cut.process(pcm)
    cut.reset()
    assert cut.flush() == b""
    # After a reset the stream starts over: the same input gives the same output.
    again = Transcoder(PCM24K, ULAW8K)
    assert _ulaw_close(cut.process(pcm), again.process(pcm))


def test_bad_lengths_say_who_is_at_fault() -> None:
    with pytest.raises(RemoteProtocolError) as peer:
        Transcoder(PCM24K, PCM16K, from_peer=True).process(b"\x00\x01\x02")
    assert peer.value.code == "bad_audio_length"
    with pytest.raises(LocalProtocolError) as ours:
        Transcoder(PCM24K, PCM24K).process(b"\x00")  # checked on pass-through too
    assert ours.value.code == "bad_pcm_length"
    with pytest.raises(RemoteProtocolError):
        Transcoder(PCM24K_STEREO, PCM24K, from_peer=True).process(b"\x00\x01")
    assert Transcoder(ULAW8K, PCM8K).process(b"\x01\x02\x03") == audioop.ulaw2lin(
        b"\x01\x02\x03", 2
    )


def test_opus_is_refused_and_takes_names_the_source() -> None:
    with pytest.raises(ConfigError) as info:
        Transcoder(AudioFormat("opus", 48000, 2), PCM16K)
    assert info.value.field == "src"
    with pytest.raises(ConfigError):
        Transcoder(PCM16K, AudioFormat("opus", 48000, 2))
    tc = Transcoder(PCM24K, ULAW8K)
    assert tc.takes("pcm16", 24000) and not tc.takes("pcm16", 22050)
    assert not tc.takes("ulaw", 24000) and not tc.takes("pcm16", 24000, 2)
    assert (tc.src, tc.dst, tc.passthrough) == (PCM24K, ULAW8K, False)


def test_a_conversation_refuses_opus_on_its_stream() -> None:
    stream, _ = memory_transport_pair(AudioFormat("opus", 48000, 2))
    with pytest.raises(ConfigError) as info:
        Conversation(stream, LoopbackEngine(16000))
    assert info.value.field == "input_format"
