"""``python -m rnnprobe.cli``: the ``rnnprobe`` command."""

import sys

from .main import main

sys.exit(main())
