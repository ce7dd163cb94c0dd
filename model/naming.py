"""`slug(text)`: the one rule that turns a name into a file-, key- and URL-safe word.

The rule: drop accents (NFKD, then combining marks removed: "é" → "e") and lower-case; every
run of characters outside ASCII [a-z0-9] (other letters and symbols too) becomes one
separator (``-`` by default); separators are stripped from both ends; an empty result
becomes `empty`. So "T-shirt/top" → "t-shirt-top", "Chefer et al." → "chefer-et-al" (or
"chefer_et_al" with ``sep="_"``), "café—crème" → "cafe-creme", "  " → "item".
"""
from __future__ import annotations

import re
import unicodedata

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def slug(text, sep: str = "-", empty: str = "item") -> str:
    """`text` as lower-case ASCII letters and digits joined by `sep` (see the module's rule)."""
    decomposed = unicodedata.normalize("NFKD", str(text))
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return _NOT_ALNUM.sub(sep, folded).strip(sep) or empty
