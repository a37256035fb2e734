"""What an extractive answer quotes around a chosen sentence so that it reads alone.

`expand` brings the items an announcing sentence introduces and the sentence naming what a
leading pronoun refers to; `continuation` follows announced items into the next chunk of
the document; `quote_runs` joins consecutive sentences into one cited span.
"""

from __future__ import annotations

import re

from assistant.retrieval import ScoredChunk
from assistant.sentence_features import (
    Sentence,
    announced,
    announced_count,
    pronoun_led,
    split_sentences,
)


def adjacent(a: Sentence, b: Sentence) -> bool:
    """Whether two sentences are neighbours in one chunk."""
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
    announce = announced(s.quote) if items else None
    if announce:
        prev_end, taken, want = s.end, 0, announced_count(announce)
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
    elif pronoun_led(s.quote):
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
    announce = announced(seed.quote)
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
    items: list[Sentence] = []
    for t in after[:announced_count(announce)]:
        if items and _heading_between(nxt.text, items[-1].end, t.start):
            break
        if not items and _heading_between(nxt.text, max(at, 0), t.start):
            break
        items.append(t)
    return items


def quote_runs(sentences: list[Sentence], group: list[int]) -> list[list[int]]:
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
