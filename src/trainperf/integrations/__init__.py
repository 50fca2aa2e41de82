"""Integrations with the frameworks people train with (imported only when asked for).

* :mod:`trainperf.integrations.transformers`: ``PerfCallback`` for the Hugging Face
  ``Trainer``, added to every Trainer by ``trainperf run`` and ``trainperf doctor``.
"""
