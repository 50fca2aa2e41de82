"""``python -m trainperf``: the same command line as the ``trainperf`` script."""

import sys

from trainperf.cli import console

if __name__ == "__main__":
    sys.exit(console())
