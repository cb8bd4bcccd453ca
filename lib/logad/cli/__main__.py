"""``python -m logad.cli``: the same as the ``logad`` command."""

import sys

from logad.cli import main

sys.exit(main())
