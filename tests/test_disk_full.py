"""A full disk under a running bridge: state, scenes and learned bindings stay whole, and are saved once there is room.

The bridge runs in a mount namespace of its own (``unshare -m``) in which a
small tmpfs holds its config and every file it writes; the test reaches
that tmpfs through ``/proc/PID/root`` and fills it to the last byte, then
frees it. Nothing outside the test's namespace is touched.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import BridgeProcess, Client, unavailable, wait_until, write_config

Connect = Callable[[str], Client]

#: Room for the config, the three files and the log lines of a few saves; small, so filling it is quick.
TMPFS_SIZE = "512k"
MOUNT_AND_RUN = (
    'mount -t tmpfs -o size={size},mode=0755 stage-bridge-test "$1" && cp "$2" "$1/bridge.toml" && shift 2 && exec "$@"'
)


def namespaced_bridge(tmp_path: Path) -> BridgeProcess:
    """A bridge whose config folder is a fresh tmpfs, visible to that bridge only."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        unavailable("the full-disk test mounts a tmpfs in a private mount namespace: needs root and unshare")
    stage = tmp_path / "stage"
    stage.mkdir()
    staged = write_config(
        stage,
        # MIDI with no JACK server to reach: off, but its bindings file is in use all the same.
        extra='[midi]\nbackend = "mido.backends.rtmidi/UNIX_JACK"\ninput = "in"\noutput = "out"\n',
    )
    disk = tmp_path / "disk"
    disk.mkdir()
    wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        MOUNT_AND_RUN.format(size=TMPFS_SIZE),
        "sh",
        str(disk),
        str(staged),
    ]
    env = {"JACK_DEFAULT_SERVER": f"no-such-server-{os.getpid()}"}
    return BridgeProcess(disk / "bridge.toml", env=env, wrapper=wrapper)


def fill(folder: Path) -> Path:
    """Write a file into ``folder`` until the disk is full; the file."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as fh:
        while True:
            try:
                fh.write(chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err
                break
        # Every last page: a smaller write may still fit after a big one is refused.
        while True:
            try:
                fh.write(b"\0" * 512)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err
                return filler


def document(path: Path, key: str) -> dict[str, Any]:
    """The ``key`` object of a JSON file that must be whole."""
    body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))[key]
    return body


def test_full_disk_keeps_every_file_whole_and_saving_resumes_with_room(tmp_path: Path, client_factory: Connect) -> None:
    proc = namespaced_bridge(tmp_path)
    try:
        proc.start()
        assert proc.proc is not None
        # The tmpfs as the bridge sees it (the test's own view of the folder is the plain one below it).
        disk = Path(f"/proc/{proc.proc.pid}/root") / str(proc.config.parent).lstrip("/")
        state, scenes, bindings = disk / "state.json", disk / "state.scenes.json", disk / "bridge.mappings.json"
        client = client_factory(proc.url)
        client.send("slider1", 10)
        wait_until(lambda: state.exists() and document(state, "values")["slider1"] == 10, what="a first save")
        assert proc.put_json("/api/scenes/before", {})[0] == 200
        status, body = proc.delete_json("/api/midi/bindings/slider2")
        assert status == 200 and body["removed"] is True, body
        assert document(scenes, "scenes").keys() == {"before"}
        assert document(bindings, "bindings") == {"slider2": None}

        filler = fill(disk)
        client.send("slider1", 20)
        assert proc.put_json("/api/scenes/during", {})[0] == 200
        assert proc.delete_json("/api/midi/bindings/slider1")[0] == 200
        for what in ("state", "scenes", "MIDI bindings"):
            wait_until(lambda what=what: f"cannot save {what} to" in proc.output(), what=f"the {what} warning")
        # The values flow on; each file is still the last one written, whole.
        client.send("slider1", 30)
        wait_until(lambda: proc.get_json("/api/values")["slider1"] == 30, what="slider1 set on a full disk")
        assert document(state, "values")["slider1"] == 10
        assert document(scenes, "scenes").keys() == {"before"}
        assert document(bindings, "bindings") == {"slider2": None}

        filler.unlink()
        wait_until(lambda: document(state, "values")["slider1"] == 30, what="the state saved again")
        wait_until(lambda: document(scenes, "scenes").keys() == {"before", "during"}, what="the scenes saved again")
        wait_until(
            lambda: document(bindings, "bindings") == {"slider2": None, "slider1": None}, what="the bindings saved"
        )
        # (Each line is logged just after its file is renamed into place: waited for, not raced.)
        wait_until(lambda: all(f"{w} saved to" in proc.output() for w in ("state", "scenes", "MIDI bindings")))
        log = proc.output()
        for what in ("state", "scenes", "MIDI bindings"):
            assert log.count(f"cannot save {what} to") == 1, log  # one warning, however many retries
            assert log.count(f"{what} saved to") == 1, log
        # No temporary file left behind by the refused writes.
        assert sorted(p.name for p in disk.iterdir() if p.name.startswith(".")) == []
        assert "Traceback" not in log
    finally:
        proc.stop()
