"""Decks, workbooks, CSV and scanned PDFs through the whole life of a document.

One small folder holds one file of each new format beside a note. Through the real service
(real readers, real tesseract, real embedder and Chroma) each must: be chunked with the
location keys its format has (slide; sheet and row; row; page, plus `ocr` on the scan);
answer a question with a quote that is an exact slice of the stored chunk and a location
naming the slide, row or page the fact is on; leave nothing behind when deleted and come
back whole when re-ingested; and, when one slide, cell or page changes, be re-embedded
alone with its old version gone.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers.files import write_csv, write_md, write_pptx, write_scanned_pdf, write_xlsx
from helpers.settings import make_settings

from assistant.locations import location_at
from assistant.schemas import AnswerRequest
from assistant.service import AssistantService

DECK, BOOK, TABLE, SCAN, NOTE = ("review-deck.pptx", "nps-scores.xlsx", "tickets.csv",
                                 "audit-scan.pdf", "note.md")
NEW_FORMATS = (DECK, BOOK, TABLE, SCAN)


def deck_slides(deadline: str = "June") -> list[dict[str, Any]]:
    return [
        {"title": "Quarterly service review",
         "bullets": ["Agenda for the Northwind steering group.", "Decisions due this quarter."]},
        {"title": "Callback failures",
         "bullets": ["Harbourline missed fourteen callbacks in March because the duty roster "
                     "named no callback owner."]},
        {"title": "Next steps",
         "bullets": [f"The journey team redraws the complaint map by {deadline}."]},
    ]


def score_rows(orchid: int = 22) -> list[list[Any]]:
    """Sheet `Scores`: header on row 1, one client per row (Orchid Bank on row 3)."""
    return [["Client", "Quarter", "NPS", "Comment"],
            ["Verdant", "Q3", 41, "rose after the billing fix"],
            ["Orchid Bank", "Q3", orchid, "fell after branch closures"],
            ["Lumen Foods", "Q3", 55, "steady since the new app"]]


def ticket_rows(kestrel_days: str = "12") -> list[list[str]]:
    """CSV lines: header on line 1, the Kestrel Rail ticket on line 3."""
    return [["Ticket", "Client", "Issue", "Resolution days"],
            ["T-101", "Meridian", "duplicate invoice", "3"],
            ["T-102", "Kestrel Rail", "lost luggage claim", kestrel_days],
            ["T-103", "Meridian", "password reset", "1"]]


def scan_pages(days: str = "nineteen") -> list[str]:
    return ["Tidewater service audit, 2019. Summary of findings on billing complaints.",
            f"The Tidewater audit found that refunds took {days} days on average."]


def write_tree(root: Path) -> Path:
    write_pptx(root / DECK, deck_slides(), title="Service review deck")
    write_xlsx(root / BOOK, {"Scores": score_rows(), "Lookup": [["Code", "Meaning"],
                                                                ["NP", "net promoter"]]},
               hidden=("Lookup",), title="NPS scores")
    write_csv(root / TABLE, ticket_rows())
    write_scanned_pdf(root / SCAN, scan_pages())
    write_md(root / NOTE, "Note", "# Note\n\nA plain note about survey design for frontline "
             "teams.")
    return root


def rows(service: AssistantService) -> dict[str, tuple[str, dict[str, Any]]]:
    """chunk id → (text, metadata), straight from Chroma."""
    got = service.store.get_collection(service.settings.collection).get(
        include=["documents", "metadatas"])
    return {cid: (text, dict(meta)) for cid, text, meta in
            zip(got["ids"], got["documents"], got["metadatas"], strict=True)}


def state(service: AssistantService) -> dict[str, set[str]]:
    """doc_id → its chunk ids."""
    out: dict[str, set[str]] = {}
    for cid, (_, meta) in rows(service).items():
        out.setdefault(meta["doc_id"], set()).add(cid)
    return out


def assert_only(service: AssistantService, doc_ids: set[str]) -> dict[str, set[str]]:
    """The collection holds exactly `doc_ids`, each whole: one version, chunk_count chunks."""
    stored = rows(service)
    assert {m["doc_id"] for _, m in stored.values()} == doc_ids
    counts = Counter(m["doc_id"] for _, m in stored.values())
    for doc_id in doc_ids:
        metas = [m for _, m in stored.values() if m["doc_id"] == doc_id]
        assert {m["doc_hash"] for m in metas} == {metas[0]["doc_hash"]}, doc_id
        assert counts[doc_id] == metas[0]["chunk_count"], doc_id
        assert sorted(m["chunk_index"] for m in metas) == list(range(counts[doc_id])), doc_id
    return state(service)


def located(meta: dict[str, Any], text: str, needle: str) -> Any:
    """The location of `needle` inside a chunk, resolved as a citation's would be."""
    return location_at(meta, int(meta["start"]) + text.index(needle))


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> AssistantService:
    """The folder ingested once for the read-only tests (OCR runs once)."""
    root = write_tree(tmp_path_factory.mktemp("formats-kb"))
    svc = AssistantService(make_settings(tmp_path_factory.mktemp("formats-data")))
    summary = svc.ingest([root])
    assert (summary.added, summary.skipped) == (5, [])
    # the hidden sheet is left out, and said so
    assert [(w.path, "Lookup" in w.reason) for w in summary.warnings] == [(BOOK, True)]
    return svc


def chunks_of(service: AssistantService, doc_id: str) -> list[tuple[str, dict[str, Any]]]:
    return sorted(((t, m) for t, m in rows(service).values() if m["doc_id"] == doc_id),
                  key=lambda r: r[1]["chunk_index"])


def test_deck_chunks_name_their_slide(ingested: AssistantService) -> None:
    chunks = chunks_of(ingested, DECK)
    assert [m.get("slide") for _, m in chunks] == [1, 2, 3]  # one short slide per chunk
    for _, meta in chunks:
        assert not {"page", "sheet", "row", "ocr"} & set(meta)
        assert {k for _, loc in json.loads(meta["locations"]) for k in loc} == {"slide"}
    text, meta = chunks[1]
    assert located(meta, text, "Harbourline").slide == 2


def test_workbook_rows_name_sheet_and_row(ingested: AssistantService) -> None:
    chunks = chunks_of(ingested, BOOK)
    body = "\n".join(t for t, _ in chunks)
    assert "Lookup" not in body and "net promoter" not in body  # hidden sheet skipped
    seen = {}
    for text, meta in chunks:
        assert meta["sheet"] == "Scores" and not {"page", "slide", "ocr"} & set(meta)
        for number, row in enumerate(score_rows(), start=1):
            if number > 1 and f"Client: {row[0]} |" in text:
                loc = located(meta, text, f"Client: {row[0]} |")
                seen[row[0]] = (loc.sheet, loc.row, loc.label)
    assert seen == {"Verdant": ("Scores", 2, "Scores, row 2"),
                    "Orchid Bank": ("Scores", 3, "Scores, row 3"),
                    "Lumen Foods": ("Scores", 4, "Scores, row 4")}


def test_csv_rows_name_their_line(ingested: AssistantService) -> None:
    chunks = chunks_of(ingested, TABLE)
    seen = {}
    for text, meta in chunks:
        assert isinstance(meta["row"], int)
        assert not {"page", "slide", "sheet", "ocr"} & set(meta)
        for row in ticket_rows()[1:]:
            if f"Ticket: {row[0]} |" in text:
                loc = located(meta, text, f"Ticket: {row[0]} |")
                seen[row[0]] = (loc.sheet, loc.row, loc.label)
    assert seen == {"T-101": (None, 2, "row 2"), "T-102": (None, 3, "row 3"),
                    "T-103": (None, 4, "row 4")}


def test_scan_is_ocrd_and_paged(ingested: AssistantService) -> None:
    chunks = chunks_of(ingested, SCAN)
    whole = " ".join(" ".join(t.split()) for t, _ in chunks)
    assert "Tidewater service audit" in whole and "refunds took nineteen days" in whole
    for _, meta in chunks:
        assert meta["ocr"] is True and meta["page"] in (1, 2)
        assert not {"slide", "sheet", "row"} & set(meta)
    found = [(t, m) for t, m in chunks if "refunds took" in t]
    assert found and located(found[0][1], found[0][0], "refunds took").page == 2
    assert all("ocr" not in m for d in (DECK, BOOK, TABLE, NOTE)
               for _, m in chunks_of(ingested, d))


@pytest.mark.parametrize(("question", "doc_id", "fact", "where"), [
    ("Why did Harbourline miss callbacks in March?", DECK, "duty roster", "slide 2"),
    ("What NPS did Orchid Bank score in Q3?", BOOK, "Orchid Bank", "Scores, row 3"),
    ("How many days did the Kestrel Rail lost luggage claim take to resolve?", TABLE,
     "Kestrel Rail", "row 3"),
    ("How long did Tidewater refunds take on average?", SCAN, "nineteen days", "p. 2"),
])
def test_answer_quotes_an_exact_slice_and_names_its_place(
    ingested: AssistantService, question: str, doc_id: str, fact: str, where: str,
) -> None:
    answer = ingested.answer(AnswerRequest(question=question))
    assert not answer.abstained, answer
    stored = rows(ingested)
    hits = [c for c in answer.citations if c.doc_id == doc_id and fact in c.quote]
    assert hits, [(c.doc_id, c.quote) for c in answer.citations]
    for c in answer.citations:
        text, meta = stored[c.chunk_id]
        offset = int(meta["start"])
        assert c.quote == text[c.start - offset:c.end - offset], (c.quote, text)
    assert hits[0].location is not None and hits[0].location.label == where


def test_delete_reingest_and_change_leave_no_orphans(service: AssistantService,
                                                     tmp_path: Path) -> None:
    root = write_tree(tmp_path / "kb")
    assert service.ingest([root]).added == 5
    first = assert_only(service, set(NEW_FORMATS) | {NOTE})

    left = set(first)
    for doc_id in NEW_FORMATS:  # each delete takes exactly that document's chunks
        assert service.delete_document(doc_id) == len(first[doc_id])
        left.discard(doc_id)
        assert assert_only(service, left) == {d: first[d] for d in left}

    again = service.ingest([root])  # the files are still on disk: they come back whole
    assert (again.added, again.unchanged, again.removed) == (4, 1, 0)
    assert assert_only(service, set(first)) == first

    changes = [  # one slide, one cell, one CSV value, one scanned page
        (DECK, lambda: write_pptx(root / DECK, deck_slides("September"),
                                  title="Service review deck"), "September", "by June"),
        (BOOK, lambda: write_xlsx(root / BOOK, {"Scores": score_rows(27), "Lookup": [
            ["Code", "Meaning"], ["NP", "net promoter"]]}, hidden=("Lookup",),
            title="NPS scores"), "NPS: 27", "NPS: 22"),
        (TABLE, lambda: write_csv(root / TABLE, ticket_rows("15")), "Resolution days: 15",
         "Resolution days: 12"),
        (SCAN, lambda: write_scanned_pdf(root / SCAN, scan_pages("twenty")),
         "twenty days", "nineteen"),
    ]
    for doc_id, change, new, old in changes:
        before = state(service)
        change()
        summary = service.ingest([root])
        assert (summary.updated, summary.unchanged, summary.added, summary.removed) == (
            1, 4, 0, 0), (doc_id, summary)
        after = assert_only(service, set(first))
        assert summary.embedded_chunks == len(after[doc_id])  # only the changed document
        assert not after[doc_id] & before[doc_id]  # the old version is gone
        assert {d: ids for d, ids in after.items() if d != doc_id} == {
            d: ids for d, ids in before.items() if d != doc_id}
        text = " ".join(" ".join(t.split()) for t, _ in chunks_of(service, doc_id))
        assert new in text and old not in text, (doc_id, text)
