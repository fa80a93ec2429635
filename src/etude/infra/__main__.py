"""`python -m etude.infra FOLDER [FOLDER...]`: run infra job folders (what job processes run)."""

import sys

from .worker import main

sys.exit(main())
