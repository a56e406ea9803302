"""Results: the row schema, the files a run writes (results.jsonl and .csv, run.json, tune.json)
written atomically, and the one policy for output folders.

May import the stages before it (``measure`` for the latency span a row records, ``models``
for the library versions) and ``compress.common``.
"""
