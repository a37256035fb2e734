"""Decks, workbooks, CSV, tables and scanned PDFs: real files written here, read by the real
libraries (python-pptx, openpyxl, pdfplumber, pypdfium2, tesseract)."""

from __future__ import annotations

import datetime as dt
import difflib
from pathlib import Path

import pytest
from helpers.files import (
    write_csv,
    write_docx_table,
    write_mixed_pdf,
    write_pdf,
    write_pptx,
    write_scanned_pdf,
    write_table_pdf,
    write_xlsx,
)

from assistant.readers import (
    PAGE_BREAK,
    SUPPORTED_SUFFIXES,
    LoadedFile,
    ReadError,
    read_file,
    sheets,
)
from assistant.readers.tables import render_table

NPS_ROWS = [["Client", "Quarter", "NPS"], ["Verdant", "Q3", "41"], ["Harbor Bank", "Q3", "28"]]


def _at(loaded: LoadedFile, needle: str) -> dict[str, object]:
    """The location holding where `needle` starts in the text (the last one at or before)."""
    offset = loaded.text.index(needle)
    return [loc for start, loc in loaded.locations if start <= offset][-1]


def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, "".join(a.split()), "".join(b.split())).ratio()


def test_new_suffixes_are_supported_after_the_old_ones() -> None:
    assert SUPPORTED_SUFFIXES[:7] == (".md", ".markdown", ".txt", ".html", ".htm", ".pdf",
                                      ".docx")
    assert SUPPORTED_SUFFIXES[7:] == (".pptx", ".xlsx", ".csv")


def test_table_rows_carry_their_headers() -> None:
    rows = [["", "", ""], ["Client", " Quarter\n", "NPS"], ["Verdant", "Q3", "41"],
            ["Harbor  Bank", "", "28"], ["Client", "Quarter", "NPS"], ["Odd", "x", "1", "extra"]]
    assert render_table(rows).splitlines() == [
        "| Client: Verdant | Quarter: Q3 | NPS: 41 |",
        "| Client: Harbor Bank | NPS: 28 |",  # empty cell left out, whitespace collapsed
        "| Client: Odd | Quarter: x | NPS: 1 | extra |",  # no header: the bare value
    ]
    assert render_table([["", "Q3"], ["NPS", "41"]]) == "| NPS | Q3: 41 |"
    assert render_table([["Only", "", "row"]]) == "| Only | row |"
    # A caption above the real header is kept as a plain line, not taken as the header.
    assert render_table([["NPS by client"], *NPS_ROWS]).splitlines()[:2] == [
        "NPS by client", "| Client: Verdant | Quarter: Q3 | NPS: 41 |"]


def test_docx_tables_become_header_rows(tmp_path: Path) -> None:
    path = write_docx_table(tmp_path / "nps.docx", "NPS review", "Scores by client.", NPS_ROWS)
    text = read_file(path, "nps.docx").text
    assert "| Client: Verdant | Quarter: Q3 | NPS: 41 |\n| Client: Harbor Bank |" in text
    assert "| Client | Quarter | NPS |" not in text
    assert text.startswith("Scores by client.")


def test_pptx_slides_become_sections_with_locations(tmp_path: Path) -> None:
    path = write_pptx(tmp_path / "findings" / "verdant.pptx", [
        {"title": "Verdant online grocery", "bullets": ["Readout, October 2024"]},
        {"title": "Scores", "boxes": [(3.0, "Lower box comes second."),
                                      (2.0, "Upper box comes first.")],
         "group": [(6.5, "Grouped note.")],
         "table": NPS_ROWS, "notes": "Stress the Q3 drop.\nThen pause."},
        {},  # an empty slide: no section, and the numbering after it stays right
        {"title": None, "boxes": [(1.0, "A slide without a title.")]},
        {"title": "Trend", "chart": (["Q1", "Q2", "Q3"], {"NPS": (35, 38, 41)})},
    ], author="Maya Okafor", category="finding", subject="Verdant", keywords="nps, grocery")
    loaded = read_file(path, "findings/verdant.pptx")
    text = loaded.text
    assert text.startswith("# Verdant online grocery\n\n## Verdant online grocery")
    assert "- Readout, October 2024" in text
    assert text.index("Upper box comes first.") < text.index("Lower box comes second.")
    assert "Grouped note." in text
    assert "| Client: Verdant | Quarter: Q3 | NPS: 41 |" in text
    assert text.rstrip().endswith("| Q3 | NPS: 41 |")
    scores = text[text.index("## Scores"):text.index("## Slide 4")]
    assert scores.rstrip().endswith("Notes: Stress the Q3 drop. Then pause.")
    assert "## Slide 3" not in text and "## Slide 4\n\nA slide without a title." in text
    assert [loc for _, loc in loaded.locations] == [{"slide": n} for n in (1, 2, 4, 5)]
    assert loaded.locations[1][0] == text.index("## Scores")
    assert _at(loaded, "Harbor Bank") == {"slide": 2}
    assert _at(loaded, "| Q3 | NPS: 41 |") == {"slide": 5}
    assert loaded.metadata == {
        "title": "Verdant online grocery", "doc_type": "finding", "client": "Verdant",
        "author": "Maya Okafor", "date": loaded.metadata["date"], "tags": ["grocery", "nps"]}


def test_pptx_core_title_wins_over_the_first_slide(tmp_path: Path) -> None:
    path = write_pptx(tmp_path / "d.pptx", [{"title": "Agenda"}], title="Q3 steering pack")
    loaded = read_file(path, "d.pptx")
    assert loaded.text.startswith("# Q3 steering pack\n\n## Agenda")
    assert loaded.metadata["title"] == "Q3 steering pack"


def test_xlsx_rows_carry_headers_formats_and_row_numbers(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "scores.xlsx", {
        "Scores": [
            ["NPS by client, 2024"],  # a caption above the header
            [],
            ["Client", "Quarter", "NPS", "Promoters", "Surveyed", "Ratio"],
            ["Verdant", "Q3", 41.0, (0.4125, "0.0%"), dt.datetime(2024, 9, 30, 14, 5), 1 / 3],
            [],
            ["Harbor Bank", "Q3", 28, (0.3, "0%"), dt.date(2024, 9, 1), 2.5],
        ],
        "Lookup": [["Code", "Meaning"], ["X", "hidden"]],
        "Blank": [],
    }, hidden=("Lookup",), title="Client scores", creator="Luis Ortega",
        keywords="nps", category="finding", subject="Verdant")
    loaded = read_file(path, "scores.xlsx")
    assert loaded.text.splitlines()[:5] == [
        "# Client scores", "", "## Scores", "", "NPS by client, 2024"]
    assert ("| Client: Verdant | Quarter: Q3 | NPS: 41 | Promoters: 41.25% "
            "| Surveyed: 2024-09-30 | Ratio: 0.3333 |") in loaded.text
    assert ("| Client: Harbor Bank | Quarter: Q3 | NPS: 28 | Promoters: 30% "
            "| Surveyed: 2024-09-01 | Ratio: 2.5 |") in loaded.text
    assert _at(loaded, "| Client: Verdant") == {"sheet": "Scores", "row": 4}
    assert _at(loaded, "| Client: Harbor Bank") == {"sheet": "Scores", "row": 6}
    assert _at(loaded, "NPS by client") == {"sheet": "Scores", "row": 1}
    assert loaded.locations[0] == (loaded.text.index("## Scores"), {"sheet": "Scores"})
    assert "hidden" not in loaded.text and "## Blank" not in loaded.text
    assert loaded.warnings == ["sheet 'Lookup' is hidden: not indexed"]
    assert loaded.metadata == {"title": "Client scores", "doc_type": "finding",
                               "client": "Verdant", "author": "Luis Ortega",
                               "date": loaded.metadata["date"], "tags": ["nps"]}


def test_cell_values_read_as_excel_shows_them() -> None:
    assert sheets.format_value(41.0) == "41"
    assert sheets.format_value(0.41, "0%") == "41%"
    assert sheets.format_value(2.50000001) == "2.5"
    assert sheets.format_value(0.00001234) == "1.234e-05"
    assert sheets.format_value(True) == "True"
    assert sheets.format_value(None) == ""


def test_large_sheets_are_bounded_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sheets, "MAX_SHEET_ROWS", 3)
    rows = [["Respondent", "Score"]] + [[f"R{i}", i] for i in range(1, 11)]
    loaded = read_file(write_xlsx(tmp_path / "big.xlsx", {"Responses": rows}), "big.xlsx")
    assert "R3" in loaded.text and "R4" not in loaded.text
    assert loaded.warnings == ["sheet 'Responses': 10 rows, only the first 3 indexed"]
    csv_loaded = read_file(write_csv(tmp_path / "big.csv", [[str(c) for c in r] for r in rows]),
                           "big.csv")
    assert "R3" in csv_loaded.text and "R4" not in csv_loaded.text
    assert csv_loaded.warnings == ["big.csv: 10 rows, only the first 3 indexed"]


def test_csv_semicolons_cp1252_and_line_numbers(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "q3-nps_export.csv", [
        ["Client", "Comment", "Score"],
        ["Café Rouge", "Served\ncold", "6"],  # a quoted cell over two lines
        ["Verdant", "Fast delivery", "9"],
    ], delimiter=";", encoding="cp1252")
    loaded = read_file(path, "q3-nps_export.csv")
    assert loaded.text.splitlines() == [
        "| Client: Café Rouge | Comment: Served cold | Score: 6 |",
        "| Client: Verdant | Comment: Fast delivery | Score: 9 |"]
    assert [loc for _, loc in loaded.locations] == [{"row": 2}, {"row": 4}]
    assert loaded.metadata["title"] == "q3 nps export"


def test_csv_binary_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"a,b\x00\x01\x02\n")
    with pytest.raises(ReadError, match="binary"):
        read_file(path, "x.csv")


@pytest.mark.parametrize(("name", "message"), [("deck.pptx", "PPTX could not be parsed"),
                                               ("book.xlsx", "XLSX could not be parsed")])
def test_corrupt_office_files_raise_read_error(tmp_path: Path, name: str, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"PK\x03\x04 not a zip archive")
    with pytest.raises(ReadError, match=message):
        read_file(path, name)


def test_pdf_table_becomes_header_rows_in_place(tmp_path: Path) -> None:
    path = write_table_pdf(tmp_path / "t.pdf", "Scores before the table.", NPS_ROWS,
                           "Notes after the table.")
    loaded = read_file(path, "t.pdf")
    lines = loaded.text.splitlines()
    assert lines == ["Scores before the table.",
                     "| Client: Verdant | Quarter: Q3 | NPS: 41 |",
                     "| Client: Harbor Bank | Quarter: Q3 | NPS: 28 |",
                     "Notes after the table."]
    assert loaded.locations == [(0, {"page": 1})]


def test_pdf_pages_are_located(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "p.pdf", "Two pages", ["First page text.", "Second page text."])
    loaded = read_file(path, "p.pdf")
    assert loaded.locations == [(0, {"page": 1}),
                                (loaded.text.index(PAGE_BREAK) + 1, {"page": 2})]
    assert "ocr" not in loaded.metadata and loaded.warnings == []


SENTENCE = ("The Verdant survey showed a net promoter score of 41 in the third quarter, "
            "up from 35 in the spring.")


def test_scanned_pdf_is_ocred(tmp_path: Path) -> None:
    path = write_scanned_pdf(tmp_path / "scan.pdf", [SENTENCE])
    loaded = read_file(path, "scan.pdf")
    assert _similar(loaded.text, SENTENCE) > 0.9, loaded.text
    assert PAGE_BREAK not in loaded.text  # tesseract's trailing form feed is gone
    assert loaded.metadata["ocr"] is True and loaded.metadata["ocr_pages"] == 1
    assert loaded.locations == [(0, {"page": 1})]


def test_mixed_pdf_ocrs_only_the_scanned_page(tmp_path: Path) -> None:
    path = write_mixed_pdf(tmp_path / "mixed.pdf", "Typed page about bill shock.", SENTENCE)
    loaded = read_file(path, "mixed.pdf")
    typed, scanned = loaded.text.split(PAGE_BREAK)
    assert typed == "Typed page about bill shock."
    assert _similar(scanned, SENTENCE) > 0.9, scanned
    assert loaded.metadata["ocr_pages"] == 1


def test_blank_scanned_page_warns_and_the_rest_lands(tmp_path: Path) -> None:
    path = write_scanned_pdf(tmp_path / "gap.pdf", [SENTENCE, ""])
    loaded = read_file(path, "gap.pdf")
    assert _similar(loaded.text.split(PAGE_BREAK)[0], SENTENCE) > 0.9
    assert loaded.warnings == ["page 2: OCR found no readable text"]
    assert [loc for _, loc in loaded.locations] == [{"page": 1}, {"page": 2}]
    with pytest.raises(ReadError, match="no text"):
        read_file(write_scanned_pdf(tmp_path / "blank.pdf", [""]), "blank.pdf")


def test_without_tesseract_scans_say_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mixed = write_mixed_pdf(tmp_path / "mixed.pdf", "Typed page about bill shock.", SENTENCE)
    scan = write_scanned_pdf(tmp_path / "scan.pdf", [SENTENCE])
    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract binary on PATH
    loaded = read_file(mixed, "mixed.pdf")
    assert loaded.text.startswith("Typed page about bill shock.")
    assert loaded.warnings == [
        "page 2: scanned pages need tesseract-ocr (make setup installs it)"]
    with pytest.raises(ReadError, match=r"need tesseract-ocr \(make setup installs it\)"):
        read_file(scan, "scan.pdf")
