"""Stable names of configuration classes, and loading classes back from those names."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import SerializationError

#: Module name under which a job process loads the experiment's own script.
SCRIPT_MODULE = "__etude_main__"
_SCRIPT_MODULES = ("__main__", SCRIPT_MODULE)

_names: dict[type, str] = {}


class ScriptLoadStop(BaseException):
    """Raised by `experiment()` while a job process loads the experiment script for its classes.

    The script stops there: its classes (defined above the experiment block) are loaded, and the
    experiment itself does not run again inside the job.
    """


_loading_script = False


def loading_script() -> bool:
    """True while a job process executes the experiment script to find its classes."""
    return _loading_script


def script_stem(module: str) -> str:
    mod = sys.modules.get(module)
    file = getattr(mod, "__file__", None)
    return Path(file).stem if file else module


def type_name(cls: type) -> str:
    """The name that identifies `cls` in identifiers and job folders.

    A class may declare `__etude_name__ = "project.Name"` so that moving it to another module
    keeps its identifiers. A class in the experiment script (`__main__`) is named after the
    script's file, so running the script and importing it give the same name.
    """
    name = _names.get(cls)
    if name is None:
        declared = cls.__dict__.get("__etude_name__")
        if declared is not None:
            if not isinstance(declared, str) or not declared:
                raise SerializationError(
                    f"{cls.__qualname__}.__etude_name__ must be a non-empty string, "
                    f"got {declared!r}."
                )
            name = declared
        else:
            module = cls.__module__
            if module in _SCRIPT_MODULES:
                module = script_stem(module)
            name = f"{module}.{cls.__qualname__}"
        _names[cls] = name
    return name


_references: dict[type, dict[str, Any]] = {}
_roots: dict[str, str | None] = {}


def class_reference(cls: type, where: str) -> dict[str, Any]:
    """How the job process finds `cls` again; raises `SerializationError` if it cannot."""
    ref = _references.get(cls)
    if ref is None:
        ref = _class_reference(cls, where)
        _references[cls] = ref
    return dict(ref)


def _class_reference(cls: type, where: str) -> dict[str, Any]:
    qualname = cls.__qualname__
    if "<locals>" in qualname:
        raise SerializationError(
            f"{where}: class {qualname} is defined inside a function, so the job process "
            "cannot import it. Define it at the top level of a module or of the script."
        )
    module = cls.__module__
    ref: dict[str, Any] = {"module": module, "qualname": qualname}
    mod = sys.modules.get(module)
    file = getattr(mod, "__file__", None)
    if module in _SCRIPT_MODULES:
        if not file:
            raise SerializationError(
                f"{where}: class {qualname} is defined in an interactive session, which a job "
                "process cannot load. Put it in a .py file (the script or a module)."
            )
        ref["module"] = "__main__"
        ref["file"] = str(Path(file).resolve())
    elif mod is None or not file:
        raise SerializationError(
            f"{where}: module {module!r} of class {qualname} has no file, so the job process "
            "cannot import it. Define the class in a .py module or in the script."
        )
    found = _resolve(mod, qualname) if mod is not None else None
    if found is not cls:
        raise SerializationError(
            f"{where}: {module}.{qualname} does not name this class (it was redefined or "
            "renamed at run time). Define each configuration class once, at module level."
        )
    return ref


def module_root(module: str) -> str | None:
    """The sys.path entry from which `module` was imported (for the job's sys.path)."""
    if module not in _roots:
        _roots[module] = _module_root(module)
    return _roots[module]


def _module_root(module: str) -> str | None:
    mod = sys.modules.get(module)
    file = getattr(mod, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve().parent
    if module in _SCRIPT_MODULES:
        return str(path)
    depth = module.count(".") + (1 if Path(file).name == "__init__.py" else 0)
    for _ in range(depth):
        path = path.parent
    return str(path)


def _resolve(mod: ModuleType, qualname: str) -> Any:
    obj: Any = mod
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def load_script(file: str) -> ModuleType:
    """Execute the experiment script as module `__etude_main__` (once per process)."""
    global _loading_script
    mod = sys.modules.get(SCRIPT_MODULE)
    if mod is not None:
        return mod
    spec = importlib.util.spec_from_file_location(SCRIPT_MODULE, file)
    if spec is None or spec.loader is None:
        raise SerializationError(f"cannot load the experiment script {file}: not a Python file.")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[SCRIPT_MODULE] = mod
    _loading_script = True
    try:
        spec.loader.exec_module(mod)
    except ScriptLoadStop:
        pass
    finally:
        _loading_script = False
    return mod


def load_class(ref: dict[str, Any]) -> type:
    """Rebuild a class from `class_reference()`; raises `SerializationError` naming the fix."""
    module, qualname = ref["module"], ref["qualname"]
    try:
        mod = load_script(ref["file"]) if module == "__main__" else importlib.import_module(module)
    except ImportError as exc:
        raise SerializationError(
            f"cannot import module {module!r} for class {qualname}: {exc}. Check that the job "
            "runs with the same Python environment as the experiment."
        ) from exc
    found = _resolve(mod, qualname)
    if not isinstance(found, type):
        where = ref.get("file", module)
        hint = (
            " In a script, define every class above the experiment block (the job process "
            "stops reading the script there)."
            if module == "__main__"
            else ""
        )
        raise SerializationError(
            f"class {qualname} not found in {where}.{hint} If it was renamed or moved since "
            "the job was submitted, declare __etude_name__ to keep a stable name."
        )
    return found
