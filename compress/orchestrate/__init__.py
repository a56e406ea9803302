"""Orchestration: the commands' work, built from the stages below.  A run is planned
(``config``, ``plan``, ``teachers``), executed (``steps`` in this process, ``execute`` and
``pool`` in workers) and finished (``run``: results, then the report).  Sweeps (``jobs``,
``executors``, ``sweep``), ``compress tune`` (``tune_space``, ``tune_trials``, ``tune_search``,
``tune``), sensitivity and ``bench`` reuse the same steps.

The only stage that may import every other one; only ``api``, ``cli`` and ``testing`` import it.
"""
