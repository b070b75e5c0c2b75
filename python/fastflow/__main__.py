"""`python -m fastflow ...`: the same as the `fastflow` command."""
import sys

from .cli import main

sys.exit(main())
