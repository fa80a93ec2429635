"""The vendored front-end libraries are the pinned npm releases (checked offline against
VERSIONS.json, which scripts/vendor_web.py writes from the registry's tarballs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_vendored_files_match_their_pinned_releases():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "vendor_web.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for library in ("htmx.org", "uplot", "tabulator-tables", "cytoscape", "echarts"):
        assert (ROOT / "src/etude/web/static/vendor" / library / "LICENSE").is_file()
