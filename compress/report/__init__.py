"""The report: a document model rendered to Markdown and self-contained HTML, its tables,
sections and figures, and the terminal summary, all built from saved results (and a tune's
tune.json), so a report can be rebuilt offline.

May import ``compress.analysis``, ``compress.results`` and ``compress.common``; never a
strategy, a model or TensorFlow.
"""
