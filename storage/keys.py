"""Blocking keys: a short phonetic code of a name, stored beside it and indexed.

Scored matching compares an incoming patient with the stored patients whose
birth date is the same *or one typing error away* (about fifty dates). Reading
every patient born on those dates grows with the registry (a region of a few
million people has hundreds born on any one day), so candidates are read only
when a name key agrees: family or given, either way round, which keeps
swapped names. Only an incoming patient with no name key at all meets
everyone born on the exact date.

What the key leaves out is a pair whose family *and* given names both have
another key. Such a pair scores below the review threshold when both names
differ outright (the two name weights outweigh everything else), so it was
never found; only two names that are both merely similar but start with
another letter (Katie Cole and Catie Kohl) could have reached review.

The key is the Soundex code (jellyfish) of the first word of the name, folded
to unaccented capitals: ``García-López`` and ``Garcia`` both give ``G620``, and
so do ``Smith`` and ``Smyth``. A one-letter typo after the first letter mostly
keeps the code; when it does not, the other name still carries the pair.
"""

from __future__ import annotations

import re
import unicodedata

import jellyfish

__all__ = ["name_key"]

_WORD = re.compile(r"[A-Z]+")


def name_key(name: str) -> str:
    """The blocking key of one name ('' when it has no letters)."""
    if not name:
        return ""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    word = _WORD.search(folded.upper().replace("'", ""))
    return jellyfish.soundex(word.group()) if word else ""
