"""A write planned once and run many times with new values in it: a prepared statement.

A caller that makes the same write over and over with only a few texts changing (a rate limiter
counting one call of a caller: the bucket id and the app's clock change, nothing else) pays the
planner's work (validation, encoding, the op's words) on every call. Here the write is planned
once through the ordinary planner with stand-in texts, and each call puts its own texts where the
stand-ins landed: the script receives exactly the words the planner would have built.

That holds only where the planner copies a stand-in verbatim and derives nothing else from it;
``PreparedWrite.of`` refuses a plan where a stand-in shows up anywhere but as a whole word (in a
key, a state line, a claim, an index score), and callers only prepare writes of models without
index entries, whose words cannot carry derived texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .ops import WriteOp
from .writes import WriteEngine


class PreparedWrite:
    """One op's write-script call with the places of its stand-in texts."""

    def __init__(
        self, engine: WriteEngine, op: WriteOp, keys: list[str], args: list[str | int], slots: list[list[int]]
    ) -> None:
        self.engine = engine
        self.op = op
        self.keys = keys
        self.args = args
        self.slots = slots

    @classmethod
    def of(cls, engine: WriteEngine, op: WriteOp, stand_ins: Sequence[str]) -> PreparedWrite | None:
        """The prepared call of ``op`` (planned with ``stand_ins`` for the texts that vary), or
        None when a stand-in is missing or appears inside another word or a key."""
        keys, args = engine.script_call([op])
        words = [str(word) for word in args]
        slots: list[list[int]] = []
        for stand_in in stand_ins:
            places = [i for i, word in enumerate(words) if word == stand_in]
            hidden = any(stand_in in word for word in words if word != stand_in)
            if not places or hidden or any(stand_in in key for key in keys):
                return None
            slots.append(places)
        return cls(engine, op, keys, args, slots)

    @property
    def usable(self) -> bool:
        """False on a server that refuses scripts: there the caller writes the ordinary way."""
        return self.engine.backend.features.scripting

    async def run(self, texts: Sequence[str]) -> Any:
        """The op's reply with ``texts`` in the stand-ins' places (in their order). Raises
        ``ScriptsRefused`` if the server turns out to refuse scripts (then ``usable`` is False)."""
        args = self.args.copy()
        for places, text in zip(self.slots, texts, strict=True):
            for place in places:
                args[place] = text
        (reply,) = await self.engine.run_script([self.op], self.keys, args)
        return reply
