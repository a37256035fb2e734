"""Incremental ingest against real Chroma: add, change, delete, unchanged, bad files, locks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.files import write_bad_files, write_docx, write_md, write_pdf

from assistant.ingest import IngestError, discover, ingest_lock
from assistant.service import AssistantService


def _tree(root: Path) -> Path:
    write_md(root / "articles" / "faults.md", "Faults",
             "# Faults\n\nA Cx Quality Fault is a broken promise seen by the customer.",
             doc_type="article", tags="[faults]")
    write_md(root / "playbooks" / "review.md", "Review",
             "# Review\n\nHold the fault review monthly with the journey owners.",
             doc_type="playbook")
    (root / "notes.txt").write_text("Plain text notes about complaint coding.", "utf-8")
    return root


def _state(service: AssistantService) -> dict[str, list[str]]:
    """doc_id → sorted chunk ids, read straight from Chroma."""
    col = service.store.get_collection(service.settings.collection)
    got = col.get(include=["metadatas"])
    state: dict[str, list[str]] = {}
    for cid, meta in zip(got["ids"], got["metadatas"], strict=True):
        state.setdefault(meta["doc_id"], []).append(cid)
    return {k: sorted(v) for k, v in state.items()}


def test_first_ingest_then_unchanged_does_no_work(service: AssistantService, tmp_path: Path):
    root = _tree(tmp_path / "kb")
    first = service.ingest([root])
    assert (first.added, first.updated, first.removed, first.unchanged) == (3, 0, 0, 0)
    assert first.documents == 3 and first.chunks >= 3 and first.embedded_chunks == first.chunks
    before = _state(service)
    assert set(before) == {"articles/faults.md", "playbooks/review.md", "notes.txt"}

    again = service.ingest([root])
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 3)
    assert again.embedded_chunks == 0
    assert _state(service) == before


def test_change_add_delete_leave_no_orphans(service: AssistantService, tmp_path: Path):
    root = _tree(tmp_path / "kb")
    service.ingest([root])
    before = _state(service)

    write_md(root / "articles" / "faults.md", "Faults",
             "# Faults\n\nRewritten: a fault is counted per interaction.\n\n## More\n\n"
             + "Extra section text about severity levels. " * 40, doc_type="article")
    (root / "notes.txt").unlink()
    write_md(root / "findings" / "acme.md", "Acme", "Acme churn fell to 1.2%.",
             doc_type="finding", client="Acme")
    summary = service.ingest([root])
    assert (summary.added, summary.updated, summary.removed, summary.unchanged) == (1, 1, 1, 1)

    after = _state(service)
    assert set(after) == {"articles/faults.md", "playbooks/review.md", "findings/acme.md"}
    assert after["playbooks/review.md"] == before["playbooks/review.md"]
    assert not set(after["articles/faults.md"]) & set(before["articles/faults.md"])
    col = service.store.get_collection(service.settings.collection)
    got = col.get(include=["metadatas"])
    assert len(got["ids"]) == len(set(got["ids"])) == summary.chunks
    for meta in got["metadatas"]:
        assert meta["chunk_count"] == len(after[meta["doc_id"]])
    # the search side sees the new version only
    chunks = service.retrieve("broken promise seen by the customer counted per interaction")
    texts = " ".join(c.text for c in chunks if c.doc_id == "articles/faults.md")
    assert "Rewritten" in texts and "broken promise" not in texts


def test_interrupted_ingest_is_repaired_by_rerun(service: AssistantService, tmp_path: Path):
    """Simulate a crash that left a document half-written: a re-run must converge."""
    root = _tree(tmp_path / "kb")
    clean = service.ingest([root])
    col = service.store.get_collection(service.settings.collection)
    ids = _state(service)["articles/faults.md"]
    write_md(root / "articles" / "faults.md", "Faults", "Long text. " * 400, doc_type="article")
    service.ingest([root])
    expected = _state(service)
    victim = expected["articles/faults.md"]
    assert len(victim) > 1
    col.delete(ids=victim[1:])  # half of the new version lost, as if killed mid-write
    repaired = service.ingest([root])
    assert repaired.updated == 1
    assert _state(service) == expected
    assert clean.documents == repaired.documents and ids != victim


def test_bad_files_are_reported_and_skipped(service: AssistantService, tmp_path: Path):
    root = _tree(tmp_path / "kb")
    bad = write_bad_files(root)
    # Not UTF-8 but text all the same: Windows-1252 and UTF-16 (with BOM) files are indexed.
    (root / "legacy.txt").write_bytes("Caf\u00e9 r\u00e9sum\u00e9 \u2013 notes".encode("cp1252"))
    (root / "wide.txt").write_bytes("Wide notes about closed loops.".encode("utf-16"))
    summary = service.ingest([root])
    reasons = {s.path: s.reason for s in summary.skipped}
    assert sorted(reasons) == sorted(bad)
    for name, fragment in bad.items():
        assert fragment in reasons[name], (name, reasons[name])
    assert summary.added == 5
    state = _state(service)
    assert set(state) == {"articles/faults.md", "playbooks/review.md", "notes.txt",
                          "legacy.txt", "wide.txt"}
    legacy = service.document("legacy.txt").chunks[0].text
    assert "Café résumé – notes" in legacy
    assert "Wide notes about closed loops." in service.document("wide.txt").chunks[0].text


def test_every_format_is_ingested(service: AssistantService, tmp_path: Path):
    root = tmp_path / "mixed"
    write_md(root / "a.md", "A", "Markdown body about promise keepers.")
    (root / "b.txt").write_text("Text body about closed-loop feedback.", "utf-8")
    (root / "c.html").write_text("<html><body><main><p>HTML body about journey maps.</p>"
                                 "</main></body></html>", "utf-8")
    write_pdf(root / "d.pdf", "D", ["PDF body about survey design."])
    write_docx(root / "e.docx", "E", {"Heading": ["DOCX body about frontline empowerment."]})
    (root / "ignored.xyz").write_text("a,b", "utf-8")
    summary = service.ingest([root])
    assert summary.added == 5 and summary.skipped == []
    assert set(_state(service)) == {"a.md", "b.txt", "c.html", "d.pdf", "e.docx"}


def test_single_file_doc_id_and_scope(service: AssistantService, tmp_path: Path):
    root = _tree(tmp_path / "kb")
    service.ingest([root])
    extra = write_md(tmp_path / "loose" / "memo.md", "Memo", "A loose memo on task forces.")
    summary = service.ingest([extra])
    assert summary.added == 1 and summary.removed == 0
    assert "memo.md" in _state(service)
    assert "articles/faults.md" in _state(service)  # other sources untouched


def test_cxignore_and_hidden_files(tmp_path: Path):
    root = _tree(tmp_path / "kb")
    (root / "README.md").write_text("# Index", "utf-8")
    (root / ".cxignore").write_text("README.md\n# comment\nplaybooks/*\n", "utf-8")
    (root / ".hidden.md").write_text("secret", "utf-8")
    _, files = discover(root)
    assert [f.doc_id for f in files] == ["articles/faults.md", "notes.txt"]


def test_missing_path_is_an_error(service: AssistantService, tmp_path: Path):
    with pytest.raises(IngestError, match="does not exist"):
        service.ingest([tmp_path / "nope"])


def test_second_ingest_on_same_data_dir_is_refused(service: AssistantService, tmp_path: Path):
    root = _tree(tmp_path / "kb")
    with ingest_lock(service.settings.data_dir), pytest.raises(IngestError, match="another"):
        service.ingest([root])
    assert service.ingest([root]).added == 3  # lock released: works again


def test_renamed_tree_moves_documents(service: AssistantService, tmp_path: Path):
    root = _tree(tmp_path / "kb")
    service.ingest([root])
    shutil.move(str(root / "notes.txt"), str(root / "playbooks" / "notes.txt"))
    summary = service.ingest([root])
    assert (summary.added, summary.removed) == (1, 1)
    assert "playbooks/notes.txt" in _state(service) and "notes.txt" not in _state(service)
