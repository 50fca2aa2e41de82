"""Handwritten digits: scikit-learn's bundled 8x8 digits (1,797 real scans, no
download), held in memory as tensors, and a small CNN.

Two trainers share the model and data, for a side-by-side comparison: a Lightning module
(``loop=lightning``, the default) and a manual loop with a per-batch tqdm bar and
``num_workers=4`` (``loop=manual``, the "legacy" code). Run
``python -m trainperf.examples.digits.train [hydra overrides]``.

With the defaults both trainers reach 0.978 test accuracy in under 10 s on 2 CPU
cores (``benchmarks/example_training.py``).
"""
