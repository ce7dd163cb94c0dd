"""Files to download: maps as NPZ and tidy CSV, the whole trace as NPZ."""
from __future__ import annotations

import csv
import io

import numpy as np

from model.naming import slug

def maps_npz(maps: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{_slug(k): np.asarray(v) for k, v in maps.items()})
    return buf.getvalue()


def maps_csv(maps: dict[str, np.ndarray]) -> str:
    """Tidy CSV of [h, w] maps: ``map,row,col,value`` (one line per patch per map)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["map", "row", "col", "value"])
    for name, m in maps.items():
        a = np.asarray(m, dtype=np.float64)
        a = a.reshape(a.shape[0], -1) if a.ndim >= 2 else a[None]
        for r in range(a.shape[0]):
            for c in range(a.shape[1]):
                w.writerow([_slug(name), r, c, repr(float(a[r, c]))])
    return buf.getvalue()


def _slug(text: str) -> str:
    return slug(text, sep="_", empty="map")
