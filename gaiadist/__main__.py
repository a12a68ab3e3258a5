"""Allow ``python -m gaiadist``."""

import sys

from .cli import main

sys.exit(main())
