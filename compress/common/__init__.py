"""What every stage may use: one-line user errors, atomic files and the cache folder, exact
statistics, and wording.

Imports nothing else of compress: it sits under every stage of the pipeline.
"""
