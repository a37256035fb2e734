"""Sentence vectors stored at ingest: same pass as the chunk vector, compact, and used."""

from __future__ import annotations

import numpy as np
from helpers.files import write_md

from assistant.answering import split_sentences
from assistant.embeddings import load_embedder
from assistant.retrieval import ScoredChunk, read_all
from assistant.schemas import AnswerRequest
from assistant.sentences import SENTENCES_KEY, pack, sentence_spans, unpack
from assistant.service import AssistantService
from assistant.settings import load_settings

TEXT = ("title: Fault reviews\n\n"
        "A quality fault is any moment where the customer is let down by us. "
        "Each one is logged with its journey stage and its owner. "
        "Our canteen serves soup on Tuesdays and the menu rarely changes at all.")


def test_one_pass_gives_the_chunk_vector_and_span_vectors() -> None:
    embedder = load_embedder(load_settings().model_path)
    body = TEXT.index("A quality")
    spans = [(body + a, body + b) for a, b in sentence_spans(TEXT[body:])]
    assert len(spans) == 3
    texts = [TEXT, "short text", "word " * 400]  # the last one is truncated by the model
    vectors, pooled = embedder.encode_with_spans(texts, [spans, [], [(0, 4), (1900, 1990)]])
    # the chunk vectors are exactly `encode`'s
    assert float(np.abs(vectors - embedder.encode(texts)).max()) < 1e-5
    assert pooled[1] is None and pooled[2] is None  # no spans; a span past truncation
    sent = pooled[0]
    assert sent is not None and sent.shape == (3, embedder.dimension)
    assert np.allclose(np.linalg.norm(sent, axis=1), 1.0, atol=1e-5)
    # in context, the off-topic sentence stays apart and the first is nearest itself alone;
    # the second ("Each one is logged...") is read as being about faults, as intended
    alone = embedder.encode([TEXT[a:b] for a, b in spans])
    sims = sent @ alone.T
    assert int(np.argmax(sims[0])) == 0 and int(np.argmax(sims[2])) == 2, sims
    assert float(sims[1, 0]) > float(sims[1, 2]), sims


def test_pack_round_trips_and_refuses_what_does_not_match() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(4, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    spans = [(0, 40), (41, 90), (95, 180), (181, 300)]
    blob = pack(spans, vectors)
    assert blob is not None
    back = unpack(blob, spans, 384)
    assert back is not None and float((back * vectors).sum(axis=1).min()) > 0.9999
    assert unpack(blob, spans[:3], 384) is None  # the chunk splits differently now
    assert unpack(blob, [(0, 41), *spans[1:]], 384) is None
    assert unpack(blob, spans, 768) is None  # another model
    assert unpack("s0:" + blob[3:], spans, 384) is None  # another format
    assert unpack(blob[:-8], spans, 384) is None  # truncated
    assert unpack("s1:not base64!", spans, 384) is None
    assert unpack(None, spans, 384) is None
    assert pack([(0, 70_000)], vectors[:1]) is None  # offsets beyond uint16


def test_ingest_stores_them_and_answers_use_them(tmp_path, monkeypatch) -> None:
    kb = tmp_path / "kb"
    write_md(kb / "faults.md", "Fault reviews", TEXT.split("\n\n", 1)[1], doc_type="playbook")
    write_md(kb / "table.md", "Only a table", "| a | b |\n| --- | --- |\n| 1 | 2 |",
             doc_type="article")
    monkeypatch.setenv("CX_DATA_DIR", str(tmp_path / "data"))
    svc = AssistantService(load_settings())
    svc.ingest([kb])
    col = svc.store.get_collection(svc.collection_name(None))
    got = read_all(col, ["metadatas", "documents"])
    by_doc = {m["doc_id"]: (m, d) for m, d in zip(got["metadatas"], got["documents"],
                                                   strict=True)}
    meta, text = by_doc["faults.md"]
    assert unpack(meta.get(SENTENCES_KEY), sentence_spans(text), 384) is not None
    assert SENTENCES_KEY not in meta["_node_content"]  # stored once, not in the node JSON
    assert SENTENCES_KEY not in by_doc["table.md"][0]  # nothing to store: no sentences

    answer = svc.answer(AnswerRequest(question="What is a quality fault?"))
    assert not answer.abstained and "let down" in answer.citations[0].quote
    # of the chunk's sentences only the best one was encoded at answer time (the evidence)
    assert len(svc.answerer.cache._items) == 1
    # workers keep them out of their snapshot; the chunks an answer reads fetch them
    retriever = svc.retriever()
    assert all(SENTENCES_KEY not in m for m in retriever.bm25.metadatas)
    hits = svc.retrieve("What is a quality fault?", k=2)
    fetched = retriever.with_sentences(hits)
    assert SENTENCES_KEY in fetched[0].metadata and SENTENCES_KEY not in hits[0].metadata

    # a chunk without stored vectors (an index built before them) is encoded instead
    bare = ScoredChunk(id="x", text=text, metadata={"doc_id": "faults.md"})
    stored = ScoredChunk(id="y", text=text, metadata=meta)
    query = svc.embedder.encode_query("What is a quality fault?")
    _, cos_bare, vec_bare = svc.answerer.score(query, [bare])
    _, cos_stored, _ = svc.answerer.score(query, [stored])
    assert len(svc.answerer.cache._items) == len(split_sentences(bare, 0)) == 3
    assert np.allclose(vec_bare, svc.embedder.encode([text[a:b] for a, b in
                                                      sentence_spans(text)]), atol=1e-5)
    assert int(np.argmax(cos_bare)) == int(np.argmax(cos_stored)) == 0
