"""Metrics: the numbers a run measured (``extract``, ``experiments``), the QC gates a task sets on them
(``gates``), change detection over a series (``change``), and recurring tasks' intervals (``every``).
Pure functions over plain values: the store keeps the series (``store/metrics.py``)."""
