"""Generated string ids: ULIDs (the default), and short hex ids; both monotonic within a process.

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

``new_hex_id`` is redisca's ``hexid`` made safe: 16 lowercase hex characters, 44 bits of
milliseconds (until the year 2527) then 20 random bits, with the same ordering rules. It is short
enough to read out or type, and its hex order is its creation order; but with 20 random bits, two
processes that each create an id in the same millisecond collide once in a million, so keep ULIDs
for ids minted fast by many processes. Either one is a default factory:
``id: str = Field(default_factory=new_hex_id)``.

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
_HEX_RANDOM_BITS = 20
_HEX_BITS = 64


def encode_ulid(now_ms: int, randomness: int) -> str:
    """The 26-character text of a ULID: 48 bits of milliseconds, then 80 random bits."""
    return _text((now_ms << _RANDOM_BITS) | randomness)


def _text(value: int) -> str:
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


class _Sequence:
    """The last id of this process, behind a lock shared by every thread: milliseconds, then
    ``random_bits`` random bits; within one millisecond each id adds a random step of up to
    ``2**step_bits`` to the last."""

    def __init__(self, random_bits: int = _RANDOM_BITS, step_bits: int = 32, total_bits: int = 128) -> None:
        self.lock = threading.Lock()
        self.last = 0
        self.random_bits = random_bits
        self.step_shift = random_bits - step_bits
        self.limit = (1 << total_bits) - 1
        self.pool = b""
        """Random bytes drawn from the OS 640 at a time, 10 per id (one read per 64 ids)."""
        self.taken = 0

    def next(self) -> int:
        now = time.time_ns() // 1_000_000
        with self.lock:
            at = self.taken
            if at + 10 > len(self.pool):
                self.pool, at = os.urandom(640), 0
            self.taken = at + 10
            entropy = int.from_bytes(self.pool[at : at + 10], "big") >> (80 - self.random_bits)
            if now > self.last >> self.random_bits:
                value = (now << self.random_bits) | entropy
            else:  # same millisecond, or the clock went back: count up from the last id
                value = self.last + 1 + (entropy >> self.step_shift)
            if value > self.limit:
                raise OverflowError("the id space is exhausted")
            self.last = value
        return value


_SEQUENCE = _Sequence()
_HEX_SEQUENCE = _Sequence(_HEX_RANDOM_BITS, 8, _HEX_BITS)


def _reset_after_fork() -> None:
    global _SEQUENCE, _HEX_SEQUENCE
    _SEQUENCE = _Sequence()
    _HEX_SEQUENCE = _Sequence(_HEX_RANDOM_BITS, 8, _HEX_BITS)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def new_ulid() -> str:
    """A new ULID, greater than every ULID this process generated before."""
    return _text(_SEQUENCE.next())


def new_hex_id() -> str:
    """A new 16-character hex id, greater than every hex id this process generated before."""
    return format(_HEX_SEQUENCE.next(), "016x")


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
