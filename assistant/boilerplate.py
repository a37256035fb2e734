"""Page furniture: sentences that belong to the page a document was saved from, not to its
content — calls to action, navigation, share and cookie notices, the publisher's mission
statement, "top of page" markers.

Documents saved from the web or an intranet carry these, and when a question names the firm
they are similar enough to it to be quoted. The answerer never quotes them, and evaluation
reports any answer that does. Two signals, both cheap and general:

- `is_boilerplate`: the sentence matches a pattern of page furniture. The patterns describe
  kinds of furniture (an imperative to click, book, subscribe or share; a cookie or
  copyright notice; "X is committed / dedicated to bringing you ..."), not sentences of
  any one site.
- repetition across documents (see `repeated_sentences`): a sentence that appears verbatim
  in two or more documents of a collection is a template, not a finding.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

_PATTERNS = [
    # calls to action
    r"\bclick (?:here|below|the link)\b",
    r"\b(?:book|schedule|arrange) (?:a|an|your) (?:call|meeting|demo|consultation|session)\b",
    r"\b(?:subscribe|sign up|register) (?:to|for|now|today)\b",
    r"\b(?:contact|call|email) us\b.{0,40}\b(?:today|now|to (?:find|learn|discuss|book))\b",
    r"\b(?:read|learn|find out|discover) more\b\s*(?:here|about us|[.:>»]|$)",
    r"\bdownload (?:the|our|your) (?:free |full )?(?:guide|report|white ?paper|e-?book)\b",
    r"\bfollow us\b",
    r"\bshare (?:this|on)\b",
    # navigation and page structure
    r"^(?:top|bottom) of (?:the )?page\b",
    r"^(?:related|recent|popular|more) (?:articles|posts|insights|reading)\b",
    r"^(?:back to|return to|skip to) ",
    r"^(?:previous|next) (?:article|post)\b",
    r"\b(?:all rights reserved|privacy policy|terms of (?:use|service))\b",
    r"^©|\bcopyright ©?\s*(?:19|20)\d\d\b",
    r"\b(?:we use|this (?:site|website) uses) cookies\b|\baccept (?:all )?cookies\b",
    # the publisher talking about itself and its page
    r"\b(?:is|are) (?:committed|dedicated) to (?:bringing|providing|delivering|giving) "
    r"(?:you|our (?:clients|readers))\b",
    r"\byou can find (?:staff[- ]written |our )?(?:articles|posts|insights)\b",
    r"\bif you would like to (?:schedule|book|arrange|discuss)\b",
    r"\b(?:posted|published|written) by\b.{0,60}\b(?:min(?:ute)? read|comments?)\b",
    r"\b\d+ min(?:ute)? read\b",
]
_FURNITURE = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.I)


def is_boilerplate(sentence: str) -> bool:
    """True when the sentence is page furniture by its wording alone."""
    return bool(_FURNITURE.search(" ".join(sentence.split())))


def normalise(sentence: str) -> str:
    """Key for comparing sentences across documents: lower case, words only."""
    return " ".join(re.findall(r"[a-z0-9]+", sentence.lower()))


def repeated_sentences(docs: Iterable[tuple[str, Iterable[str]]], min_docs: int = 2) -> set[str]:
    """Normalised sentences that occur in at least `min_docs` different documents.

    `docs` yields (doc_id, sentences). Short sentences are ignored: "See below." may repeat
    innocently, a 6-word sentence repeated verbatim across documents is a template.
    """
    seen: dict[str, set[str]] = defaultdict(set)
    for doc_id, sentences in docs:
        for s in sentences:
            key = normalise(s)
            if len(key.split()) >= 6:
                seen[key].add(doc_id)
    return {k for k, ids in seen.items() if len(ids) >= min_docs}
