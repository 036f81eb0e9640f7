"""Key layout: pure functions from a model's key space and user values to Redis keys.

Every key of one model starts with ``[namespace:]{prefix}``, so all of them share one Cluster hash
tag and each write's MULTI/EXEC stays in one slot. User values are escaped before they become part
of a key, and the escaping is injective, so no id or value can produce another model's, another
field's or another value's key::

    {user}:r:<id>                 HASH   one record
    {user}:ids                    ZSET   every id (score: int id, or 0 for string ids)
    {user}:i:<field>:<value>      ZSET   ids whose field equals value, scored like {user}:ids (equality index)
    {user}:z:<field>              ZSET   ids scored by field value (range/order index)
    {user}:l:<field>              ZSET   '<escaped text>\\0<id>' at score 0 (lex index)
    {user}:u:<constraint>:<v>...  STRING id that claims a unique value
    {user}:exp                    ZSET   ids scored by expiry time in ms (TTL sweep)
    {user}:st                     HASH   id -> state line: the index facts its entries were written from
    {user}:ix                     HASH   index name -> built: the indexes every record has entries in

A value's part of a key (``value_token``) is the same in Python and in the Lua write script:
``-`` for null, ``=`` and the escaped text, or ``#`` and the SHA1 of a text over 256 bytes (SHA1
because Lua has ``redis.sha1hex``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
"""Key prefixes and namespaces: no glob characters, separators or hash-tag braces."""

MAX_INLINE_VALUE = 256
"""Values longer than this many UTF-8 bytes are replaced by a digest in keys, so that a megabyte
value never becomes a key."""

_NEEDS_ESCAPE = re.compile(r"[%:{}*?\[\]\\~=#\-\x00-\x1f\x7f]")


def _percent(match: re.Match[str]) -> str:
    return f"%{ord(match.group()):02X}"


def escape(text: str) -> str:
    """Percent-escape separators, glob and hash-tag characters and control characters."""
    if text.isalnum():  # no escaped character is alphanumeric: the usual id, checked fastest
        return text
    return _NEEDS_ESCAPE.sub(_percent, text) if _NEEDS_ESCAPE.search(text) else text


def unescape(text: str) -> str:
    """Invert ``escape``."""
    if "%" not in text:
        return text
    out = bytearray()
    index = 0
    while index < len(text):
        char = text[index]
        if char == "%":
            out.append(int(text[index + 1 : index + 3], 16))
            index += 3
        else:
            out.extend(char.encode())
            index += 1
    return out.decode()


def value_token(encoded: str | None) -> str:
    """The key part for one encoded field value: ``-`` for null, ``=`` text, or ``#`` digest."""
    if encoded is None:
        return "-"
    # at most 4 bytes a character: only a text over 64 characters can pass 256 bytes
    if len(encoded) > MAX_INLINE_VALUE // 4 and len(data := encoded.encode()) > MAX_INLINE_VALUE:
        return "#" + hashlib.sha1(data).hexdigest()
    return "=" + escape(encoded)


@dataclass(frozen=True, slots=True)
class KeySpace:
    """The keys of one model, under an optional ORM-wide namespace."""

    prefix: str
    namespace: str = ""
    base: str = field(init=False, repr=False, compare=False)
    """``[namespace:]{prefix}``, built once: every key of every command starts with it."""
    _record_head: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tag = "{" + self.prefix + "}"
        base = f"{self.namespace}:{tag}" if self.namespace else tag
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "_record_head", base + ":r:")

    def record(self, record_id: str) -> str:
        return self._record_head + escape(record_id)

    def record_pattern(self) -> str:
        """SCAN MATCH pattern of every record key (prefix and namespace hold no glob chars)."""
        return f"{self.base}:r:*"

    def id_from_record_key(self, key: str) -> str:
        return unescape(key[len(self.base) + 3 :])

    def ids(self) -> str:
        return f"{self.base}:ids"

    def equality(self, field: str, encoded: str | None) -> str:
        return f"{self.base}:i:{field}:{value_token(encoded)}"

    def equality_pattern(self, field: str) -> str:
        return f"{self.base}:i:{field}:*"

    def range(self, field: str) -> str:
        return f"{self.base}:z:{field}"

    def lex(self, field: str) -> str:
        return f"{self.base}:l:{field}"

    def unique(self, constraint: str, encoded_values: Iterable[str]) -> str:
        parts = ":".join(value_token(value) for value in encoded_values)
        return f"{self.base}:u:{constraint}:{parts}"

    def unique_pattern(self, constraint: str) -> str:
        return f"{self.base}:u:{constraint}:*"

    def expiry(self) -> str:
        return f"{self.base}:exp"

    def states(self) -> str:
        return f"{self.base}:st"

    def built(self) -> str:
        return f"{self.base}:ix"

    def all_pattern(self) -> str:
        return f"{self.base}:*"
