"""rankflow from Python: the C++ MPI runtime behind ``import rankflow``.

Run a script under ``mpirun -n N python3 script.py``; every rank runs it::

    import rankflow
    rt = rankflow.Runtime()                       # rankflow's flags come from sys.argv
    squares = rt.parallel_map(lambda i: i * i, rankflow.range(0, 1000))
    total = rt.mapreduce(rankflow.range(0, 10**6), lambda i: 1.0 / (i + 1), lambda a, b: a + b)
    if rt.is_scheduler:
        print(squares[:5], total)

Functions are never shipped: every rank holds them, and only items' results
travel. See docs/python.md.
"""
import atexit as _atexit
import os as _os
import sys as _sys

# Open MPI loads its components as plugins that expect libmpi's symbols to be
# global; a Python extension is loaded with RTLD_LOCAL (mpi4py does the same).
_flags = _sys.getdlopenflags()
_sys.setdlopenflags(_flags | _os.RTLD_GLOBAL)
try:
    from . import _rankflow
finally:
    _sys.setdlopenflags(_flags)

from ._rankflow import (  # noqa: E402  (after the dlopen flags)
    Error,
    Field,
    FormatError,
    Future,
    Group,
    Interrupted,
    MPIError,
    PartitionContext,
    ResourceError,
    Run,
    Scheduler,
    StorageError,
    TaskError,
    TrackingError,
    TypeError,
    UsageError,
    range,
)

__all__ = [
    "Runtime", "range", "call", "Group", "Run", "Field", "Future", "Scheduler", "PartitionContext", "Error", "UsageError", "ResourceError", "MPIError",
    "Interrupted", "TaskError", "StorageError", "FormatError", "TrackingError",
    # not "TypeError": `from rankflow import *` must not shadow the builtin (rankflow.TypeError subclasses it)
]

class call:
    """One step of a task composition (s.sequence, s.parallel, s.mapreduce):
    a task name and its arguments, with optional per-step changes. In a
    sequence the previous step's result comes first, before these arguments;
    a mapreduce's combining call gets the list of the map results first."""

    def __init__(self, name, *args):
        self.name = str(name)
        self.args = args
        self.need = None
        self.labels = []
        self.retry = None

    def with_(self, *, cpu=1, memory_mb=0, gpu=0, ranks=1):
        self.need = (cpu, memory_mb, gpu, ranks)
        return self

    def require(self, label):
        self.labels.append(str(label))
        return self

    def retries(self, n, backoff_s=0.5):
        self.retry = (int(n), float(backoff_s))
        return self

    def __repr__(self):
        return f"rankflow.call({self.name!r}, *{self.args!r})"


# Exit code of a program stopped by a time limit or cancellation (bigsum's,
# EX_TEMPFAIL): a Slurm script requeues on it.
EXIT_INTERRUPTED = 75

_current = None


class Runtime(_rankflow.Runtime):
    """The runtime of this MPI job. Make one, on every rank, before anything else.

    ``argv`` defaults to ``sys.argv``, whose rankflow flags (``--resume``,
    ``--experiment``, ``--retries`` ...) are then removed from it, as in C++.
    """

    def __init__(self, argv=None):
        global _current
        if _current is not None:
            raise UsageError("a rankflow.Runtime was made already in this process"
                             + (" and closed" if _current.closed else "")
                             + ": make one per program (MPI can be initialised only once)")
        args = list(_sys.argv if argv is None else argv)
        if not args:
            args = ["python3"]
        super().__init__([str(a) for a in args])
        if argv is None:
            _sys.argv[:] = self.remaining_argv
        _current = self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        if self.closed:
            return "<rankflow.Runtime (closed)>"
        return f"<rankflow.Runtime rank {self.rank} of {self.size} on {self.host}>"


def _close_at_exit():
    if _current is not None and not _current.closed:
        _current.close()


_atexit.register(_close_at_exit)

_previous_hook = _sys.excepthook


def _excepthook(kind, value, tb):
    """An exception no rank handled: print it, then end every rank of the job.

    The other ranks may be waiting in a collective call for this one; without
    this they would wait forever (C++ programs get the same from ~Runtime).
    """
    _previous_hook(kind, value, tb)
    rt = _current
    if rt is None or rt.closed or not _rankflow._initialized():
        return
    code = EXIT_INTERRUPTED if isinstance(value, Interrupted) else 1
    reason = f"{kind.__name__}: {value}"
    if isinstance(value, Interrupted):
        # Raised on every rank at once (the call agreed on it): end cleanly,
        # with the exit code a requeueing batch script looks for. The run is
        # recorded as killed and resumes with --resume.
        rt.close()
        _sys.stdout.flush()
        _sys.stderr.flush()
        _os._exit(code)
    if rt.size > 1:
        _sys.stderr.write(f"rankflow: rank {rt.rank} (host {rt.host}): uncaught {kind.__name__}; "
                          f"aborting all {rt.size} ranks so none waits forever\n")
        _sys.stderr.flush()
        _sys.stdout.flush()
        _rankflow._abort(code)
    else:
        # One rank: no one waits for it. Its open runs end as failed, with
        # the exception as the reason, instead of succeeded at exit.
        rt.close(reason)


_sys.excepthook = _excepthook
