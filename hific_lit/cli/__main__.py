"""``python -m hific_lit.cli``: the ``hific`` command."""

import sys

from hific_lit.cli import main

sys.exit(main())
