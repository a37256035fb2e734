"""Answers that state what was asked (issue 13): the mechanisms, each on real answers over
the sample corpus or on real question text, so a regression in one shows by name."""

from __future__ import annotations

import pytest

from assistant.answering import Sentence, expand, reading_list
from assistant.boilerplate import is_boilerplate, repeated_sentences
from assistant.questions import analyse, answer_type, carries, specific_terms, uncovered
from assistant.retrieval import ScoredChunk
from assistant.schemas import AnswerRequest
from assistant.service import AssistantService


def _ask(service: AssistantService, question: str) -> tuple[bool, str, list[str]]:
    r = service.answer(AnswerRequest(question=question))
    return r.abstained, r.answer, [c.quote for c in r.citations]


def test_the_cards_question_is_answered_with_the_definition(
        corpus_service: AssistantService) -> None:
    abstained, answer, quotes = _ask(corpus_service, "how do we define Cx Quality Faults?")
    assert not abstained
    assert quotes[0].startswith("A **Cx Quality Fault** is a moment where the experience"), \
        answer


def test_what_we_found_quotes_the_findings_not_the_background(
        corpus_service: AssistantService) -> None:
    r = corpus_service.answer(AnswerRequest(question="What did we find at Brightwave Mobile?"))
    assert not r.abstained and r.citations
    assert all(c.doc_id == "findings/brightwave-churn.md" for c in r.citations)
    assert all("What we found" in c.section for c in r.citations), r.citations
    assert "3.4 million postpaid" not in r.answer


@pytest.mark.parametrize("question", [
    "What did we find at Ferncastle Energy?",
    "Who chaired the monthly review at Quenby Insurance?",
])
def test_a_client_the_corpus_never_mentions_is_refused_by_name(
        corpus_service: AssistantService, question: str) -> None:
    abstained, answer, quotes = _ask(corpus_service, question)
    assert abstained and not quotes
    assert "mentions" in answer


@pytest.mark.parametrize("extra", [
    " Answer in one line.", " Please cite the playbook.", " Give a response in USD.",
    " Round to two decimals.",
])
def test_instructions_do_not_turn_an_answer_into_an_abstention(
        corpus_service: AssistantService, extra: str) -> None:
    question = "What is the maximum number of measures per journey on a Cx Quality Scorecard?"
    plain = corpus_service.answer(AnswerRequest(question=question))
    r = corpus_service.answer(AnswerRequest(question=question + extra))
    assert not plain.abstained and not r.abstained, r.answer
    assert {c.doc_id for c in r.citations} & {"articles/cx-quality-scorecard.md",
                                              "playbooks/build-quality-scorecard.md"}


def test_subject_terms_ignore_instructions_fiscal_notation_and_jargon() -> None:
    q = ("What is the FY2018 capital expenditure amount (in USD millions) for 3M? Give a "
         "response to the question by relying on the details shown in the cash flow statement.")
    assert specific_terms(q) == ["2018|2019", "3M"]  # a fiscal year spans two calendar years
    assert specific_terms("As of FY2023Q1, why did Pepsico raise guidance?") == [
        "2023|2024", "Pepsico"]
    assert specific_terms("What was the change in PP&E and M&A spend in Q2 FY22?") == [
        "2022|2023"]
    assert specific_terms("What Was the agenda of the filing dated 1st July 2022?") == ["2022"]
    assert specific_terms("As a CX lead, what did we find at Harbor Federal Bank?") == [
        "Harbor", "Federal", "Bank"]
    # a definition after the question is not the question
    assert specific_terms("What is Amazon's DPO? DPO is defined as: 365 * AP / COGS.") == [
        "Amazon"]


def test_coverage_forgives_a_typo_and_reads_years_as_a_group() -> None:
    haystack = "brightwave mobile saw churn rise in 2023 and fall in 2024"
    assert uncovered(["Brightwve"], haystack) == []
    assert uncovered(["Ferncastle"], haystack) == ["Ferncastle"]
    assert uncovered(["2022", "2023"], haystack) == []  # a comparison across years
    assert uncovered(["2019"], haystack) == ["2019"]
    assert uncovered(["2022|2023"], haystack) == []
    assert uncovered(["2020|2021"], haystack) == ["2020"]


def test_answer_types_and_what_carries_them() -> None:
    assert answer_type("By how many points did churn rise?") == "number"
    assert answer_type("In what year did the programme launch?") == "date"
    assert answer_type("Who chairs the fault review?") == "person"
    assert answer_type("Which vendor supplied the platform?") == "org"
    assert answer_type("What are the two tests for a fault?") is None
    assert carries("number", "Churn rose by four points.", "By how many points?")
    assert not carries("number", "Solace operates 48 hotels.", "How many rooms do its 48 "
                       "hotels have?")
    assert carries("date", "It launched in March 2023.")
    assert not carries("date", "It launched after the pilot.")


def test_definitional_and_overview_questions_are_recognised() -> None:
    assert analyse("how do we define Cx Quality Faults?").subject == {"cx", "qualiti", "fault"}
    assert analyse("What did we find at Brightwave Mobile?").overview
    assert not analyse("What did we find about churn timing at Brightwave?").overview


def _chunk(text: str, section: str = "S") -> ScoredChunk:
    return ScoredChunk(id="c1", text=text, metadata={"doc_id": "d.md", "section": section})


def _sentences(chunk: ScoredChunk) -> list[Sentence]:
    from assistant.answering import split_sentences

    return split_sentences(chunk, 0)


def test_an_announcing_sentence_brings_the_items_it_announces() -> None:
    chunk = _chunk("Two tests decide whether something is a fault:\n\n"
                   "- The promise test asks whether we kept our word to the customer.\n"
                   "- The expectation test asks what a reasonable customer would expect.\n\n"
                   "## Next section\n\nAnother paragraph that is about something else.")
    sentences = _sentences(chunk)
    picked = [sentences[j].quote for j in expand(sentences, 0)]
    assert picked == [
        "Two tests decide whether something is a fault:",
        "The promise test asks whether we kept our word to the customer.",
        "The expectation test asks what a reasonable customer would expect.",
    ]


def test_a_pronoun_led_sentence_brings_what_it_refers_to() -> None:
    chunk = _chunk("Maria Lopez ran the review board for three years at the bank. "
                   "She argues that every fault needs one named owner.")
    sentences = _sentences(chunk)
    picked = [sentences[j].quote for j in expand(sentences, 1)]
    assert picked[0].startswith("Maria Lopez") and picked[1].startswith("She argues")


def test_reading_list_adds_the_answering_section_of_the_top_document() -> None:
    def c(i: int, doc: str, section: str) -> ScoredChunk:
        return ScoredChunk(id=f"c{i}", text="x", metadata={"doc_id": doc, "section": section})

    chunks = [c(0, "a", "A > Context"), c(1, "b", "B > Findings"), c(2, "a", "A > Approach"),
              c(3, "a", "A > What we found > Cost"), c(4, "b", "B > Findings")]
    ids = [x.id for x in reading_list(chunks, "What did we find at A?", 2)]
    assert ids == ["c0", "c1", "c3"]
    assert [x.id for x in reading_list(chunks, "How long did A take?", 2)] == ["c0", "c1"]


def test_page_furniture_is_recognised_by_wording_and_by_repetition() -> None:
    assert is_boilerplate("If you would like to schedule a meeting to discuss it, click here.")
    assert is_boilerplate("Northfield Partners is committed to bringing you the most useful "
                          "insight on customer experience.")
    assert is_boilerplate("top of page")
    assert not is_boilerplate("Click-through rates on the renewal email fell by a third.")
    docs = [("a", ["Subscribe to our quarterly digest of customer insight today", "Own a."]),
            ("b", ["Subscribe to our quarterly digest of customer insight today", "Own b."])]
    assert repeated_sentences(docs) == {"subscribe to our quarterly digest of customer "
                                        "insight today"}


def test_page_furniture_is_never_quoted(tmp_path, corpus_service: AssistantService) -> None:
    """Two saved web pages sharing a template: the template is never the answer, even when
    the question names the firm it talks about."""
    from helpers.settings import make_settings

    kb = tmp_path / "kb"
    kb.mkdir()
    footer = ("Northfield Partners is dedicated to providing the latest and most helpful "
              "customer experience insight to our clients.\n\nIf you would like to schedule a "
              "meeting with Northfield Partners about this article, click here.\n\n"
              "Read our newsletter about Northfield Partners every month for new insight.")
    (kb / "one.md").write_text(
        "# Renewal emails\n\nNorthfield Partners found that renewal reminders sent 30 days "
        "ahead halved surprise cancellations at a broadband client.\n\n" + footer)
    (kb / "two.md").write_text(
        "# Store queues\n\nNorthfield Partners measured queue abandonment at 18% in city "
        "stores during the Saturday peak.\n\n" + footer)
    service = AssistantService(make_settings(tmp_path / "data"))
    service._embedder = corpus_service.embedder  # the same model, loaded once per session
    service.ingest([kb])
    r = service.answer(AnswerRequest(question="What does Northfield Partners provide to "
                                              "its clients?"))
    for c in r.citations:
        assert "click here" not in c.quote and "dedicated to providing" not in c.quote
        assert "newsletter" not in c.quote


def test_wrapped_lines_join_and_a_bold_label_stays_with_its_sentence() -> None:
    from assistant.sentences import sentence_spans

    text = ("Context\n"
            "Voluntary disenrolment at the last annual enrolment period was 9.8%, and member\n"
            "services traced most angry calls to two moments.\n"
            "1. **The promise test.** Did we say something that did not happen at all?\n"
            "- a list item that is long enough to count as a sentence here\n"
            "| Severity | Definition | Example of it |\n")
    quotes = [text[a:b] for a, b in sentence_spans(text)]
    assert quotes[0] == ("Voluntary disenrolment at the last annual enrolment period was 9.8%, "
                         "and member\nservices traced most angry calls to two moments.")
    assert quotes[1] == "**The promise test.** Did we say something that did not happen at all?"
    assert quotes[2] == "a list item that is long enough to count as a sentence here"
    assert quotes[3].startswith("| Severity |")
    assert len(quotes) == 4  # "Context" (a PDF heading) is no sentence
