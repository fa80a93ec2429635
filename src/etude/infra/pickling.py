"""Pickles that cross processes: the payload a job process runs, and the results it returns.

Objects are pickled by class reference. A class defined in the running script (`__main__`) is
found again in the job process by loading that script as module `__etude_main__` (the script
stops at its first infra call there, see `etude.config.naming.load_script`); a result pickled
in the job process under `__etude_main__` is read back under `__main__`. A module that cannot
be imported by name in the job process (a test module loaded by path, say) is loaded from the
file recorded at submission.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import pydantic

from ..config.naming import SCRIPT_MODULE, load_script
from ..workspace import write_atomic
from .errors import InfraConfigError

_SCRIPT_MODULES = ("__main__", SCRIPT_MODULE)
PAYLOAD_VERSION = 1


class Unpickler(pickle.Unpickler):
    """Finds classes of the script under either of its module names, and modules by file."""

    def __init__(self, file: io.BytesIO, files: dict[str, str] | None = None) -> None:
        super().__init__(file)
        self.files = files or {}

    def find_class(self, module: str, name: str) -> Any:
        if module in _SCRIPT_MODULES:
            mod = sys.modules.get(SCRIPT_MODULE) or sys.modules["__main__"]
            obj: Any = mod
            for part in name.split("."):
                obj = getattr(obj, part, None)
                if obj is None:
                    raise AttributeError(
                        f"class {name} not found in the script {getattr(mod, '__file__', '?')}: "
                        "a job process reads the script only up to its first infra call. "
                        "Define classes above that call (or in a module), and put the "
                        "script's actions under `if __name__ == '__main__':`."
                    )
            return obj
        if module not in sys.modules and module in self.files:
            try:
                importlib.import_module(module)
            except ImportError:
                _load_by_path(module, self.files[module])
        return super().find_class(module, name)


def _load_by_path(module: str, file: str) -> None:
    spec = importlib.util.spec_from_file_location(module, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load module {module!r} from {file}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    spec.loader.exec_module(mod)


def loads(data: bytes, files: dict[str, str] | None = None) -> Any:
    return Unpickler(io.BytesIO(data), files).load()


def dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _modules(value: Any, found: dict[str, str], depth: int = 0) -> None:
    """Record the files of the modules defining the models (and items) inside `value`."""
    if depth > 20:
        return
    cls = type(value)
    module = cls.__module__
    if module not in found and module not in _SCRIPT_MODULES and module != "builtins":
        file = getattr(sys.modules.get(module), "__file__", None)
        if file:
            found[module] = file
    if isinstance(value, pydantic.BaseModel):
        for item in value.__dict__.values():
            _modules(item, found, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in list(value)[:1000]:
            _modules(item, found, depth + 1)
    elif isinstance(value, dict):
        for item in list(value.values())[:1000]:
            _modules(item, found, depth + 1)


def _script_class(value: Any, depth: int = 0) -> type | None:
    """A class of the running script (module `__main__`) used inside `value`, if any."""
    cls = type(value)
    if cls.__module__ == "__main__":
        return cls
    if depth > 20:
        return None
    children: list[Any] = []
    if isinstance(value, pydantic.BaseModel):
        children = list(value.__dict__.values())
    elif isinstance(value, (list, tuple, set, frozenset)):
        children = list(value)[:1000]
    elif isinstance(value, dict):
        children = list(value.values())[:1000]
    for child in children:
        found = _script_class(child, depth + 1)
        if found is not None:
            return found
    return None


def check_script_readable(owner: pydantic.BaseModel, items: list[Any] | None, where: str) -> None:
    """Raise `InfraConfigError` when a job process could not find a class of `owner` (or of
    `items`): one defined in a script it cannot read (standard input, `python -c`, an
    interactive session or a notebook cell). `where` names the job's cluster."""
    cls = _script_class(owner) or _script_class(items)
    if cls is None:
        return
    file = main_file()
    if file is not None and file.endswith(".py") and os.path.isfile(file):
        return
    if file is None:
        source = "a notebook cell, an interactive session or `python -c`"
    else:
        source = "standard input" if Path(file).name == "<stdin>" else repr(file)
    raise InfraConfigError(
        f"{cls.__qualname__} is defined in {source}, which a job process ({where}) cannot "
        f"read, so it could not load the class. Move {cls.__qualname__} into a module file "
        "(say models.py) and import it from there, or run your script from a .py file; "
        "cluster=None or 'debug' computes in this process instead."
    )


def write_payload(
    path: Path,
    *,
    owner: pydantic.BaseModel,
    field: str,
    items: list[Any] | None,
    sys_path: list[str],
    main_file: str | None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Write what a job process needs to run `owner`'s infra method (atomically)."""
    data = dumps((owner, items))
    files: dict[str, str] = {}
    _modules(owner, files)
    if items:
        _modules(items, files)
    payload = {
        "version": PAYLOAD_VERSION,
        "field": field,
        "data": data,
        "files": files,
        "sys_path": sys_path,
        # only when something refers to the script, so that other jobs never execute it
        "main_file": main_file if any(m.encode() in data for m in _SCRIPT_MODULES) else None,
        "meta": meta or {},
    }
    write_atomic(path, dumps(payload))


def read_payload(
    path: Path, *, in_job_process: bool
) -> tuple[Any, str, list[Any] | None, dict[str, Any]]:
    """(owner, infra field name, items, meta) from a payload file.

    In a job process, the working directory and `sys.path` are set from the payload and the
    script is loaded first.
    """
    with open(path, "rb") as stream:
        payload = pickle.load(stream)
    if in_job_process:
        cwd = payload["meta"].get("cwd")
        if cwd:
            os.chdir(cwd)  # the submitter's working directory, or the workdir copy
        for entry in reversed(payload["sys_path"]):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        if payload["main_file"]:
            load_script(payload["main_file"])
    owner, items = loads(payload["data"], payload["files"])
    return owner, payload["field"], items, payload["meta"]


def main_file() -> str | None:
    """The file of the user's script, if there is one: the script itself, or, in a process
    that loaded it for its classes (a job process, an agent's clone of an infra job), the
    file it loaded (`__main__` is then etude's own module)."""
    module = sys.modules.get(SCRIPT_MODULE) or sys.modules.get("__main__")
    file = getattr(module, "__file__", None)
    return str(Path(file).resolve()) if file else None
