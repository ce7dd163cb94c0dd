"""Two small value objects the builders share instead of a dozen loose keywords.

- :class:`MapStyle` — *how* a map is drawn: colormap, opacity over the image, upsampling,
  and the colour range.
- :class:`TokenLayout` — *where* the tokens are: how many prefix tokens and their names,
  the patch grid, the patch size; and the one rule every label in Patchlight follows.

The naming rule (issue 10, item 9). Tokens are numbered ``0 … T-1`` in the model's order:
prefix tokens first (CLS, then DIST, then registers), then the patches row-major. A prefix
token is called by its name (``CLS``, ``DIST``, ``REG0`` …). A patch is called by its *patch*
index ``i = t - num_prefix_tokens`` (0 … N-1, row-major), never by its token index:
``"patch 24 (row 3, col 3)"`` in prose, titles and hover, ``"p24 (r3,c3)"`` as a compact,
unique category name (:meth:`TokenLayout.names`), ``"p24"`` as a sparse axis tick. So the
first patch is "patch 0" whatever the prefix, and a patch keeps its number from the patch
grid to the attention matrix.

Both are frozen and hashable, so they can be part of cache keys.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ._checks import check_prefix
from .maps import UPSAMPLE_MODES


@dataclass(frozen=True)
class MapStyle:
    """How a map is drawn.

    ``colormap``: a plotly colorscale name (``"inferno"``, ``"viridis"``, ``"rdbu_r"`` …) or
    None for the figure's default (the theme's ``attention`` colormap, inferno, for attention
    and relevance maps; its ``diverging`` one for signed values). ``opacity``: of the map over
    the image, 0 (image only) … 1 (map only). ``upsample``: ``"nearest"`` (one block per patch)
    or ``"smooth"`` (bilinear between patch centres). ``zmin``/``zmax``: the colour range;
    None means ``min(0, data min)`` and the data max. A ``zmax`` below the data max saturates
    the brightest patches, and the colour bar's top label says so (``"≥ 0.12"``).
    """

    colormap: str | None = None
    opacity: float = 0.6
    upsample: str = "nearest"
    zmin: float | None = None
    zmax: float | None = None

    def __post_init__(self):
        try:
            opacity = float(self.opacity)
        except (TypeError, ValueError):
            opacity = float("nan")
        if not 0.0 <= opacity <= 1.0:
            raise ValueError(f"opacity={self.opacity!r}; expected a number between 0 (image only) and 1 (map only).")
        object.__setattr__(self, "opacity", opacity)
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample={self.upsample!r}; expected one of {UPSAMPLE_MODES}.")
        if self.zmin is not None and self.zmax is not None and not float(self.zmax) > float(self.zmin):
            raise ValueError(f"zmin={self.zmin!r} is not below zmax={self.zmax!r}; expected zmin < zmax "
                             f"(or None for the data's range).")

    def replace(self, **changes) -> "MapStyle":
        return replace(self, **changes)

    def color_range(self, values) -> tuple[float, float]:
        """``(lo, hi)``: ``zmin``/``zmax`` where given, else ``min(0, min)`` and ``max`` of the
        finite values; a flat range is widened to ``lo … lo + 1``."""
        a = np.asarray(values, dtype=np.float64)
        finite = a[np.isfinite(a)]
        lo = min(0.0, float(finite.min())) if self.zmin is None else float(self.zmin)
        hi = (float(finite.max()) if finite.size else lo + 1.0) if self.zmax is None else float(self.zmax)
        if not hi > lo:
            hi = lo + 1.0
        return lo, hi


@dataclass(frozen=True)
class TokenLayout:
    """Where the tokens are: ``num_prefix_tokens`` prefix tokens named ``prefix_names``
    (default ``CLS``, ``TOK1`` …), then the patches of an ``(h, w)`` ``grid`` row-major,
    each ``patch_size`` pixels square. ``grid`` and ``patch_size`` may be None where a
    figure does not need them (a builder then takes them from its arrays).
    """

    num_prefix_tokens: int = 1
    prefix_names: tuple[str, ...] | None = None
    grid: tuple[int, int] | None = None
    patch_size: int | None = None

    def __post_init__(self):
        names = tuple(check_prefix(self.num_prefix_tokens, self.prefix_names))
        object.__setattr__(self, "num_prefix_tokens", len(names))
        object.__setattr__(self, "prefix_names", names)
        if self.grid is not None:
            try:
                h, w = (int(g) for g in self.grid)
            except (TypeError, ValueError):
                h = w = 0
            if h < 1 or w < 1:
                raise ValueError(f"grid={self.grid!r}; expected (h, w), the patch grid's rows and columns, "
                                 f"e.g. (16, 16).")
            object.__setattr__(self, "grid", (h, w))
        if self.patch_size is not None:
            if isinstance(self.patch_size, bool) or int(self.patch_size) < 1:
                raise ValueError(f"patch_size={self.patch_size!r}; expected a positive integer such as 16 or 14.")
            object.__setattr__(self, "patch_size", int(self.patch_size))

    # ---- sizes --------------------------------------------------------------------------
    @property
    def p(self) -> int:
        return self.num_prefix_tokens

    @property
    def N(self) -> int | None:
        return None if self.grid is None else self.grid[0] * self.grid[1]

    @property
    def T(self) -> int | None:
        return None if self.grid is None else self.p + self.N

    def replace(self, **changes) -> "TokenLayout":
        return replace(self, **changes)

    def with_grid(self, grid, what: str = "the map") -> "TokenLayout":
        """This layout with ``grid`` (the shape of a builder's map); a different grid given
        before is an error that names both."""
        grid = (int(grid[0]), int(grid[1]))
        if self.grid is not None and tuple(self.grid) != grid:
            raise ValueError(f"{what} has a {grid[0]}x{grid[1]} patch grid but tokens.grid={self.grid}; expected "
                             f"the same grid. Fix: pass the TokenLayout of the model that made {what}.")
        return self if self.grid == grid else replace(self, grid=grid)

    def with_count(self, T: int, what: str) -> "TokenLayout":
        """This layout checked against ``T`` tokens (``what`` names the array in errors)."""
        if self.p > T:
            raise ValueError(f"num_prefix_tokens={self.p} but {what} has only T={T} tokens; expected 0..{T}.")
        if self.grid is not None and self.T != T:
            raise ValueError(f"{what} has T={T} tokens but the layout has {self.p} prefix + {self.N} patches "
                             f"({self.grid[0]}x{self.grid[1]}) = {self.T}. Fix: check num_prefix_tokens "
                             f"(registers?) and grid.")
        return self

    # ---- positions ------------------------------------------------------------------------
    def check_token(self, t, T: int | None = None) -> int:
        """``t`` as an int in ``0 … T-1`` (``T`` from the grid unless given)."""
        T = self.T if T is None else T
        if isinstance(t, bool) or not float(t).is_integer():
            raise ValueError(f"token {t!r} is not a whole number; expected a token index 0..{T - 1 if T else 'T-1'}.")
        t = int(t)
        if t < 0 or (T is not None and t >= T):
            where = (f" ({self.p} prefix tokens + {self.grid[0]}x{self.grid[1]} patches). Fix: patch (r, c) is "
                     f"token {self.p} + r*{self.grid[1]} + c" if self.grid is not None else "")
            raise ValueError(f"query token {t} is out of range; expected 0..{T - 1}{where}.")
        return t

    def is_patch(self, t: int) -> bool:
        return int(t) >= self.p

    def patch_index(self, t: int) -> int | None:
        """The patch index ``t - num_prefix_tokens`` of token ``t``; None for a prefix token."""
        t = int(t)
        return None if t < self.p else t - self.p

    def token_of_patch(self, i: int) -> int:
        return self.p + int(i)

    def row_col(self, t: int) -> tuple[int, int] | None:
        """(row, col) of token ``t`` in the grid; None for a prefix token (or without a grid)."""
        i = self.patch_index(self.check_token(t))
        if i is None or self.grid is None:
            return None
        return divmod(i, self.grid[1])

    # ---- names ------------------------------------------------------------------------------
    def name(self, t: int) -> str:
        """``CLS`` / ``REG0`` … for a prefix token, ``patch 24 (row 3, col 3)`` for a patch."""
        t = int(t)
        i = self.patch_index(t)
        if i is None:
            return self.prefix_names[t]
        if self.grid is None:
            return f"patch {i}"
        r, c = divmod(i, self.grid[1])
        return f"patch {i} (row {r}, col {c})"

    def label(self, t: int) -> str:
        """The compact unique name: ``CLS`` or ``p24 (r3,c3)`` (category axes, bar labels)."""
        t = int(t)
        i = self.patch_index(t)
        if i is None:
            return self.prefix_names[t]
        if self.grid is None:
            return f"p{i}"
        r, c = divmod(i, self.grid[1])
        return f"p{i} (r{r},c{c})"

    def tick(self, t: int) -> str:
        """The shortest name, for sparse ticks along a token axis: ``CLS`` or ``p24``."""
        t = int(t)
        i = self.patch_index(t)
        return self.prefix_names[t] if i is None else f"p{i}"

    def names(self, T: int | None = None) -> list[str]:
        """:meth:`label` of every token ``0 … T-1`` (``T`` from the grid unless given)."""
        T = self.T if T is None else int(T)
        if T is None:
            raise ValueError("names() needs the number of tokens: give the layout a grid, or pass T.")
        return [self.label(t) for t in range(T)]

    def patch_name(self, i: int) -> str:
        """:meth:`name` of patch ``i`` (0 … N-1)."""
        return self.name(self.p + int(i))


def as_tokens(tokens) -> TokenLayout:
    """``tokens`` as a :class:`TokenLayout` (None: CLS only, no grid yet)."""
    if tokens is None:
        return TokenLayout()
    if not isinstance(tokens, TokenLayout):
        raise ValueError(f"tokens={tokens!r}; expected a viz.TokenLayout(num_prefix_tokens, prefix_names, grid, "
                         f"patch_size) or None.")
    return tokens


def as_style(style, **defaults) -> MapStyle:
    """``style`` as a :class:`MapStyle` (None: ``MapStyle(**defaults)``)."""
    if style is None:
        return MapStyle(**defaults)
    if not isinstance(style, MapStyle):
        raise ValueError(f"style={style!r}; expected a viz.MapStyle(colormap, opacity, upsample, zmin, zmax) or None.")
    return style
