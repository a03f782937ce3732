"""A character-level tokenizer with padding, begin, end and unknown tokens.

The vocabulary is deterministic: the four special tokens first (``PAD = 0``, ``BOS = 1``,
``EOS = 2``, ``UNK = 3``), then every character of the alphabet in sorted (code point)
order. Characters outside the alphabet encode to ``UNK``. Batches are right-padded with
``PAD``, matching :func:`~attnkit.masks.padding_mask` (``True`` on the first ``length`` positions).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from .._validate import check_bool, check_int, check_positive_int, check_str_list, fmt_shape

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
"""The special tokens, ids ``0 .. 3`` in this order (``PAD``, ``BOS``, ``EOS``, ``UNK``)."""


class CharTokenizer:
    """Map text to integer ids, one id per character (Unicode code point).

    Args:
        texts: texts whose characters form the alphabet (any iterable of strings).
        alphabet: the characters themselves, as a string or an iterable of single
            characters; give ``texts`` or ``alphabet``, not both.

    Example:
        >>> tok = CharTokenizer(["hello", "world"])
        >>> tok.encode("hold", add_eos=True)
        [6, 8, 7, 4, 2]
        >>> tok.decode([1, 6, 8, 7, 4, 2])
        'hold'
    """

    pad_id = 0
    bos_id = 1
    eos_id = 2
    unk_id = 3

    def __init__(
        self, texts: Iterable[str] | None = None, *, alphabet: Iterable[str] | None = None
    ) -> None:
        if (texts is None) == (alphabet is None):
            raise ValueError("Give exactly one of texts (an iterable of strings) or alphabet.")
        chars: set[str] = set()
        if texts is not None:
            if isinstance(texts, str):
                texts = [texts]
            if not isinstance(texts, Iterable):
                raise TypeError(f"texts must be an iterable of str, got {type(texts).__name__}.")
            for i, text in enumerate(texts):
                if not isinstance(text, str):
                    raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}.")
                chars.update(text)
        else:
            assert alphabet is not None
            for i, ch in enumerate(alphabet):
                if not isinstance(ch, str) or len(ch) != 1:
                    raise ValueError(
                        f"alphabet must hold single characters, got alphabet[{i}] = {ch!r}."
                    )
                chars.add(ch)
        self.chars: tuple[str, ...] = tuple(sorted(chars))
        self.vocab: tuple[str, ...] = SPECIAL_TOKENS + self.chars  # id -> token
        self._ids = {ch: i for i, ch in enumerate(self.vocab) if i >= len(SPECIAL_TOKENS)}

    def __len__(self) -> int:
        """The vocabulary size: 4 special tokens plus the alphabet."""
        return len(self.vocab)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and self.vocab == other.vocab

    def __hash__(self) -> int:
        return hash(self.vocab)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={len(self)}, alphabet={''.join(self.chars)!r})"

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Ids of the characters of ``text`` (``UNK`` for unknown ones), optionally
        preceded by ``BOS`` and followed by ``EOS``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}.")
        ids = [self._ids.get(ch, self.unk_id) for ch in text]
        if add_bos:
            ids.insert(0, self.bos_id)
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special: bool = True) -> str:
        """The text of ``ids`` (a list or a 1-D integer tensor).

        With ``skip_special=True`` the special tokens are dropped (``UNK`` too, since the
        character it replaced is lost); otherwise they appear as ``<pad>``, ``<bos>``,
        ``<eos>`` and ``<unk>``. Generation code usually cuts at the first ``EOS`` first.
        """
        return "".join(token_strings(ids, self.vocab, len(SPECIAL_TOKENS), skip_special))

    def batch_encode(
        self,
        texts: Sequence[str],
        add_bos: bool = False,
        add_eos: bool = False,
        pad_to: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode several texts and right-pad them with ``PAD`` to a common length.

        Args:
            texts: the texts (a ``str`` alone is refused: wrap it in a list).
            add_bos, add_eos: as in :meth:`encode`.
            pad_to: padded length ``T``; defaults to the longest encoding; must be at least
                that.

        Returns:
            ``(ids, lengths)``: ``LongTensor (B, T)`` and ``LongTensor (B,)`` holding the
            length of each encoding (``BOS``/``EOS`` included), so that
            ``padding_mask(lengths, T)`` marks the real tokens.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, got a single str; wrap it.")
        encoded = [self.encode(t, add_bos, add_eos) for t in texts]
        longest = max((len(e) for e in encoded), default=0)
        if pad_to is None:
            pad_to = longest
        pad_to = check_positive_int(pad_to, "pad_to", allow_zero=True)
        if pad_to < longest:
            raise ValueError(f"pad_to={pad_to} is shorter than the longest encoding ({longest}).")
        return pad_right(encoded, self.pad_id, pad_to)

    def to_dict(self) -> dict[str, object]:
        """A JSON-serialisable description; :meth:`from_dict` rebuilds the tokenizer."""
        return {
            "type": "CharTokenizer",
            "specials": list(SPECIAL_TOKENS),
            "chars": "".join(self.chars),
        }

    @classmethod
    def from_dict(cls, state: dict[str, object]) -> CharTokenizer:
        """Rebuild a tokenizer saved with :meth:`to_dict`."""
        if not isinstance(state, dict) or state.get("type") != "CharTokenizer":
            raise ValueError("state must be a dict made by CharTokenizer.to_dict().")
        if state.get("specials") != list(SPECIAL_TOKENS):
            raise ValueError(
                f"state has special tokens {state.get('specials')!r}, this version uses "
                f"{list(SPECIAL_TOKENS)!r}."
            )
        chars = state.get("chars")
        if not isinstance(chars, str):
            raise ValueError(f"state['chars'] must be a str, got {type(chars).__name__}.")
        return cls(alphabet=chars)


def token_strings(
    ids: Sequence[int] | torch.Tensor, vocab: Sequence[str], n_special: int, skip_special: bool
) -> list[str]:
    """The vocabulary entries of ``ids`` (a list or a 1-D integer tensor), in order; the
    first ``n_special`` entries are special tokens, dropped if ``skip_special``."""
    vocab = check_str_list(vocab, "vocab")
    n_special = check_int(n_special, "n_special", low=0, high=len(vocab))
    skip_special = check_bool(skip_special, "skip_special")
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1 or ids.is_floating_point() or ids.dtype == torch.bool:
            raise ValueError(
                f"ids must be a 1-D integer tensor, got {ids.dtype} of shape "
                f"{fmt_shape(ids.shape)}."
            )
        ids = ids.tolist()
    out = []
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(vocab):
            raise ValueError(f"ids must be integers in [0, {len(vocab)}), got {i!r}.")
        if i >= n_special or not skip_special:
            out.append(vocab[i])
    return out


def pad_right(
    encoded: Sequence[Sequence[int]], pad_id: int, length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists to ``length`` (at least the longest): ``(ids (B, T), lengths (B,))``,
    both ``LongTensor``.

    Raises:
        TypeError: if ``encoded`` is not a list of lists of int, or ``pad_id`` / ``length``
            not ints. ValueError: if ``length`` is shorter than a row or negative.
    """
    if isinstance(encoded, str) or not isinstance(encoded, Sequence):
        raise TypeError(f"encoded must be a list of lists of ids, got {type(encoded).__name__}.")
    for b, e in enumerate(encoded):
        if isinstance(e, str) or not isinstance(e, Sequence):
            raise TypeError(f"encoded[{b}] must be a list of ids, got {type(e).__name__}.")
        for i in e:
            check_int(i, f"encoded[{b}][i]")
    pad_id = check_int(pad_id, "pad_id")
    length = check_int(length, "length", low=max((len(e) for e in encoded), default=0))
    ids = torch.full((len(encoded), length), pad_id, dtype=torch.long)  # (B, T)
    for b, e in enumerate(encoded):
        ids[b, : len(e)] = torch.tensor(e, dtype=torch.long)
    lengths = torch.tensor([len(e) for e in encoded], dtype=torch.long)  # (B,)
    return ids, lengths
