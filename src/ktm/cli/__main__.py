"""`python -m ktm.cli` (e.g. under `accelerate launch`)."""

import sys

from . import main

sys.exit(main())
