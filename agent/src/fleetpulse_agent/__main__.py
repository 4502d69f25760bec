"""`python -m agent`: the same as `fleetpulse-agent`."""

import sys

from .cli import main

sys.exit(main())
