"""Typo-tolerant word search on core PostgreSQL (no pg_trgm, which the embedded server lacks).

A query's words are looked up in vocabularies of words with their trigrams (migration 0015):
a word the vocabulary does not know is widened to the known words sharing enough trigrams
with it (similarity = shared / (all of both - shared), as pg_trgm computes it). The widened
words make a full-text query, so the search itself still runs on the full-text index:

    "mycoplsma" -> 'mycoplsma':* | 'mycoplasma':*

The last word is also a prefix, so that a search as one types finds "mycoplasma" from
"mycopl" (every word a prefix would cost the full-text index several times as much).
Queries with web-search syntax (quotes, ``-word``, ``or``) are searched as typed.

Ranking (``Match``): the name or code equal to the query, then those starting with it, then
rows matching the words as typed (by full-text rank), then rows found only through a
correction or a prefix (by the similarity of the corrections, then rank).

This module builds SQL; the tokenising and trigram functions live in the database
(``search_words``, ``search_grams``), so that the vocabularies and the queries split words
the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

CONFIG = "english"
WORDS_MAX = 8  # words of a query that are looked up (the rest still count in the full text)
SIMILARITY = 0.3  # pg_trgm's default threshold
CORRECTIONS = 3  # at most this many corrections of one word
_SLUG = re.compile(r"[^a-z0-9]+")  # how a query is compared with slugs
_WORDS = re.compile(r"[^\W_]+")  # letters and digits, as search_words splits them
_ADVANCED = re.compile(r'"|(?:^|\s)-\S|(?:^|\s)or(?:\s|$)', re.IGNORECASE)

# Raw SQL: the vocabulary lookup groups trigrams and scores them, which Piccolo cannot say.
# ``{sources}`` is a union of SELECT gram, word, grams ... WHERE gram IN (SELECT g FROM
# query_grams): the vocabularies the caller may read.
_LOOKUP = """
WITH words AS (
    SELECT n, w FROM unnest(search_words($1)) WITH ORDINALITY AS x(w, n) WHERE n <= $2
), query_grams AS (
    SELECT words.n, g, cardinality(search_grams(words.w)) AS qgrams
    FROM words, unnest(search_grams(words.w)) AS g WHERE length(words.w) >= 3
), matches AS (
    SELECT q.n, v.word, count(DISTINCT q.g)::float8 AS shared,
           min(v.grams) + min(q.qgrams) AS all_grams
    FROM query_grams q JOIN ({sources}) v ON v.gram = q.g GROUP BY q.n, v.word
), scored AS (
    SELECT n, word, shared / (all_grams - shared) AS sim,
           row_number() OVER (PARTITION BY n ORDER BY shared / (all_grams - shared) DESC, word)
               AS place
    FROM matches
)
SELECT w.n, w.w AS word, s.word AS alternative, s.sim
FROM words w LEFT JOIN scored s ON s.n = w.n AND s.sim >= $3 AND s.place <= $4
ORDER BY w.n, s.sim DESC NULLS LAST
"""


@dataclass(frozen=True)
class Word:
    """One word of a query: known to a vocabulary, or with its likely corrections."""

    text: str
    corrections: tuple[tuple[str, float], ...] = ()

    def alternatives(self) -> list[tuple[str, float]]:
        return [(self.text, 1.0), *self.corrections]


@dataclass(frozen=True)
class Terms:
    """A query as typed and its words (empty for web-search syntax, searched as typed)."""

    text: str
    words: tuple[Word, ...] = ()

    @property
    def corrected(self) -> bool:
        return any(word.corrections for word in self.words)

    def tsquery(self) -> tuple[str, str] | None:
        """The words for to_tsquery, each widened to its corrections, the last to its
        prefixes too, all required: (``('mycoplsma' | 'mycoplasma')``, ``'nat':*``), the
        words before the last (empty with one word) and the last."""
        if not self.words:
            return None
        parts = []
        for n, word in enumerate(self.words):
            last = n == len(self.words) - 1
            options = [_lexeme(text, last) for text, _ in word.alternatives()]
            parts.append(options[0] if len(options) == 1 else f"({' | '.join(options)})")
        return " & ".join(parts[:-1]), parts[-1]


def _lexeme(word: str, prefix: bool) -> str:
    # Words come from search_words (letters and digits only); one letter is not a prefix.
    return f"'{word}':*" if prefix and len(word) > 1 else f"'{word}'"


def _plain(word: str) -> bool:
    return word.isalnum() and "'" not in word and "\\" not in word


def as_typed(text: str) -> Terms:
    """The query's words without looking them up (no corrections)."""
    text = text.strip()
    if not text or _ADVANCED.search(text):
        return Terms(text)
    words = dict.fromkeys(w for w in _WORDS.findall(text.lower()) if _plain(w))
    return Terms(text, tuple(Word(w) for w in list(words)[:WORDS_MAX]))


async def expand(connection: Any, text: str, sources: list[str]) -> Terms:
    """The query's words with corrections from the vocabularies in ``sources``."""
    text = text.strip()
    if not text or _ADVANCED.search(text):
        return Terms(text)
    rows = await connection.fetch(
        _LOOKUP.format(sources=" UNION ALL ".join(sources)),
        text,
        WORDS_MAX,
        SIMILARITY,
        CORRECTIONS + 1,
    )
    found: dict[int, tuple[str, list[tuple[str, float]]]] = {}
    for row in rows:
        word, options = found.setdefault(row["n"], (row["word"], []))
        if row["alternative"] is not None:
            options.append((row["alternative"], row["sim"]))
    words = []
    for word, options in found.values():
        if not _plain(word):
            continue
        known = any(alternative == word for alternative, _ in options)
        corrections = () if known else tuple(o for o in options if _plain(o[0]))[:CORRECTIONS]
        words.append(Word(word, corrections))
    return Terms(text, tuple(words))


@dataclass
class Params:
    """Query parameters, numbered as they are added: ``arg(value)`` gives ``$n``."""

    values: list[Any] = field(default_factory=list)

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


class Match:
    """SQL that matches and ranks rows against ``terms``, given the row's document (a
    tsvector), name and code (or None) as SQL expressions. Parameters go to ``arg``."""

    def __init__(self, terms: Terms, arg: Params) -> None:
        self.terms, self.arg = terms, arg
        # The queries are computed once per statement (``ctes``), not once per row.
        self.query = "(SELECT query FROM search_query)"
        self.exact = "(SELECT exact FROM search_query)"

    def _queries(self) -> str:
        """The words' query and the query as typed (web-search syntax). Plain words (there
        are none for web-search syntax) are each widened, so that their query finds all the
        typed query finds; the last word's prefixes also unstemmed: typing "cry" is stemmed
        to 'cri', which no word of "cryopreservation" starts with."""
        exact = f"websearch_to_tsquery('{CONFIG}', {self.arg(self.terms.text)})"
        words = self.terms.tsquery()
        if words is None:
            return f"SELECT {exact} AS exact, {exact} AS query"
        head, last = words
        typing = self.arg(last)
        query = stemmed = f"to_tsquery('{CONFIG}', {typing})"
        # Not for one letter (a word, not a prefix) nor for stop words ("in", "of"): the
        # documents have neither, and a finished query may end with one.
        if len(self.terms.words[-1].text) > 1:
            query = (
                f"CASE WHEN numnode({stemmed}) = 0 THEN {stemmed} "
                f"ELSE {stemmed} || to_tsquery('simple', {typing}) END"
            )
        if head:
            query = f"to_tsquery('{CONFIG}', {self.arg(head)}) && ({query})"
        return f"SELECT {exact} AS exact, {query} AS query"

    def ctes(self) -> list[str]:
        """The common table expressions the fragments use: put them first in the
        statement's WITH."""
        found = [f"search_query AS MATERIALIZED ({self._queries()})"]
        if not self.terms.corrected:
            return found
        numbers, weights, lexemes = [], [], []
        for n, word in enumerate(self.terms.words):
            for text, weight in word.alternatives():
                numbers.append(n)
                weights.append(weight)
                lexemes.append(_lexeme(text, n == len(self.terms.words) - 1))
        arrays = (
            f"{self.arg(numbers)}::int[], {self.arg(weights)}::float8[], "
            f"{self.arg(lexemes)}::text[]"
        )
        return [
            *found,
            "search_alternatives AS MATERIALIZED (SELECT a.n, a.weight, "
            f"to_tsquery('{CONFIG}', a.lexeme) AS query FROM unnest({arrays}) "
            "AS a(n, weight, lexeme))",
        ]

    def condition(self, doc: str) -> str:
        return f"{doc} @@ {self.query}"

    def tier(self, doc: str, name: str, code: str | None = None) -> str:
        """0: name or code is the query; 1: starts with it; 2: matches the words as typed;
        3: matches through a correction or a prefix only."""
        typed = self.terms.text.lower()
        if not typed:
            return "3"
        lowered = self.arg(typed)
        exact, prefix = f"lower({name}) = {lowered}", f"starts_with(lower({name}), {lowered})"
        slug = _SLUG.sub("-", typed).strip("-")
        if code is not None and slug:
            slugged = self.arg(slug)
            exact += f" OR {code} = {slugged}"
            prefix += f" OR starts_with({code}, {slugged})"
        return (
            f"CASE WHEN {exact} THEN 0 WHEN {prefix} THEN 1 "
            f"WHEN {doc} @@ {self.exact} THEN 2 ELSE 3 END"
        )

    def rank(self, doc: str) -> str:
        return f"ts_rank({doc}, {self.query})"

    def similarity(self, doc: str) -> str:
        """How well the corrections found the row: per word, the best similarity among the
        alternatives the row matches, summed (0 without corrections)."""
        if not self.terms.corrected:
            return "0"
        return (
            "(SELECT coalesce(sum(best), 0) FROM (SELECT max(a.weight) AS best "
            f"FROM search_alternatives a WHERE {doc} @@ a.query GROUP BY a.n) s)"
        )


def with_clause(*ctes: str) -> str:
    used = [cte for cte in ctes if cte]
    return f"WITH {', '.join(used)} " if used else ""
