"""app_core/teaching.py: examples kept small, the public demo's bounds, a session's head and its key."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app_core import teaching
from model.heads import Head, head_bytes
from model.preprocess import ImageError
from model.teach import Recipe


def png(width, height, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_examples_are_shrunk_and_keyed_by_their_bytes():
    big = teaching.example_from_bytes(png(1200, 900), "big.png")
    image = teaching.example_image(big)
    assert image.size == (teaching.EXAMPLE_SIDE, teaching.EXAMPLE_SIDE * 3 // 4)
    assert big.data[:2] == b"\xff\xd8" and len(big.data) < 300_000  # JPEG
    tile = teaching.example_from_bytes(png(28, 28), "tile.png")
    assert tile.data[:4] == b"\x89PNG" and np.array_equal(np.asarray(teaching.example_image(tile)),
                                                         np.asarray(Image.open(io.BytesIO(png(28, 28)))))
    assert tile.digest != big.digest and len(tile.digest) == 64
    crops = teaching.crops_of(png(300, 200), "photo.png", 3)
    assert [c.label for c in crops] == ["photo.png, crop 1", "photo.png, crop 2", "photo.png, crop 3"]
    assert len({c.digest for c in crops}) == 3
    with pytest.raises(ImageError):
        teaching.example_from_bytes(b"not an image", "x.png")


def test_the_public_demo_bounds_a_fit():
    assert teaching.recipe_problems(Recipe(views=2), [10] * 5, public=True) == []
    problems = teaching.recipe_problems(Recipe(views=4, steps=1000), [20] * 10, public=True)
    assert len(problems) == 2 and "at most 400" in problems[0] and "800 passes" in problems[1]
    assert teaching.recipe_problems(Recipe(views=6), [20] * 10, public=False) == []
    assert any("at most 10" in p for p in teaching.class_problems({str(k): [1] for k in range(11)}))
    assert any("at most 20 per class" in p for p in teaching.class_problems({"a": [1] * 21, "b": [1]}))


def test_a_session_head_is_keyed_by_its_digest_and_checked_against_the_backbone():
    assert teaching.model_key_with_head("dinov2-small", None) == "dinov2-small"
    assert teaching.model_key_with_head("dinov2-small", "ab12") == "dinov2-small|head:ab12"
    head = Head("cls", np.zeros((2, 8)), np.zeros(2), ["a", "b"], "tiny", 8)
    assert teaching.read_head_file(head_bytes(head), "tiny", 8).class_names == ["a", "b"]
    with pytest.raises(ValueError, match="taught on tiny; choose tiny"):
        teaching.read_head_file(head_bytes(head), "dinov2-small", 8)
    clip = Head("clip", np.zeros((2, 4)), None, ["a", "b"], "tiny", 8, np.zeros((4, 8)))
    with pytest.raises(ValueError, match="CLIP prompt head"):
        teaching.read_head_file(head_bytes(clip), "tiny", 8)
    with pytest.raises(ValueError, match="not a safetensors file"):
        teaching.read_head_file(b"junk", "tiny", 8)


def test_fits_take_turns_first_come_first_served_and_waiters_hear_how_many_are_ahead():
    import threading
    import time

    turns = teaching.Turns(1)
    order, heard, inside, peak = [], {}, [0], [0]
    lock = threading.Lock()
    release = threading.Event()

    def fit(i: int) -> None:
        def on_wait(ahead: int) -> None:
            heard.setdefault(i, []).append(ahead)

        with turns.turn(on_wait, poll_s=0.01):
            with lock:
                order.append(i)
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            if i == 0:
                release.wait(5)  # the first holds its turn until the others queue behind it
            with lock:
                inside[0] -= 1

    threads = []
    for i in range(4):
        threads.append(threading.Thread(target=fit, args=(i,)))
        threads[-1].start()
        time.sleep(0.05)  # arrive in order 0, 1, 2, 3
    time.sleep(0.1)
    release.set()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3] and peak[0] == 1
    assert heard[1][0] == 1 and heard[2][0] == 2 and heard[3][0] == 3  # the holder and the waiters before
    assert 0 not in heard  # the first found a free turn
    assert turns._running == 0 and not turns._queue


def test_a_waiter_who_leaves_gives_up_its_place():
    import threading

    turns = teaching.Turns(1)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with turns.turn():
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)

    class Left(Exception):
        pass

    def leave(ahead: int) -> None:
        raise Left  # what Streamlit raises in a script whose visitor moved on

    with pytest.raises(Left):
        with turns.turn(leave, poll_s=0.01):
            pass
    assert len(turns._queue) == 0 and turns._running == 1
    release.set()
    holder.join(5)
    with turns.turn():  # the place is free again
        assert turns._running == 1
    assert turns._running == 0


def test_teach_slots_from_the_environment():
    assert teaching.teach_slots({}) == 1
    assert teaching.teach_slots({"PATCHLIGHT_TEACH_SLOTS": "3"}) == 3
    assert teaching.teach_slots({"PATCHLIGHT_TEACH_SLOTS": "0"}) == 1
    assert teaching.teach_slots({"PATCHLIGHT_TEACH_SLOTS": "many"}) == 1
