"""Each reader on real files of its format, and the failures that must be reported, not fatal."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.files import write_docx, write_md, write_pdf

from assistant.readers import ReadError, read_file


def test_markdown_front_matter_becomes_metadata(tmp_path: Path) -> None:
    path = write_md(
        tmp_path / "findings" / "acme.md", "Acme returns review",
        "# Acme returns review\n\nRefunds took nine days on average.",
        doc_type="finding", client="Acme Retail", author="Maya Okafor", date="2024-05-02",
        tags="[Returns, refunds]",
    )
    loaded = read_file(path, "findings/acme.md")
    assert loaded.text.startswith("# Acme returns review")
    assert "doc_type" not in loaded.text
    assert loaded.metadata == {
        "title": "Acme returns review", "doc_type": "finding", "client": "Acme Retail",
        "author": "Maya Okafor", "date": "2024-05-02", "tags": ["refunds", "returns"],
    }


def test_markdown_without_front_matter_uses_heading_and_folder(tmp_path: Path) -> None:
    path = tmp_path / "playbooks" / "x.md"
    path.parent.mkdir()
    path.write_text("# Running a fault review\n\nStep one.", encoding="utf-8")
    meta = read_file(path, "playbooks/x.md").metadata
    assert meta["title"] == "Running a fault review"
    assert meta["doc_type"] == "playbook"


def test_txt_non_utf8_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes("Caf\xe9 service faults were logged.".encode("latin-1"))
    loaded = read_file(path, "notes.txt")
    assert "Café service faults" in loaded.text
    assert loaded.metadata["doc_type"] == "other"


def test_html_drops_scripts_styles_and_navigation(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        """<html><head><title>Scorecard basics</title><meta name="doc_type" content="article">
        <meta name="tags" content="scorecard, measurement"><style>p {color: red}</style>
        <script>var tracking = "SECRET-SCRIPT";</script></head>
        <body><nav>Home | Articles | MENU-LINK</nav>
        <main><h1>Scorecard basics</h1><p>A scorecard holds <b>fault rates</b>.</p>
        <h2>Owners</h2><ul><li>Journey owner reviews monthly</li></ul>
        <table><tr><th>Measure</th><th>Target</th></tr><tr><td>Faults</td><td>4</td></tr></table>
        </main><footer>Copyright FOOTER-TEXT</footer></body></html>""",
        encoding="utf-8",
    )
    loaded = read_file(path, "page.html")
    assert "# Scorecard basics" in loaded.text
    assert "## Owners" in loaded.text
    assert "A scorecard holds fault rates" in loaded.text
    assert "- Journey owner reviews monthly" in loaded.text
    assert "| Faults | 4 |" in loaded.text
    for junk in ("SECRET-SCRIPT", "MENU-LINK", "FOOTER-TEXT", "color: red"):
        assert junk not in loaded.text
    assert loaded.metadata["title"] == "Scorecard basics"
    assert loaded.metadata["doc_type"] == "article"
    assert loaded.metadata["tags"] == ["measurement", "scorecard"]


def test_pdf_text_pages_and_metadata(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "report.pdf", "Billing shock report",
                     ["Page one talks about bill shock.", "Page two covers promo expiry."])
    loaded = read_file(path, "report.pdf")
    assert "bill shock" in loaded.text and "promo expiry" in loaded.text
    assert loaded.text.count("\f") == 1  # two pages, one page break
    assert loaded.metadata["title"] == "Billing shock report"
    assert loaded.metadata["author"] == "Test Author"
    assert loaded.metadata["tags"] == ["alpha", "beta"]


def test_docx_headings_and_core_properties(tmp_path: Path) -> None:
    path = write_docx(
        tmp_path / "playbooks" / "voc.docx", "VoC programme",
        {"Listening posts": ["Surveys, complaints and call notes."],
         "Owners": ["Each post has an owner of action."]},
        category="playbook", author="Tom Brennan", keywords="voc, listening",
    )
    loaded = read_file(path, "playbooks/voc.docx")
    assert "# Listening posts" in loaded.text
    assert "Each post has an owner of action." in loaded.text
    assert loaded.metadata["title"] == "VoC programme"
    assert loaded.metadata["doc_type"] == "playbook"
    assert loaded.metadata["author"] == "Tom Brennan"
    assert loaded.metadata["tags"] == ["listening", "voc"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("junk.md", b"\x00\x01\x02binary\x00junk", "binary"),
        ("empty.txt", b"   \n", "no text"),
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "PDF"),
        ("broken.docx", b"PK not a zip", "DOCX"),
        ("bad-yaml.md", b"---\ntitle: [unclosed\n---\nbody", "front matter"),
    ],
)
def test_unreadable_files_raise_read_error(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ReadError, match=message):
        read_file(path, name)
