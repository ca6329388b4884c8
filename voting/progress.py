"""A one-line progress bar for long commands, drawn on stderr so it never mixes with exported data."""

from __future__ import annotations

import time
from typing import TextIO


class ProgressBar:
    """Call with the number of rows just done; redraws at most every `interval` seconds."""

    def __init__(
        self, total: int | None, stream: TextIO, *, label: str = "rows", interval: float = 0.25
    ) -> None:
        self.total, self.stream, self.label, self.interval = total, stream, label, interval
        self.done = 0
        self.started = self.drawn = time.monotonic()

    def __call__(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self.drawn >= self.interval:
            self.drawn = now
            self._draw(now)

    def _draw(self, now: float, end: str = "") -> None:
        rate = self.done / max(now - self.started, 1e-9)
        if self.total is None:  # unknown size: count and rate only
            line = f"{self.done:,} {self.label}  {rate:,.0f}/s"
        else:
            share = self.done / self.total if self.total else 1.0
            bar = "#" * int(share * 30)
            eta = (self.total - self.done) / rate if rate and self.total > self.done else 0.0
            line = f"[{bar:.<30}] {share:4.0%} {self.done:,}/{self.total:,} {self.label}  {rate:,.0f}/s"
            line += f"  ETA {eta:.0f}s" if eta else ""
        self.stream.write(f"\r{line}   {end}")
        self.stream.flush()

    def close(self) -> None:
        self._draw(time.monotonic(), end="\n")
