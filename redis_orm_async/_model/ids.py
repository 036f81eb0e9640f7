"""Generated string ids.

ULIDs are used because their text order is their creation order: the model-wide id ZSET keeps
string ids in lexicographic order, so default ordering and paging follow creation time with no
extra score, and two processes never need to coordinate to produce unique ids (80 random bits per
millisecond).
"""

from __future__ import annotations

import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid(now_ms: int | None = None, randomness: bytes | None = None) -> str:
    """Return a 26-character ULID: 48 bits of milliseconds, then 80 random bits."""
    timestamp = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    entropy = os.urandom(10) if randomness is None else randomness
    value = (timestamp << 80) | int.from_bytes(entropy, "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))
