"""``python -m tiered``: see ``python -m tiered --help``."""

import sys

from tiered._cli import main

if __name__ == "__main__":
    sys.exit(main())
