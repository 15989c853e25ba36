"""``python -m gateway ...`` is ``coldtrail-gateway ...``."""

import sys

from .cli import main

sys.exit(main())
