"""finmcq: build a Korean financial-market 7-option MCQ fine-tuning dataset from KMMLU."""

__version__ = "0.1.0"
