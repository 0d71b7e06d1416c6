"""``python -m tailhook``: the same as the ``tailhook`` command."""

import sys

from tailhook.cli import main

sys.exit(main())
