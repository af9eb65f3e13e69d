#!/usr/bin/env python3
"""Adds the index tansu 0.6.0's sqlite storage lacks on its `header` table.

tansu looks up the headers of every fetched record with a query on (topition, offset_id), and the
table has no index on them: each lookup scans every header of every topic, so fetching slows
down with everything the broker ever stored (measured: about 130 records/s with 160k headers,
several thousand per second with the index). Run it once the broker has created its schema;
it waits up to 20 s for that, and is a no-op when the index exists.

usage: tansu-index.py <path to tansu.db>
"""
import sqlite3
import sys
import time

deadline = time.time() + 20
while True:
    try:
        db = sqlite3.connect(sys.argv[1], timeout=10)
        db.execute(
            "CREATE INDEX IF NOT EXISTS header_topition_offset_id ON header (topition, offset_id)"
        )
        db.commit()
        db.close()
        break
    except sqlite3.OperationalError as error:  # the schema is not there yet, or a busy lock
        if time.time() > deadline:
            sys.exit(f"tansu-index: {error}")
        time.sleep(0.1)
