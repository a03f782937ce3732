"""A word-level tokenizer with BERT's special tokens, for the BERT chapter.

Text is lower-cased and cut by one regular expression, :data:`WORD_PATTERN`: a run of
letters ``a-z``, a run of digits, or any other single non-space character (punctuation,
brackets, operators). So ``"Return os.path.join(a, b)."`` becomes ``return os . path .
join ( a , b ) .``. There is no sub-word splitting: a word outside the vocabulary becomes
``[UNK]``.

The vocabulary is deterministic: the five special tokens first (``[PAD] = 0``,
``[UNK] = 1``, ``[CLS] = 2``, ``[SEP] = 3``, ``[MASK] = 4``), then the most frequent words
of the texts it is built from, by decreasing count, ties broken alphabetically. Encodings
follow BERT (Devlin et al., 2019, section 3): ``[CLS] w_1 ... w_n [SEP]``, right-padded with
``[PAD]``; the attention mask is bool ``(B, T)``, ``True`` on real tokens, as
:class:`attnkit.models.bert.BertModel` expects.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from .._validate import check_positive_int
from .tokenizer import pad_right, token_strings

WORD_PATTERN = re.compile(r"[a-z]+|[0-9]+|[^\sa-z0-9]")
"""A run of letters, a run of digits, or one other non-space character (after lower-casing)."""

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
"""BERT's special tokens; their ids are ``0 .. 4`` in this order."""


def split_words(text: str) -> list[str]:
    """The words of ``text``: lower-cased, then :data:`WORD_PATTERN`'s matches in order.

    >>> split_words("Return os.path.join(a, b).")
    ['return', 'os', '.', 'path', '.', 'join', '(', 'a', ',', 'b', ')', '.']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    return WORD_PATTERN.findall(text.lower())


class WordTokenizer:
    """Map text to integer ids, one id per word of :func:`split_words`.

    Args:
        words: the vocabulary's words in id order (after the five special tokens); each a
            non-empty string that :func:`split_words` keeps as one word, no duplicates.
            Use :meth:`from_texts` to build it from the most frequent words of a corpus.

    Example:
        >>> tok = WordTokenizer.from_texts(["the cat sat", "the dog"], max_words=3)
        >>> tok.vocab[5:]
        ('the', 'cat', 'dog')
        >>> tok.encode("The cat ran.")
        [2, 5, 6, 1, 1, 3]
    """

    pad_id = 0
    unk_id = 1
    cls_id = 2
    sep_id = 3
    mask_id = 4

    def __init__(self, words: Iterable[str]) -> None:
        if isinstance(words, str):
            raise TypeError("words must be an iterable of words, got a single str.")
        words = tuple(words)
        for i, w in enumerate(words):
            if not isinstance(w, str) or split_words(w) != [w]:
                raise ValueError(
                    f"words[{i}] = {w!r} is not a single lower-case word of split_words."
                )
        if len(set(words)) != len(words):
            dup = next(w for w in words if words.count(w) > 1)
            raise ValueError(f"words holds {dup!r} more than once.")
        self.words: tuple[str, ...] = words
        self.vocab: tuple[str, ...] = SPECIAL_TOKENS + words  # id -> token
        self._ids = {w: i + len(SPECIAL_TOKENS) for i, w in enumerate(words)}

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], max_words: int | None = None, min_count: int = 1
    ) -> WordTokenizer:
        """The tokenizer whose vocabulary is the most frequent words of ``texts``.

        Words are counted with :func:`split_words`, sorted by decreasing count then
        alphabetically, and kept if they occur at least ``min_count`` times, at most
        ``max_words`` of them (all if ``None``).
        """
        if isinstance(texts, str):
            texts = [texts]
        min_count = check_positive_int(min_count, "min_count")
        if max_words is not None:
            max_words = check_positive_int(max_words, "max_words", allow_zero=True)
        counts: Counter[str] = Counter()
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}.")
            counts.update(split_words(text))
        ranked = sorted(
            (w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls(ranked if max_words is None else ranked[:max_words])

    def __len__(self) -> int:
        """The vocabulary size: 5 special tokens plus the words."""
        return len(self.vocab)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordTokenizer) and self.vocab == other.vocab

    def __hash__(self) -> int:
        return hash(self.vocab)

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={len(self)}, first words={self.words[:5]!r})"

    def token_id(self, word: str) -> int:
        """The id of one token: a special token such as ``"[MASK]"`` or a word (else UNK)."""
        if word in SPECIAL_TOKENS:
            return SPECIAL_TOKENS.index(word)
        return self._ids.get(word, self.unk_id)

    def encode(self, text: str, add_special: bool = True) -> list[int]:
        """Ids of the words of ``text`` (``[UNK]`` for unknown ones), wrapped in ``[CLS]``
        ... ``[SEP]`` if ``add_special``. The literal ``[MASK]`` in ``text`` is a word
        like any other (``[ mask ]``): put the mask id in the ids yourself."""
        ids = [self._ids.get(w, self.unk_id) for w in split_words(text)]
        return [self.cls_id, *ids, self.sep_id] if add_special else ids

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special: bool = True) -> str:
        """The words of ``ids`` joined by spaces; special tokens dropped if
        ``skip_special`` (``[UNK]`` included), else written as ``[PAD]``, ``[MASK]``, ..."""
        return " ".join(token_strings(ids, self.vocab, len(SPECIAL_TOKENS), skip_special))

    def batch_encode(
        self, texts: Sequence[str], max_len: int, add_special: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode several texts, truncate each to ``max_len`` ids and right-pad them.

        Truncation keeps the first words; with ``add_special`` the last id stays
        ``[SEP]`` (at most ``max_len - 2`` words are kept). The batch is padded to its
        longest encoding (at most ``max_len``).

        Returns:
            ``(input_ids, attention_mask)``: ``LongTensor (B, T)`` and bool ``(B, T)``,
            ``True`` on real tokens.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, got a single str; wrap it.")
        max_len = check_positive_int(max_len, "max_len")
        if add_special and max_len < 2:
            raise ValueError(f"max_len must be at least 2 with add_special=True, got {max_len}.")
        encoded = []
        for text in texts:
            ids = self.encode(text, add_special=False)
            if add_special:
                ids = [self.cls_id, *ids[: max_len - 2], self.sep_id]
            encoded.append(ids[:max_len])
        longest = max((len(e) for e in encoded), default=0)
        input_ids, lengths = pad_right(encoded, self.pad_id, longest)  # (B, T), (B,)
        attention_mask = torch.arange(longest)[None, :] < lengths[:, None]  # (B, T)
        return input_ids, attention_mask

    def special_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Bool, ``True`` on ``[PAD]``, ``[CLS]`` and ``[SEP]``: the positions that
        :func:`attnkit.models.bert.mask_tokens` must never select."""
        if not isinstance(input_ids, torch.Tensor):
            raise TypeError(f"input_ids must be a torch.Tensor, got {type(input_ids).__name__}.")
        specials = torch.tensor([self.pad_id, self.cls_id, self.sep_id], device=input_ids.device)
        return torch.isin(input_ids, specials)


__all__ = ["SPECIAL_TOKENS", "WORD_PATTERN", "WordTokenizer", "split_words"]
