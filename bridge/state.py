"""The saved state: every value written atomically soon after it changes.

The store is an adapter like the others: each change marks it dirty and a
writer thread saves the hub's values (temporary file, fsync, rename) within
:data:`SAVE_DELAY` seconds. A failed write is reported once and retried.

:class:`SavedFile` is the one way the bridge keeps a JSON document on disk
(the state, the scenes, the learned MIDI bindings): atomic writes, so a
full disk or a crash leaves the previous file whole; one warning while the
disk refuses, the newest document kept and retried; one line when it is
written again.
"""

from __future__ import annotations

import json
import logging
import os

try:
    import fcntl
except ImportError:  # Windows: no lock, as before
    fcntl = None  # type: ignore[assignment]
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.concurrency import run_blocking
from bridge.errors import StateInUse
from bridge.flow import Workers
from bridge.model import Change

if TYPE_CHECKING:
    from bridge.hub import Hub, Reshaped
    from bridge.looks import Looks

log = logging.getLogger(__name__)

#: Longest a change waits before it is on disk (the budget is 1 s).
SAVE_DELAY = 0.2
#: How long a failed write waits before the next try.
RETRY_DELAY = 1.0
FORMAT_VERSION = 1


def read_document(
    path: Path, key: str, what: str, instead: str, rest: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The ``key`` object of the JSON file at ``path``, or None when there is none to use; the whole
    document goes to ``rest`` when given (its other parts, read in the same go).

    A missing file is None, quietly. One that cannot be read (another
    user's, written under sudo; a folder) or is corrupt (not JSON, or no
    ``key`` object) is moved aside as ``<name>.unreadable-<time>`` or
    ``<name>.corrupt-<time>``, so that the next save starts a clean file
    and never writes over what it could not read, and is None with a
    warning. ``what`` names the file in the log ("state file") and
    ``instead`` says what the bridge does without it.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except (PermissionError, IsADirectoryError) as err:  # it stays so: never written over, moved aside
        log.warning("%s %s cannot be read (%s); %s; %s", what, path, err.strerror, _aside(path, "unreadable"), instead)
        return None
    except OSError as err:  # (too many open files, an I/O error: perhaps passing, the file left where it is)
        log.warning("%s %s cannot be read (%s); %s", what, path, err.strerror, instead)
        return None
    try:
        data = json.loads(raw.decode("utf-8-sig"))  # (a BOM, as Notepad writes, is no fault; not UTF-8: a ValueError)
        if not isinstance(data, dict) or not isinstance(data.get(key), dict):
            raise ValueError(f"no {key!r} object")
    except (ValueError, RecursionError) as err:
        if isinstance(err, RecursionError):
            err = ValueError("nested too deeply to read")
        log.warning("%s %s is corrupt (%s); %s; %s", what, path, err, _aside(path, "corrupt"), instead)
        return None
    written = data.get("version")
    if isinstance(written, int) and written > FORMAT_VERSION:  # a newer bridge's (a rollback mid-tour)
        kept = f"a copy kept as {path.name}.format-{written}"
        try:  # the next save writes this bridge's format over it
            shutil.copy2(path, path.with_name(f"{path.name}.format-{written}"))
        except OSError as err:
            kept = f"no copy kept ({err.strerror})"
        log.warning("%s %s is a newer Stage Bridge's (format %d): read as it can be; %s", what, path, written, kept)
    if rest is not None:
        rest.update(data)
    found: dict[str, Any] = data[key]
    return found


def _aside(path: Path, why: str) -> str:
    """Move the file at ``path`` to ``<name>.<why>-<time>``; say where it went, or why it could not."""
    aside = path.with_name(f"{path.name}.{why}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        path.replace(aside)
    except OSError as err:
        return f"could not be moved aside ({err.strerror})"
    return f"moved to {aside}"


def write_atomic(path: Path, payload: bytes, like: Path | None = None) -> None:
    """Write ``payload`` to ``path`` so that a reader sees the old or the new file, whole.

    A symbolic link is written through (its target gets the new text; the
    link stays a link), and a file there keeps its permissions; with
    ``like``, the file gets ``like``'s instead (a backup, the original's).
    """
    path = Path(os.path.realpath(path))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            os.fchmod(fd, stat.S_IMODE(os.stat(like or path).st_mode))  # (mkstemp makes it 0600)
        except FileNotFoundError:
            pass
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        raise
    # The rename itself is durable only once the folder is synced.
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


#: An unfinished save older than this was left by a crash (a save takes milliseconds).
LEFTOVER_AGE = 60.0


def sweep(path: Path) -> None:
    """Remove the temporary files of saves of ``path`` a crash cut short (``.<name>.*.tmp``, see
    :func:`write_atomic`), with one line; a recent one may be another process's save under way."""
    path = Path(os.path.realpath(path))
    now = time.time()
    removed = 0
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if now - leftover.stat().st_mtime > LEFTOVER_AGE:
                leftover.unlink()
                removed += 1
        except OSError:
            continue  # gone meanwhile, or not ours to remove
    if removed:
        log.info("removed %d unfinished save(s) of %s, left by a crash", removed, path)


class SavedFile:
    """A JSON document kept at ``path``, written whole or not at all.

    When a write fails (disk full, read-only, folder gone), the previous file
    stays as it was, the failure is logged once (``what`` names the file),
    and, with ``retry``, the newest payload is written again every
    :data:`RETRY_DELAY` seconds until it lands; a later :meth:`write` replaces
    it. The write itself runs off the event loop (fsync may take a while).
    """

    def __init__(
        self, path: Path, what: str, retry: bool = True, on_change: Callable[[str | None], None] | None = None
    ) -> None:
        self.path = path
        self.what = what
        self.retry = retry
        #: Told the reason when writing starts to fail, and None once it works again.
        self.on_change = on_change
        self._lock = threading.Lock()
        self._pending: bytes | None = None
        self._failing = False
        #: Why the newest document is not on disk, and since when (None while it is).
        self.error: str | None = None
        self.failing_since: float | None = None
        self._workers = Workers()

    def write(self, payload: bytes) -> bool:
        """Write ``payload`` now; True when it is on disk (else it is retried, see above)."""
        with self._lock:
            self._pending = payload
            return self._flush()

    def close(self) -> None:
        """Stop retrying, after one last try; what that try could not write is said to be lost."""
        self._workers.stop(timeout=5)
        with self._lock:
            if not self._flush():
                log.error(
                    "%s NOT saved to %s at stop (%s): what changed since %s is lost",
                    self.what,
                    self.path,
                    self.error,
                    time.strftime("%H:%M:%S", time.localtime(self.failing_since)),
                )

    def describe(self) -> dict[str, Any]:
        """The file, and why it is not up to date (``/healthz``)."""
        return {"file": str(self.path), "error": self.error, "failing_since": self.failing_since}

    def _flush(self) -> bool:
        # Under the lock: an older payload is never written after a newer one.
        payload = self._pending
        if payload is None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            run_blocking(write_atomic, self.path, payload)
        except OSError as err:
            self.error = str(err.strerror or err)
            if not self._failing:
                self._failing = True
                self.failing_since = time.time()
                if self.on_change is not None:
                    self.on_change(self.error)
                log.warning(
                    "cannot save %s to %s (%s); the previous file is kept whole, retrying every %g s",
                    self.what,
                    self.path,
                    err.strerror or err,
                    RETRY_DELAY,
                )
            if self.retry and not self._workers.running:
                self._workers.start((self._retry, f"retry {self.path.name}"))
            return False
        self._pending = None
        self.error = self.failing_since = None
        if self._failing:
            self._failing = False
            log.warning("%s saved to %s again", self.what, self.path)
            if self.on_change is not None:
                self.on_change(None)
        return True

    def _retry(self) -> None:
        while not self._workers.wait(RETRY_DELAY):
            with self._lock:
                if self._flush():
                    return


class DiskReport:
    """What the pages are told of the files the disk refuses: one ``saving`` event, ``{"error": text}``
    while any is refused (``{"error": null}`` once every one is written again)."""

    def __init__(self) -> None:
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self.push: Callable[[str, Any], None] | None = None

    def told(self, what: str) -> Callable[[str | None], None]:
        """The ``on_change`` of :class:`SavedFile` for the file that ``what`` names ("state", "scenes")."""

        def tell(error: str | None) -> None:
            with self._lock:
                if error is None:
                    self._errors.pop(what, None)
                else:
                    self._errors[what] = f"{what}: {error}"
                text = "; ".join(self._errors.values()) or None
            if self.push is not None:
                self.push("saving", {"error": text})

        return tell


class StateStore:
    """Adapter that saves the hub's values to ``path`` soon after each change."""

    name = "state"

    def __init__(
        self, hub: Hub, path: Path, looks: Looks | None = None, on_change: Callable[[str | None], None] | None = None
    ) -> None:
        self.hub = hub
        self.path = path
        self.looks = looks
        self._dirty = threading.Event()
        self._workers = Workers()
        # Retried by the writer below, with the values of the moment.
        self._file = SavedFile(path, "state", retry=False, on_change=on_change)
        self._looks_version = 0
        self.saved_version: tuple[int, int] = (-1, -1)
        self._lock_fd: int | None = None
        if looks is not None:
            looks.listen(self._looked)

    def _looked(self, cid: str, look: dict[str, str]) -> None:
        self._looks_version += 1
        self._dirty.set()

    def claim(self) -> None:
        """Hold ``<state file>.lock`` for as long as this bridge runs, or raise :class:`StateInUse`.

        Two bridges on one state file (two shows in one folder, both with the
        default name; one show started twice) would each write its values over
        the other's, and the scenes with them. The kernel drops the lock when
        the process ends, however it ends.
        """
        if self._lock_fd is not None or fcntl is None:  # (held already, or no locks here)
            return
        lock = self.path.with_name(f"{self.path.name}.lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:  # a folder no one may write: saving will say so, as before
            log.warning("cannot lock %s (%s); a second bridge on this state file goes unnoticed", lock, err.strerror)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise StateInUse(
                f"state file {self.path} is in use by another Stage Bridge (process {holder}); "
                "give each show its own [server] state_file, or stop the other one"
            ) from None
        except OSError as err:  # a file system without locks (some network shares)
            os.close(fd)
            log.warning("cannot lock %s (%s); a second bridge on this state file goes unnoticed", lock, err.strerror)
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def start(self) -> None:
        """Start the writer (the bridge claimed the file before reading it: :meth:`claim`)."""
        self._workers.start((self._run, "state-writer"))

    def stop(self) -> None:
        self._workers.stop(timeout=5, wake=(self._dirty.set,))
        self.save()
        self._file.close()  # says so when the last values could not be written
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the lock goes with it
            self._lock_fd = None

    def describe(self) -> dict[str, Any]:
        """``/healthz``: the state file, and why it is behind when the disk refuses it."""
        return self._file.describe()

    def send(self, change: Change) -> None:
        self._dirty.set()

    def reshape(self, reshaped: Reshaped) -> None:
        """A reload: the controls it removed are still saved (parked), and new ones are."""
        self._dirty.set()

    def save(self) -> bool:
        """Write the current values (and the desk's labels and colours) now; True when they are on disk."""
        version = (self.hub.version, self._looks_version)
        if version == self.saved_version:
            return True
        # With the values of controls a reload removed: they come back with them.
        values = {**self.hub.parked(), **self.hub.values()}
        body: dict[str, Any] = {"version": FORMAT_VERSION, "saved_at": time.time(), "values": values}
        if displaced := self.hub.displaced():  # (bridge.restore reads it back)
            body["before_reload"] = displaced
        if self.looks is not None:
            body["looks"] = self.looks.all()
        # (Text is kept encodable where it comes in; "replace" only so that a save can never fail on it.)
        payload = json.dumps(body, indent=1, ensure_ascii=False).encode("utf-8", "replace")
        if not self._file.write(payload):
            return False  # values keep flowing; the writer tries again
        self.saved_version = version
        return True

    def _run(self) -> None:
        while not self._workers.stopping.is_set():
            self._dirty.wait()
            if self._workers.stopping.is_set():
                return
            self._dirty.clear()
            try:
                saved = self.save()
            except Exception:  # a bug must not end the saving for the rest of the show
                log.exception("saving the state failed; trying again in %g s", RETRY_DELAY)
                saved = False
            if not saved:
                self._dirty.set()
                self._workers.wait(RETRY_DELAY)
                continue
            # Throttle: a flood of changes costs at most one write per SAVE_DELAY.
            self._workers.wait(SAVE_DELAY)
