"""The framework hooks (see `frameworks`): matplotlib's `Figure.savefig` and `pyplot.show`,
the `SummaryWriter` of tensorboardX and torch.utils.tensorboard, and the model savers
`joblib.dump`, `torch.save`, `pickle.dump`. `PATCHERS` patches each library's module.

Imported only by `install_framework_hooks`, never by `import etude.tracking`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import pathlib
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from .hook_state import (
    FrameworkSink,
    busy_kinds,
    current_sink,
    deliver,
    lock,
    patch_attribute,
    state,
    tolerate,
)

_MODEL_SUFFIXES = (".pkl", ".pickle", ".pt", ".joblib", ".model")


@contextlib.contextmanager
def _hook_scope(kind: str, hook: str) -> Iterator[FrameworkSink | None]:
    """Mark `kind` busy on this thread for the body. Yield the sink to report to, or None when
    no run is current, or the thread is already inside a hook of this kind or a sink call."""
    busy = busy_kinds()
    if kind in busy or "sink" in busy:
        yield None
        return
    busy.add(kind)
    try:
        yield current_sink("frameworks", hook)
    finally:
        busy.discard(kind)


def _iteration(key: tuple[str, ...], step: Any = None) -> int:
    """`step` as an int; when it is None, the next value of a counter kept per `key`, from 0."""
    if step is not None:
        return int(step)
    with lock:
        value = state.counters.get(key, 0)
        state.counters[key] = value + 1
    return value


def _called_from_etude(depth: int = 2) -> bool:
    """Whether the frame `depth` levels up (the caller of the hook calling this) runs code of
    the `etude` package."""
    try:
        name = sys._getframe(depth).f_globals.get("__name__")
    except ValueError:  # no Python frame that far up (called from C)
        return False
    return isinstance(name, str) and (name == "etude" or name.startswith("etude."))


# ---------------------------------------------------------------------------------------------
# matplotlib


def _patch_figure_module(module: ModuleType) -> None:
    patch_attribute(module.Figure, "savefig", _wrap_savefig)


def _patch_pyplot(module: ModuleType) -> None:
    patch_attribute(module, "show", _wrap_show)


def _wrap_savefig(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def savefig(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _called_from_etude():
            return original(self, *args, **kwargs)
        with _hook_scope("matplotlib", "Figure.savefig") as sink:
            result = original(self, *args, **kwargs)
            if sink is not None:
                deliver("Figure.savefig", functools.partial(_send_figure, sink, self))
        return result

    return savefig


def _wrap_show(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def show(*args: Any, **kwargs: Any) -> Any:
        with _hook_scope("matplotlib", "pyplot.show") as sink:
            if sink is not None:  # before showing: a blocking show closes the figures
                for figure in _open_figures():
                    deliver("pyplot.show", functools.partial(_send_figure, sink, figure))
            return original(*args, **kwargs)

    return show


def _open_figures() -> list[Any]:
    helpers = sys.modules.get("matplotlib._pylab_helpers")  # imported by pyplot
    if helpers is None:
        return []
    return [manager.canvas.figure for manager in helpers.Gcf.get_all_fig_managers()]


def _send_figure(sink: FrameworkSink, figure: Any) -> None:
    title, series = _figure_labels(figure)
    iteration = _iteration(("matplotlib", title, series))
    sink.report_matplotlib_figure(title, series, iteration, figure)


def _figure_labels(figure: Any) -> tuple[str, str]:
    """(the suptitle, else the first axes' title, else "matplotlib"; "figure N" for a pyplot
    figure numbered N, else "figure")."""
    suptitle = getattr(figure, "_suptitle", None)  # get_suptitle() only from matplotlib 3.8
    title = suptitle.get_text() if suptitle is not None else ""
    if not title and figure.axes:
        axes = figure.axes[0]
        title = next((t for t in (axes.get_title(loc=loc) for loc in ("center", "left", "right"))
                      if t), "")
    number = getattr(figure, "number", None)
    series = f"figure {number}" if number is not None else "figure"
    return title or "matplotlib", series


# ---------------------------------------------------------------------------------------------
# TensorBoard SummaryWriter (tensorboardX, torch.utils.tensorboard)


def _patch_summary_writer(module: ModuleType) -> None:
    writer = module.SummaryWriter
    for name, send in _SUMMARY_SENDERS.items():
        if hasattr(writer, name):
            patch_attribute(writer, name, functools.partial(_wrap_summary, name, send))


def _wrap_summary(name: str, send: Callable[[FrameworkSink, dict[str, Any]], None],
                  original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)
    hook = f"SummaryWriter.{name}"

    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _hook_scope("tensorboard", hook) as sink:
            result = original(self, *args, **kwargs)
            if sink is not None:
                deliver(hook, functools.partial(
                    _send_summary, send, sink, signature, (self, *args), kwargs))
        return result

    return method


def _send_summary(send: Callable[[FrameworkSink, dict[str, Any]], None], sink: FrameworkSink,
                  signature: inspect.Signature, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> None:
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    send(sink, bound.arguments)


def _split_tag(tag: str) -> tuple[str, str]:
    """"a/b/c" -> ("a/b", "c"); a tag without "/" (or with an empty part) is both."""
    title, _, series = tag.rpartition("/")
    return (title, series) if title and series else (tag, tag)


def _send_scalar(sink: FrameworkSink, a: dict[str, Any]) -> None:
    tag, value = str(a["tag"]), float(a["scalar_value"])
    sink.report_scalar(*_split_tag(tag), value, _iteration(("add_scalar", tag), a["global_step"]))


def _send_scalars(sink: FrameworkSink, a: dict[str, Any]) -> None:
    main_tag = str(a["main_tag"])
    values = {str(series): float(value) for series, value in a["tag_scalar_dict"].items()}
    iteration = _iteration(("add_scalars", main_tag), a["global_step"])
    for series, value in values.items():
        sink.report_scalar(main_tag, series, value, iteration)


def _send_image(sink: FrameworkSink, a: dict[str, Any]) -> None:
    tag, image = str(a["tag"]), _to_hwc(a["img_tensor"], a.get("dataformats"))
    title, series = _split_tag(tag)
    sink.report_image(title, series, _iteration(("add_image", tag), a["global_step"]), image)


def _send_text(sink: FrameworkSink, a: dict[str, Any]) -> None:
    sink.report_text(f"{a['tag']}: {a['text_string']}")


def _send_histogram(sink: FrameworkSink, a: dict[str, Any]) -> None:
    tag, values = str(a["tag"]), _to_numpy(a["values"])
    title, series = _split_tag(tag)
    iteration = _iteration(("add_histogram", tag), a["global_step"])
    sink.report_histogram(title, series, iteration, values)


_SUMMARY_SENDERS: dict[str, Callable[[FrameworkSink, dict[str, Any]], None]] = {
    "add_scalar": _send_scalar,
    "add_scalars": _send_scalars,
    "add_image": _send_image,
    "add_text": _send_text,
    "add_histogram": _send_histogram,
}


def _to_numpy(value: Any) -> Any:
    # Lazy import: reached only once the user's SummaryWriter is in use, which needs numpy.
    import numpy

    for step in ("detach", "cpu", "numpy"):  # a torch tensor, possibly on a GPU
        if not isinstance(value, numpy.ndarray) and callable(getattr(value, step, None)):
            value = getattr(value, step)()
    return numpy.asarray(value)


def _to_hwc(image: Any, dataformats: str | None) -> Any:
    """`image` laid out as `dataformats` (CHW, HWC, HW, NCHW, ...) as an HWC (HW for one
    channel) numpy array; a batch is laid side by side."""
    import numpy  # lazy, as in _to_numpy

    array = _to_numpy(image)
    layout = (dataformats or "CHW").upper()
    if len(layout) != array.ndim or len(set(layout)) != len(layout) or not (
            {"H", "W"} <= set(layout) <= set("NCHW")):
        raise ValueError(f"add_image: dataformats {layout!r} does not fit an image of shape "
                         f"{array.shape}; use one of CHW, HWC, HW, NCHW, NHWC")
    axes = [axis for axis in "NHWC" if axis in layout]
    array = array.transpose([layout.index(axis) for axis in axes])
    if axes[0] == "N":
        array = numpy.concatenate(list(array), axis=1)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return array


# ---------------------------------------------------------------------------------------------
# Saved models: joblib.dump, torch.save, pickle.dump


def _patch_joblib(module: ModuleType) -> None:
    patch_attribute(module, "dump", functools.partial(
        _wrap_model_save, "joblib.dump", "joblib", functools.partial(_path_target, "filename")))


def _patch_torch(module: ModuleType) -> None:
    patch_attribute(module, "save", functools.partial(
        _wrap_model_save, "torch.save", "torch", functools.partial(_path_target, "f")))


def _patch_pickle(module: ModuleType) -> None:
    patch_attribute(module, "dump", functools.partial(
        _wrap_model_save, "pickle.dump", "pickle", _pickle_target))


def _wrap_model_save(hook: str, framework: str,
                     target: Callable[[tuple[Any, ...], dict[str, Any]], str | None],
                     original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def save(*args: Any, **kwargs: Any) -> Any:
        path = None if _called_from_etude() else _safe_target(hook, target, args, kwargs)
        if path is None or ".etude" in pathlib.PurePath(path).parts:
            return original(*args, **kwargs)
        with _hook_scope("model", hook) as sink:
            result = original(*args, **kwargs)
            if sink is not None:
                log = functools.partial(sink.log_model, path, name=None, framework=framework)
                deliver(hook, log)
        return result

    return save


def _safe_target(hook: str, target: Callable[[tuple[Any, ...], dict[str, Any]], str | None],
                 args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    try:
        return target(args, kwargs)
    except Exception as error:
        tolerate(hook, error)
        return None


def _path_target(keyword: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The absolute path the file argument (2nd, or `keyword`) names; None for a file object."""
    where = args[1] if len(args) > 1 else kwargs.get(keyword)
    if isinstance(where, (str, bytes, os.PathLike)):
        return os.path.abspath(os.fsdecode(where))
    return None


def _pickle_target(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The absolute path of the open file pickled into, when its name looks like a model's."""
    file = args[1] if len(args) > 1 else kwargs.get("file")
    name = getattr(file, "name", None)
    if isinstance(name, str) and name.lower().endswith(_MODEL_SUFFIXES):
        return os.path.abspath(name)
    return None


PATCHERS: dict[str, Callable[[ModuleType], None]] = {
    "matplotlib.figure": _patch_figure_module,
    "matplotlib.pyplot": _patch_pyplot,
    "tensorboardX": _patch_summary_writer,
    "torch.utils.tensorboard": _patch_summary_writer,
    "torch": _patch_torch,
    "joblib": _patch_joblib,
    "pickle": _patch_pickle,
}
