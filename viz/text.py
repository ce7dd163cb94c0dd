"""Text in figures: how wide a string renders, wrapping it to a width, numbers without SI prefixes.

Plotly.js never wraps a title or an annotation: a line too long for its figure is clipped at
the figure's edges (issue 10, item 6). So every title and caption is measured here and broken
at a natural place before it reaches plotly.
"""

from __future__ import annotations

import math

# advance widths of DejaVu Sans (the theme's first font) in em, by character class
_NARROW = set(" .,:;'!|()[]ijlrtfI·")
_WIDE = set("mwMW%@—×")


def text_px(text: str, size: float) -> float:
    """Rendered width of one line of ``text`` at font ``size`` px (within a few per cent for
    DejaVu Sans; HTML tags such as ``<sub>`` are not counted)."""
    em = sum(0.33 if ch in _NARROW else 0.9 if ch in _WIDE else 0.72 if ch.isupper() else 0.63 for ch in text)
    return em * size


def lines_px(text: str, size: float) -> float:
    """Width of the widest ``<br>``-separated line of ``text``."""
    return max(text_px(line, size) for line in str(text).split("<br>"))


# where a line may break, best first: after a clause, before a bracket or an arrow, any space
_AFTER = (": ", ", ", "; ")
_BEFORE = (" (", " → ", " = ", " — ")
_DROP = (" · ",)  # a separator that is left out where the line breaks
_GLUED = ("patch", "token", "layer", "head", "block", "top", "of")  # words that stay with the number after them


def _breaks(text: str) -> list[tuple[int, int, int]]:
    """Candidate breaks as (end of this line, start of the next, rank; 0 best): a clause or
    bracket outside brackets, then any space outside brackets, then a space inside them
    ("patch 25 (row 3, col 3)" stays on one line while it can)."""
    depth, inside = 0, []
    for ch in text:
        depth += (ch in "([") - (ch in ")]")
        inside.append(depth > 0)
    out = {}

    def add(end, start, rank):
        # while avoidable, never inside brackets, nor in "patch 24 (row 3, col 3)", "layer 2", "head 1"
        glued = text.startswith(" (row ", end) or (
            text[start:start + 1].isdigit() and text[:end].rsplit(" ", 1)[-1] in _GLUED)
        rank = max(rank, 2) if inside[end] or glued else rank
        out[(end, start)] = min(rank, out.get((end, start), rank))

    for sep in _AFTER:
        start = 0
        while (i := text.find(sep, start)) > 0:
            add(i + 1, i + len(sep), 0)
            start = i + 1
    for sep in _BEFORE:
        start = 0
        while (i := text.find(sep, start)) > 0:
            add(i, i + 1, 0)
            start = i + 1
    for sep in _DROP:
        start = 0
        while (i := text.find(sep, start)) > 0:
            add(i, i + len(sep), 0)
            start = i + 1
    start = 0
    while (i := text.find(" ", start)) > 0:
        add(i, i + 1, 1)
        start = i + 1
    return sorted((e, s, r) for (e, s), r in out.items())


def wrap_text(text: str, size: float, width_px: float, max_lines: int = 3) -> tuple[str, int]:
    """``text`` broken with ``<br>`` so that every line is at most ``width_px`` wide at ``size``.

    Two lines are balanced at the best natural break (after ``:``/``,``, before ``(``/``→``);
    longer text is filled greedily, and whatever still does not fit in ``max_lines`` lines
    ends with "…". Text that already holds ``<br>`` is only shortened line by line.
    Returns ``(text, number of lines)``.
    """
    text = str(text or "")
    if "<br>" in text:
        lines = [shorten(line, size, width_px) for line in text.split("<br>")]
        return "<br>".join(lines), len(lines)
    if text_px(text, size) <= width_px:
        return text, 1
    brks = _breaks(text)

    def balanced(rank):  # two lines as equal as possible, broken at a break of this rank
        fits = [(abs(text_px(text[:e], size) - text_px(text[s:], size)), e, s) for e, s, r in brks
                if r == rank and text_px(text[:e], size) <= width_px and text_px(text[s:], size) <= width_px]
        if not fits or max_lines < 2:
            return None
        _, e, s = min(fits)
        return text[:e].rstrip() + "<br>" + text[s:].lstrip(), 2

    def filled(worst):  # greedy: each line as full as it can be, breaks up to rank `worst`
        lines, rest = [], text
        while text_px(rest, size) > width_px and len(lines) < max_lines - 1:
            cand = [(e, s, r) for e, s, r in _breaks(rest) if r <= worst and text_px(rest[:e], size) <= width_px]
            good = [b for b in cand if b[2] == 0 and text_px(rest[:b[0]], size) >= 0.45 * width_px]
            fair = [b for b in cand if b[2] <= 1]
            pick = (good or fair or cand or [None])[-1]
            if pick is None:
                break
            lines.append(rest[:pick[0]].rstrip())
            rest = rest[pick[1]:].lstrip()
        fits = text_px(rest, size) <= width_px
        lines.append(shorten(rest, size, width_px))
        return ("<br>".join(lines), len(lines)), fits

    for result in (balanced(0), balanced(1)):
        if result:
            return result
    result, fits = filled(1)
    if fits:
        return result
    return balanced(2) or filled(2)[0]


def shorten(line: str, size: float, width_px: float) -> str:
    """``line`` cut at a word and ended with "…" when it is wider than ``width_px``."""
    if text_px(line, size) <= width_px:
        return line
    cut = line
    while cut and text_px(cut + "…", size) > width_px:
        space = cut.rfind(" ")
        cut = cut[:space] if space > 0 else cut[:-1]
    return cut.rstrip(" ,:;(") + "…"


# ------------------------------------------------------------------------------------------------
# numbers: plotly's default tick format writes 0.000016 as "16μ"; these never use SI prefixes
# ------------------------------------------------------------------------------------------------
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def nice_step(span: float, target: int = 5) -> float:
    """A round step (1, 2, 2.5 or 5 × 10ⁿ) that cuts ``span`` into about ``target`` parts."""
    if not span > 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(target, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * mag >= raw * 0.999:
            return m * mag
    return 10.0 * mag


def format_number(v: float, step: float) -> str:
    """``v`` written with as many digits as a tick ``step`` needs: ``0.25``, ``0.000015``,
    ``1,200`` — never ``15μ`` or ``3M``. Steps below 10⁻⁶ (or of 10⁶ and up) are written as
    multiples of one power of ten for the whole axis: ``5×10⁻⁹``, ``10×10⁻⁹``, ``15×10⁻⁹``."""
    step = abs(step) or abs(v) or 1.0
    if v == 0 or abs(v) < step * 1e-9:
        return "0"
    sign = "−" if v < 0 else ""
    a = abs(v)
    if step < 1e-6 or step >= 1e6:
        exp = math.floor(math.log10(step) + 1e-9)
        unit = 10.0 ** exp
        return sign + format_number(a / unit, step / unit) + "×10" + str(exp).translate(_SUPERSCRIPT)
    decimals = next((d for d in range(12) if abs(step * 10 ** d - round(step * 10 ** d)) < 1e-6 * step * 10 ** d),
                    12)
    text = f"{a:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return sign + text


def format_sig(v: float, digits: int = 3) -> str:
    """``v`` to ``digits`` significant digits as people write it: ``0.122``, ``−3.4``,
    ``1.6×10⁻⁵`` (never ``16μ``, never ``1.6e-05``)."""
    v = float(v)
    text = f"{abs(v):.{digits}g}"
    if "e" in text:
        mant, exp = text.split("e")
        text = f"{mant}×10{str(int(exp)).translate(_SUPERSCRIPT)}"
    return ("−" if v < 0 else "") + text
