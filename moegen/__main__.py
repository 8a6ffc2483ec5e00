"""`python -m moegen` is the `moegen` command."""

import sys

from moegen.cli.main import main

sys.exit(main())
