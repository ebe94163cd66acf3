"""``python -m harness_cli`` runs the ``harness`` command."""

import sys

from harness_cli.main import main

sys.exit(main())
