#!/usr/bin/env bash
# The command line against a server, run by tests/test_docs.py with REDIS_URL set and the
# tutorial's app importable (docs/examples/tutorial.py as tutorial:schema).
set -u

redis-orm-async --version
redis-orm-async inspect tutorial:schema                      # records, indexes, claims, memory
redis-orm-async audit tutorial:schema --json > audit.json    # exit code 1 if anything is wrong
redis-orm-async repair tutorial:schema --dry-run             # what repair would fix, nothing written
redis-orm-async repair tutorial:schema --model Bookmark      # rebuild one model's index entries
redis-orm-async reindex tutorial:schema Account --batch 1000 # backfill a new index or unique
redis-orm-async sweep tutorial:schema                        # drop expired records' leftovers now

# in cron or CI: act on the exit code (1: the audit found a problem, 3: no server)
if ! redis-orm-async audit tutorial:schema --model Account; then echo "audit failed"; fi
