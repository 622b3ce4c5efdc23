"""``python -m mldeploy``: the command line."""

import sys

from mldeploy.cli.main import main

sys.exit(main())
