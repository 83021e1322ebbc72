"""The standing adversarial suite for the runtime's caches and for guests that never stop.

An attacker who can write into a cache directory plants what public code lets them compute:
their own module compiled by wasmtime-py and serialized, sealed the way the old format did
(a plain SHA-256) or the new format's way under a key of their own; or a self-consistent
artifact in the content store with a tag record naming it. None of it may run: the victim's
own code runs (its cache entry recompiled, with a one-line notice) or the run is refused in
one line. Native code is never read from a cache directory another user owns or others can
write to. SIGINT and SIGTERM end an endless guest within a second, as they end
``wasmtime run``, leaving nothing in ``$TMPDIR``; an endless stderr writer never grows a file.

Nothing here uses the implementation's sealing helpers: the plants are made from scratch.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.metadata
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import wasmtime

from hatch_wasm_oci.oci.layout import pack
from tests.adversarial_fixtures import Run, small_filesystem
from tests.adversarial_fixtures import run_bounded as _run_bounded
from tests.registry_fixtures import RegistryServer, plain_push, unique_repo

VICTIM_OUTPUT = "the victim's own code ran\n"
PWNED = "PWNED: planted cache code\n"


def _printing_module(text: str, *, exit_code: int = 0) -> bytes:
    """A WASI preview 1 command that prints ``text`` on stdout and exits ``exit_code``."""
    data = text.encode()
    escaped = "".join(f"\\{b:02x}" for b in data)
    return bytes(wasmtime.wat2wasm(f"""
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{escaped}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {len(data)}))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const {exit_code}))))
"""))


def run_bounded(*args: str | os.PathLike[str], env: Mapping[str, str], timeout: float = 60) -> Run:
    """:func:`tests.adversarial_fixtures.run_bounded` for wasm runs (no address-space limit:
    wasmtime reserves guard pages by the GiB; the peak RSS is still checked)."""
    return _run_bounded(*args, env=env, timeout=timeout, address_space_limit=None)


# -- what an attacker computes from public code --------------------------------------------


def _public_cache_key(wasm: bytes, interruptible: bool) -> str:
    """The compiled-cache key of a core module: a hash of public facts (engine.py's recipe)."""
    digest = "sha256:" + hashlib.sha256(wasm).hexdigest()
    settings = "epoch-interruption" if interruptible else "defaults"
    version = importlib.metadata.version("wasmtime")
    parts = [digest, "module", version, settings, platform.machine(), sys.platform]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _attacker_code(wasm: bytes, interruptible: bool) -> bytes:
    """The attacker's module compiled and serialized for the victim's engine settings."""
    config = wasmtime.Config()
    config.epoch_interruption = interruptible
    return bytes(wasmtime.Module(wasmtime.Engine(config), wasm).serialize())


def _v1_entry(key: str, code: bytes) -> bytes:
    """The old entry format: magic line, SHA-256 of key and code, code."""
    seal = hashlib.sha256(key.encode() + b"\0" + code).digest()
    return b"hatch-wasm-oci compiled v1\n" + seal + code


def _v2_plain_hash(key: str, code: bytes) -> bytes:
    """The new magic line with a plain hash where the HMAC belongs."""
    seal = hashlib.sha256(key.encode() + b"\0" + code).digest()
    return b"hatch-wasm-oci compiled v2\n" + seal + code


def _v2_attacker_key(key: str, code: bytes) -> bytes:
    """The new format exactly, sealed with a key of the attacker's own."""
    mac = hmac.new(b"attacker's own key".ljust(32, b"!"), digestmod=hashlib.sha256)
    mac.update(b"compiled\0" + key.encode() + b"\0" + code)
    return b"hatch-wasm-oci compiled v2\n" + mac.digest() + code


PLANTS: dict[str, Callable[[str, bytes], bytes]] = {
    "v1-sha256": _v1_entry,
    "v2-plain-hash": _v2_plain_hash,
    "v2-attacker-key": _v2_attacker_key,
}


# -- the victim's side ------------------------------------------------------------------------


def _victim_env(tmp_path: Path, cache: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HATCH_WASM_OCI", "XDG_"))
    }
    env.update(
        HOME=str(home),
        XDG_STATE_HOME=str(home / "state"),
        HATCH_WASM_OCI_CACHE=str(cache),
        TMPDIR=str(tmp_path / "tmp"),
    )
    return env


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.wasm"
    path.write_bytes(_printing_module(VICTIM_OUTPUT))
    return path


def _check_victim_ran(run: Run, *notice: str) -> None:
    """The victim's output, exit 0, and exactly one notice line containing ``notice``."""
    run.check_no_traceback()
    assert PWNED not in run.stdout, "the planted code ran"
    assert (run.returncode, run.stdout) == (0, VICTIM_OUTPUT), run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hatch-wasm-oci: "), run.stderr
    for needle in notice:
        assert needle in lines[0], (needle, run.stderr)


@pytest.mark.parametrize("plant", sorted(PLANTS))
@pytest.mark.parametrize("timeout", [None, "30"], ids=["plain", "timeout"])
def test_a_planted_compiled_entry_never_runs(
    tmp_path: Path, victim: Path, plant: str, timeout: str | None
) -> None:
    cache = tmp_path / "cache"
    env = _victim_env(tmp_path, cache)
    extra = ("--timeout", timeout) if timeout else ()
    first = run_bounded("run", victim, *extra, env=env)
    assert (first.returncode, first.stdout, first.stderr) == (0, VICTIM_OUTPUT, "")

    key = _public_cache_key(victim.read_bytes(), interruptible=timeout is not None)
    entry = cache / "compiled" / f"{key}.cwasm"
    assert entry.is_file(), sorted(os.listdir(cache / "compiled"))  # the attacker's aim is right
    attacker = _printing_module(PWNED, exit_code=7)
    entry.write_bytes(PLANTS[plant](key, _attacker_code(attacker, timeout is not None)))

    _check_victim_ran(run_bounded("run", victim, *extra, env=env), str(entry), "does not verify")
    # Recompiled and resealed: the next run is quiet.
    again = run_bounded("run", victim, *extra, env=env)
    assert (again.returncode, again.stdout, again.stderr) == (0, VICTIM_OUTPUT, "")


def test_an_entry_sealed_by_another_user_is_not_trusted(tmp_path: Path, victim: Path) -> None:
    """Another user of hatch-wasm-oci (their own key) compiles the attacker's module; their
    genuine entry, copied under the victim's key, is not the victim's."""
    cache = tmp_path / "cache"
    env = _victim_env(tmp_path, cache)
    attacker = tmp_path / "attacker.wasm"
    attacker.write_bytes(_printing_module(PWNED))
    other_env = {**env, "XDG_STATE_HOME": str(tmp_path / "other-user-state")}
    assert run_bounded("run", attacker, env=other_env).stdout == PWNED
    assert run_bounded("run", victim, env=env).stdout == VICTIM_OUTPUT
    compiled = cache / "compiled"
    theirs = compiled / f"{_public_cache_key(attacker.read_bytes(), False)}.cwasm"
    mine = compiled / f"{_public_cache_key(victim.read_bytes(), False)}.cwasm"
    shutil.copyfile(theirs, mine)
    _check_victim_ran(run_bounded("run", victim, env=env), "does not verify")


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: data[:20],
        lambda data: b"",
        lambda data: os.urandom(len(data)),
        lambda data: data[:-64] + bytes(64),
    ],
    ids=["half", "inside-header", "empty", "garbage", "zeroed-tail"],
)
def test_a_damaged_entry_is_recompiled_never_a_crash(
    tmp_path: Path, victim: Path, damage: Callable[[bytes], bytes]
) -> None:
    cache = tmp_path / "cache"
    env = _victim_env(tmp_path, cache)
    assert run_bounded("run", victim, env=env).stdout == VICTIM_OUTPUT
    (entry,) = (cache / "compiled").iterdir()
    entry.write_bytes(damage(entry.read_bytes()))
    _check_victim_ran(run_bounded("run", victim, env=env), "does not verify")


# -- StrictModes: a cache others can write to is not read ------------------------------------

FOREIGN_UID = 65534

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown to another uid needs root"
)


def _make_untrusted(how: str, directory: Path) -> str:
    """Make ``directory`` untrusted in the way ``how`` says; the fix the notice must name."""
    if how == "foreign-owner":
        os.chown(directory, FOREIGN_UID, FOREIGN_UID)
        return f"chown {os.geteuid()} {directory}"
    os.chmod(directory, 0o770 if how == "group-writable" else 0o777)
    return f"chmod go-w {directory}"


@pytest.mark.parametrize("where", ["compiled", "root"])
@pytest.mark.parametrize(
    "how",
    [
        pytest.param("foreign-owner", marks=needs_root),
        "group-writable",
        "world-writable",
    ],
)
def test_native_code_is_never_read_from_a_cache_others_can_write(
    tmp_path: Path, victim: Path, where: str, how: str
) -> None:
    """The planted entry is in the old format that today's code accepted: the directory rule
    alone refuses it (the notice is about the directory, not the seal)."""
    cache = tmp_path / "cache"
    env = _victim_env(tmp_path, cache)
    assert run_bounded("run", victim, env=env).stdout == VICTIM_OUTPUT
    key = _public_cache_key(victim.read_bytes(), interruptible=False)
    entry = cache / "compiled" / f"{key}.cwasm"
    entry.write_bytes(_v1_entry(key, _attacker_code(_printing_module(PWNED), False)))
    directory = cache / "compiled" if where == "compiled" else cache
    fix = _make_untrusted(how, directory)
    planted = entry.read_bytes()

    done = run_bounded("run", victim, env=env)
    _check_victim_ran(done, f"cache directory {directory}", fix, "compiling in memory")
    assert entry.read_bytes() == planted  # nothing written into an untrusted directory either
    # With --timeout (the interruptible engine) too.
    _check_victim_ran(run_bounded("run", victim, "--timeout", "30", env=env), fix)


@pytest.mark.parametrize(
    "how", [pytest.param("foreign-owner", marks=needs_root), "world-writable"]
)
def test_a_symlinked_cache_directory_is_judged_by_its_target(
    tmp_path: Path, victim: Path, how: str
) -> None:
    cache = tmp_path / "cache"
    env = _victim_env(tmp_path, cache)
    shared = tmp_path / "shared-volume" / "compiled"
    shared.mkdir(parents=True, mode=0o700)
    cache.mkdir(mode=0o700)
    (cache / "compiled").symlink_to(shared)
    # A symlink to a directory of the user's own, writable by no one else, is used as such.
    assert run_bounded("run", victim, env=env).stderr == ""
    assert run_bounded("run", victim, env=env).stderr == ""
    key = _public_cache_key(victim.read_bytes(), interruptible=False)
    (shared / f"{key}.cwasm").write_bytes(
        _v1_entry(key, _attacker_code(_printing_module(PWNED), False))
    )
    fix = _make_untrusted(how, shared)
    _check_victim_ran(
        run_bounded("run", victim, env=env), f"{cache / 'compiled'} (-> {shared})", fix
    )


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
@needs_root
def test_an_unprivileged_user_refuses_a_cache_root_owns(tmp_path: Path, victim: Path) -> None:
    """uid 65534 pointed at a cache root made: not theirs, so not read (nor written)."""
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"hwo-cache-trust-{os.getpid()}"
    base.mkdir(mode=0o755)
    try:
        cache = base / "cache"
        root_env = _victim_env(tmp_path, cache)
        assert run_bounded("run", victim, env=root_env).stdout == VICTIM_OUTPUT
        os.chmod(cache, 0o755)
        os.chmod(cache / "compiled", 0o755)
        home = base / "nobody"
        home.mkdir()
        os.chown(home, FOREIGN_UID, FOREIGN_UID)
        program = base / "victim.wasm"
        shutil.copyfile(victim, program)
        os.chmod(program, 0o644)
        env = {**root_env, "HOME": str(home), "XDG_STATE_HOME": str(home / "state")}
        env["TMPDIR"] = str(home)
        done = subprocess.run(
            [
                *("setpriv", "--reuid", str(FOREIGN_UID), "--regid", str(FOREIGN_UID)),
                *("--clear-groups", sys.executable, "-m", "hatch_wasm_oci", "run", str(program)),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
            cwd=base,
        )
        assert (done.returncode, done.stdout) == (0, VICTIM_OUTPUT), done.stderr
        assert f"is owned by uid 0, not this user (uid {FOREIGN_UID})" in done.stderr
        assert f"chown {FOREIGN_UID} {cache / 'compiled'}" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_an_unusable_user_key_compiles_in_memory(tmp_path: Path, victim: Path) -> None:
    cache = tmp_path / "cache"
    env = _victim_env(tmp_path, cache)
    state = Path(env["XDG_STATE_HOME"]) / "hatch-wasm-oci"
    state.mkdir(parents=True, mode=0o755)  # others may read the key: refused, never repaired
    key = _public_cache_key(victim.read_bytes(), interruptible=False)
    (cache / "compiled").mkdir(parents=True, mode=0o700)
    os.chmod(cache, 0o700)
    entry = cache / "compiled" / f"{key}.cwasm"
    entry.write_bytes(_v1_entry(key, _attacker_code(_printing_module(PWNED), False)))
    _check_victim_ran(run_bounded("run", victim, env=env), f"chmod 700 {state}", "in memory")
    assert not (state / "user-key").exists()


# -- the content store ------------------------------------------------------------------------


def _store_layout(wasm: bytes, directory: Path, tag: str) -> tuple[Path, str]:
    """A Wasm OCI layout of ``wasm`` tagged ``tag``: (layout, manifest digest)."""
    directory.mkdir(parents=True)
    source = directory / "app.wasm"
    source.write_bytes(wasm)
    result = pack(source, directory / "layout", tags=[tag])
    return result.layout, result.manifest.digest


def _stored_victim(
    registry: RegistryServer, tmp_path: Path, victim: Path
) -> tuple[str, str, dict[str, str]]:
    """The victim pushed, run once online and once ``--offline``: (reference, manifest digest,
    environment)."""
    env = _victim_env(tmp_path, tmp_path / "cache")
    layout, digest = _store_layout(victim.read_bytes(), tmp_path / "victim", "1.0.0")
    ref = f"{registry.address}/{unique_repo('trust')}/app:1.0.0"
    pushed = plain_push(layout, ref, env)
    assert pushed.returncode == 0, pushed.stderr
    online = run_bounded("run", ref, "--plain-http", env=env)
    assert (online.returncode, online.stdout, online.stderr) == (0, VICTIM_OUTPUT, "")
    offline = run_bounded("run", ref, "--offline", env=env)
    assert (offline.returncode, offline.stdout, offline.stderr) == (0, VICTIM_OUTPUT, "")
    return ref, digest, env


@pytest.mark.slow
def test_a_planted_compiled_entry_never_runs_from_the_store(
    registry_anon: RegistryServer, tmp_path: Path, victim: Path
) -> None:
    """``run REF --offline``: the compiled entry of the stored layer is the attacker's code."""
    ref, _, env = _stored_victim(registry_anon, tmp_path, victim)
    cache = Path(env["HATCH_WASM_OCI_CACHE"])
    key = _public_cache_key(victim.read_bytes(), interruptible=False)
    entry = cache / "compiled" / f"{key}.cwasm"
    assert entry.is_file()
    entry.write_bytes(_v1_entry(key, _attacker_code(_printing_module(PWNED), False)))
    _check_victim_ran(run_bounded("run", ref, "--offline", env=env), "does not verify")


@pytest.mark.slow
def test_a_planted_tag_record_never_runs_offline(
    registry_anon: RegistryServer, tmp_path: Path, victim: Path
) -> None:
    """A self-consistent artifact of the attacker's in the store (every blob hashes to its
    name) and the tag record rewritten to name it: ``--offline`` by tag refuses the record."""
    ref, victim_digest, env = _stored_victim(registry_anon, tmp_path, victim)
    cache = Path(env["HATCH_WASM_OCI_CACHE"])
    attacker_layout, attacker_digest = _store_layout(
        _printing_module(PWNED), tmp_path / "attacker", "1.0.0"
    )
    blobs = cache / "store" / "blobs" / "sha256"
    for blob in (attacker_layout / "blobs" / "sha256").iterdir():
        shutil.copyfile(blob, blobs / blob.name)
    (record_path,) = (cache / "store" / "tags").iterdir()
    record = json.loads(record_path.read_bytes())
    assert record["digest"] == victim_digest
    forged_seal = hmac.new(b"k" * 32, b"store-tag\0", hashlib.sha256).hexdigest()
    for forged in (
        {"reference": record["reference"], "digest": attacker_digest},
        {**record, "digest": attacker_digest},
        {**record, "digest": attacker_digest, "seal": forged_seal},
    ):
        record_path.write_text(json.dumps(forged))
        done = run_bounded("run", ref, "--offline", env=env)
        assert PWNED not in done.stdout, forged
        done.check_clean_failure(ref, "does not verify", "without --offline")
    # Online, the registry says what the tag is; the record is rewritten and sealed again.
    online = run_bounded("run", ref, "--plain-http", env=env)
    assert (online.returncode, online.stdout) == (0, VICTIM_OUTPUT), online.stderr
    offline = run_bounded("run", ref, "--offline", env=env)
    assert (offline.returncode, offline.stdout, offline.stderr) == (0, VICTIM_OUTPUT, "")


# -- guests that never stop -------------------------------------------------------------------


#: Writes 64 KiB to stderr again and again, for ever.
STDERR_FLOOD_MODULE = wasmtime.wat2wasm("""
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start")
    (memory.fill (i32.const 1024) (i32.const 120) (i32.const 65536))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 65536))
    (loop $forever
      (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
      (br $forever))))
""")

#: Writes ``started`` on stderr, then loops for ever.
ENDLESS_MODULE = wasmtime.wat2wasm("""
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "started\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 8))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (loop $forever (br $forever))))
""")

#: A component whose export ``spin`` loops for ever (for ``--invoke``).
ENDLESS_COMPONENT_WAT = """
(component
  (core module $m (func (export "spin") (loop $forever (br $forever))))
  (core instance $i (instantiate $m))
  (func (export "spin") (canon lift (core func $i "spin"))))
"""


def test_an_endless_stderr_writer_never_grows_a_file(tmp_path: Path) -> None:
    """The guest writes 64 KiB blocks to stderr for ever; $TMPDIR is a 16 MiB tmpfs and its
    use stays near zero while the guest writes gigabytes (to /dev/null) until --timeout."""
    env = _victim_env(tmp_path, tmp_path / "cache")
    target = tmp_path / "flood.wasm"
    target.write_bytes(STDERR_FLOOD_MODULE)
    small = tmp_path / "small-tmp"
    with small_filesystem(small, 16 << 20) as kind:
        env["TMPDIR"] = str(small)
        peak = [0]
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.02):
                if kind == "tmpfs":
                    fs = os.statvfs(small)
                    used = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
                else:
                    used = sum(p.stat().st_size for p in small.rglob("*") if p.is_file())
                peak[0] = max(peak[0], used)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "hatch_wasm_oci", "run", str(target), "--timeout", "3"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                timeout=60,
                check=False,
            )
        finally:
            stop.set()
            watcher.join()
        leftovers = os.listdir(small)
    assert done.returncode == 134  # timed out, as a trap (its message went to /dev/null)
    assert peak[0] < 1 << 20, f"$TMPDIR grew to {peak[0]} bytes"
    assert leftovers == []


def _start_endless(
    target: Path, extra: tuple[str, ...], env: Mapping[str, str], marker: bytes | None
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hatch_wasm_oci", "run", str(target), *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
    )
    assert proc.stderr is not None
    if marker is None:  # no output to wait for: give it time to be inside the guest
        time.sleep(3)
        return proc
    seen = b""
    deadline = time.monotonic() + 60
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0 and proc.poll() is None, seen
        ready, _, _ = select.select([proc.stderr], [], [], left)
        if ready:
            seen += os.read(proc.stderr.fileno(), 4096)
    time.sleep(0.3)  # well inside the loop
    return proc


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize(
    "kind", ["module", "module-timeout", "component-invoke"], ids=lambda kind: kind
)
def test_a_signal_stops_an_endless_guest_within_a_second(
    tmp_path: Path, signum: int, kind: str
) -> None:
    env = _victim_env(tmp_path, tmp_path / "cache")
    if kind == "component-invoke":
        target = tmp_path / "spin.wasm"
        target.write_bytes(wasmtime.wat2wasm(ENDLESS_COMPONENT_WAT))
        extra: tuple[str, ...] = ("--invoke", "spin()")
        marker = None
    else:
        target = tmp_path / "endless.wasm"
        target.write_bytes(ENDLESS_MODULE)
        extra = ("--timeout", "600") if kind == "module-timeout" else ()
        marker = b"started"
    proc = _start_endless(target, extra, env, marker)
    try:
        sent = time.monotonic()
        proc.send_signal(signum)
        try:
            status = proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 1 s after signal {signum}")
        assert time.monotonic() - sent <= 1.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            assert stream is not None
            stream.close()
    assert status == -signum  # as `wasmtime run`: ended by the signal itself
    assert os.listdir(env["TMPDIR"]) == []


# -- --timeout values that are not a time -----------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e300", "31536001", "0", "-1"])
def test_a_timeout_out_of_range_is_one_line(tmp_path: Path, value: str) -> None:
    env = _victim_env(tmp_path, tmp_path / "cache")
    target = tmp_path / "endless.wasm"
    target.write_bytes(ENDLESS_MODULE)
    done = run_bounded("run", target, f"--timeout={value}", env=env, timeout=20)
    done.check_clean_failure("--timeout takes a number of seconds above 0 and at most 31536000")


def test_load_refuses_a_timeout_out_of_range(tmp_path: Path) -> None:
    from hatch_wasm_oci.errors import ComponentError
    from hatch_wasm_oci.runtime.component import load

    target = tmp_path / "spin.wasm"
    target.write_bytes(wasmtime.wat2wasm(ENDLESS_COMPONENT_WAT))
    for value in (float("inf"), float("nan"), 1e300):
        with pytest.raises(ComponentError, match="timeout takes a number of seconds above 0"):
            load(target, timeout=value)
