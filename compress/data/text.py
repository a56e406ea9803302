"""Texts: a table's free-text column, found by a stated rule and tokenized into token ids by a
tokenizer fitted on the train split only.

The tokenizer is scikit-learn's ``CountVectorizer`` analyzer (lowercase, then the words of
``TOKEN_PATTERN``), its vocabulary the train split's most frequent words.  Not Keras'
``TextVectorization``: the data stage never imports TensorFlow (the process that only reads data
stays light), and the tokenizer kept as data (``Tokenizer.portable``) is one lowercase, one
regular expression and one word list, which any deployment reproduces exactly without Python
(docs/architecture.md, "Texts").  Ids: 0 pads, 1 stands for any word outside the vocabulary,
words from 2 on by falling frequency.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from compress.common.errors import UserError, option
from compress.common.text import counted

#: A column is free text when its cells' median holds at least this many words ...
TEXT_WORDS = 3
#: ... and it has more distinct values than this share of the rows (and than a category's
#: one-hot limit): categories of several words ("New York City") repeat far more.
TEXT_DISTINCT_SHARE = 0.05
#: A word: a run of letters, digits or underscores (scikit-learn's default pattern keeps words of
#: two characters or more; "a", "I" and digits matter in short texts).
TOKEN_PATTERN = r"(?u)\b\w+\b"
PADDING, UNKNOWN = 0, 1
#: The default vocabulary: words seen at least ``MIN_COUNT`` times in the train split (a word seen
#: once cannot be learnt apart from its one text), at most ``MAX_VOCABULARY`` ids in all.
MIN_COUNT = 2
MAX_VOCABULARY = 20_000
#: The default length: this quantile of the train split's texts in words, within the bounds.
LENGTH_QUANTILE = 0.95
MIN_LENGTH, MAX_LENGTH = 8, 256


def is_text(values: pd.Series, one_hot_limit: int) -> bool:
    """Whether a column holds free text (the rule of the module's constants, written in
    docs/architecture.md): strings of at least ``TEXT_WORDS`` words in the median cell, with
    more distinct values than a category would have."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    cells = values.dropna().astype(str)
    if not len(cells):
        return False
    words = cells.str.split().str.len()
    distinct = cells.nunique()
    return bool(words.median() >= TEXT_WORDS and distinct > one_hot_limit
                and distinct >= TEXT_DISTINCT_SHARE * len(cells))


def _analyzer() -> Any:
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(lowercase=True, token_pattern=TOKEN_PATTERN).build_analyzer()


@dataclass(frozen=True)
class Tokenizer:
    """A fitted tokenizer: the words by id (from 2), the length every text is cut or padded to,
    and how both were chosen."""

    words: tuple[str, ...]
    length: int
    column: str
    chosen: str  # how the vocabulary and the length were chosen, in words

    @property
    def vocabulary(self) -> int:
        """Ids in all: padding, unknown and the words."""
        return len(self.words) + 2

    def ids(self, texts: pd.Series) -> tuple[np.ndarray, float, float]:
        """Each text as ``length`` int32 ids, and the shares of unknown words and of texts cut."""
        analyze, index = _analyzer(), {word: i + 2 for i, word in enumerate(self.words)}
        out = np.full((len(texts), self.length), PADDING, dtype=np.int32)
        unknown = total = cut = 0
        for row, text in enumerate(texts.astype(str)):
            tokens = [index.get(word, UNKNOWN) for word in analyze(text)]
            unknown += tokens.count(UNKNOWN)
            total += len(tokens)
            cut += len(tokens) > self.length
            out[row, :min(len(tokens), self.length)] = tokens[:self.length]
        return out, unknown / max(total, 1), cut / max(len(texts), 1)

    def portable(self) -> dict[str, Any]:
        """The tokenizer as data (run.json, tokenizer.json): what a deployment applies to raw text."""
        return {"kind": "text", "column": self.column, "lowercase": True, "token_pattern": TOKEN_PATTERN,
                "padding_id": PADDING, "unknown_id": UNKNOWN, "first_word_id": 2,
                "length": self.length, "truncate": "end", "pad": "end", "words": list(self.words)}

    @classmethod
    def from_portable(cls, record: dict[str, Any]) -> Tokenizer:
        return cls(tuple(record["words"]), int(record["length"]), str(record["column"]), "")


def fit_tokenizer(texts: pd.Series, column: str, *, vocabulary: int | None = None,
                  length: int | None = None) -> Tokenizer:
    """A tokenizer fitted on ``texts`` (the train split's): the most frequent words (``vocabulary``
    ids in all, or the default rule) and a length (given, or the default quantile)."""
    analyze = _analyzer()
    tokenized = [analyze(text) for text in texts.astype(str)]
    counts = Counter(word for words in tokenized for word in words)
    ranked = sorted(counts, key=lambda word: (-counts[word], word))
    if vocabulary is None:
        kept = [word for word in ranked if counts[word] >= MIN_COUNT][:MAX_VOCABULARY - 2]
        how = (f"vocabulary of {len(kept) + 2:,} ids: the {counted(len(kept), 'word')} seen at least "
               f"{MIN_COUNT} times in the train split (of {len(counts):,} distinct), padding and unknown")
    else:
        kept = ranked[:vocabulary - 2]
        how = (f"vocabulary of {len(kept) + 2:,} ids as asked: the train split's {len(kept):,} most "
               f"frequent of {len(counts):,} distinct words, padding and unknown")
    if not kept:
        raise UserError(f"column {column!r}: no word of the train split's texts is seen {MIN_COUNT} "
                        f"times; give more texts, or {option('vocabulary', 'N')}")
    lengths = np.array([len(words) for words in tokenized])
    if length is None:
        length = int(np.clip(np.ceil(np.quantile(lengths, LENGTH_QUANTILE)), MIN_LENGTH, MAX_LENGTH))
        how += (f"; {length} tokens a text (the train split's {LENGTH_QUANTILE:.0%} quantile, within "
                f"{MIN_LENGTH} to {MAX_LENGTH})")
    else:
        how += f"; {length} tokens a text, as asked"
    return Tokenizer(tuple(kept), length, column, how)


def check_texts(path: object, texts: pd.Series, column: str) -> None:
    """One line for a text column that cannot be tokenized: numbers, or empty texts."""
    empty = texts.isna() | (texts.astype(str).str.strip() == "")
    if pd.api.types.is_numeric_dtype(texts) and not empty.all():
        raise UserError(f"{path}: column {column!r} holds numbers, not texts; name the text column "
                        f"with {option('text_column', 'NAME')}")
    if empty.any():
        first = int(np.flatnonzero(empty.to_numpy())[0])
        raise UserError(f"{path}: column {column!r} has {counted(int(empty.sum()), 'empty text')} (the "
                        f"first in data row {first + 1}); fill or remove those rows (a run drops them with "
                        f"{option('missing', 'drop')})")
    analyze = _analyzer()
    wordless = texts.astype(str).map(lambda text: not analyze(text))
    if wordless.all():
        raise UserError(f"{path}: column {column!r} has no words (letters or digits) in any text")
