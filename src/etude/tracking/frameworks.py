"""Automatic hooks of run tracking: what a script does with argparse, matplotlib, TensorBoard
writers, joblib, torch and pickle is recorded into the current run without a tracking call.

The hooks reach the run only through `FrameworkSink` and a getter returning the current run
(None when no run is active: every hook then only calls the original). They patch
process-wide attributes, so their state is process-wide too; `uninstall_all` restores it all.

Every hook calls the original with the same arguments and returns its result unchanged. It
never raises because of tracking: a failure of the sink (or of the getter) is logged on the
"etude.tracking" logger with its cause, as a warning the first time for that hook and at DEBUG
level afterwards. Hooks are thread-safe, and do nothing on a thread that is inside a sink call
(the run saving a figure or pickling a file is never recorded as the user's).

Not hooked: names bound before the patch (`from joblib import dump` run before the hooks are
installed), `_pickle.dump`, `pickle.Pickler`, `pickle.dumps`.

Importing this module imports the standard library only, and only what the argparse hook
needs (`import etude.tracking` installs it). A library is patched at install time when the
user has already imported it, else right after the user imports it (a post-import hook on
`sys.meta_path` that removes itself once every watched module is patched).

The parts: `hook_state` (the sink protocol, the shared state, reaching the sink),
`argparse_hook`, `import_hook` (installing the framework hooks) and `framework_hooks`
(matplotlib, TensorBoard, model savers); the last two are imported by
`install_framework_hooks` only.
"""

from __future__ import annotations

from .argparse_hook import apply_pending_arguments, install_argparse_hook, last_parsed_arguments
from .hook_state import CurrentRun, FrameworkSink, uninstall_all

__all__ = [
    "CurrentRun",
    "FrameworkSink",
    "apply_pending_arguments",
    "install_argparse_hook",
    "install_framework_hooks",
    "last_parsed_arguments",
    "uninstall_all",
]


def install_framework_hooks(current: CurrentRun) -> None:
    """Hook matplotlib, tensorboardX (and torch's) SummaryWriter, joblib.dump, torch.save and
    pickle.dump: now for those already imported, right after their import for the others.
    Idempotent: a second call only replaces `current`."""
    # Lazy import for start-up speed: the import machinery, inspect and the framework hooks
    # are loaded only when a run turns them on, not by `import etude.tracking`.
    from .import_hook import install_framework_hooks as install

    install(current)
