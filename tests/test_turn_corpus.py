"""The turn-taking corpus: its labels, and the builder on a handful of utterances
(Piper once per utterance, pauses at Whisper-found word boundaries, a cache)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from servers import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from turn_corpus import RATE, Builder, load_items


def test_labels_cover_the_kinds_and_hold_half_out() -> None:
    items = load_items()
    assert len(items) >= 200
    assert len({i.id for i in items}) == len(items)
    held = [i for i in items if i.split == "held"]
    assert abs(len(held) - len(items) / 2) <= 5
    assert {i.kind for i in items} == {"pause", "finished", "question", "short"}
    pause = [i for i in items if i.kind == "pause"]
    assert len(pause) >= 100
    kinds = {i.category for i in pause}
    assert {"phone", "digits", "email", "address", "list", "hesitation", "clause"} <= kinds
    for i in items:
        assert len(i.pauses_ms) == i.text.count("|"), i.id
        assert all(ms is None or 300 <= ms <= 1000 for ms in i.pauses_ms), i.id
        assert (i.kind == "pause") == any(i.pauses_ms), i.id
    # Each split has pause and finished utterances of every category.
    for split in ("tune", "held"):
        assert {i.category for i in items if i.split == split} == {i.category for i in items}


def test_boundaries_count_the_words_before_each_marker() -> None:
    item = next(i for i in load_items() if i.id == "clause-01")
    assert item.text == "My name is | John | Smith."
    assert item.spoken == "My name is John Smith."
    assert item.boundaries == [3, 4]


@pytest.mark.slow
def test_builder_inserts_pauses_at_the_word_boundary_and_caches(tmp_path: Path) -> None:
    from parley.providers.whisper import WhisperSTT

    items = {i.id: i for i in load_items()}
    builder = Builder(tmp_path)
    pause = builder.render(items["clause-01"])  # "My name is | John | Smith."
    clean = next(i for i in items.values() if i.kind == "question" and i.snr_db is None)
    finished = builder.render(clean)
    assert builder.synthesised == 2
    pcm = np.frombuffer(pause.pcm, "<i2")
    assert len(pause.pauses) == 2 and all(pause.verified)
    for (a, b), ms in zip(pause.pauses, (730, 430), strict=True):
        assert b - a == pytest.approx(ms, abs=1)
        assert not pcm[int(a * RATE / 1000) : int(b * RATE / 1000)].any()  # silence
    assert pause.speech_start_ms < pause.pauses[0][0] < pause.pauses[1][1] < pause.speech_end_ms
    # Independently: the audio before the first pause ends on "is", after it comes "John".
    stt = WhisperSTT()
    cut = int(pause.pauses[0][0] * RATE / 1000) * 2
    before = stt._transcribe_blocking(pause.pcm[:cut]).text.lower()
    assert before.rstrip(" .?!,").endswith("is"), before
    after = stt._transcribe_blocking(pause.pcm[int(pause.pauses[0][1] * RATE / 1000) * 2 :])
    assert after.text.lower().lstrip().startswith("john"), after.text
    # A finished utterance has no pause, ends where its speech ends, then silence.
    assert finished.pauses == ()
    tail = np.frombuffer(finished.pcm, "<i2")[int((finished.speech_end_ms + 20) * RATE / 1000) :]
    assert not tail.any()
    noisy = next(i for i in items.values() if i.kind == "short" and i.snr_db is not None)
    hiss = np.frombuffer(builder.render(noisy).pcm, "<i2")[:1000].astype(np.float64)
    assert 10 < np.sqrt(np.mean(hiss**2)) < 3000  # the lead silence carries the noise
    # The second build is read from the cache, byte for byte.
    again = Builder(tmp_path)
    assert again.render(items["clause-01"]).pcm == pause.pcm
    assert (again.synthesised, again.cached) == (0, 1)
    names = sorted(p.name.split("-")[0] for p in tmp_path.iterdir())
    assert names == ["clause", "question", "short"]
