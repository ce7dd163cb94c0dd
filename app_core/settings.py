"""The view as plain settings: defaults, validation, JSON files and query parameters, and
clamping to a loaded model's ranges. Every key is also the session-state key of its widget."""
from __future__ import annotations

import json

from model.attribution import FUSIONS
from model.explain import EXTRA_METHODS
from model.env import parse_flag
from model.faithfulness import BASELINES
from model.steps import STEPS

from .prompts import DEFAULT_PROMPTS, MAX_PROMPTS_TEXT
from .sources import BUILTIN_CHOICES, HF_CHOICE, PATH_CHOICE, model_choices, resolve_source

# ----------------------------------------------------------------------------- settings

SETTINGS_VERSION = 1
VIEWS = ("grid", "heads", "layers", "matrix", "mask", "explain", "sanity")
VIEW_LABELS = {
    "grid": "Layers × heads",
    "heads": "Heads of this layer",
    "layers": "Layers of this head",
    "matrix": "T×T matrix",
    "mask": "Attention mass mask",
    "explain": "Rollout & class maps",
    "sanity": "Randomisation check",
}
COMPARE_MODES = ("methods", "classes", "models")
COMPARE_LABELS = {"methods": "Methods × this image", "classes": "One method × classes",
                  "models": "One method × two models"}
COLORMAPS = ("inferno", "viridis", "magma", "plasma", "cividis", "gray")
UPSAMPLES = ("nearest", "smooth")
# Every key is also the session-state key of its widget (stable keys the tests use).
DEFAULTS: dict = {
    "model_choice": "fashion-vit",
    "hf_repo": "",
    "local_path": "",
    "image_source": "gallery",
    "sample": "fashion-ankle-boot",
    "classroom": False,
    "step": "patches",
    "layer": 0,
    "head": 0,
    "query": 0,
    "view": "grid",
    "colormap": "inferno",
    "opacity": 0.6,
    "upsample": "nearest",
    "fusion": "mean",
    "discard_ratio": 0.0,
    "residual_alpha": 0.5,
    "start_layer": 0,
    "target_class": -1,  # -1: the predicted (top) class
    "extra_method": "none",  # a method shown beside rollout and the gradient maps (model.explain.EXTRA_METHODS)
    "loss_label": -1,  # -1: the sample's true label if known, else the top class
    "prompts": DEFAULT_PROMPTS,  # a CLIP model's classes, as text (app_core.prompts)
    "baseline": "mean",  # deletion/insertion: what replaces a patch
    "compare_mode": "methods",  # the Compare page: methods × image, one method × classes, × two models
}
SETTING_KEYS = tuple(DEFAULTS)
_CHOICES = {
    "image_source": ("gallery", "upload"),
    "step": STEPS,
    "view": VIEWS,
    "colormap": COLORMAPS,
    "upsample": UPSAMPLES,
    "fusion": FUSIONS,
    "extra_method": ("none",) + EXTRA_METHODS,
    "baseline": BASELINES,
    "compare_mode": COMPARE_MODES,
}
_RANGES = {"opacity": (0.0, 1.0), "discard_ratio": (0.0, 0.99), "residual_alpha": (0.0, 1.0)}
_INTS = ("layer", "head", "query", "start_layer", "target_class", "loss_label")


def _coerce(key: str, value):
    """`value` as the type of setting `key`, or ValueError naming the key and what fits."""
    default = DEFAULTS[key]
    if key in _CHOICES:
        text = str(value)
        if text not in _CHOICES[key]:
            raise ValueError(f"setting {key}={value!r} is not one of {', '.join(_CHOICES[key])}")
        return text
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        flag = parse_flag(value)
        if flag is None:
            raise ValueError(f"setting {key}={value!r} is not true or false")
        return flag
    if key in _INTS:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"setting {key}={value!r} is not a whole number") from None
        if not number.is_integer() or number < -1:
            raise ValueError(f"setting {key}={value!r} is not a whole number ≥ 0 (or -1 for automatic)")
        return int(number)
    if isinstance(default, float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"setting {key}={value!r} is not a number") from None
        lo, hi = _RANGES[key]
        if not lo <= number <= hi:
            raise ValueError(f"setting {key}={number} is outside [{lo}, {hi}]")
        return number
    text = str(value)
    if key == "prompts" and len(text) > MAX_PROMPTS_TEXT:
        raise ValueError(f"setting prompts has {len(text)} characters, more than {MAX_PROMPTS_TEXT}")
    return text


def parse_settings(data: dict, public: bool = False) -> tuple[dict, list[str]]:
    """Validated settings from a JSON object or query parameters → (settings, warnings).

    Unknown keys and bad values are skipped with a warning naming them, so one typo does
    not throw away a whole saved view. A ``model`` key (a source string) sets the model
    choice; local paths are ignored in the public demo.
    """
    if not isinstance(data, dict):
        raise ValueError("settings must be a JSON object such as {\"model\": \"dinov2-small\", \"layer\": 3}")
    out: dict = {}
    warnings: list[str] = []
    for key, value in data.items():
        if isinstance(value, list) and len(value) == 1:  # repeated query parameters
            value = value[0]
        if key in ("patchlight_settings", "version", "image"):
            continue
        if key == "model":
            source = str(value).strip()
            if source in BUILTIN_CHOICES:
                out["model_choice"] = source
            elif source.startswith("hf:"):
                out.update(model_choice=HF_CHOICE, hf_repo=source[3:])
            elif source:
                if public:
                    warnings.append(f"model {source!r} is a local path, which the hosted demo cannot load; ignored")
                else:
                    out.update(model_choice=PATH_CHOICE, local_path=source)
            continue
        if key not in DEFAULTS:
            warnings.append(f"unknown setting {key!r} ignored")
            continue
        try:
            out[key] = _coerce(key, value)
        except ValueError as err:
            warnings.append(f"{err}; ignored")
    if "model_choice" in out and out["model_choice"] not in model_choices(public):
        warnings.append(f"model choice {out.pop('model_choice')!r} is not available here; ignored")
    if "sample" in out:
        from model.gallery import sample_keys

        if out["sample"] not in sample_keys():
            warnings.append(f"sample {out.pop('sample')!r} is not in the gallery; ignored")
        else:
            out.setdefault("image_source", "gallery")
    return out, warnings


def settings_source(s: dict) -> str | None:
    """The model source a settings dict names (None when it is incomplete)."""
    try:
        return resolve_source(s.get("model_choice", DEFAULTS["model_choice"]), s.get("hf_repo", ""),
                              s.get("local_path", ""))
    except ValueError:
        return None


def settings_to_json(s: dict, image: dict | None = None) -> str:
    """The view as JSON: load it back (Downloads page) or pass its keys as query parameters."""
    out = {"patchlight_settings": SETTINGS_VERSION}
    source = settings_source(s)
    if source:
        out["model"] = source
    for key in SETTING_KEYS:
        if key in ("model_choice", "hf_repo", "local_path"):
            continue
        if key in s:
            out[key] = s[key]
    if image:
        out["image"] = image
    return json.dumps(out, indent=2, sort_keys=False)


def settings_from_json(text: str | bytes, public: bool = False) -> tuple[dict, list[str]]:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"The settings file is not valid JSON ({err}); download a fresh one from the Downloads "
                         "page.") \
            from None
    if not isinstance(data, dict) or "patchlight_settings" not in data:
        raise ValueError("This JSON file is not a Patchlight settings file (it has no \"patchlight_settings\" "
                         "entry); choose a file saved with the Settings (JSON) button on the Downloads page.")
    settings, warnings = parse_settings(data, public)
    if not settings:
        raise ValueError("This settings file holds no setting Patchlight knows"
                         + (f" ({'; '.join(warnings)})" if warnings else "")
                         + "; download a fresh one from the Downloads page.")
    return settings, warnings


def settings_query(s: dict, public: bool = False) -> dict[str, str]:
    """Query parameters that reproduce the view (the gallery image included; uploads cannot be)."""
    q = {}
    source = settings_source(s)
    if source and (source in BUILTIN_CHOICES or source.startswith("hf:") or not public):
        q["model"] = source
    for key in ("sample", "step", "layer", "head", "query", "view", "colormap", "opacity", "upsample", "fusion",
                "discard_ratio", "residual_alpha", "start_layer", "target_class", "extra_method", "classroom",
                "prompts", "baseline", "compare_mode"):
        if key in s and s[key] != DEFAULTS[key]:
            q[key] = str(s[key]).lower() if isinstance(s[key], bool) else str(s[key])
    if s.get("image_source") != "gallery":
        q.pop("sample", None)
    return q


def clamp_settings(s: dict, L: int, H: int, T: int, K: int) -> dict:
    """The changes that bring layer/head/query/class settings inside a model's ranges."""
    limits = {"layer": L - 1, "head": H - 1, "query": T - 1, "start_layer": L - 1}
    changes = {}
    for key, top in limits.items():
        value = s.get(key, DEFAULTS[key])
        if not isinstance(value, int) or value < 0 or value > top:
            changes[key] = 0 if not isinstance(value, int) or value < 0 else top
    for key in ("target_class", "loss_label"):
        value = s.get(key, -1)
        if not isinstance(value, int) or value < -1 or value >= max(K, 0):
            if value != -1:
                changes[key] = -1
    return changes
