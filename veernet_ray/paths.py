"""Checks on folders a command will write to, run before any work (and before Ray starts).

A command that is given a file where it needs a folder, or a folder it cannot
write, should stop at once with one line, not after minutes of work with a
traceback (issue 14, item 4).
"""

from __future__ import annotations

import os
from pathlib import Path


def output_folder_problem(path: str | os.PathLike, flag: str) -> str:
    """Why `path` cannot be (or become) a writable folder: "" when it can.

    flag: how the user named it (`--output`, `storage=`), for the message. The path
    need not exist yet; its nearest existing ancestor must be a writable folder.
    """
    p = Path(path).expanduser()
    p = p if p.is_absolute() else Path.cwd() / p
    if p.exists() and not p.is_dir():
        return f"{flag} {os.fspath(path)!r} is a file; give a folder (it is created if missing)"
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"{flag} {os.fspath(path)!r}: {probe} is a file, so no folder can be made under it; give another path"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{flag} {os.fspath(path)!r}: {probe} is not writable; give a folder you can write to"
    return ""
