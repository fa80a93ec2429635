"""Every ```python block of docs/*.md runs as a script, so the docs cannot drift from the code.

Each block runs as a file of its own in a fresh temporary folder (job processes load the script
again to find its classes). A block whose first line is `# doctest: skip` is a fragment and is
not run; a block whose first line is `# file: NAME.py` is saved under that name (the name shows
in job folders), any other as `example.py`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
SKIP = "# doctest: skip"
FILE_NAME = re.compile(r"#\s*file:\s*([A-Za-z_][A-Za-z0-9_]*\.py)\s*$")
TIMEOUT = 120


def _blocks() -> list[tuple[str, str]]:
    """(`page.md:LINE`, source) for every python block, LINE being that of its opening fence."""
    found = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{page.name}:{line}", match.group(1)))
    return found


BLOCKS = _blocks()


def _first_line(source: str) -> str:
    return source.lstrip("\n").split("\n", 1)[0].strip()


def test_docs_have_examples() -> None:
    """The docs hold python examples, and fewer than a quarter of them are skipped fragments."""
    assert BLOCKS, f"no ```python block found under {DOCS}"
    skipped = [where for where, source in BLOCKS if _first_line(source) == SKIP]
    assert len(skipped) * 4 < len(BLOCKS), f"too many skipped blocks: {skipped}"


FRAGMENTS = [(where, source) for where, source in BLOCKS if _first_line(source) == SKIP]
RUNNABLE = [(where, source) for where, source in BLOCKS if _first_line(source) != SKIP]


@pytest.mark.parametrize(
    ("where", "source"), [pytest.param(where, source, id=where) for where, source in FRAGMENTS]
)
def test_doc_fragment_is_valid_python(where: str, source: str) -> None:
    """A fragment that cannot run alone (it needs a server, a GPU, the user's data) still
    parses: a typo in it fails here."""
    compile(source, where, "exec")


@pytest.mark.parametrize(
    ("where", "source"), [pytest.param(where, source, id=where) for where, source in RUNNABLE]
)
def test_doc_example_runs(
    where: str, source: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The block runs to completion, as a script, in an empty folder."""
    if where.startswith("slurm.md"):
        request.getfixturevalue("slurm_cluster")  # the Slurm page's examples run on it
    first = _first_line(source)
    named = FILE_NAME.fullmatch(first)
    script = tmp_path / (named.group(1) if named else "example.py")
    script.write_text(source, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETUDE_")}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{script.name} exited with status {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}",
            pytrace=False,
        )
