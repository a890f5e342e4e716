"""``python -m lama.train [CONFIG.yaml] [key=value ...]``: the entry point ``accelerate launch -m lama.train`` runs."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes: 0 done, 1 a loss went non-finite, 2 bad config or input, 128 + signal when interrupted (saved)."""
    from lama.config import ConfigError
    from lama.signals import Interrupted, stop_signals_raise
    from lama.train import NonFiniteLossError, train
    from lama.train.preview import compose

    arguments = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("lama").setLevel(logging.INFO)
    try:
        # The loop takes stop signals itself (it saves, then returns); this covers the setup around it.
        with stop_signals_raise():
            config = compose(arguments)
            result = train(config)
    except Interrupted as stop:
        print(f"lama train: interrupted by {stop.name}; the states saved so far are kept; rerun to continue from "
              "the last one", file=sys.stderr)
        return stop.exit_code
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"lama train: {error}", file=sys.stderr)
        return 2
    except NonFiniteLossError as error:
        print(f"lama train: {error}", file=sys.stderr)
        return 1
    print(f"lama train: {result.status} at step {result.step} -> {result.out_dir}", file=sys.stderr)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
