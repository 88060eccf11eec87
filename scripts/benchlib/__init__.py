"""The pieces of ``scripts/bench.py``: load generators, the stacks it serves the model
with, and the sections it runs (model, serving, templates)."""
