"""Writers for the documents tests ingest: Markdown with front matter, PDF, DOCX, and a batch
of files that cannot be indexed."""

from __future__ import annotations

import os
from pathlib import Path


def write_md(path: Path, title: str, body: str, **meta: object) -> Path:
    lines = ["---", f"title: \"{title}\""]
    for key, value in meta.items():
        lines.append(f"{key}: {value}")
    lines += ["---", "", body]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_small_kb(kb: Path) -> Path:
    """Two documents several API, MCP and CLI tests share: a definition (article) and a
    client finding with a figure."""
    write_md(kb / "articles" / "faults.md", "Defining faults",
             "# Defining faults\n\nA Cx Quality Fault is a moment where the customer receives "
             "less than the organisation promised.", doc_type="article", date="2024-01-05")
    write_md(kb / "findings" / "acme.md", "Acme churn",
             "# Acme churn\n\nAcme's churn fell from 2.1% to 1.6% after the fix.",
             doc_type="finding", client="Acme")
    return kb


def write_pdf(path: Path, title: str, paragraphs: list[str]) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_author("Test Author")
    pdf.set_keywords("alpha, beta")
    for para in paragraphs:
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, para)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def write_docx(path: Path, title: str, sections: dict[str, list[str]], **props: str) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    for key, value in props.items():
        setattr(document.core_properties, key, value)
    for heading, paragraphs in sections.items():
        document.add_heading(heading, level=1)
        for para in paragraphs:
            document.add_paragraph(para)
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


def write_bad_files(root: Path) -> dict[str, str]:
    """Files a real batch contains that cannot be indexed; returns name → a fragment of the
    reason ingest must give. Each must be skipped by name while the rest of the batch lands."""
    from assistant.ingest import MAX_FILE_BYTES

    root.mkdir(parents=True, exist_ok=True)
    (root / "junk.md").write_bytes(b"\x00\x01\x02\x00 binary")
    # Binary with no NUL byte (what the cp1252 fallback would otherwise index as text).
    (root / "noise.md").write_bytes(bytes(b for b in os.urandom(65536) if b))
    (root / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    real = write_pdf(root / "_tmp.pdf", "Cut", ["A page about survey design. " * 20])
    (root / "truncated.pdf").write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    real.unlink()
    (root / "broken.docx").write_bytes(b"PK\x03\x04 not a zip archive")
    (root / "empty.txt").write_text("", "utf-8")
    (root / "bad-date.md").write_text("---\ntitle: Dated\ndate: 2024-13-45\n---\n\nText.\n")
    with open(root / "huge.txt", "wb") as handle:  # sparse: instant, no disk used
        handle.truncate(MAX_FILE_BYTES + 1)
    return {"junk.md": "binary", "noise.md": "binary", "broken.pdf": "PDF could not be parsed",
            "truncated.pdf": "PDF could not be parsed", "broken.docx": "DOCX could not be",
            "empty.txt": "no text", "bad-date.md": "month must be in 1..12",
            "huge.txt": "larger than 50 MB"}
