"""Files only the daemon's user may read: the data folder 0700, what it holds 0600, whatever the umask.

The database holds every question and answer, `images/` and `uploads/` what users drew and sent, the link key
signs history pages. New folders and files are made with these modes explicitly (never left to the umask); at
start, what an older version or a hand-made folder left readable by others is tightened, in one log line.

The database's `-wal` and `-shm` files are created later by SQLite itself: its unix VFS gives them the database
file's own permission bits (and chmods them to exactly those, past the umask), so a 0600 database file, created
here before SQLite opens it, makes them 0600 too. Existing ones (left by a crash) are tightened like the rest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

FOLDER_MODE = 0o700
FILE_MODE = 0o600
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
MEDIA_FOLDERS = ("images", "uploads")  # media/files.py's folders under data_dir
PRIVATE_FILES = ("history-link.key",)  # web/links.py's key


def _tighten(path: Path, wanted: int) -> str | None:
    """chmod `path` to `wanted` when its mode differs; what changed (None: nothing, or no such file)."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if current == wanted:
        return None
    try:
        path.chmod(wanted)
    except PermissionError:  # another user's file: say so, but do not stop the daemon
        log.warning("cannot make %s private (mode %04o, not ours to change): other local users may read it",
                    path, current)  # fmt: skip
        return None
    return f"{path} {current:04o}→{wanted:04o}"


def private_folder(path: Path) -> list[str]:
    """Make `path` (and missing parents) a 0700 folder, or tighten it; what changed."""
    path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    return [c for c in [_tighten(path, FOLDER_MODE)] if c]


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 unless it exists (exactly 0600: not narrowed by the umask either)."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (a 0600 temporary file renamed into place), in a 0700 folder."""
    private_folder(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE), "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)  # a leftover temporary file keeps its old mode through O_CREAT
            f.write(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def database_files(path: Path) -> list[Path]:
    """The database file and SQLite's files beside it."""
    return [path, *(path.with_name(path.name + suffix) for suffix in SQLITE_SIDECARS)]


def secure_database(path: Path) -> list[str]:
    """The database's folder 0700, the file (created if missing) and its sidecars 0600; what changed."""
    changes = private_folder(path.parent)
    changes += [c for f in database_files(path) if (c := _tighten(f, FILE_MODE))]
    private_file(path)
    return changes


def _folder_of_files(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    changed = _tighten(folder, FOLDER_MODE)
    files = sum(1 for f in folder.iterdir() if f.is_file() and _tighten(f, FILE_MODE))
    if files:
        changed = f"{changed or folder} (and {files} file{'s' if files > 1 else ''} in it {FILE_MODE:04o})"
    return [changed] if changed else []


def secure_data_dir(data_dir: Path, database: Path) -> None:
    """Start-up: make `data_dir` and everything the daemon keeps there private, and log once what was not."""
    changes = private_folder(data_dir) + secure_database(database)
    for name in MEDIA_FOLDERS:
        changes += _folder_of_files(data_dir / name)
    changes += [c for name in PRIVATE_FILES if (c := _tighten(data_dir / name, FILE_MODE))]
    report(changes)


def report(changes: Iterable[str]) -> None:
    """One log line naming every path whose mode was tightened (nothing when none was)."""
    changes = list(changes)
    if changes:
        log.warning("data: tightened permissions that let other local users read it: %s", ", ".join(changes))
