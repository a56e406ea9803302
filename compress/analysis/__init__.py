"""Analysis of saved rows: pairing by role (each row with its baseline, techniques with their
controls), configurations over seeds, exact tests, the verdict policy, the source document's
claims and the recommendation under a budget.

Reads rows only: may import ``compress.results`` and ``compress.common``, never TensorFlow.
"""
