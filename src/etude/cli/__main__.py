"""`python -m etude.cli ...` runs the `etude` command line."""

from . import main

raise SystemExit(main())
