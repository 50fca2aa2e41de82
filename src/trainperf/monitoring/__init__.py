"""Monitoring, behind ``trainperf.monitor()``: step-time attribution for training loops.

capture.py + hooks.py -> records.py -> analyze.py; session.py ties them together.
"""
