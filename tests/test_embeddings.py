"""The query fast path gives the very vectors `encode` gives, and caches them."""

from __future__ import annotations

import numpy as np

from assistant.embeddings import load_embedder
from assistant.settings import load_settings


def test_encode_query_matches_encode_and_is_cached() -> None:
    embedder = load_embedder(load_settings().model_path)
    assert embedder._fast_query is not None  # the bundled model is mean-pooled + normalised
    texts = ["How do we define Cx Quality Faults?", "NPS", "fault " * 400]  # last: truncated
    for text in texts:
        fast = embedder.encode_query(text)
        slow = embedder.encode([text])[0]
        assert fast.shape == slow.shape == (embedder.dimension,)
        assert float(np.abs(fast - slow).max()) < 1e-5
        assert abs(float(np.linalg.norm(fast)) - 1.0) < 1e-5
        assert embedder.encode_query(text) is fast  # served from the cache
    # The traced graph ran (a silent fall-back to eager would halve query speed unseen).
    assert embedder._traced
    assert not fast.flags.writeable  # a caller cannot corrupt the cached vector


def test_blas_runs_one_thread_beside_torch() -> None:
    """OpenBLAS's spinning workers fought torch's for the cores (search p95 127 ms vs 19)."""
    from threadpoolctl import threadpool_info

    load_embedder(load_settings().model_path)
    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    assert blas and all(p["num_threads"] == 1 for p in blas)


def test_query_cache_size_zero_keeps_nothing() -> None:
    """CX_QUERY_CACHE_SIZE=0 (the benchmark's HTTP server): every question is encoded."""
    from assistant.embeddings import Embedder

    embedder = Embedder(load_settings().model_path, query_cache_size=0)
    first = embedder.encode_query("What is a Cx Quality Fault?")
    again = embedder.encode_query("What is a Cx Quality Fault?")
    assert first is not again and float(np.abs(first - again).max()) < 1e-6
    assert len(embedder._queries) == 0
