"""Generated string ids: ULIDs, monotonic within a process.

ULIDs are used because their text order is their creation order: the model-wide id ZSET keeps
string ids in lexicographic order, so default ordering and paging follow creation time with no
extra score, and two processes never need to coordinate to produce unique ids.

What holds:

- within one process (all threads and tasks), each id is greater than every id generated before
  it: in the same millisecond the 80-bit random part is incremented (by a random step of up to
  2**32, so the next id is not simply the last plus one) and, if it would overflow, the id moves to
  the next millisecond; if the clock goes back, ids keep counting up from the last one;
- across processes (and machines), ids are ordered by their millisecond only: ids created in the
  same millisecond by two processes are unique (80 random bits each) but in no particular order;
- a forked child starts a fresh sequence with new random bits.

Ids are not secrets: they carry their creation time and are partly predictable. Use
``secrets.token_urlsafe`` for session tokens and API keys.
"""

from __future__ import annotations

import os
import threading
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
"""Two characters per 10 bits: 13 lookups make the 26 characters of 130 bits."""
_SHIFTS = tuple(range(120, -1, -10))
_RANDOM_BITS = 80
_MAX_ULID = (1 << 128) - 1


def encode_ulid(now_ms: int, randomness: int) -> str:
    """The 26-character text of a ULID: 48 bits of milliseconds, then 80 random bits."""
    return _text((now_ms << _RANDOM_BITS) | randomness)


def _text(value: int) -> str:
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


class _Sequence:
    """The last id of this process, behind a lock shared by every thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last = 0

    def next(self) -> int:
        now = time.time_ns() // 1_000_000
        entropy = int.from_bytes(os.urandom(10), "big")
        with self.lock:
            if now > self.last >> _RANDOM_BITS:
                value = (now << _RANDOM_BITS) | entropy
            else:  # same millisecond, or the clock went back: count up from the last id
                value = self.last + 1 + (entropy >> 48)
            if value > _MAX_ULID:
                raise OverflowError("the ULID space is exhausted")
            self.last = value
        return value


_SEQUENCE = _Sequence()


def _reset_after_fork() -> None:
    global _SEQUENCE
    _SEQUENCE = _Sequence()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def new_ulid() -> str:
    """A new ULID, greater than every ULID this process generated before."""
    return _text(_SEQUENCE.next())


_VALUES = {char: index for index, char in enumerate(_CROCKFORD)}


def ulid_time_ms(text: str) -> int | None:
    """The creation time (ms since the epoch) a ULID carries, or None for text that is not one."""
    if len(text) != 26:
        return None
    value = 0
    for char in text[:10]:
        digit = _VALUES.get(char)
        if digit is None:
            return None
        value = value * 32 + digit
    return value
