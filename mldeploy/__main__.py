"""``python -m mldeploy``: the command line."""

import sys

from mldeploy.cli import main

sys.exit(main())
