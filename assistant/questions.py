"""What a question asks for, read without a model: its subject terms, the kind of detail it
wants, whether it asks for a definition, and which part of a document would answer it.

The extractive answerer uses this in two ways. The *abstention* side: a question about a
client, year or entity that the evidence never mentions is not answered, and neither is one
that wants a figure, year or name that no candidate sentence carries. The *selection* side:
definitional questions prefer the sentence that defines the subject, "what did we find"
questions prefer the findings section, and so on.

Real questions carry words that are capitalised without naming anything ("... for 3M? Give
a response ...", "Round to two decimals", "As a CX lead, ...", "Answer in USD millions"),
so instruction sentences, sentence-initial words, fiscal-period notation, units, currency
codes and common business acronyms are not subject terms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

# Words that open an instruction rather than a question ("Give a response ...", "Round to
# two decimals", "Please cite the playbook."). Only dropped when something else is asked.
_INSTRUCTION_OPENERS = {
    "give", "answer", "round", "please", "provide", "use", "using", "respond", "keep",
    "cite", "note", "assume", "express", "show", "return", "reply", "include", "be", "don't",
    "do", "make", "write", "state", "format", "report", "present", "base", "rely", "thanks",
    "thank", "hi", "hello", "hey", "ok", "okay", "quick", "just", "only", "in", "also",
    "briefly", "short", "list", "explain", "describe", "summarise", "summarize", "tell",
}
# Capitalised tokens that are not names: units, currency codes, fiscal notation, roles and
# the acronyms of business and Cx writing. They never decide coverage on their own.
_NOT_NAMES = {
    "usd", "eur", "gbp", "jpy", "chf", "cad", "aud", "cny", "inr", "us", "uk", "eu",
    "pp&e", "m&a", "r&d", "sg&a", "ebit", "ebitda", "eps", "gaap", "ifrs", "capex", "opex",
    "cogs", "yoy", "qoq", "fcf", "roa", "roe", "roi", "roic", "ttm", "ltm", "ytd", "fy",
    "q1", "q2", "q3", "q4", "h1", "h2", "k", "m", "mm", "bn", "b", "bps", "pct", "cagr",
    "ceo", "cfo", "coo", "cto", "cio", "cmo", "cco", "cxo", "vp", "svp", "evp", "hr", "it",
    "ai", "ml", "llm", "kpi", "kpis", "okr", "okrs", "sla", "slas", "faq", "faqs", "pdf",
    "cx", "ux", "i", "i'm", "i've", "i'd", "we're", "ok", "q&a", "tl;dr", "asap", "etc",
    "a", "an", "the", "ps", "fyi", "na", "n/a",
    # ratios and line items of financial statements, by their usual abbreviations
    "ar", "ap", "dso", "dpo", "dio", "ccc", "ppe", "ppne", "agm", "ebitdar", "nopat", "wacc",
    "sga", "fx", "gm", "ltv", "cac", "arpu", "nim", "cet1", "var", "bvps", "dps", "pe",
    "p/e", "ev", "oci", "aoci", "nii", "nci", "rou", "10-k", "10-q", "8-k", "10k", "10q",
    "8k", "sec", "non",
}
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    "fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|"
    "eighty|ninety|hundred|thousand|million|billion|dozen|half|twice|double|triple|"
    "third|quarter|percent|single|fortnight|daily|weekly|monthly|quarterly|annual|annually|"
    "hourly|overnight|none|zero|once"
)
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|"
           "december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")

HAS_NUMBER = re.compile(rf"\d|\b(?:{_NUMBER_WORDS})\b", re.I)
HAS_DATE = re.compile(
    rf"\b(?:19|20)\d\d\b|\b(?:{_MONTHS})\b|\bQ[1-4]\b|\b(?:spring|summer|autumn|fall|winter)"
    rf"\b|\b(?:week|month|quarter|year|day)s? (?:\d+|one|two|three|four|five|six)\b|"
    rf"\b(?:\d+|{_NUMBER_WORDS}) (?:days?|weeks?|months?|quarters?|years?) (?:after|before|"
    rf"later|into|earlier|ago|of)\b",
    re.I,
)
_ROLE = re.compile(
    r"\b(?:owner|owners|head|chair|chairs|chaired|director|officer|manager|managers|lead|"
    r"leads|leader|leaders|team|teams|sponsor|analyst|analysts|consultant|consultants|agent|"
    r"agents|executive|executives|board|committee|group|chief|coordinator|champion|steward|"
    r"representative|staff|author|authors|founder|president|partner|partners|specialist|"
    r"supervisor|supervisors|adviser|advisers|advisor|engineer|engineers|designer|"
    r"researcher|researchers|department|function|council|panel|forum|we|our)\b",
    re.I,
)
_NAME_PAIR = re.compile(r"\b[A-Z][a-z'’-]+(?:\s+(?:[A-Z]\.\s*)?[A-Z][a-z'’-]+)+")
_ORG = re.compile(r"(?<!^)(?<![.!?:]\s)\b[A-Z][A-Za-z&'’-]+")

_METRIC_NOUNS = (
    r"rate|ratio|margin|amount|number|percentage|percent|share|proportion|fraction|cost|"
    r"costs|value|total|revenue|revenues|figure|score|nps|count|price|spend|budget|saving|"
    r"savings|size|volume|expenditure|income|sales|growth|turnover|cap|limit|threshold|"
    r"target|fee|fees|salary|headcount|earnings|profit|profits|loss|losses|debt|cash|"
    r"capex|ebitda|eps|dividend|dividends|assets|liabilities|equity|arr|mrr|roi|payback|"
    r"allowance|premium|premiums|duration|age|multiple|average|median|mean|level"
)
_NUMBER_Q = re.compile(
    r"\bhow (?:many|much|long|far|large|big|high|low|fast|quickly|soon)\b|\bby how\b|"
    rf"\bwhat(?:'s| is| was| are| were)? (?:the |our |its |their |a |an )?"
    rf"(?:[\w'’&-]+ ){{0,5}}?(?P<focus>{_METRIC_NOUNS})\b(?! (?:of|for|in) (?:a|an)\b)",
    re.I,
)
_DATE_Q = re.compile(
    r"\b(?:in |during )?(?:what|which) (?:year|month|quarter|date|day)\b|"
    r"\bwhen (?:did|was|were|will)\b|\bwhat date\b|\bsince when\b",
    re.I,
)
_PERSON_Q = re.compile(
    r"\bwho\b|\bname of\b|\bwhose\b|\bwhich (?:person|people|role|roles|team|executive|manager|"
    r"consultant|author)\b|\bauthors? of\b|\bwritten by\b",
    re.I,
)
_ORG_Q = re.compile(
    r"\b(?:which|what) (?:[\w-]+ ){0,2}?(?:company|companies|client|clients|"
    r"organi[sz]ations?|firms?|vendors?|suppliers?|banks?|insurers?|retailers?|providers?|brands?|competitors?|partners?|"
    r"agency|agencies|tool|tools|platform|platforms|software)\b",
    re.I,
)
_DEFINITION_Q = re.compile(
    r"^(?:so,?\s*)?(?:what(?:'s| is| are)|how (?:do|does|did|should|would|can) (?:we|you|"
    r"they|one|i|the firm) define|define|what do (?:we|you) mean by|what is meant by|"
    r"what does|what's the (?:definition|meaning) of|what is the (?:definition|meaning) of|"
    r"definition of|meaning of)\s+(?:an?\s+|the\s+|our\s+)?(?P<subject>.+?)"
    r"(?:\s+(?:mean|stand for|refer to))?\s*[?.!]*$",
    re.I,
)
# Kinds of section that answer a kind of question: (the question's cues, the section
# name's cues). "What did we find at X?" is answered under "Findings" or "What we found".
_SECTION_INTENTS = {
    "finding": (("find", "found", "finding", "discover", "learn", "show", "reveal",
                 "diagnos", "uncover"),
                ("finding", "found", "what we learn", "insight", "diagnos", "in brief",
                 "summary")),
    "recommend": (("recommend", "advise", "suggest", "propose"),
                  ("recommend", "what to do", "next step")),
    "result": (("result", "outcome", "impact", "improve", "achiev", "deliver", "happen"),
               ("result", "outcome", "impact")),
    "conclusion": (("conclu",), ("conclu", "summary", "in brief")),
    "definition": (("define", "definition", "meaning"), ("definition", "what it is")),
}
_STOPWORDS = frozenset([
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any",
    "are", "aren't", "as", "at", "be", "because", "been", "before", "being", "below", "between",
    "both", "but", "by", "can", "can't", "cannot", "could", "did", "didn't", "do", "does",
    "doesn't", "doing", "don't", "down", "during", "each", "few", "for", "from", "further", "had",
    "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his",
    "how", "i", "if", "in", "into", "is", "isn't", "it", "it's", "its", "itself", "just", "let's",
    "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once",
    "only", "or", "other", "ought", "our", "ours", "ourselves", "out", "over", "own", "same",
    "she", "should", "so", "some", "such", "than", "that", "that's", "the", "their", "theirs",
    "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to",
    "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
    "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself",
    "please", "give", "answer", "tell", "us", "me", "quick", "one", "hi", "hello", "thanks",
    "short", "line", "briefly", "cite", "keep",
])
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'&-]*[A-Za-z0-9]|[A-Za-z0-9]")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9'&./]*[A-Za-z0-9]|[A-Za-z0-9]")
_FISCAL = re.compile(r"^(?:fy|cy)'?(\d{2}|\d{4})(?:q[1-4]|h[12])?$|"
                     r"^(?:q[1-4]|h[12])(?:fy)?'?(\d{2}|\d{4})?$", re.I)
_YEAR = re.compile(r"^(?:19|20)\d\d$")
_MONTH_NAMES = set(_MONTHS.split("|"))


@lru_cache(maxsize=1)
def _stemmer() -> object:
    import Stemmer  # PyStemmer, already a dependency of BM25 (bm25s)

    return Stemmer.Stemmer("english")


def stems(text: str) -> list[str]:
    """Content-word stems of a text (stop words and one-letter tokens dropped)."""
    words = [w.lower() for w in _WORD.findall(text.replace("’", "'"))]
    words = [re.sub(r"'s$", "", w) for w in words if w.lower() not in _STOPWORDS]
    return _stemmer().stemWords([w for w in words if len(w) > 1])  # type: ignore[attr-defined]


def question_parts(question: str) -> tuple[list[str], list[str]]:
    """(asking, instructing) sentences of a question.

    A sentence (or a colon-separated lead-in such as "Quick one:") that opens with an
    instruction word is instructing, unless nothing else is asked.
    """
    pieces = [p.strip() for p in re.split(r"(?<=[?!.:;])\s+|\n+", question.strip()) if p.strip()]
    asking: list[str] = []
    instructing: list[str] = []
    for piece in pieces:
        first = (_WORD.findall(piece.lower()) or [""])[0]
        (instructing if first in _INSTRUCTION_OPENERS and not piece.endswith("?")
         else asking).append(piece)
    if not asking:
        return instructing, []
    # "... for 3M? DPO is defined as: 365 * ..." - what follows the question mark defines
    # or instructs; the sentences that end in "?" are the question.
    first_q = next((i for i, p in enumerate(asking) if p.endswith("?")), None)
    if first_q is not None:
        after = [p for p in asking[first_q:] if not p.endswith("?")]
        instructing += after
        asking = [p for i, p in enumerate(asking) if i <= first_q or p.endswith("?")]
    return asking, instructing


def _normalise_term(token: str) -> str | None:
    """The form of a subject token that evidence would contain, or None when it is no name."""
    token = re.sub(r"['’]s$", "", token.strip("./"))
    low = token.lower()
    if not token or low in _NOT_NAMES or low in _MONTH_NAMES:
        return None
    if "&" in token:
        return None  # P&L, D&A, M&A: accounting shorthand, not the subject's name
    if low in _STOPWORDS or re.fullmatch(r"\d{1,2}(?:st|nd|rd|th)", low):
        return None  # "What Was ...", "dated 1st July": emphasis and day numbers
    fiscal = _FISCAL.match(low)
    if fiscal:
        year = fiscal.group(1) or fiscal.group(2)
        if not year:
            return None
        year = year if len(year) == 4 else f"20{year}"
        # a fiscal year straddles two calendar years: FY2018 may end in January 2019
        return f"{year}|{int(year) + 1}"
    if token.isdigit():
        # a year, or a number long enough to identify something; "2 decimals" does not
        return token if len(token) >= 3 else None
    if any(ch.isdigit() for ch in token):
        return token  # 3M, 2021-22 (split below), A320: identifiers
    return token if token[:1].isupper() else None


def specific_terms(question: str) -> list[str]:
    """Names and numbers that name the question's subject.

    Capitalised words that do not open a sentence or clause, years and identifiers, from the
    sentences that ask (not those that instruct), normalised: FY2018 → "2018|2019" (either
    calendar year it spans), Q2 dropped, USD, PP&E and the like dropped.
    """
    asking, _ = question_parts(question)
    out: list[str] = []
    for piece in asking:
        # clause openers: after a comma-led role prefix ("As a CX lead, what ...") or a dash
        for clause in re.split(r"(?:^|[,;—–(]|\s-\s)\s*", piece):
            tokens = _TOKEN.findall(clause.replace("-", " ").replace("’", "'"))
            for i, token in enumerate(tokens):
                if i == 0 and not any(ch.isdigit() for ch in token):
                    continue  # sentence- or clause-initial capital says nothing
                term = _normalise_term(token)
                if term:
                    out.append(term)
    return list(dict.fromkeys(out))


def _edit1(a: str, b: str) -> bool:
    """True when a and b differ by at most one edit (a typo in a typed name)."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) <= 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def uncovered(terms: list[str], haystack: str) -> list[str]:
    """The terms that the lower-cased evidence text does not mention (typos forgiven).

    Years count as one group: a comparison "between FY2021 and FY2023" is covered by a
    page that shows one of them; a year the evidence never mentions at all is not.
    """
    years = [t for t in terms if all(_YEAR.match(y) for y in t.split("|"))]
    if years and any(y in haystack for t in years for y in t.split("|")):
        terms = [t for t in terms if t not in years]
    words: set[str] | None = None
    missing = []
    for term in terms:
        if "|" in term:  # alternatives (a fiscal year's two calendar years)
            if any(alt in haystack for alt in term.split("|")):
                continue
            missing.append(term.split("|")[0])
            continue
        low = term.lower()
        forms = {low, low[:-1] if low.endswith("s") and len(low) > 3 else low}
        if len(low) <= 3:
            if any(re.search(rf"(?<![a-z0-9]){re.escape(f)}(?![a-z0-9])", haystack)
                   for f in forms):
                continue
        elif any(f in haystack for f in forms):
            continue
        if len(low) >= 5 and not low.isdigit():
            if words is None:
                words = set(re.findall(r"[a-z0-9']+", haystack))
            if any(_edit1(low, w) for w in words if abs(len(w) - len(low)) <= 1):
                continue
        missing.append(term)
    return missing


@dataclass(frozen=True)
class Question:
    """The parts of a question the answerer uses (shared from `analyse`'s cache: read only)."""

    text: str
    asking: str
    terms: set[str]
    answer_type: str | None  # "number" | "date" | "person" | "org" | None
    subject: set[str] = field(default_factory=set)  # definitional questions: stems of X
    intents: set[str] = field(default_factory=set)  # cues of section names that answer it
    overview: bool = False  # "What did we find at X?": nothing asked beyond the section


def answer_type(asking: str) -> str | None:
    """The kind of detail the question wants, when it wants a specific one."""
    if _DATE_Q.search(asking):
        return "date"
    if _NUMBER_Q.search(asking):
        return "number"
    if _ORG_Q.search(asking):
        return "org"
    if _PERSON_Q.search(asking):
        return "person"
    return None


def _new(pattern: re.Pattern[str], sentence: str, question: str) -> bool:
    """Whether the sentence has a match of `pattern` that the question does not already say
    (a sentence repeating the question's "48 hotels" has not answered "how many rooms")."""
    asked = {m.lower() for m in _matches(pattern, question)}
    return any(m.lower() not in asked for m in _matches(pattern, sentence))


def _matches(pattern: re.Pattern[str], text: str) -> list[str]:
    return [m.group(0) for m in pattern.finditer(text)]


def carries(kind: str | None, sentence: str, question: str = "") -> bool:
    """Whether a sentence holds a detail of that kind that the question does not already
    give (lenient: a role the question does not name counts as a person)."""
    if kind is None:
        return True
    if kind == "number":
        return _new(HAS_NUMBER, sentence, question)
    if kind == "date":
        return _new(HAS_DATE, sentence, question)
    if kind == "person":
        return _new(_ROLE, sentence, question) or _new(_NAME_PAIR, sentence, question)
    return _new(_ORG, sentence, question)


@lru_cache(maxsize=1024)
def analyse(question: str) -> Question:
    """What the question asks; cached, since the reading list and the answerer both ask."""
    asking_parts, _ = question_parts(question)
    asking = " ".join(asking_parts)
    # A trailing second question ("... ? Also, who owns it?") should not decide the type.
    first = asking_parts[0] if asking_parts else question
    low = asking.lower()
    subject: set[str] = set()
    m = _DEFINITION_Q.match(first.strip())
    if m and len(m.group("subject").split()) <= 8:
        subject = set(stems(m.group("subject")))
    kinds = {name for name, (cues, _) in _SECTION_INTENTS.items() if any(c in low for c in cues)}
    if subject:
        kinds.add("definition")
    intents = {cue for kind in kinds for cue in _SECTION_INTENTS[kind][1]}
    terms = set(stems(asking))
    # An overview question names a subject and a kind of section and nothing else: its
    # answer is that section, whatever else mentions the subject more often.
    named = set(stems(" ".join(specific_terms(question))))
    cue_stems = {st for kind in kinds for c in _SECTION_INTENTS[kind][0] for st in stems(c)}
    rest = {t for t in terms - named - cue_stems if not any(t.startswith(c) or c.startswith(t)
                                                             for c in cue_stems)}
    overview = bool(kinds - {"definition"}) and not rest
    return Question(question, asking, terms, answer_type(first), subject=subject,
                    intents=intents, overview=overview)
