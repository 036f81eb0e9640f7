"""An audit of the raw lines' own layout, so that their speed is shown to be the speed of correct code.

It reads everything through the monitoring client (so no line's counters see it) and returns one
line of text per problem: an index entry or claim without its record, a record missing from an
index or holding the wrong score, a claim that does not point at its record, or (for sessions) a
claim whose expiry differs from its record's, or an expiry entry out of step with the record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from .raw import (
    SESSION,
    SESSION_EXP,
    SESSION_IDS,
    SESSION_STATE,
    USER_AGE,
    USER_IDS,
    email_claim,
    session_key,
    status_key,
    token_claim,
    user_key,
)

CHUNK = 1000
EXPIRY_SLACK_MS = 5
"""Two PTTLs read in one pipeline may straddle a millisecond tick or two."""


async def _pipeline(monitor: aioredis.Redis, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    replies: list[Any] = []
    for start in range(0, len(commands), CHUNK):
        pipe = monitor.pipeline(transaction=False)
        for command in commands[start : start + CHUNK]:
            pipe.execute_command(*command)
        replies.extend(await pipe.execute())
    return replies


async def _call(monitor: aioredis.Redis, *command: Any) -> Any:
    return await monitor.execute_command(*command)  # type: ignore[no-untyped-call]


async def _scores(monitor: aioredis.Redis, key: str) -> dict[str, float]:
    pairs: Any = await monitor.zrange(key, 0, -1, withscores=True)
    return {member: float(score) for member, score in pairs}


async def _keys(monitor: aioredis.Redis, pattern: str) -> list[str]:
    return [key async for key in monitor.scan_iter(match=pattern, count=1000)]


async def _index(monitor: aioredis.Redis, pattern: str, head: str) -> dict[str, set[str]]:
    """Every equality-index ZSET under ``pattern``: value -> member ids."""
    keys = await _keys(monitor, pattern)
    members = await _pipeline(monitor, [("ZRANGE", key, 0, -1) for key in keys])
    return {key[len(head) :]: set(ids) for key, ids in zip(keys, members, strict=True)}


def _check_index(
    problems: list[str], name: str, index: dict[str, set[str]], records: dict[str, dict[str, str]], field: str
) -> None:
    for value, ids in index.items():
        for member in ids:
            record = records.get(member)
            if record is None:
                problems.append(f"{name} {value!r} holds {member}, which has no record")
            elif record.get(field) != value:
                problems.append(f"{name} {value!r} holds {member}, whose {field} is {record.get(field)!r}")
    for record_id, record in records.items():
        if record_id not in index.get(record[field], set()):
            problems.append(f"{record_id} is missing from {name} {record[field]!r}")


async def audit_users(monitor: aioredis.Redis) -> list[str]:
    problems: list[str] = []
    ids: list[str] = await _call(monitor, "ZRANGE", USER_IDS, 0, -1)
    stored = await _pipeline(monitor, [("HGETALL", user_key(i)) for i in ids])
    records = {i: record for i, record in zip(ids, stored, strict=True) if record}
    problems.extend(f"id {i} has no record" for i in ids if i not in records)
    record_keys = await _keys(monitor, user_key("*"))
    head = user_key("")
    problems.extend(f"{key} is not in the ids" for key in record_keys if key[len(head) :] not in records)
    statuses = await _index(monitor, status_key("*"), status_key(""))
    _check_index(problems, "status", statuses, records, "status")
    ages = await _scores(monitor, USER_AGE)
    for member, score in ages.items():
        if member not in records:
            problems.append(f"age holds {member!r}, which has no record")
        elif float(records[member]["age"]) != score:
            problems.append(f"age holds {member} at {score}, its age is {records[member]['age']}")
    problems.extend(f"{i} is missing from age" for i in records if i not in ages)
    claims = await _keys(monitor, email_claim("*"))
    holders = await _pipeline(monitor, [("GET", claim) for claim in claims])
    held = dict(zip(claims, holders, strict=True))
    for claim, holder in held.items():
        record = records.get(holder)
        if record is None or email_claim(record["email"]) != claim:
            problems.append(f"claim {claim} points at {holder}, which does not hold it")
    for record_id, record in records.items():
        if held.get(email_claim(record["email"])) != record_id:
            problems.append(f"{record_id}'s email claim does not point at it")
    return problems[:20]


async def audit_sessions(monitor: aioredis.Redis) -> list[str]:
    """Live sessions only: expired records still in the indexes are the sweep's, and allowed
    while they have their expiry entry and state."""
    problems: list[str] = []
    ids: list[str] = await _call(monitor, "ZRANGE", SESSION_IDS, 0, -1)
    stored = await _pipeline(monitor, [("HGETALL", session_key(i)) for i in ids])
    records = {i: record for i, record in zip(ids, stored, strict=True) if record}
    expiries = await _scores(monitor, SESSION_EXP)
    states: dict[str, str] = await _call(monitor, "HGETALL", SESSION_STATE)
    gone = [i for i in ids if i not in records]
    kept = expiries.keys() & states.keys()
    problems.extend(f"expired {i} has no expiry entry or state" for i in gone if i not in kept)
    for index, field, letter in (("status", "status", "s"), ("user", "user_id", "u")):
        head = f"{SESSION}:{letter}:"
        entries = await _index(monitor, head + "*", head)
        for ids_held in entries.values():
            ids_held.difference_update(gone)
        _check_index(problems, index, entries, records, field)
    live = list(records.items())
    for start in range(0, len(live), CHUNK // 2):
        part = live[start : start + CHUNK // 2]
        pipe = monitor.pipeline(transaction=False)
        pipe.time()
        for record_id, record in part:
            pipe.pttl(session_key(record_id))
            pipe.pttl(token_claim(record["token"]))
        pipe.time()
        (seconds, micros), *lives, (seconds_after, micros_after) = await pipe.execute()
        # each PTTL was read between the two TIMEs: on a busy host the server may pause between
        # commands of one pipeline for longer than the slack
        first_ms = int(seconds) * 1000 + int(micros) // 1000
        last_ms = int(seconds_after) * 1000 + int(micros_after) // 1000
        for position, (record_id, record) in enumerate(part):
            record_left, claim_left = lives[2 * position], lives[2 * position + 1]
            if abs(record_left - claim_left) > EXPIRY_SLACK_MS + last_ms - first_ms:
                problems.append(f"{record_id} expires in {record_left} ms, its claim in {claim_left} ms")
            score = expiries.get(record_id)
            low, high = first_ms + record_left - EXPIRY_SLACK_MS, last_ms + record_left + EXPIRY_SLACK_MS
            if score is None or not low <= score <= high:
                problems.append(f"{record_id} expires in {record_left} ms, its expiry entry says {score}")
            facts = [record["status"], record["user_id"], record["token"]]
            if json.loads(states.get(record_id, "null")) != facts:
                problems.append(f"{record_id}'s state is {states.get(record_id)!r}")
    return problems[:20]
