"""``python -m redis_orm_async``: the same command line as ``redis-orm-async``."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
