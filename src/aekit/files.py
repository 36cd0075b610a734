"""Files of runs and stores: atomic writes, and the temp files a killed writer leaves behind.

Every file aekit writes goes to a temp file ``.NAME.*.tmp`` beside its destination and is then
moved into place, so a reader never sees a half-written file. A process killed mid-write leaves
that temp file; ``remove_stale_temps`` deletes such leftovers when the folder is next opened for
writing. A file written beside others of the user's (``aekit export``, ``aekit data pack``) is
held while it is written (``writing``), and the next writer of the same path removes the temps
of its killed predecessors only (``remove_stale_temps_of``).

A run or store has one writer at a time: ``folder_lock`` holds an advisory lock (``flock``) on
the folder itself while a command writes it, and a second writer is refused with one line. The
lock is the kernel's: a killed writer leaves no lock file behind to clean up.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import AekitError

try:
    import fcntl
except ImportError:  # Windows: no flock; one writer per folder is then the user's to keep
    fcntl = None  # type: ignore[assignment]

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask (the only way is to set it and put it back)


def give_normal_mode(path: str | Path) -> None:
    """A file made by ``mkstemp`` (mode 0600) gets a normal file's mode (0644 under umask 022)."""
    os.chmod(path, 0o666 & ~_UMASK)


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then move the result into place: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        give_normal_mode(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files that ``atomic_write`` left in ``folder`` when a writer
    was killed; returns them. Call it only where this process is the folder's one writer."""
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Hold ``path``, a temp file or folder being written, so that
    :func:`remove_stale_temps_of` tells it from one a killed writer left (the kernel lets go
    of a killed process's lock)."""
    if fcntl is None:
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_stale_temps_of(path: Path) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files and ``.NAME.*.part`` folders that killed writers of
    ``path`` left beside it (those no live writer holds: :func:`writing`); returns them. The
    folder is the user's, so only the temps named after ``path`` are touched."""
    if fcntl is None or not path.parent.is_dir():
        return []  # without flock a live writer's temp cannot be told from a dead one's
    stale = []
    for p in path.parent.glob(f".{glob.escape(path.name)}.*"):
        if p.suffix not in (".tmp", ".part") or p.is_symlink():
            continue
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
            stale.append(p)
        except (BlockingIOError, FileNotFoundError):
            pass  # being written, or another process removed it first
        finally:
            os.close(fd)
    return stale


_held: dict[str, int] = {}  # folders this process holds (a lock is re-entrant within it)


@contextmanager
def folder_lock(folder: Path, what: str) -> Iterator[None]:
    """Hold ``folder`` (created if missing) as its one writer; another process holding it is
    an AekitError naming ``what`` the folder is (a run, a store)."""
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    try:
        if fcntl is None or key in _held:
            yield
            return
        fd = os.open(key, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AekitError(
                    f"{folder} is being written by another aekit process ({what}): wait for it "
                    "to finish, or write to another folder"
                ) from None
            _held[key] = fd
            try:
                yield
            finally:
                del _held[key]
        finally:
            os.close(fd)  # closing the descriptor releases the lock
    except BaseException:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a command that failed leaves no empty folder of its own behind
        raise


@contextmanager
def waiting_lock(path: Path) -> Iterator[None]:
    """Hold the lock file ``path``, waiting for another process that holds it (short critical
    sections, e.g. a run's anomaly scores). A folder that cannot be written is not locked."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
