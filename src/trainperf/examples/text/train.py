"""Train the text example: ``python -m trainperf.examples.text.train [flags]``.

The flags are checked before torch or transformers loads (a typo costs a fraction of a
second, not the libraries' import); see :mod:`.config` for them and :mod:`.fit` for the
training itself.
"""

from __future__ import annotations

import sys

import trainperf
from trainperf.errors import UsageError
from trainperf.examples.text.config import parse


def main(argv: list[str] | None = None) -> None:
    try:
        config = parse(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    trainperf.mark("config_validated")

    from trainperf.examples.text.fit import fit  # torch and transformers load here

    loss = fit(config)
    print(
        f"text: eval loss={loss:.4f} (tokenize={config.tokenize}, "
        f"workers={config.dataloader_num_workers}, logging_steps={config.logging_steps:g})"
    )


if __name__ == "__main__":
    main()
