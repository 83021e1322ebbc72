"""Our ``run`` against two independent hosts, and ``serve`` on the wasmtime CLI.

Every component fixture is run or called with ``wasmtime run`` (``--invoke`` where it exports
functions) and with ``hatch-wasm-oci run``: exit statuses, stdout, the guest's stderr and the
printed values must match. The ``wasi:cli/command`` fixture also runs under ``jco run``
(Node.js). A componentize-py ``wasi:http/proxy`` component pushed to a real registry is served
with ``hatch-wasm-oci serve REF`` and answers HTTP on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hosts import HostMissing, jco, jco_env, wasmtime_cli
from tests.registry_fixtures import RegistryServer, pack_layout, plain_push

pytestmark = pytest.mark.slow

ECHO_CALLS = [
    "version()",
    "echo-bool(true)",
    "echo-ints(-128, 255, -32768, 65535, -2147483648, 4294967295, -9223372036854775808, "
    "18446744073709551615)",
    "echo-floats(1.5, -0.1)",
    "echo-floats(inf, nan)",
    "echo-floats(1e10, 3.141592653589793)",
    "echo-char('\\u{1F600}')",
    'echo-string("a\\"b\\\\n\\t")',
    "echo-bytes([0, 1, 255])",
    'echo-points([{x: 1, y: -2}, {x: 3, y: 4, label: some("p")}])',
    "echo-shape(rect((1.5, 2)))",
    "echo-shape(circle(0.25))",
    "echo-shape(dot)",
    "echo-color(blue)",
    "echo-perms({read, exec})",
    "echo-perms({})",
    "echo-option(some(none))",
    "echo-option(some(some(7)))",
    "echo-option(none)",
    "echo-result(err(3))",
    'echo-result(ok("fine"))',
    "echo-unit-result(ok)",
    "echo-unit-result(err)",
    "nothing()",
    "acme:values/echo.echo-color@0.1.0(green)",  # wasmtime's qualified form
]


@pytest.fixture(scope="module")
def wasmtime() -> Path:
    try:
        return wasmtime_cli()
    except HostMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, wasmtime: Path) -> dict[str, str]:
    """One environment for both hosts: HOME (so wasmtime's own compiled cache) and our cache
    under this module's temporary directory; the wasmtime CLI for ``serve``."""
    home = tmp_path_factory.mktemp("hosts-home")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HATCH_WASM_OCI_")}
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        environ.pop(name, None)
    environ.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / "cache"),
        HATCH_WASM_OCI_CACHE=str(home / "hatch-wasm-oci"),
        HATCH_WASM_OCI_WASMTIME=str(wasmtime),
    )
    return environ


def ours(env: dict[str, str], *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hatch_wasm_oci", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def theirs(
    env: dict[str, str], wasmtime: Path, *args: str | os.PathLike[str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(wasmtime), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def guest_stderr(stderr: str) -> str:
    """What the guest wrote to stderr: before wasmtime's ``Error:`` report or our one line."""
    lines = stderr.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.startswith(("Error: ", "hatch-wasm-oci: ")):
            return "".join(lines[:index])
    return stderr


# -- every fixture on both hosts ---------------------------------------------------------------


def test_values_fixture_every_call_prints_the_same_value_on_both_hosts(
    values_component: Path, wasmtime: Path, env: dict[str, str]
) -> None:
    for call in ECHO_CALLS:
        reference = theirs(env, wasmtime, "run", "--invoke", call, values_component)
        done = ours(env, "run", values_component, "--invoke", call)
        assert reference.returncode == 0, (call, reference.stderr)
        assert (done.returncode, done.stdout, done.stderr) == (0, reference.stdout, ""), call


@pytest.mark.parametrize(
    ("call", "guest_raised"),
    [
        ('fail("boom")', "ValueError: boom"),
        ('read-file("/data/x.txt")', "FileNotFoundError"),
        ('get-env("SHOP")', "KeyError: 'SHOP'"),
    ],
)
def test_a_trap_in_an_exported_function_matches_wasmtime(
    values_component: Path, wasmtime: Path, env: dict[str, str], call: str, guest_raised: str
) -> None:
    reference = theirs(env, wasmtime, "run", "--invoke", call, values_component)
    done = ours(env, "run", values_component, "--invoke", call)
    assert reference.returncode == 134  # 128 + SIGABRT
    assert (done.returncode, done.stdout) == (reference.returncode, reference.stdout)
    assert guest_raised in guest_stderr(reference.stderr)
    assert guest_stderr(done.stderr) == guest_stderr(reference.stderr)
    assert done.stderr.splitlines()[-1].startswith("hatch-wasm-oci: ")


@pytest.mark.parametrize(
    "args",
    [
        ("a", "--b", "c"),
        ("fail",),  # wasi:cli/run returns err
        ("exit", "0"),
        ("exit", "7"),  # sys.exit(7): the guest's libc reports exit(err), so 1 on both
        ("read", "/data/stock.txt"),  # no --dir: the guest traps (FileNotFoundError)
    ],
)
def test_the_command_fixture_matches_wasmtime(
    cli_component: Path, wasmtime: Path, env: dict[str, str], args: tuple[str, ...]
) -> None:
    reference = theirs(env, wasmtime, "run", cli_component, *args)
    done = ours(env, "run", cli_component, *args)
    assert (done.returncode, done.stdout) == (reference.returncode, reference.stdout)
    assert guest_stderr(done.stderr) == guest_stderr(reference.stderr)
    expected = {"fail": 1, "exit": 1 if args[-1] == "7" else 0, "read": 134}.get(args[0], 0)
    assert done.returncode == expected, done.stderr


def test_directories_given_or_missing_on_both_hosts(
    cli_component: Path, wasmtime: Path, env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "stock.txt").write_text("12 apples")
    given = ("--dir", f"{tmp_path}::/data")
    reference = theirs(env, wasmtime, "run", *given, cli_component, "read", "/data/stock.txt")
    done = ours(env, "run", *given, cli_component, "read", "/data/stock.txt")
    assert reference.returncode == 0 and reference.stdout.endswith("12 apples\n")
    assert (done.returncode, done.stdout, done.stderr) == (0, reference.stdout, "")
    # A --dir that does not exist: wasmtime exits 1 (as a guest's err would); we refuse it as
    # bad input, exit 2, one line (README: "Run it").
    missing = ("--dir", f"{tmp_path / 'nope'}::/data")
    reference = theirs(env, wasmtime, "run", *missing, cli_component)
    done = ours(env, "run", *missing, cli_component)
    assert reference.returncode == 1 and "No such file or directory" in reference.stderr
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"hatch-wasm-oci: --dir {tmp_path / 'nope'}: not a directory\n"


def test_a_component_importing_a_non_wasi_interface_is_refused_by_both(
    tiny_component: Path, calc_component: Path, wasmtime: Path, env: dict[str, str]
) -> None:
    for component, name, call in [
        (tiny_component, "acme:tiny/host@0.1.0", "add(1, 2)"),
        (calc_component, "acme:calc/logging@1.2.0", 'greet("x")'),
    ]:
        reference = theirs(env, wasmtime, "run", "--invoke", call, component)
        done = ours(env, "run", component, "--invoke", call)
        assert reference.returncode == 1 and f"component imports instance `{name}`" in (
            reference.stderr
        )
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr == (
            f"hatch-wasm-oci: {component}: imports {name}, which the WASI 0.2 host does not "
            "provide\n"
        )


def test_the_command_fixture_runs_under_jco(cli_component: Path, env: dict[str, str]) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (apt-get install nodejs)")
    try:
        script = jco()
    except HostMissing as exc:
        pytest.fail(str(exc))
    for args, status in [(("a", "b"), 0), (("fail",), 1), (("exit", "7"), 1)]:
        on_node = subprocess.run(
            [node, str(script), "run", str(cli_component), *args],
            capture_output=True,
            text=True,
            env={**env, **jco_env(node)},
            timeout=600,
            check=False,
        )
        done = ours(env, "run", cli_component, *args)
        assert (on_node.returncode, done.returncode) == (status, status), on_node.stderr
        assert on_node.stdout == done.stdout, args


# -- serve -------------------------------------------------------------------------------------


SERVE = [sys.executable, "-m", "hatch_wasm_oci", "serve"]


def _first_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line ``process`` writes to stdout (compiling can take half a minute here)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        if not ready:
            raise AssertionError(f"no line within {timeout} s")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise AssertionError(f"stdout closed (status {process.wait()}): {data!r}")
        data += chunk
    return data.decode().splitlines()[0]


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def _refuses_connections(url: str) -> bool:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.fixture
def serving(env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_a_registry_reference_answers_http(
    http_component: Path,
    registry_anon: RegistryServer,
    env: dict[str, str],
    tmp_path: Path,
    serving: list[subprocess.Popen[bytes]],
) -> None:
    layout = pack_layout(http_component, tmp_path / "layout", tags=("0.1.0",))
    reference = f"{registry_anon.address}/acme/hello-http:0.1.0"
    pushed = plain_push(layout.layout, reference, env)
    assert pushed.returncode == 0, pushed.stderr
    layer = hashlib.sha256(http_component.read_bytes()).hexdigest()

    for stop, status in [(signal.SIGINT, 0), (signal.SIGTERM, 128 + signal.SIGTERM)]:
        process = subprocess.Popen(
            [*SERVE, reference, "--plain-http", "--addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        serving.append(process)
        url = _first_line(process, timeout=300)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
            assert response.headers["content-type"] == "text/plain"
            assert response.read() == b"hello\n"
        # wasmtime got the verified bytes as an anonymous sealed file, not a path.
        (child,) = _children(process.pid)
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[:-1]
        assert argv[1:4] == [b"serve", b"--addr", b"127.0.0.1:0"]
        fd_path = argv[-1].decode()
        assert fd_path.startswith("/dev/fd/")
        target = os.readlink(f"/proc/{child}/fd/{fd_path.rsplit('/', 1)[1]}")
        assert target.startswith("/memfd:component.wasm")
        with open(f"/proc/{child}/fd/{fd_path.rsplit('/', 1)[1]}", "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == layer

        process.send_signal(stop)  # passed on to wasmtime, which stops
        assert process.wait(timeout=60) == status
        assert _refuses_connections(url)
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)


FAKE_WASMTIME = """\
#!{python}
# Stands in for wasmtime: first does what an attacker racing the check would do (replace the
# layout's verified blob), then reports what it was given and would have served.
import hashlib, json, os, sys
swap = os.environ["SWAP"]
os.chmod(swap, 0o644)
with open(swap, "wb") as handle:
    handle.write(b"\\0asm\\x0d\\0\\x01\\0")
with open(sys.argv[-1], "rb") as handle:
    served = hashlib.sha256(handle.read()).hexdigest()
report = {{"argv": sys.argv[1:], "sha256": served, "SHOP": os.environ.get("SHOP")}}
with open(os.environ["REPORT"], "w") as handle:
    json.dump(report, handle)
print("Serving HTTP on http://127.0.0.1:1/", file=sys.stderr, flush=True)
"""


def test_serve_hands_wasmtime_only_the_verified_bytes(
    http_component: Path, env: dict[str, str], tmp_path: Path
) -> None:
    import json

    layout = pack_layout(http_component, tmp_path / "layout", tags=("0.1.0",))
    digest = layout.layer.digest
    assert digest == "sha256:" + hashlib.sha256(http_component.read_bytes()).hexdigest()
    fake = tmp_path / "wasmtime"
    fake.write_text(FAKE_WASMTIME.format(python=sys.executable))
    fake.chmod(0o755)
    report = tmp_path / "report.json"
    blob = layout.layout / "blobs" / "sha256" / digest.split(":")[1]
    fake_env = {
        **env,
        "HATCH_WASM_OCI_WASMTIME": str(fake),
        "SWAP": str(blob),
        "REPORT": str(report),
    }
    done = ours(fake_env, "serve", f"{layout.layout}:0.1.0", "--env", "SHOP=acme")
    assert (done.returncode, done.stdout, done.stderr) == (0, "http://127.0.0.1:1/\n", "")
    seen = json.loads(report.read_text())
    assert seen["sha256"] == digest.split(":")[1]  # not the bytes swapped in after the check
    assert blob.read_bytes() != http_component.read_bytes()  # the swap did happen
    # Loopback unless told; the variable's value reaches wasmtime's environment, never its
    # command line (which every user of the machine can read).
    assert seen["argv"][:5] == ["serve", "--addr", "127.0.0.1:8080", "-S", "cli=y"]
    assert seen["argv"][5:7] == ["--env", "SHOP"] and "acme" not in " ".join(seen["argv"])
    assert seen["SHOP"] == "acme"


def test_serve_refuses_in_one_line(
    cli_component: Path, http_component: Path, env: dict[str, str], tmp_path: Path
) -> None:
    done = ours(env, "serve", cli_component)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"hatch-wasm-oci: {cli_component}: exports no wasi:http/incoming-handler, so it is not "
        "a wasi:http/proxy component to serve; exports: exports, wasi:cli/run@0.2.12\n"
    )
    no_cli = {k: v for k, v in env.items() if k != "HATCH_WASM_OCI_WASMTIME"}
    no_cli["PATH"] = str(tmp_path)  # python is run by its full path
    done = ours(no_cli, "serve", http_component)
    assert done.returncode == 2
    assert done.stderr == (
        "hatch-wasm-oci: `serve` needs the wasmtime CLI, which is not on PATH: install it "
        "(https://docs.wasmtime.dev/cli-install.html) and put it on PATH, or point "
        "HATCH_WASM_OCI_WASMTIME at the executable\n"
    )
    for args, message in [
        (("--addr", "localhost:8080"), "--addr takes IP:PORT (e.g. 127.0.0.1:8080), got "),
        (("--addr", "127.0.0.1:99999"), "--addr takes IP:PORT"),
        (("--env", "LD_PRELOAD=/tmp/x.so"), "--env LD_PRELOAD=...: wasmtime itself reads"),
        (("--dir", str(tmp_path / "nope")), "not a directory"),
    ]:
        done = ours(env, "serve", http_component, *args)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith(f"hatch-wasm-oci: {message}") or message in done.stderr
        assert len(done.stderr.splitlines()) == 1
    # wasmtime itself failing before it listens (the port is taken): its error, one line.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = ours(env, "serve", http_component, "--addr", f"127.0.0.1:{port}")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "hatch-wasm-oci: wasmtime serve failed: Address already in use (os error 98)\n"
    )
