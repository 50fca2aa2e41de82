"""Reference training pipelines that ship with trainperf.

``ocr``: a DBNet-style text detector on synthetic pages (Hydra + Lightning).
``digits``: a small CNN on scikit-learn's handwritten digits (Lightning or a manual loop).

They are real, small, CPU-trainable and deterministic; their naive settings reproduce
the problems trainperf exists to find. They need ``pip install "trainperf[examples]"``.
"""
