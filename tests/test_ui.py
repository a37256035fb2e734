"""The chat UI in a real browser: Debian's chromium driven by Playwright against `serve`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.browser import CHROMIUM, LAUNCH_ARGS
from helpers.files import write_md, write_pdf
from helpers.processes import cli_ingest, serve

SCREENSHOT = Path(os.environ.get("CX_UI_SCREENSHOT", "/tmp/cx-ui-flow.png"))
EVIL_NAME = "<img src=x onerror=alert(1)>.md"
EVIL_BODY = (
    "# Xylophone protocol <script>alert('heading')</script>\n\n"
    "The Xylophone protocol requires seven signatures before launch "
    "<img src=x onerror=\"window.__pwned=1;alert(2)\"> and a <script>alert('body')</script> "
    "review by the [launch board](javascript:alert(3)).\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("ui-data")
    kb = tmp_path_factory.mktemp("ui-kb")
    write_md(kb / "articles" / "faults.md", "Defining faults",
             "# Defining faults\n\nA Cx Quality Fault is a moment where the customer receives "
             "less than the organisation promised. Each fault is reviewed monthly by the "
             "journey owner.", doc_type="article")
    write_md(kb / "findings" / "acme.md", "Acme churn",
             "# Acme churn\n\nAcme's churn fell from 2.1% to 1.6% after the billing fix.",
             doc_type="finding", client="Acme")
    write_md(kb / EVIL_NAME, "<script>alert('title')</script>", EVIL_BODY,
             doc_type="playbook", client="\"<img src=x onerror=alert(4)>\"")
    write_pdf(kb / "findings" / "harbour-review.pdf", "Harbour Ferries review", [
        "Harbour Ferries asked us to review the booking journey end to end.",
        "Harbour Ferries refunds for cancelled sailings took eleven working days on average.",
    ])
    cli_ingest(kb, data)
    with serve(data) as served:
        yield served.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "chromium missing: `make test` installs it (apt-get chromium)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.dialogs = []  # every alert/confirm/prompt that fires: must stay empty
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.set_default_timeout(60_000)
    page.goto(f"{server}/ui/")
    page.wait_for_selector("#cx-question textarea")
    yield page
    context.close()


def ask(page: Any, question: str) -> None:
    """Type a question, send it, and wait until its answer has finished."""
    turns_before = page.locator("#cx-chat [data-testid=bot]").count()
    page.fill("#cx-question textarea", question)
    page.click("#cx-ask")
    page.wait_for_function(
        "n => document.querySelectorAll('#cx-chat [data-testid=bot]').length > n",
        arg=turns_before)
    page.wait_for_function(
        "q => document.querySelector('#cx-sources').innerText.includes(q)", arg=question)


def test_ask_cite_open_source_and_give_feedback(page: Any, server: str) -> None:
    chat = page.locator("#cx-chat")
    assert "How do we define a Cx Quality Fault?" in chat.inner_text()  # examples when empty

    ask(page, "What is a Cx Quality Fault?")
    api = httpx.post(f"{server}/v1/answer", json={"question": "What is a Cx Quality Fault?"},
                     timeout=60).json()
    bubble = page.locator("#cx-chat [data-testid=bot]").last
    assert "[1]" in bubble.inner_text() and not api["abstained"]
    source = page.locator("#cx-src-0-1")
    assert source.get_attribute("open") is None  # closed until its marker is clicked
    bubble.locator('a[href="#cx-src-0-1"]').first.click()
    page.wait_for_function("document.getElementById('cx-src-0-1').open === true")
    assert source.locator("mark").inner_text() == api["citations"][0]["quote"]
    assert api["citations"][0]["doc_id"] in source.inner_text()
    assert "article" in source.inner_text()  # doc type shown

    page.fill("#cx-comment textarea", "Should mention the monthly review")
    page.locator("#cx-chat button[aria-label='Dislike']").first.click()  # the only answer
    page.wait_for_function(
        "document.querySelector('#cx-status').innerText.includes('thumbs-down on answer 1')")
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    ask(page, "Who won the 1998 World Cup?")
    assert "Not in the knowledge base" in page.locator("#cx-chat [data-testid=bot]").last \
        .inner_text()
    assert "No sources" in page.locator("#cx-sources").inner_text()
    export = httpx.get(f"{server}/v1/feedback/export").text
    assert "Should mention the monthly review" in export
    assert "What is a Cx Quality Fault?" in export
    assert page.dialogs == []


def test_filters_follow_ups_and_examples(page: Any, server: str) -> None:
    page.locator("#cx-chat button", has_text="What belongs on a Cx Quality Scorecard?").click()
    page.wait_for_function(
        "document.querySelector('#cx-sources').innerText.includes('Scorecard')")
    page.click("#cx-clear")
    page.wait_for_function("!document.querySelector('#cx-sources details')")

    # Unfiltered, this question is answered from the article: only the doc-type filter
    # chosen below can keep that article out of the chat's sources.
    definition = "What is a Cx Quality Fault?"
    unfiltered = httpx.post(f"{server}/v1/answer", json={"question": definition},
                            timeout=60).json()
    assert "articles/faults.md" in {c["doc_id"] for c in unfiltered["citations"]}
    page.click("#cx-filters")
    page.locator("#cx-doctype label", has_text="finding").click()
    ask(page, definition)
    assert "Defining faults" not in page.locator("#cx-sources").inner_text()
    ask(page, "How much did churn fall?")
    assert "Acme churn" in page.locator("#cx-src-1-1").inner_text()
    ask(page, "and what caused it?")  # a follow-up: leans on the previous question
    text = page.locator("#cx-sources").inner_text()
    assert "Q3: and what caused it?" in text and "Acme churn" in text
    assert set(page.locator("#cx-sources .cx-type").all_inner_texts()) == {"finding"}


def test_untrusted_text_renders_inert(page: Any, server: str, tmp_path: Path) -> None:
    ask(page, "What does the Xylophone protocol require before launch?")
    page.locator('#cx-chat a[href="#cx-src-0-1"]').first.click()
    page.wait_for_function("document.getElementById('cx-src-0-1').open === true")
    source = page.locator("#cx-src-0-1").inner_text()
    assert EVIL_NAME in source  # the file name is shown as text...
    assert "<script>alert('title')</script>" in source  # ...and so is the hostile title
    bubble = page.locator("#cx-chat [data-testid=bot]").last.inner_text()
    assert "<img src=x onerror=" in bubble

    evil_upload = tmp_path / "<svg onload=alert(5)>.md"
    evil_upload.write_text("Upload text <img src=x onerror=alert(6)> about quokkas.\n")
    page.click("#cx-upload")
    page.set_input_files("#cx-files input[type=file]", str(evil_upload))
    page.click("#cx-upload-btn")
    page.wait_for_function(
        "document.querySelector('#cx-status').innerText.includes('Ingested')")

    assert page.dialogs == []
    assert page.evaluate("window.__pwned") is None
    injected = page.evaluate("""() => ({
        img: document.querySelectorAll('img[src="x"]').length,
        svg: document.querySelectorAll('svg[onload]').length,
        handlers: [...document.querySelectorAll('*')].filter(
            e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
        scripts: [...document.querySelectorAll('script')].filter(
            s => s.textContent.includes('alert(')).length,
        js_links: document.querySelectorAll('a[href^="javascript:"]').length,
    })""")
    assert injected == {"img": 0, "svg": 0, "handlers": 0, "scripts": 0, "js_links": 0}
    docs = httpx.get(f"{server}/v1/documents", params={"limit": 1000}).json()["data"]
    uploaded = [d["doc_id"] for d in docs if "onload" in d["doc_id"]]
    assert len(uploaded) == 1 and "<" not in uploaded[0] and uploaded[0].endswith(".md")


def test_a_pdf_citation_shows_its_page_and_opens_the_original_there(page: Any,
                                                                   server: str) -> None:
    ask(page, "How long did Harbour Ferries take to refund cancelled sailings?")
    card = page.locator("#cx-sources .cx-source").filter(has_text="harbour-review.pdf").first
    assert card.locator("summary .cx-loc").inner_text() == "p. 2"  # shown while closed
    card.locator("summary").click()
    link = card.locator("a.cx-open")
    assert link.inner_text() == "Open original"
    href = link.get_attribute("href")
    assert href.startswith("/v1/documents/findings/harbour-review.pdf/file?")
    assert href.endswith("#page=2") and "token=" in href
    assert link.get_attribute("target") == "_blank"
    original = page.request.get(server + href.split("#")[0])
    assert original.status == 200
    assert original.headers["content-type"] == "application/pdf"
    assert original.body().startswith(b"%PDF")
    assert page.dialogs == []
