"""The pipeline's first stage: datasets.  Built-ins, a user's table (.csv, .parquet), arrays
(.npz) and image folders become one ``Dataset`` with train, validation and test splits fixed by
the seed, and a table's fitted encoding that a deployment can apply to raw rows.

May import ``compress.common`` only: data knows nothing of models.
"""
