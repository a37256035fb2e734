"""Extractive answering: quote the passage of the retrieved chunks that answers the question,
cite it verbatim, or abstain when the evidence does not cover the question.

No LLM is involved. Each candidate sentence gets a few cheap signals (`FEATURES`): its
cosine similarity to the question (sentence vectors stored at ingest, see sentences.py),
lexical overlap, novelty (an echo of the question says nothing), whether its section is the
kind that answers this kind of question, whether it defines the question's subject, whether
it carries the detail asked for (a figure, a year, a name), and its chunk's retrieval rank.
They are combined linearly (`WEIGHTS`, set by hand on the golden suite's dev half;
eval/fit_sentence_ranker.py fits a ranker on the same half for comparison: it picked more
precise but fewer answering sentences, so the hand-set weights stay). The best sentence
seeds the answer and brings what it needs to be read alone: the items it announces ("Two
tests decide ...:"), and the sentence naming what its "This" or "He" refers to. Further
sentences join when they score close to the seed, neighbours more easily than sentences
from elsewhere. Page furniture (boilerplate.py) is never quoted.

Abstention: a question about a name, year or entity no evidence chunk mentions is refused
(questions.py reads which words name the subject), so is one whose best sentence is not
similar enough (`threshold`), and so is one that asks for a figure, year or name that no
candidate sentence carries: "the knowledge base does not give" it.

Every quote is an exact slice of a stored chunk and every `[n]` in the answer resolves to a
citation: `check_citations` enforces both before anything is returned.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.boilerplate import is_boilerplate, normalise
from assistant.questions import Question, analyse, carries, specific_terms, stems, uncovered
from assistant.retrieval import ScoredChunk
from assistant.schemas import AnswerResponse, Citation
from assistant.sentences import SENTENCES_KEY, sentence_spans, unpack

ABSTAIN_TEXT = (
    "The knowledge base does not cover this question: no passage in the indexed documents "
    "answers it closely enough to cite."
)
_DETAIL_LABEL = {"number": "figure", "date": "date or year", "person": "name or role",
                 "org": "organisation"}
_MARKER = re.compile(r"\[(\d+)\]")
RANK_BONUS = 0.04  # ranks the candidates `score` also encodes alone
DUPLICATE_COSINE = 0.9
EVIDENCE_CANDIDATES = 1  # best in-context sentence also scored encoded alone
EXTRA_SECTION_CHUNKS = 2  # chunks of the top document's answering section read in addition
DETAIL_CANDIDATES = 5  # best-scored sentences searched for the figure, year or name asked for

# Signals per candidate sentence, in this order (see `features`).
FEATURES = ("cosine", "lexical", "novelty", "intent", "heading", "defines", "detail",
            "no_detail", "rank", "intro", "dangling", "rarity", "lead")
# Hand-set on the dev half (cosine keeps weight 1, so the threshold and windows below stay
# on the cosine scale).
WEIGHTS = np.array([1.0, 0.10, 0.05, 0.06, 0.03, 0.30, 0.06, -0.12, 0.04, -0.05, -0.04,
                    0.0, 0.05])
MIN_SENTENCES = 2  # quoted sentences an answer gets when a second is about as similar...
SECOND_WINDOW = 0.08  # ...as the seed: within this cosine of it
SEED_WINDOW = 0.04  # a further sentence joins when it scores within this of the seed...
NEIGHBOUR_WINDOW = 0.14  # ...or within this when it sits next to a chosen sentence

_PRONOUN_LED = re.compile(
    r"^(?:he|she|they|this|these|that|those|it|its|their|his|her|such|both|the latter|"
    r"the former|there)\b", re.I)
_ANNOUNCES = re.compile(
    r":$|\b(?:as follows|the following)\b|\b(?P<n>two|three|four|five|six|seven|eight|\d)\s+"
    r"(?:\w+\s+){0,2}(?:things|tests|steps|questions|reasons|rules|ways|criteria|points|"
    r"factors|principles|stages|parts|elements|loops|types|kinds|faults|findings|"
    r"recommendations|changes|lessons|roles|measures|pillars|signals|checks|levers|"
    r"habits|moves|failures|causes|options)\b", re.I)
_COUNT = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
_COPULA = re.compile(r"\b(?:is|are|means|mean|refers? to|describes?|denotes?|"
                     r"(?:is|are) defined as|consists? of)\b", re.I)
_WE_DEFINE = re.compile(r"\b(?:we|i) (?:define|call|use the term|mean by)\b|\bdefined as\b",
                        re.I)


@dataclass
class Sentence:
    """A candidate sentence: its exact span inside one chunk."""

    chunk: ScoredChunk
    chunk_rank: int
    start: int  # offset within the chunk text
    end: int
    index: int = 0  # position among its chunk's sentences

    @property
    def quote(self) -> str:
        return self.chunk.text[self.start : self.end]


def split_sentences(chunk: ScoredChunk, rank: int) -> list[Sentence]:
    """Sentences of a chunk as exact spans (see `sentences.sentence_spans`)."""
    return [Sentence(chunk, rank, start, end, i)
            for i, (start, end) in enumerate(sentence_spans(chunk.text))]


def display_text(quote: str) -> str:
    """Readable form of a quote for the answer text (the citation keeps the verbatim quote)."""
    text = quote.replace("**", "").replace("__", "").replace("`", "")
    # A source's own reference markers ("... as shown before [2].") would read as our
    # citations in the answer; show them as "(2)".
    text = _MARKER.sub(r"(\1)", text)
    if text.startswith("|"):
        text = " — ".join(c.strip() for c in text.strip().strip("|").split("|") if c.strip())
    text = " ".join(text.split())
    if text and text[-1] not in ".!?:;)\"'”’":
        text += "."
    return text


class SentenceEmbeddingCache:
    """LRU of sentence vectors: the same chunks come back for related questions."""

    def __init__(self, embedder: Any, size: int = 20_000) -> None:
        self.embedder = embedder
        self.size = size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._items]
        if missing:
            # one text (the answerer's evidence check): the traced single-text path, ~3x
            # faster than a batch call
            one = getattr(self.embedder, "encode_one", None)
            vectors = [one(missing[0])] if one and len(missing) == 1 else \
                self.embedder.encode(missing)
            for text, vector in zip(missing, vectors, strict=True):
                self._items[text] = vector
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        for t in texts:
            self._items.move_to_end(t)
        return np.stack([self._items[t] for t in texts])


def reading_list(chunks: list[ScoredChunk], question: str, n: int) -> list[ScoredChunk]:
    """The chunks the answerer reads: the best `n`, plus the top document's answering section.

    "What did we find at X?" retrieves X's background first (it names X most often); the
    findings section of the same document, further down the candidates, is what answers.
    So when the question asks for a kind of section (findings, recommendations, results, a
    definition), up to `EXTRA_SECTION_CHUNKS` chunks of the top document whose section
    name is of that kind are read too.
    """
    reading = chunks[:n]
    intents = analyse(question).intents if reading else set()
    if not intents:
        return reading
    top_doc = reading[0].doc_id
    have = {c.id for c in reading}
    extra = [c for c in chunks[n:] if c.doc_id == top_doc and c.id not in have
             and any(i in str(c.metadata.get("section", "")).lower() for i in intents)]
    return reading + extra[:EXTRA_SECTION_CHUNKS]


class ExtractiveAnswerer:
    """Builds a cited answer of at most `max_sentences` quoted sentences from retrieved
    chunks (plus the items an announcing sentence introduces)."""

    def __init__(self, embedder: Any, threshold: float, max_sentences: int = 4,
                 weights: np.ndarray | None = None) -> None:
        self.cache = SentenceEmbeddingCache(embedder)
        self.threshold = threshold
        self.max_sentences = max_sentences
        self.weights = WEIGHTS if weights is None else weights

    def score(
        self, query_embedding: np.ndarray, chunks: list[ScoredChunk]
    ) -> tuple[list[Sentence], np.ndarray, np.ndarray]:
        """Candidate sentences, their cosine similarity to the question, and their vectors.

        Sentence vectors come from the chunk's metadata when ingest stored them (see
        assistant/sentences.py: no model call); sentences of chunks without them (an index
        built before, a span past the model's 256 tokens) are encoded here, cached.
        """
        sentences: list[Sentence] = []
        parts: list[np.ndarray | None] = []
        for rank, chunk in enumerate(chunks):
            found = split_sentences(chunk, rank)
            if found:
                sentences += found
                parts.append(unpack(chunk.metadata.get(SENTENCES_KEY),
                                    [(s.start, s.end) for s in found], len(query_embedding)))
                if parts[-1] is None:
                    parts[-1] = self.cache.encode([s.quote for s in found])
        if not sentences:
            return [], np.zeros(0), np.zeros((0, 1))
        vectors = np.concatenate([p for p in parts if p is not None]).astype(np.float32)
        cosines = vectors @ query_embedding
        # In-context vectors rank well but score a lone, directly answering sentence lower
        # than the sentence encoded alone (0.33 vs 0.43 for "...is chaired by the journey
        # owner." against "Who chairs the fault review?"). The few best candidates are also
        # encoded alone (cached) and keep the higher of the two similarities as evidence.
        ranked = cosines + np.array([RANK_BONUS / (1 + s.chunk_rank) for s in sentences])
        top = np.argsort(-ranked)[:EVIDENCE_CANDIDATES]
        alone = self.cache.encode([sentences[i].quote for i in top]) @ query_embedding
        cosines[top] = np.maximum(cosines[top], alone)
        return sentences, cosines, vectors

    def answer(
        self,
        query_embedding: np.ndarray,
        chunks: list[ScoredChunk],
        question: str = "",
        furniture: Collection[str] = (),
        more: list[ScoredChunk] | None = None,
    ) -> AnswerResponse:
        """The cited answer, or an abstention that says why.

        `furniture`: normalised sentences known to be page furniture in this collection
        (repeated across documents, see boilerplate.py); never quoted. `more`: further
        retrieved chunks, where the items an announcing sentence introduces may continue
        when they run past the end of its chunk.
        """
        missing = uncovered_terms(question, chunks)
        if missing:
            names = ", ".join(f"'{m}'" for m in missing)
            return abstention(f"The knowledge base does not cover this question: none of the "
                              f"passages that match it mentions {names}.")
        sentences, cosines, vectors = self.score(query_embedding, chunks)
        keep = [i for i, s in enumerate(sentences)
                if not is_boilerplate(s.quote) and normalise(s.quote) not in furniture]
        if not keep or float(cosines[keep].max()) < self.threshold:
            return abstention()
        q = analyse(question)
        x = features(q, sentences, cosines)
        if q.overview:
            # "What did we find at X?": quote the findings, not X's background
            answering = [i for i in keep if x[i, FEATURES.index("intent")] > 0
                         and cosines[i] >= self.threshold]
            keep = answering or keep
        scores = np.full(len(sentences), -np.inf)
        scores[keep] = x[keep] @ self.weights
        # The detail asked for must be in one of the few sentences that would be quoted.
        candidates = [int(i) for i in np.argsort(-scores)[:DETAIL_CANDIDATES]
                      if np.isfinite(scores[i]) and cosines[i] >= self.threshold]
        if q.answer_type and not any(carries(q.answer_type, sentences[i].quote, q.asking)
                                     for i in candidates):
            return abstention(
                f"The knowledge base covers this topic but does not give the "
                f"{_DETAIL_LABEL[q.answer_type]} asked for: none of the matching passages "
                f"states one.")
        chosen = self._select(sentences, scores, cosines, vectors)
        extra = continuation(sentences, chosen[0], more or [])
        if extra:
            sentences = sentences + extra
            cosines = np.concatenate([cosines, np.zeros(len(extra))])
            chosen[0] = chosen[0] + list(range(len(sentences) - len(extra), len(sentences)))
            chunks = chunks + [extra[0].chunk]
        return self._respond(sentences, chosen, cosines, chunks)

    def _select(self, sentences: list[Sentence], scores: np.ndarray, cosines: np.ndarray,
                vectors: np.ndarray) -> list[list[int]]:
        """Groups of sentence indices to quote: the seed's passage first, then the others."""
        order = [int(i) for i in np.argsort(-scores) if np.isfinite(scores[i])]
        seed = order[0]
        groups = [expand(sentences, seed)]
        taken = set(groups[0])
        count = 1
        for i in order[1:]:
            if count >= self.max_sentences:
                break
            if i in taken or cosines[i] < self.threshold:
                continue
            gap = scores[seed] - scores[i]
            # A lone sentence is one reading of the evidence; a second one above the
            # threshold lets the reader check it against another passage.
            second = count < MIN_SENTENCES and len(taken) < MIN_SENTENCES and \
                cosines[i] >= cosines[seed] - SECOND_WINDOW
            if gap > NEIGHBOUR_WINDOW and not second:
                break
            if gap > SEED_WINDOW and not second and not any(
                    _adjacent(sentences[i], sentences[j]) for j in taken):
                continue
            if any(float(vectors[i] @ vectors[j]) > DUPLICATE_COSINE for j in taken):
                continue
            # only the seed brings the items it announces: a second list would double the
            # answer; a pronoun's antecedent is always worth its sentence
            group = [j for j in expand(sentences, i, items=False) if j not in taken]
            groups.append(group)
            taken.update(group)
            count += 1
        return groups

    def _respond(self, sentences: list[Sentence], groups: list[list[int]],
                 cosines: np.ndarray, chunks: list[ScoredChunk]) -> AnswerResponse:
        parts, citations = [], []
        for group in groups:
            for span in _spans(sentences, group):  # in reading order, as `expand` built it
                first, last = sentences[span[0]], sentences[span[-1]]
                chunk = first.chunk
                meta = chunk.metadata
                chunk_start = int(meta.get("start", 0))
                n = len(citations) + 1
                quote = chunk.text[first.start:last.end]
                citations.append(Citation(
                    n=n, doc_id=chunk.doc_id, title=str(meta.get("title", "")),
                    section=str(meta.get("section", "")), quote=quote,
                    score=round(float(max(cosines[j] for j in span)), 4), chunk_id=chunk.id,
                    start=chunk_start + first.start, end=chunk_start + last.end,
                ))
                parts.append(f"{display_text(quote)} [{n}]")
        response = AnswerResponse(answer=" ".join(parts), abstained=False, citations=citations)
        check_citations(response, {c.id: c.text for c in chunks})
        return response


def _adjacent(a: Sentence, b: Sentence) -> bool:
    return a.chunk.id == b.chunk.id and abs(a.index - b.index) == 1


def _heading_between(chunk_text: str, end: int, start: int) -> bool:
    return bool(re.search(r"(?:^|\n)\s*#{1,6}\s", chunk_text[end:start]))


def expand(sentences: list[Sentence], i: int, items: bool = True) -> list[int]:
    """Sentence i with what it needs to be read alone, as indices into `sentences`.

    - An announcing sentence ("Two tests decide whether ...:", "the steps are as follows")
      brings the sentences or list items after it (as many as it announces, else up to 3).
    - A sentence led by a pronoun ("He argues ...", "This is why ...") brings the sentence
      before it, which names what the pronoun stands for.
    Both stop at a heading: the next section is another subject.
    """
    s = sentences[i]
    out = [i]
    by_index = {t.index: j for j, t in enumerate(sentences) if t.chunk.id == s.chunk.id}
    announce = _ANNOUNCES.search(s.quote.rstrip("*_ ")) if items else None
    if announce:
        word = (announce.group("n") or "").lower()
        want = _COUNT.get(word, int(word) if word.isdigit() else 3)
        prev_end, taken, want = s.end, 0, min(want, 5)
        first = by_index.get(s.index + 1)
        # items on lines of their own (a list): the first sentence of each item
        listed = first is not None and "\n" in s.chunk.text[s.end:sentences[first].start]
        for k in range(1, 4 * want + 1):
            j = by_index.get(s.index + k)
            if j is None or taken == want or \
                    _heading_between(s.chunk.text, prev_end, sentences[j].start):
                break
            before = by_index.get(s.index + k - 1)
            gap_from = sentences[before].end if before is not None else s.end
            if listed and "\n" not in s.chunk.text[gap_from:sentences[j].start]:
                continue  # a further sentence of the same item
            out.append(j)
            taken += 1
            prev_end = sentences[j].end
            if not listed and taken == want:
                break
    elif _PRONOUN_LED.match(s.quote.lstrip("*_ ")):
        j = by_index.get(s.index - 1)
        if j is not None and not _heading_between(s.chunk.text, sentences[j].end, s.start):
            out.insert(0, j)
    return out


def continuation(sentences: list[Sentence], group: list[int],
                 more: list[ScoredChunk]) -> list[Sentence]:
    """The items an announcing seed introduces that lie in the next chunk of its document.

    "The rhythm we install has four loops:" often ends its chunk; the loops start the next
    one. When that chunk is among the retrieved candidates, its first sentences after the
    announcement (chunks overlap) are quoted too, as many as announced (else up to 3).
    """
    seed = sentences[group[0]] if group else None
    if seed is None or len(group) > 1:
        return []
    announce = _ANNOUNCES.search(seed.quote.rstrip("*_ "))
    if not announce or any(t.chunk.id == seed.chunk.id and t.index == seed.index + 1
                           for t in sentences):
        return []
    index = seed.chunk.metadata.get("chunk_index")
    nxt = next((c for c in more if c.doc_id == seed.chunk.doc_id and index is not None
                and c.metadata.get("chunk_index") == int(index) + 1), None)
    if nxt is None:
        return []
    found = split_sentences(nxt, seed.chunk_rank)
    at = nxt.text.find(seed.quote)
    after = [t for t in found if t.start >= (at + len(seed.quote) if at >= 0 else 0)]
    word = (announce.group("n") or "").lower()
    want = min(_COUNT.get(word, int(word) if word.isdigit() else 3), 5)
    items = []
    for t in after[:want]:
        if items and _heading_between(nxt.text, items[-1].end, t.start):
            break
        if not items and _heading_between(nxt.text, max(at, 0), t.start):
            break
        items.append(t)
    return items


def _spans(sentences: list[Sentence], group: list[int]) -> list[list[int]]:
    """Split a group into runs quoted as one span: consecutive sentences of one chunk on one
    line (list items and paragraphs stay separate citations)."""
    runs: list[list[int]] = []
    for j in group:
        if runs:
            prev = sentences[runs[-1][-1]]
            cur = sentences[j]
            between = cur.chunk.text[prev.end:cur.start] if prev.chunk.id == cur.chunk.id \
                else "\n"
            if cur.index == prev.index + 1 and "\n" not in between and not between.strip():
                runs[-1].append(j)
                continue
        runs.append([j])
    return runs


def features(q: Question, sentences: list[Sentence], cosines: np.ndarray) -> np.ndarray:
    """The `FEATURES` matrix: one row per candidate sentence."""
    x = np.zeros((len(sentences), len(FEATURES)), dtype=np.float32)
    terms = q.terms
    section_stems: dict[str, set[str]] = {}
    stem_sets = [set(stems(s.quote)) for s in sentences]
    positions = {(s.chunk.id, s.index) for s in sentences}
    # A question word that few of the candidate sentences share (a figure's name, not the
    # client's) says more about which sentence answers: IDF within the reading list.
    df = {t: sum(t in w for w in stem_sets) for t in terms}
    idf = {t: np.log((1 + len(sentences)) / (1 + df[t])) for t in terms}
    idf_total = sum(idf.values()) or 1.0
    for i, s in enumerate(sentences):
        wordset = stem_sets[i]
        section = str(s.chunk.metadata.get("section", ""))
        if section not in section_stems:
            leaf = section.split(" > ")[-1] if " > " in section else section
            section_stems[section] = set(stems(leaf))
        x[i, 0] = cosines[i]
        x[i, 1] = len(terms & wordset) / len(terms) if terms else 0.0
        x[i, 2] = len(wordset - terms) / len(wordset) if wordset else 0.0
        low_section = section.lower()
        x[i, 3] = float(any(intent in low_section for intent in q.intents))
        x[i, 4] = (len(terms & section_stems[section]) / len(terms)) if terms else 0.0
        x[i, 5] = float(bool(q.subject) and defines(q.subject, s.quote))
        if q.answer_type:
            has = carries(q.answer_type, s.quote, q.asking)
            x[i, 6], x[i, 7] = float(has), float(not has)
        x[i, 8] = 1.0 / (1 + s.chunk_rank)
        clean = s.quote.rstrip("*_ ")
        announces = bool(_ANNOUNCES.search(clean))
        has_next = (s.chunk.id, s.index + 1) in positions
        # an echo of the question, or an announcement whose items are not in this chunk;
        # an announcement whose items follow is news: they are quoted with it
        lead = announces and has_next
        x[i, 9] = float((announces and not has_next) or (len(wordset - terms) <= 1
                                                           and not lead))
        x[i, 12] = float(lead)
        if lead:
            x[i, 2] = 1.0
        x[i, 10] = float(bool(_PRONOUN_LED.match(s.quote.lstrip("*_ "))) and s.index == 0)
        x[i, 11] = sum(idf[t] for t in terms & wordset) / idf_total
    return x


def defines(subject: set[str], sentence: str) -> bool:
    """Whether the sentence defines the subject: "A <subject> is ...", "we define <subject>
    as ...", "<subject> means ..." (the subject before the verb, near the start)."""
    text = sentence.replace("**", "").replace("__", "")
    need = max(1, int(np.ceil(0.6 * len(subject))))
    m = _COPULA.search(text)
    if m:
        before = stems(text[: m.start()])
        if len(before) <= 10 and len(subject & set(before)) >= need:
            return True
    w = _WE_DEFINE.search(text)
    return bool(w) and len(subject & set(stems(text[w.start():]))) >= need


def uncovered_terms(question: str, chunks: list[ScoredChunk]) -> list[str]:
    """Subject terms of the question (names, years, identifiers) no evidence chunk mentions.

    A question about a year, client or entity the retrieved passages never name is one the
    knowledge base does not answer, however similar the rest of its wording. Titles, doc_ids
    and clients count as mentions: a filing's page names its company in its file name.
    """
    if not question or not chunks:
        return []
    haystack = " ".join(
        f"{c.text} {c.metadata.get('title', '')} {c.metadata.get('client', '')} "
        f"{re.sub(r'[_/.-]+', ' ', c.doc_id)}" for c in chunks).lower()
    return uncovered(specific_terms(question), haystack)


def abstention(reason: str = ABSTAIN_TEXT) -> AnswerResponse:
    return AnswerResponse(answer=reason, abstained=True, citations=[])


class CitationError(AssertionError):
    """An answer would have shown a citation that does not check out."""


def check_citations(response: AnswerResponse, chunk_texts: dict[str, str]) -> None:
    """Every [n] resolves to a citation, and every quote is verbatim in its chunk."""
    numbers = {c.n for c in response.citations}
    for marker in _MARKER.findall(response.answer):
        if int(marker) not in numbers:
            raise CitationError(f"answer cites [{marker}] but no such citation exists")
    for c in response.citations:
        text = chunk_texts.get(c.chunk_id)
        if text is None or c.quote not in text:
            raise CitationError(f"citation [{c.n}] quote is not verbatim in chunk {c.chunk_id}")
    if response.abstained and response.citations:
        raise CitationError("an abstention must not carry citations")
