"""Data that the chapters generate themselves: deterministic, documented, never downloaded.

* :class:`.CharTokenizer`: a character-level tokenizer with ``PAD``, ``BOS``, ``EOS``,
  ``UNK``.
* Date translation (:func:`.make_date_pairs`, :func:`.date_splits`): human-written dates to
  ISO 8601, the sequence-to-sequence task of the Transformer chapter.
* :func:`.stdlib_docstrings`: a few megabytes of English text read from the Python
  standard library, for the text-generation chapter.
* :func:`.load_digit_images`, :func:`.digit_splits`: scikit-learn's 1,797 handwritten
  digits (8 x 8 pixels, shipped with the package), for the vision chapters.
"""

from .corpus import stdlib_docstrings, train_val_split
from .dates import FORMATS, date_splits, make_date_pairs, random_date
from .digits import digit_splits, load_digit_images
from .tokenizer import CharTokenizer

__all__ = [
    "FORMATS",
    "CharTokenizer",
    "date_splits",
    "digit_splits",
    "load_digit_images",
    "make_date_pairs",
    "random_date",
    "stdlib_docstrings",
    "train_val_split",
]
