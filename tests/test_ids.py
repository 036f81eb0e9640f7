"""Generated ids follow creation order within a process: pure tests, no server."""

from __future__ import annotations

import itertools
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redis_orm_async._model import ids
from redis_orm_async._model.ids import encode_ulid, new_ulid

CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def test_ten_thousand_sequential_ids_strictly_increase() -> None:
    generated = [new_ulid() for _ in range(10_000)]
    assert all(a < b for a, b in itertools.pairwise(generated))
    assert len(set(generated)) == len(generated)
    assert all(len(value) == 26 and set(value) <= CROCKFORD for value in generated)


def test_ids_from_many_threads_are_unique_and_each_thread_sees_them_increase() -> None:
    per_thread: list[list[str]] = [[] for _ in range(8)]

    def work(out: list[str]) -> None:
        for _ in range(2_000):
            out.append(new_ulid())

    threads = [threading.Thread(target=work, args=(out,)) for out in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [value for out in per_thread for value in out]
    assert len(set(everything)) == len(everything) == 16_000
    for out in per_thread:
        assert out == sorted(out)


def test_ids_keep_increasing_when_the_clock_goes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_700_000_000_000_000_000]
    monkeypatch.setattr(ids.time, "time_ns", lambda: now[0])
    monkeypatch.setattr(ids, "_SEQUENCE", ids._Sequence())
    first = new_ulid()
    now[0] -= 5_000_000_000
    second = new_ulid()
    now[0] += 10_000_000_000
    third = new_ulid()
    assert first < second < third
    assert third[:10] == encode_ulid(1_700_000_005_000, 0)[:10]


def test_an_exhausted_millisecond_moves_to_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    millisecond = 1_700_000_000_000
    monkeypatch.setattr(ids.time, "time_ns", lambda: millisecond * 1_000_000)
    sequence = ids._Sequence()
    sequence.last = (millisecond << 80) | ((1 << 80) - 1)
    monkeypatch.setattr(ids, "_SEQUENCE", sequence)
    value = new_ulid()
    assert value[:10] == encode_ulid(millisecond + 1, 0)[:10]


def test_a_forked_child_starts_a_fresh_sequence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_SEQUENCE", ids._SEQUENCE)
    before = ids._SEQUENCE
    new_ulid()
    ids._reset_after_fork()
    assert ids._SEQUENCE is not before and ids._SEQUENCE.last == 0


MILLISECONDS = st.integers(0, 2**48 - 1)
RANDOM = st.integers(0, 2**80 - 1)


@given(MILLISECONDS, RANDOM, MILLISECONDS, RANDOM)
def test_the_text_order_is_the_numeric_order(ms_a: int, rand_a: int, ms_b: int, rand_b: int) -> None:
    a, b = encode_ulid(ms_a, rand_a), encode_ulid(ms_b, rand_b)
    assert (a < b) == ((ms_a, rand_a) < (ms_b, rand_b))
    assert encode_ulid(0, 0) == "0" * 26 and encode_ulid(2**48 - 1, 2**80 - 1) == "7" + "Z" * 25
