"""``python -m coromix.cli``: the ``coromix`` command."""

import sys

from coromix.cli.parser import main

if __name__ == "__main__":
    sys.exit(main())
