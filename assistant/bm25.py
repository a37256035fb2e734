"""BM25 over a snapshot's chunks (bm25s), with a metadata mask per query."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from llama_index.core.vector_stores.types import MetadataFilters


def bm25_text(text: str, metadata: dict[str, Any]) -> str:
    """What BM25 indexes: the chunk with its title and section, as the embedder sees it."""
    return f"{metadata.get('title', '')}\n{metadata.get('section', '')}\n{text}"


class BM25Index:
    """bm25s over a collection's chunks, with per-query metadata masks.

    Hand-rolled around bm25s rather than llama-index's BM25Retriever because that retriever
    fixes its metadata filters when it is built; we need different filters per query
    without re-indexing, and no per-hit node re-hydration on the hot path.
    """

    def __init__(self, ids: list[str], texts: list[str], metadatas: list[dict[str, Any]]):
        import bm25s
        import Stemmer

        self.ids = ids
        self.texts = texts
        self.metadatas = metadatas
        self._stemmer = Stemmer.Stemmer("english")
        self._bm25: bm25s.BM25 | None = None
        self._last_mask: tuple[MetadataFilters, np.ndarray] | None = None
        if ids:
            tokens = bm25s.tokenize(
                [bm25_text(t, m) for t, m in zip(texts, metadatas, strict=True)],
                stopwords="en", stemmer=self._stemmer, show_progress=False,
            )
            self._bm25 = bm25s.BM25(k1=0.9, b=0.4)
            self._bm25.index(tokens, show_progress=False)

    def mask(self, filters: MetadataFilters | None) -> np.ndarray | None:
        """1/0 per row: does it pass `filters`. One Python call per row, so the last mask is
        kept: a hybrid query asks for the same filters object twice (dense, then BM25)."""
        if filters is None:
            return None
        last = self._last_mask
        if last is not None and last[0] is filters:
            return last[1]
        from llama_index.core.vector_stores.utils import build_metadata_filter_fn

        keep = build_metadata_filter_fn(lambda row: self.metadatas[int(row)], filters)
        mask = np.array([1 if keep(str(i)) else 0 for i in range(len(self.ids))],
                        dtype=np.float32)
        mask.setflags(write=False)
        self._last_mask = (filters, mask)  # one assignment: safe across request threads
        return mask

    def search(self, query: str, k: int, filters: MetadataFilters | None = None
               ) -> list[tuple[int, float]]:
        """(row, score) of the best `k` rows passing `filters`; only rows sharing a term."""
        import bm25s

        if self._bm25 is None:
            return []
        mask = self.mask(filters)
        if mask is not None and not mask.any():
            return []
        tokens = bm25s.tokenize(query, stopwords="en", stemmer=self._stemmer,
                                show_progress=False, return_ids=False)
        if not tokens or not tokens[0]:
            return []
        k = min(k, len(self.ids))
        docs, scores = self._bm25.retrieve(tokens, k=k, weight_mask=mask, show_progress=False,
                                           n_threads=1)
        return [
            (int(d), float(s))
            for d, s in zip(docs[0], scores[0], strict=True)
            if s > 0 and (mask is None or mask[int(d)] > 0)
        ]
