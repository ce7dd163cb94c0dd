"""One model computation at a time per server process, first come first served.

When a class arrives at once, every student's first image needs a trace (0.16 s of CPU for
dinov2-small). Run side by side, twenty traces each take seconds and slow every other click;
run one after another, each waits its turn and the rest of the app stays quick (issue 15). The
waiting sessions can say how many computations are ahead of theirs.

Streamlit may stop a waiting script at any time (a newer rerun of the same visitor raises inside
it): a ticket given up that way is skipped, so the line never stalls.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator


class ModelQueue:
    """A ticket line: ``with queue.turn(on_wait): compute()``."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        self._given_up: set[int] = set()

    def waiting(self) -> int:
        """Computations running or waiting now."""
        with self._cv:
            return self._next_ticket - self._serving - len(self._given_up)

    @contextlib.contextmanager
    def turn(self, on_wait: Callable[[int], None] | None = None, every_s: float = 0.5) -> Iterator[None]:
        """Wait for this caller's turn, then hold it for the ``with`` block.

        ``on_wait(ahead)`` is called (outside the lock) before each wait of up to ``every_s``
        seconds, with the number of computations ahead; an exception from it (or any other while
        waiting) gives the ticket up and propagates."""
        with self._cv:
            ticket = self._next_ticket
            self._next_ticket += 1
        try:
            while True:
                with self._cv:
                    ahead = ticket - self._serving - sum(1 for t in self._given_up if t < ticket)
                    if self._serving == ticket:
                        break
                if on_wait is not None:
                    on_wait(ahead)
                with self._cv:
                    if self._serving != ticket:
                        self._cv.wait(timeout=every_s)
        except BaseException:
            with self._cv:
                self._given_up.add(ticket)
                self._skip_given_up()
                self._cv.notify_all()
            raise
        try:
            yield
        finally:
            with self._cv:
                self._serving += 1
                self._skip_given_up()
                self._cv.notify_all()

    def _skip_given_up(self) -> None:
        while self._serving in self._given_up:
            self._given_up.discard(self._serving)
            self._serving += 1
