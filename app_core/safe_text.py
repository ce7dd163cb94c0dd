"""Text from users, made safe to show: file names, hub ids, query parameters, errors quoting them."""
from __future__ import annotations

def md_text(value, limit: int = 200) -> str:
    """User-controlled text (a file name, a hub id, a query parameter, an error quoting them)
    made inert inside Streamlit markdown: shown as typed, never as a link, an image, emphasis,
    a heading, a colour directive or maths.

    Every ASCII punctuation character is backslash-escaped (CommonMark lets any of them be
    escaped, and an escaped character starts no construct: no ``[text](url)``, ``![](url)``,
    ``<http://…>``, ``:red[…]`` or ``$…$``); line breaks become spaces so that no block
    (heading, list, quote) can start; a bare ``www.`` or ``://`` is broken with an escape as
    well, so GFM's autolinks do not fire. Long values are cut to `limit` characters.
    """
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "".join("\\" + ch if ch in _MD_PUNCTUATION else ch for ch in text)


_MD_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def message(error) -> str:
    """An error or note as one inert markdown sentence: capital first letter, final full stop."""
    text = " ".join(str(error).split()) or type(error).__name__
    first_word = text.split()[0]
    if not any(ch in first_word for ch in "./\\:_-@0123456789'\"`"):  # a file name or an id keeps its case
        text = text[0].upper() + text[1:]
    if text[-1] not in ".!?…)":
        text += "."
    return md_text(text, 600)


def plot_text(value, limit: int = 120) -> str:
    """User-controlled text for a plotly label or hover (an image path from an uploaded data set):
    plotly.js reads a few HTML tags in text (``<a href>``, ``<b>``, ``<span style>``, ``<br>``), so
    ``&``, ``<`` and ``>`` go out as entities, which it shows as the characters typed."""
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
