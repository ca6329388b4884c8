"""Stream pacing: what a voter's browser learns of a model from the *timing* of its side, and how little.

Unpaced, a side's websocket stream is a fingerprint: the first chunk arrives at the model's time to first
token, chunks follow its tokenizer and its serving stack's batching, and their rhythm is its speed. A
classifier reading only message times and sizes names the model (benchmarks/side_channels.py measures it).
This module makes the stream the same for every model that is fast enough (arena.disclosure, "Timing"):

- **Cadence**: a side's text is published on a fixed tick (ARENA_STREAM_TICK_MS), at most
  ARENA_STREAM_TICK_CHARS characters per tick, drawn from a buffer. A model faster than that rate streams
  identically: equal chunks at tick multiples, whatever its tokenizer. (A model slower than the rate shows its
  own speed; so would the text itself, to anyone watching it arrive.)
- **Start**: a side's first chunk waits until the other side has a first chunk too (at most
  ARENA_STREAM_START_WAIT_MS), so both start together: time to first token is the battle's, not the model's.
- **End**: a side whose model is done keeps its pace until the other side's model is done too (at most
  ARENA_STREAM_END_WAIT_MS), then both flush their rest at once. The vote opens when the slower model is
  done, as before; the end of a stream says when the *battle's* models were done, not which was faster.
- **Media progress**: both sides show one fraction, the slower side's, in coarse steps
  (ARENA_MEDIA_PROGRESS_STEP), so a diffusion model's step count and speed do not reach the page.

The two sides of a battle run in different workers, often different processes. They meet through the cache
(Redis when deployed; the process's memory in the embedded default, whose worker is a thread of the server).
Meeting is best effort: if the cache fails, each side goes on alone after at most its wait.

Measured by benchmarks/side_channels.py (7 text models, 126 battles per setting, 2 busy cores): telling which
side is which, both models known, from message times and sizes falls from 100% to 78% (62% in battles of
models faster than the pace; the answers' lengths alone give 67%); naming a side's model among 7, from 99% to
59% (chance 16%). The cost: the first chunk shows 60 ms later (median; a side waits for the other), the vote
opens no later, a worker holds a side 0.4 s longer (the end wait). With two equally fast models the time to
first token the arena adds does not change (benchmarks/ttft.py). ARENA_STREAM_END_WAIT_MS=0 gives the worker
time back, but then each side's end names its model again (telling the sides apart: 97%).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

CLAIMED = "claimed"  # a worker has the side and its model was asked
READY = "ready"  # the side has its first chunk's worth of text (or its model finished)
END = "end"  # the side's model finished, or failed
PROGRESS = "progress"
POLL_SECONDS = 0.005  # how often a side waiting for the other looks at the cache
# Both sides are queued together, but one may be claimed a little later (a busy thread, a slower queue). A
# side not claimed within this grace is not waited for: it may never run here (a test running one side), and a
# long queue wait shows on the page anyway (the "started" event, the side's status).
CLAIM_GRACE_SECONDS = 0.5


@dataclass(frozen=True)
class Pacing:
    """The pacing settings, read once per generation (tests and operators may change them between runs)."""

    tick: float  # seconds between two chunks
    chars: int  # characters per chunk
    start_wait: float  # longest hold of a first chunk for the other side's
    end_wait: float  # longest a finished side keeps its pace for the other side's model
    flush: float  # how often the published text is written to the database

    @classmethod
    def from_settings(cls) -> Pacing | None:
        """None when pacing is off: chunks are published as the model sends them (the old behaviour)."""
        if not settings.ARENA_STREAM_PACING:
            return None
        return cls(
            tick=settings.ARENA_STREAM_TICK_MS / 1000,
            chars=settings.ARENA_STREAM_TICK_CHARS,
            start_wait=settings.ARENA_STREAM_START_WAIT_MS / 1000,
            end_wait=settings.ARENA_STREAM_END_WAIT_MS / 1000,
            flush=settings.ARENA_STREAM_FLUSH_SECONDS,
        )


class TurnGate:
    """Where the two sides of one battle turn meet: each marks its own signals and reads the other's."""

    def __init__(self, code: str, turn: int, side: str) -> None:
        self.side = side
        self.other = "b" if side == "a" else "a"
        self._prefix = f"arena:pace:{code}:{turn}"
        # Long enough for any generation to finish (its hard limit), short enough to leave no litter.
        self._ttl = settings.ARENA_GENERATION_HARD_LIMIT + 60

    def _key(self, side: str, signal: str) -> str:
        return f"{self._prefix}:{side}:{signal}"

    def mark(self, signal: str, value: object = 1) -> None:
        try:
            cache.set(self._key(self.side, signal), value, self._ttl)
        except Exception:  # a cache outage costs anonymity of this one stream, never the generation
            logger.warning("pacing: could not mark %s", signal, exc_info=True)

    def other_has(self, *signals: str) -> bool:
        """Whether the other side has marked any of these signals (True if the cache cannot say: go on)."""
        try:
            found = cache.get_many([self._key(self.other, s) for s in signals])
        except Exception:
            logger.warning("pacing: could not read the other side", exc_info=True)
            return True
        return bool(found)

    def other_progress(self) -> float:
        """The other side's progress: 1.0 once its model finished, 0.0 before it reported any."""
        try:
            found = cache.get_many([self._key(self.other, END), self._key(self.other, PROGRESS)])
        except Exception:
            logger.warning("pacing: could not read the other side's progress", exc_info=True)
            return 1.0
        if self._key(self.other, END) in found:
            return 1.0
        return float(found.get(self._key(self.other, PROGRESS), 0.0))

    def look(self) -> tuple[dict | None, bool, dict | None]:
        """One read of what a side waiting to start needs: the other side's READY (its first chunk), whether
        it has ended, and the start record if a side started (None, True, None if the cache cannot say)."""
        keys = [self._key(self.other, READY), self._key(self.other, END), self._start_key]
        try:
            found = cache.get_many(keys)
        except Exception:
            logger.warning("pacing: could not read the other side", exc_info=True)
            return None, True, None
        return found.get(keys[0]), keys[1] in found, found.get(keys[2])

    def start_claim(self, sides: list[str]) -> bool:
        """Claim the start: True for the one side that will publish these sides' first chunks."""
        try:
            return bool(cache.add(self._start_key, {"sides": sides, "at": None}, self._ttl))
        except Exception:
            logger.warning("pacing: could not claim the start", exc_info=True)
            return True

    def started(self, sides: list[str]) -> None:
        """The claimed first chunks are out: the other side may tick from now (wall clock)."""
        try:
            cache.set(self._start_key, {"sides": sides, "at": time.time()}, self._ttl)
        except Exception:  # the other side starts on its own at its deadline
            logger.warning("pacing: could not record the start", exc_info=True)

    @property
    def _start_key(self) -> str:
        return f"{self._prefix}:start"

    def first_to(self, step: str) -> bool:
        """True for the one side that claims this step first (so a shared event is published once)."""
        try:
            return bool(cache.add(f"{self._prefix}:step:{step}", 1, self._ttl))
        except Exception:
            logger.warning("pacing: could not claim step %s", step, exc_info=True)
            return True


def progress_step(fraction: float, step: float) -> float:
    """A fraction rounded down to the progress step (1.0 stays 1.0)."""
    if fraction >= 1.0:
        return 1.0
    return round(math.floor(fraction / step + 1e-9) * step, 6)


class StreamPacer:
    """One side's paced text stream. The generating thread feeds the model's deltas and closes it when the
    model is done; a pacer thread publishes on the tick and persists what it has published.

    publish(side, attempt, offset, text) sends one chunk to the page (the other side's first chunk too: see
    _start); persist(text) writes the text published so far (fenced by the caller). Marks CLAIMED at once, so
    the other side knows this one is coming.
    """

    def __init__(
        self,
        pacing: Pacing,
        gate: TurnGate,
        *,
        attempt: int,
        publish: Callable[[str, int, int, str], None],
        persist: Callable[[str], None],
        on_exit: Callable[[], None] = lambda: None,
    ) -> None:
        self.pacing = pacing
        self.gate = gate
        self.attempt = attempt
        self._publish = publish
        self._persist = persist
        self._on_exit = on_exit
        self._parts: list[str] = []  # the model's text so far (joined lazily: see _snapshot)
        self._length = 0
        self.published = 0  # characters published so far
        self._closed_at: float | None = None
        self._failed = False
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        gate.mark(CLAIMED)

    # --- the generating thread ---------------------------------------------------------------------------

    def feed(self, delta: str) -> None:
        with self._lock:
            self._parts.append(delta)
            self._length += len(delta)
        if self._thread is None and self._length >= self.pacing.chars:
            self._begin()

    def close(self, *, ok: bool) -> None:
        """The model is done (ok) or failed: returns once every character is published. A failure flushes at
        once; a success may keep pace for the other side's model (at most end_wait)."""
        self.gate.mark(END)
        with self._lock:
            self._closed_at = time.monotonic()
            self._failed = not ok
        if self._thread is None and self._length:
            self._begin()  # an answer shorter than one chunk
        if self._thread is None:
            return
        try:
            # After close the rest goes out within end_wait and one tick; a first chunk may still be held.
            self._thread.join(self.pacing.start_wait + self.pacing.end_wait + 10)
        finally:
            self._abort.set()  # an exception here (a time limit) must not leave the pacer publishing

    def _begin(self) -> None:
        """A first chunk's worth of text is here: offered to the other side (see _start), and the pacer thread
        takes it from here."""
        first = self._snapshot()[0][: self.pacing.chars]
        self.gate.mark(READY, {"text": first, "attempt": self.attempt})
        self._thread = threading.Thread(target=self._run, args=(first,), name="stream-pacer", daemon=True)
        self._thread.start()

    # --- the pacer thread --------------------------------------------------------------------------------

    def _snapshot(self) -> tuple[str, float | None, bool]:
        with self._lock:
            if len(self._parts) > 1:
                self._parts[:] = ["".join(self._parts)]
            return (self._parts[0] if self._parts else ""), self._closed_at, self._failed

    def _run(self, first: str) -> None:
        try:
            self._tick_loop(self._start(first))
        except Exception:
            logger.exception("pacing: the stream pacer failed; the final event still carries the answer")
        finally:
            self._on_exit()

    def _start(self, first: str) -> float:
        """Hold the first chunk until the other side has one too (or is done), at most start_wait; a side not
        claimed within CLAIM_GRACE_SECONDS is not waited for. Returns the start (time.monotonic).

        The side that completes the pair publishes both first chunks, a's then b's, at once: were each side to
        publish its own, the one that completed the pair would always be first (the other learns of it only at
        its next look), and the earlier first chunk would name the slower model. The other side then ticks
        from the recorded start."""
        now = time.monotonic()
        deadline, grace = now + self.pacing.start_wait, now + min(CLAIM_GRACE_SECONDS, self.pacing.start_wait)
        while not self._abort.is_set():
            ready, ended, record = self.gate.look()
            late = time.monotonic() >= deadline
            if record is not None and (record.get("at") is not None or late):
                return self._joined(record, first)
            alone = time.monotonic() > grace and not self.gate.other_has(CLAIMED)
            if record is None and (ready is not None or ended or alone or late):
                firsts = {self.gate.side: (self.attempt, first)}
                if ready is not None:
                    firsts[self.gate.other] = (int(ready["attempt"]), str(ready["text"]))
                sides = sorted(firsts)
                if self.gate.start_claim(sides):
                    for side in sides:
                        attempt, text = firsts[side]
                        self._publish(side, attempt, 0, text)
                    self.gate.started(sides)
                    self.published = len(first)
                    return time.monotonic()
                continue  # the other side claimed the start meanwhile: join it
            self._abort.wait(POLL_SECONDS)
        return time.monotonic()

    def _joined(self, record: dict, first: str) -> float:
        """The other side started first. If its first chunks included this side's, tick from when they went
        out (wall clock: the sides may run on different machines); else (or if they never went out) this side
        publishes its own first chunk and starts now (a duplicate first chunk is harmless: same offset)."""
        at = record.get("at")
        if self.gate.side in record.get("sides", ()) and at is not None:
            self.published = len(first)
            return time.monotonic() - max(0.0, time.time() - float(at))
        self._publish(self.gate.side, self.attempt, 0, first)
        self.published = len(first)
        return time.monotonic()

    def _tick_loop(self, start: float) -> None:
        """The chunks after the first (sent at `start`). Ticks are counted from `start`, so a slow publish
        does not shift every later chunk."""
        # A generating thread that vanished without closing: stop once no generation could still be running.
        give_up = start + settings.ARENA_GENERATION_HARD_LIMIT + self.pacing.end_wait
        persisted, flushed_at = 0, -math.inf
        end_by: float | None = None
        tick = 1
        self._abort.wait(max(0.0, start + self.pacing.tick - time.monotonic()))
        while not self._abort.is_set() and time.monotonic() < give_up:
            text, closed_at, failed = self._snapshot()
            if closed_at is not None and end_by is None:
                end_by = self._end_deadline(closed_at, failed)
            rest = len(text) - self.published
            if end_by is not None and rest and (time.monotonic() >= end_by or self.gate.other_has(END)):
                self._send(text, rest)  # both models are done: the rest at once, so the vote is not held up
            elif rest:
                self._send(text, min(rest, self.pacing.chars))
            if closed_at is not None and self.published == len(text):
                return  # the caller's final write stores the whole text
            now = time.monotonic()
            # The database holds what the page was shown, no more: a reload never runs ahead of the stream.
            if self.published > persisted and (not persisted or now - flushed_at >= self.pacing.flush):
                self._persist(text[: self.published])
                persisted, flushed_at = self.published, now
            tick += 1
            self._abort.wait(max(0.0, start + tick * self.pacing.tick - time.monotonic()))

    def _end_deadline(self, closed_at: float, failed: bool) -> float:
        """When to flush the rest: at once after a failure or when the other side is not generating, else when
        the other side's model is done, at most end_wait after this one's."""
        if failed or not self.gate.other_has(CLAIMED):
            return closed_at
        return closed_at + self.pacing.end_wait

    def _send(self, text: str, count: int) -> None:
        offset = self.published
        self._publish(self.gate.side, self.attempt, offset, text[offset : offset + count])
        self.published = offset + count
