"""``python -m dbpim``: the same as the ``dbpim`` command."""

import sys

from dbpim.cli import main

sys.exit(main())
