"""Fetch the web UI's front-end libraries from the npm registry and vendor them.

    python scripts/vendor_web.py            # fetch the pinned versions, copy, write VERSIONS.json
    python scripts/vendor_web.py --check    # only check the committed files against VERSIONS.json

Each library is fetched with `npm pack NAME@VERSION` (the registry's own tarball, checked by
npm against the registry's integrity hash), and the few files the UI serves are copied with
the library's licence into `src/etude/web/static/vendor/NAME/`. `VERSIONS.json` there records,
per library, the version, the tarball's integrity string and the SHA-256 of every copied file,
so `--check` (run by the tests) proves the committed files are those of the pinned releases.
The vendored files are committed: `pip install` needs no network and no build step.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "src" / "etude" / "web" / "static" / "vendor"

# name -> (version, {path in the package: name in the vendor folder})
LIBRARIES: dict[str, tuple[str, dict[str, str]]] = {
    "htmx.org": ("2.0.8", {"dist/htmx.min.js": "htmx.min.js", "LICENSE": "LICENSE"}),
    "uplot": ("1.6.32", {
        "dist/uPlot.iife.min.js": "uPlot.iife.min.js",
        "dist/uPlot.min.css": "uPlot.min.css",
        "LICENSE": "LICENSE",
    }),
    "tabulator-tables": ("6.5.3", {
        "dist/js/tabulator.min.js": "tabulator.min.js",
        "dist/css/tabulator.min.css": "tabulator.min.css",
        "LICENSE": "LICENSE",
    }),
    # The jobs' dependency graph (experiments page); its own breadth-first layout.
    "cytoscape": ("3.35.0", {"dist/cytoscape.min.js": "cytoscape.min.js", "LICENSE": "LICENSE"}),
    # Parallel coordinates (compare page only): Apache-2.0, so its NOTICE comes too.
    "echarts": ("6.1.0", {
        "dist/echarts.min.js": "echarts.min.js",
        "LICENSE": "LICENSE",
        "NOTICE": "NOTICE",
    }),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(name: str, version: str, files: dict[str, str], work: Path) -> dict[str, object]:
    """npm pack NAME@VERSION into `work`, copy `files`; return its VERSIONS.json entry."""
    done = subprocess.run(
        ["npm", "pack", f"{name}@{version}", "--json", "--pack-destination", str(work)],
        capture_output=True, text=True, cwd=work,
    )
    if done.returncode != 0:
        raise SystemExit(f"npm pack {name}@{version} failed:\n{done.stderr}")
    info = json.loads(done.stdout)[0]
    tarball = work / info["filename"]
    target = VENDOR / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with tarfile.open(tarball) as archive:
        for inside, local in files.items():
            member = archive.extractfile(f"package/{inside}")
            if member is None:
                raise SystemExit(f"{name}@{version}: no file {inside} in its package")
            (target / local).write_bytes(member.read())
    return {
        "version": version,
        "integrity": info.get("integrity"),
        "files": {local: sha256(target / local) for local in files.values()},
    }


def check() -> list[str]:
    """Differences between the vendored files and VERSIONS.json / LIBRARIES (empty: fine)."""
    problems = []
    try:
        recorded = json.loads((VENDOR / "VERSIONS.json").read_text())
    except (OSError, ValueError) as error:
        return [f"{VENDOR / 'VERSIONS.json'}: {error}"]
    for name, (version, files) in LIBRARIES.items():
        entry = recorded.get(name)
        if entry is None or entry.get("version") != version:
            problems.append(f"{name}: VERSIONS.json has {entry and entry.get('version')}, "
                            f"the script pins {version}; run scripts/vendor_web.py")
            continue
        for local in files.values():
            path = VENDOR / name / local
            if not path.is_file():
                problems.append(f"{path}: missing")
            elif sha256(path) != entry["files"].get(local):
                problems.append(f"{path}: differs from the {name}@{version} release")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="check, fetch nothing")
    args = parser.parse_args()
    if not args.check:
        entries = {}
        with tempfile.TemporaryDirectory() as work:
            for name, (version, files) in LIBRARIES.items():
                print(f"fetching {name}@{version}", file=sys.stderr)
                entries[name] = fetch(name, version, files, Path(work))
        (VENDOR / "VERSIONS.json").write_text(json.dumps(entries, indent=2) + "\n")
    problems = check()
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"vendored libraries match their pinned releases ({', '.join(LIBRARIES)})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
