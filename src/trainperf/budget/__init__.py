"""Performance budgets checked by the pytest plugin (:mod:`trainperf.pytest_plugin`).

    config.py   [tool.trainperf.budget] and the marker's arguments -> a frozen Budget
    imports.py  import time and module count of ``import X`` in fresh interpreters, judged
    steps.py    a test's step times, its stored baseline, judged with compare_steps

Each module measures or judges one thing and returns plain values; the plugin only
wires them into pytest. Nothing here is imported by ``import trainperf``.
"""
