"""Files written whole or not at all: a temporary file in the target's folder, then os.replace.

A checkpoint, a curves PNG or a metrics file is rewritten every epoch; an interruption
while it is written (Ctrl-C, a killed process, a full disk) must leave the previous
version in place, never a truncated file. The temporary file gets the mode a plain
`open()` would give (0o666 less the umask), not mkstemp's private 0o600, so a run's
outputs are as readable as any other file the user writes.
"""
from __future__ import annotations

import contextlib
import os
import tempfile


def _umask() -> int:
    """The process's umask. Linux reports it in /proc (no change, so no race with other
    threads creating files); elsewhere it is read by setting and restoring it."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def open_atomic(path, mode: str = "wb"):
    """Open a temporary file beside `path` for writing; on a clean exit it is flushed,
    fsynced and renamed onto `path` (creating its folder if needed), on an exception
    (KeyboardInterrupt included) it is removed and `path` is left as it was.

    mode: "wb" or "w" (text, UTF-8). Raises ValueError for any other mode, and what
    os/open raise for an unwritable folder (OSError).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"open_atomic: mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # The target's extension only: a long file name plus the prefix could pass NAME_MAX.
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1][:16], dir=directory)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
