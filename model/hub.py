"""Hugging Face hub repo ids: one rule for what Patchlight accepts, and one spelling per repo.

The rule (our own wording of huggingface_hub's `validate_repo_id`, narrowed to what a ViT
source is): exactly ``owner/name``; each part 1…96 characters from ``A–Z a–z 0–9 . _ -``;
no part starts or ends with ``-`` or ``.``; no ``--`` or ``..`` anywhere; the name does not
end in ``.git``. Surrounding spaces are ignored (a caller strips an ``hf:`` prefix first).

The hub matches ids without regard to case, so ``Google/ViT-Base-Patch16-224`` and
``google/vit-base-patch16-224`` are one repository — but huggingface_hub caches each spelling
separately. `canonical_repo_id(text, known)` returns the allow-list's own spelling of a
matching id, so the allow-list check and the download see one id, and one cache entry
(issue 13). Plain Python, no torch, no network.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

MAX_PART = 96
_PART = re.compile(r"[A-Za-z0-9._-]+")
EXAMPLE = "google/vit-base-patch16-224"


def _check_part(part: str, what: str, repo: str) -> None:
    problem = None
    if not part:
        problem = f"the {what} is empty"
    elif len(part) > MAX_PART:
        problem = f"the {what} is {len(part)} characters long (at most {MAX_PART})"
    elif not _PART.fullmatch(part):
        bad = sorted({ch for ch in part if not _PART.fullmatch(ch)})
        problem = f"the {what} contains {', '.join(repr(c) for c in bad)} (allowed: letters, digits, '.', '_', '-')"
    elif part[0] in "-." or part[-1] in "-.":
        problem = f"the {what} starts or ends with '-' or '.'"
    elif "--" in part or ".." in part:
        problem = f"the {what} contains '--' or '..'"
    elif what == "name" and part.lower().endswith(".git"):
        problem = "the name ends in '.git'"
    if problem:
        raise ValueError(f"{repo!r} is not a Hugging Face repo id: {problem}; expected <owner>/<name>, e.g. {EXAMPLE}")


def canonical_repo_id(text: str, known: Iterable[str] | None = None) -> str:
    """`text` as a valid ``owner/name`` hub id, or ValueError saying what is wrong.

    With `known` (an allow-list of ids), an id equal to one of them up to case is returned in
    that entry's exact spelling; an id matching none is returned as typed (the caller decides
    whether it is allowed — see `is_known`).
    """
    repo = str(text).strip()
    if not repo:
        raise ValueError(f"the Hugging Face repo id is empty; type <owner>/<name>, e.g. {EXAMPLE}")
    if repo.count("/") != 1:
        raise ValueError(
            f"{repo!r} is not a Hugging Face repo id: it needs exactly one '/' between owner and name; "
            f"expected <owner>/<name>, e.g. {EXAMPLE}"
        )
    owner, name = repo.split("/")
    _check_part(owner, "owner", repo)
    _check_part(name, "name", repo)
    for entry in known or ():
        if entry.strip().lower() == repo.lower():
            return entry.strip()
    return repo


def is_known(repo_id: str, known: Iterable[str]) -> bool:
    """Whether `repo_id` is one of `known`, compared without regard to case."""
    return repo_id.strip().lower() in {k.strip().lower() for k in known}
