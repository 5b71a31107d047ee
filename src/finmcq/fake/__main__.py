"""``python -m finmcq.fake --port P [--latency-ms L] [--seed S] [--rate-429 0.1] ...``

Runs the fake in its own process (for benchmarks) and prints ``http://HOST:PORT/v1`` when ready.
"""

from __future__ import annotations

import sys

from finmcq.fake.config import config_from_args, parse_args
from finmcq.fake.server import serve


def main() -> None:
    """Parse the command line and serve until Ctrl-C or SIGTERM."""
    args = parse_args()
    try:
        config = config_from_args(args)
    except ValueError as exc:  # e.g. fault rates summing to more than 1
        sys.exit(f"python -m finmcq.fake: error: {exc}")
    serve(config, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
