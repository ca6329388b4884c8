"""The record of a side's published text (workers.events.stream_record) that a rejoining socket reads."""

from __future__ import annotations

from django.core.cache import cache

from workers.events import battle_publish, stream_key, stream_record, stream_text


def _chunk(offset: int, text: str, attempt: int = 1, side: str = "b") -> dict[str, object]:
    return {"type": "chunk", "turn": 0, "side": side, "attempt": attempt, "offset": offset, "text": text}


def test_a_side_whose_first_chunk_another_process_recorded_extends_that_record() -> None:
    # The other side's pacer (maybe another worker process) sent and recorded b's first chunk.
    cache.set(stream_key("rec1", 0, "b"), {"attempt": 1, "text": "Hello"}, 60)
    stream_record("rec1", _chunk(5, ", wor"))
    stream_record("rec1", _chunk(10, "ld"))
    assert stream_text("rec1", 0, "b") == {"attempt": 1, "text": "Hello, world"}


def test_a_new_attempt_starts_a_new_record_and_a_chunk_past_a_gap_is_not_recorded() -> None:
    stream_record("rec2", _chunk(0, "first try"))
    stream_record("rec2", _chunk(0, "again", attempt=2))
    stream_record("rec2", _chunk(99, "lost", attempt=2))
    assert stream_text("rec2", 0, "b") == {"attempt": 2, "text": "again"}


def test_a_finished_side_is_forgotten_here_but_its_record_stays_for_late_sockets() -> None:
    stream_record("rec3", _chunk(0, "abc"))
    battle_publish("rec3", {"type": "done", "turn": 0, "side": "b", "attempt": 1, "output": "abc"})
    cache.set(stream_key("rec3", 0, "b"), {"attempt": 1, "text": "abcdef"}, 60)  # written elsewhere meanwhile
    stream_record("rec3", _chunk(6, "g"))  # read back from the cache, not from a stale memory of "abc"
    assert stream_text("rec3", 0, "b") == {"attempt": 1, "text": "abcdefg"}
