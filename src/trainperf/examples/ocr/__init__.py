"""A DBNet-style text detector (Liao et al., "Real-time Scene Text Detection with
Differentiable Binarization", AAAI 2020), small enough to train on a CPU.

Pages are synthetic (:mod:`.synth`), labels are DB's shrink and threshold maps
(:mod:`.labels`), the model is a tiny backbone + FPN + DB head (:mod:`.model`)
trained with DB's loss (:mod:`.loss`), and predictions are scored by polygon IoU
(:mod:`.postprocess`, :mod:`.metrics`). ``python -m trainperf.examples.ocr.train``
trains it with Hydra overrides; ``train_eager`` is the same entry point with every
heavy import at the top, kept as the "before" of the start-up benchmarks.

With the defaults (``python -m trainperf.examples.ocr.train``: 5 epochs of 256 pages
of 256 x 256, naive settings) it reaches hmean 0.975 on 64 held-out pages in 55 s on
2 CPU cores (``benchmarks/example_training.py``).
"""
