"""CLIP's classes in the app: the text prompts a visitor types (bounded in the public demo) and
the cache key of a prompt set. The prompt head itself is made by model.clip.with_prompts."""
from __future__ import annotations

import hashlib
import json

DEFAULT_PROMPTS = "cat, dog, bird, horse, car, bicycle, person, tree, flower, food"
MAX_PROMPTS_TEXT = 2000  # characters of the prompts box kept as a setting (a link, a settings file)


def session_prompts(text: str, public: bool) -> list[str]:
    """The class prompts of the sidebar's box, or ValueError saying what to type; the hosted demo
    takes at most PUBLIC_MAX_PROMPTS prompts of at most PUBLIC_MAX_PROMPT_CHARS characters. No
    prompt may hold < or > (class names become figure labels, and a link may carry prompts)."""
    from model.clip import PUBLIC_MAX_PROMPT_CHARS, PUBLIC_MAX_PROMPTS, parse_prompts  # late: imports torch

    if len(text or "") > MAX_PROMPTS_TEXT:
        raise ValueError(f"the class prompts hold {len(text)} characters; keep them under {MAX_PROMPTS_TEXT}")
    names = (parse_prompts(text or "", PUBLIC_MAX_PROMPTS, PUBLIC_MAX_PROMPT_CHARS) if public
             else parse_prompts(text or ""))
    markup = [n for n in names if any(ch in n for ch in "<>")]
    if markup:  # class names become figure labels, where plotly reads a few HTML tags
        raise ValueError(f"the class prompt {markup[0]!r} contains < or >; type plain words")
    return names


def prompts_model_key(model_key: str, prompts: list[str], template: str) -> str:
    """The cache key of a CLIP model with these prompts as its classes: every trace, gradient
    and figure of it is cached under this key, apart from those of other prompt sets."""
    digest = hashlib.sha256(json.dumps([prompts, template]).encode()).hexdigest()[:16]
    return f"{model_key}|prompts:{digest}"
