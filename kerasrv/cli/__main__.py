"""`python -m kerasrv.cli`, as the `kerasrv` command."""

import sys

from kerasrv.cli import main

sys.exit(main())
