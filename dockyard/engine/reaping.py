"""Who reaps whom: the child-subreaper flag, set only where and while it is needed.

runc and crun double-fork: an exec'd process (or a container's init) ends up as the child of the
nearest *subreaper* ancestor, which then gets its exit status. The monitor is a subreaper for
its whole life; a short-lived CLI running ``exec`` may simply become one. A long-lived library
user (the API server) must not stay one, or every container monitor it starts afterwards would
become its zombie child instead of init's: there the flag is set around one operation only.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def _prctl(*args: object) -> int:
    import ctypes  # on first use (run's CLI imports this module, and no ctypes otherwise)

    return ctypes.CDLL(None, use_errno=True).prctl(*args)


def is_subreaper() -> bool:
    import ctypes

    flag = ctypes.c_int(0)
    _prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)
    return bool(flag.value)


def set_subreaper(on: bool) -> None:
    _prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0)


@contextmanager
def subreaper() -> Iterator[None]:
    """Be a subreaper for the duration (children adopted meanwhile stay our children)."""
    was = is_subreaper()
    if not was:
        set_subreaper(True)
    try:
        yield
    finally:
        if not was:
            set_subreaper(False)


@contextmanager
def not_subreaper() -> Iterator[None]:
    """Not a subreaper for the duration: a daemon double-forked meanwhile goes to init."""
    was = is_subreaper()
    if was:
        set_subreaper(False)
    try:
        yield
    finally:
        if was:
            set_subreaper(True)
