"""The ``stage-bridge`` command: --check, --version, the [server] keys it checks, and an installed copy that serves."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from bridge.config import load_config
from bridge.errors import ConfigError
from tests.helpers import ROOT, BridgeProcess, terminate, wait_until, write_config

EXAMPLES = sorted((ROOT / "config" / "examples").glob("*.toml"))
COMMAND = Path(sys.executable).parent / "stage-bridge"


def command(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (``pip install .`` puts it beside the interpreter)."""
    assert COMMAND.is_file(), f"{COMMAND} missing: the package is not installed with its [project.scripts]"
    return subprocess.run([str(COMMAND), *args], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)


def server_table(tmp_path: Path, lines: str) -> Path:
    return write_config(tmp_path, extra=lines)


# -- [server] tls and theme ---------------------------------------------------------


@pytest.mark.unit
def test_theme_defaults_to_dark_and_takes_the_three_names(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path)).server.theme == "dark"
    for theme in ("dark", "light", "contrast"):
        assert load_config(server_table(tmp_path, f'theme = "{theme}"')).server.theme == theme


@pytest.mark.unit
def test_tls_auto_is_kept_beside_the_state_file_or_the_config(tmp_path: Path) -> None:
    config = load_config(server_table(tmp_path, 'tls = "auto"'))
    tls = config.server.tls
    assert tls is not None and tls.auto and config.server.scheme == "https"
    assert (tls.cert, tls.key) == (tmp_path / "state.cert.pem", tmp_path / "state.key.pem")
    bare = load_config(write_config(tmp_path, extra='tls = "auto"', state_file=""))
    assert bare.server.tls is not None and bare.server.tls.cert == tmp_path / "bridge.cert.pem"
    assert load_config(write_config(tmp_path)).server.scheme == "http"


@pytest.mark.unit
def test_tls_files_are_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "show.pem").write_text("x")
    (tmp_path / "certs" / "show.key").write_text("x")
    config = load_config(server_table(tmp_path, 'tls = { cert = "certs/show.pem", key = "certs/show.key" }'))
    assert config.server.tls is not None and not config.server.tls.auto
    assert config.server.tls.key == tmp_path / "certs" / "show.key"


BROKEN = [
    ('theme = "blue"', "server.theme", 'expected "dark", "light" or "contrast", got \'blue\''),
    ("theme = 3", "server.theme", "expected a string, got 3"),
    ('tls = "yes"', "server.tls", 'expected "auto" or a table { cert = "cert.pem", key = "key.pem" }, got \'yes\''),
    ('tls = { cert = "c.pem" }', "server.tls.key", 'expected the path of a PEM file, e.g. key = "key.pem"'),
    ('tls = { cert = "c.pem", key = "k.pem", ca = "x" }', "server.tls.ca", "unknown key; expected one of cert, key"),
    ('tls = { cert = "nowhere.pem", key = "k.pem" }', "server.tls.cert", "file not found: "),
]


@pytest.mark.unit
@pytest.mark.parametrize(("line", "key", "words"), BROKEN, ids=[b[1] + ":" + b[0][:12] for b in BROKEN])
def test_bad_tls_and_theme_name_the_key(tmp_path: Path, line: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(server_table(tmp_path, line))
    assert caught.value.key == key
    assert words in caught.value.expected
    assert caught.value.line == 5  # the [server] table's fifth line holds it


# -- The console script -----------------------------------------------------------------


def test_version_is_the_package_version() -> None:
    from importlib.metadata import version

    result = command("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"stage-bridge {version('stage-bridge')}"


@pytest.mark.parametrize("path", [ROOT / "config" / "default.toml", *EXAMPLES], ids=lambda p: p.name)
def test_check_passes_every_shipped_config(path: Path) -> None:
    result = command("--check", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    [line] = result.stdout.splitlines()
    assert line.startswith(f"{path}: ok, {len(load_config(path).controls)} controls")


@pytest.mark.parametrize(
    "broken",
    [
        'theme = "blue"',
        'tls = { cert = "nowhere.pem", key = "k.pem" }',
        "port = [",  # not TOML at all
    ],
)
def test_check_refuses_a_broken_config_with_the_line_start_up_prints(tmp_path: Path, broken: str) -> None:
    config = server_table(tmp_path, broken)
    checked = command("--check", str(config))
    assert checked.returncode == 2
    assert checked.stdout == ""
    [line] = checked.stderr.splitlines()
    assert line.startswith(f"error: {config}:")
    # Starting with it says the very same line, and the same exit code.
    started = subprocess.run(
        [sys.executable, "-m", "bridge", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert (started.returncode, started.stderr.splitlines()) == (2, [line])


def test_check_refuses_certificate_files_a_start_cannot_use(tmp_path: Path) -> None:
    """Garbage in the PEM files passed the check ("ok ... tls") and the start failed (a reviewer's case)."""
    (tmp_path / "show.pem").write_text("not a certificate\n")
    (tmp_path / "show.key").write_text("not a key\n")
    config = server_table(tmp_path, 'tls = { cert = "show.pem", key = "show.key" }')
    checked = command("--check", str(config))
    assert checked.returncode == 2 and checked.stdout == ""
    assert checked.stderr.startswith(f"error: cannot read the certificate {tmp_path / 'show.pem'}")


def test_the_shipped_config_of_an_installed_package_keeps_its_files_in_the_users_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stage-bridge` with no --config wrote its state file, and its keys, inside site-packages: lost at the next
    upgrade, refused in a system install (a reviewer's case)."""
    from bridge.config import parse_text
    from bridge.config.sections import SHIPPED

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    text = (ROOT / "config" / "default.toml").read_text(encoding="utf-8")
    config = parse_text(text, SHIPPED / "default.toml")
    assert config.server.state_file == tmp_path / "state" / "stage-bridge" / "state.json"
    assert (tmp_path / "state" / "stage-bridge").is_dir()
    own = parse_text(text, tmp_path / "show" / "show.toml")  # any other config: beside itself, as before
    assert own.server.state_file == tmp_path / "show" / "state.json"


def test_check_of_a_missing_file_is_exit_2(tmp_path: Path) -> None:
    result = command("--check", str(tmp_path / "none.toml"))
    assert (result.returncode, result.stderr) == (2, f"error: {tmp_path / 'none.toml'}: file not found\n")


def test_the_command_serves_like_python_m_bridge(tmp_path: Path) -> None:
    proc = BridgeProcess(write_config(tmp_path))  # not started: its free port and its HTTP helpers
    started = subprocess.Popen(
        [str(COMMAND), "--config", str(proc.config), "--host", "127.0.0.1", "--port", str(proc.port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        proc.proc = started
        proc.wait_ready()
        assert proc.get_json("/healthz")["server_model"] == "gevent"  # patched before the app was imported
    finally:
        terminate(started)
        assert started.stdout is not None
        started.stdout.close()


# -- An installed copy -----------------------------------------------------------------------


def test_an_installed_wheel_carries_the_page_and_serves_it(tmp_path: Path) -> None:
    """Built offline from the checkout's files, installed elsewhere: the page, its files and the default config
    come from inside the installed package, not from this checkout."""
    source = tmp_path / "source"
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.split()
    if not listed:
        listed = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts]
    for name in listed:
        if name.split("/")[0] in ("bridge", "static", "templates", "config") or name in ("pyproject.toml", "README.md"):
            if (ROOT / name).is_file():
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = wheels.glob("stage_bridge-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"bridge/static/js/stage.js", "bridge/templates/index.html", "bridge/shipped/default.toml"} <= names
    target = tmp_path / "installed"
    installed = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    script = target / "bin" / "stage-bridge"
    assert script.is_file()
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    check = subprocess.run(
        [sys.executable, str(script), "--check", str(target / "bridge" / "shipped" / "default.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert check.returncode == 0, check.stderr
    proc = BridgeProcess(write_config(tmp_path))
    started = subprocess.Popen(
        [sys.executable, str(script), "--config", str(proc.config), "--host", "127.0.0.1", "--port", str(proc.port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    proc.proc = started
    try:
        proc.wait_ready()
        where = subprocess.run(
            [sys.executable, "-c", "import bridge.app as a; print(a.shipped('static'))"],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            cwd=tmp_path,
        )
        assert where.stdout.strip() == str(target / "bridge" / "static")
        page = proc.get_text("/")
        assert 'id="slider1"' in page
        for path in ("/static/js/stage.js", "/static/css/stage.css"):
            with urllib.request.urlopen(proc.url + path, timeout=5) as response:
                assert response.status == 200 and response.read()
        wait_until(lambda: proc.get_json("/healthz")["status"] == "ok", what="health")
    finally:
        terminate(started)
