"""Data-quality machinery that is not a stage of its own.

* :mod:`finmcq.quality.text` – Korean-aware folding of text and character n-gram shingles, the one
  text form every similarity comparison in finmcq uses.
* :mod:`finmcq.quality.neardup` – near-duplicate detection among delivered questions (MinHash
  signatures banded for LSH, every candidate confirmed by exact Jaccard).
* :mod:`finmcq.quality.contamination` – overlap of delivered questions with benchmark test sets
  (KMMLU test splits of the finance-adjacent subjects and user-named files).
* :mod:`finmcq.quality.difficulty` – the final difficulty label and the per-slot difficulty plan.
* :mod:`finmcq.quality.summary` – the quality block of the run's stats.
"""
