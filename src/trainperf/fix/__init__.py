"""``trainperf fix``: the change a diagnosis proved, written as a verified patch.

``imports`` moves heavy module-level imports to where they are used
(:mod:`.imports`); ``loader`` writes calibrated DataLoader settings into the call
that builds the loader (:mod:`.loader`). Every patch is checked before it is shown:
the rewritten code must load, and its gain is re-measured side by side with the
original.
"""
