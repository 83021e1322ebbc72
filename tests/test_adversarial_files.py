"""The standing adversarial suite for files: hostile titles, crafted layouts, full and
read-only file systems, kills and concurrent writers.

Every case runs the real CLI in a subprocess (``run_bounded``) and checks what the issue
promises: a one-line error and exit status 2 (never a traceback), nothing written outside
the output directory, nothing half-written, peak RSS under 256 MiB, and no hang.
"""

from __future__ import annotations

import errno
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hatch_wasm_oci.errors import LayoutError
from hatch_wasm_oci.oci.layout import pack
from hatch_wasm_oci.registry import pull as pull_module
from tests.adversarial_fixtures import (
    dev_zero,
    fifo,
    nested_json,
    replace_blob,
    retitle,
    run_bounded,
    sigterm,
    small_filesystem,
    sparse,
    tree,
)
from tests.padding import append_custom_section
from tests.registry_fixtures import (
    RegistryServer,
    clean_env,
    padded_component,
    plain_push,
    unique_repo,
)

# -- pull: the .wasm gets a name we choose --------------------------------------------------

HOSTILE_TITLES = {
    "Makefile": "Makefile.wasm",
    "../escape.wasm": "escape.wasm",
    "/etc/passwd": "passwd.wasm",
    "C:\\Windows\\evil.wasm": "evil.wasm",
    "a\x00b.wasm": "a_b.wasm",
    "x" * 400: "x" * 100 + ".wasm",
    "..": "app.wasm",
    ".bashrc": "bashrc.wasm",
    "NUL": "_NUL.wasm",
    "\x1b[31mred\x1b[0m": "31mred_0m.wasm",
    "layout": "layout.wasm",
    "": "app.wasm",
}


@pytest.mark.parametrize(("title", "expected"), list(HOSTILE_TITLES.items()))
def test_wasm_file_name_is_sanitised(title: str, expected: str) -> None:
    from hatch_wasm_oci.registry.pull import wasm_file_name

    assert wasm_file_name(title, "acme/app") == expected


def _push_titled(server: RegistryServer, tiny: Path, tmp_path: Path, titles: list[str]) -> str:
    layout = pack(tiny, tmp_path / "crafted", tags=["base"]).layout
    for i, title in enumerate(titles):
        retitle(layout, title, f"t{i}")
    repo = unique_repo("hostile")
    pushed = plain_push(layout, f"{server.address}/{repo}", clean_env(tmp_path / "home"))
    assert pushed.returncode == 0, pushed.stderr
    return repo


def test_pull_writes_only_under_a_sanitised_title(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    titles = ["Makefile", "a\x00b", "y" * 400, "../../escape", "/tmp/abs.wasm"]
    repo = _push_titled(registry_anon, tiny_component, tmp_path, titles)
    env = clean_env(tmp_path / "home")
    work = tmp_path / "work"
    out = work / "out"
    out.mkdir(parents=True)
    (out / "Makefile").write_bytes(b"all:\n\techo precious\n")
    outside = tree(tmp_path / "work")
    for i, title in enumerate(titles):
        ref = f"{registry_anon.address}/{repo}:t{i}"
        before = tree(out)
        result = run_bounded("pull", ref, "-o", out, "--plain-http", env=env)
        assert result.returncode == 0, result.stderr
        result.check_no_traceback()
        name = pull_module.wasm_file_name(title, repo)
        assert (out / name).read_bytes() == tiny_component.read_bytes()
        after = tree(out)
        new = {k for k in after if k not in before and k.split("/")[0] != "layout"}
        assert new == {name}, new
        assert after["Makefile"] == b"all:\n\techo precious\n"
    assert sorted(p.name for p in work.iterdir()) == ["out"]
    assert {k for k in tree(work) if not k.startswith("out/")} == {
        k for k in outside if not k.startswith("out/")
    }
    assert not [p for p in out.rglob(".*")]


def test_pull_never_replaces_an_existing_file_without_force(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    repo = _push_titled(registry_anon, tiny_component, tmp_path, ["Makefile"])
    env = clean_env(tmp_path / "home")
    out = tmp_path / "out"
    out.mkdir()
    (out / "Makefile.wasm").write_bytes(b"mine")
    before = tree(out)
    ref = f"{registry_anon.address}/{repo}:t0"
    refused = run_bounded("pull", ref, "-o", out, "--plain-http", env=env)
    refused.check_clean_failure("Makefile.wasm exists", "--force")
    assert tree(out) == before  # no layout/ either

    forced = run_bounded("pull", ref, "-o", out, "--plain-http", "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert (out / "Makefile.wasm").read_bytes() == tiny_component.read_bytes()


@pytest.mark.parametrize("existing_layout", [False, True])
def test_pull_failing_at_the_last_step_leaves_the_directory_as_it_was(
    registry_anon: RegistryServer,
    tiny_component: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    existing_layout: bool,
) -> None:
    # The .wasm is placed after the layout is committed; a failure there (a race with another
    # writer, a file system refusing the link) cannot be produced on demand: inject it.
    repo = _push_titled(registry_anon, tiny_component, tmp_path, ["app", "other"])
    env = clean_env(tmp_path / "home")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    if existing_layout:
        pull_module.pull(f"{registry_anon.address}/{repo}:t1", out, plain_http=True, environ=env)
    before = tree(out)

    def fail(tmp: Path, dest: Path, *, replace: bool) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pull_module, "place", fail)
    with pytest.raises(LayoutError, match="No space left on device"):
        pull_module.pull(f"{registry_anon.address}/{repo}:t0", out, plain_http=True, environ=env)
    assert tree(out) == before


def test_pull_onto_a_full_disk_says_so_and_does_not_retry(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    big = padded_component(tiny_component, tmp_path / "big.wasm", 3 << 20)
    layout = pack(big, tmp_path / "layout", tags=["big"]).layout
    repo = unique_repo("full")
    env = clean_env(tmp_path / "home")
    assert plain_push(layout, f"{registry_anon.address}/{repo}", env).returncode == 0
    with small_filesystem(tmp_path / "small", 1 << 20) as kind:
        out = tmp_path / "small" / "out"
        out.mkdir()
        result = run_bounded(
            "pull",
            f"{registry_anon.address}/{repo}:big",
            "-o",
            out,
            "--plain-http",
            env=env,
            file_size_limit=(1 << 20) if kind == "rlimit" else None,
        )
        expected = "No space left on device" if kind == "tmpfs" else "File too large"
        result.check_clean_failure(expected)
        assert "interrupted" not in result.stderr and "attempts" not in result.stderr
        assert result.seconds < 10
        assert tree(out) == {}


def test_pull_into_a_directory_it_may_not_write(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    repo = _push_titled(registry_anon, tiny_component, tmp_path, ["app"])
    env = clean_env(tmp_path / "home")
    out = tmp_path / "readonly"
    out.mkdir()
    out.chmod(0o555)
    try:
        result = run_bounded(
            "pull",
            f"{registry_anon.address}/{repo}:t0",
            "-o",
            out,
            "--plain-http",
            env=env,
            obey_permissions=True,
        )
        result.check_clean_failure("Permission denied")
        assert tree(out) == {}
    finally:
        out.chmod(0o755)


# -- layouts: regular files only, every read capped -------------------------------------------


@pytest.fixture
def layout_copy(tiny_component: Path, tmp_path: Path) -> Path:
    return pack(tiny_component, tmp_path / "layout", tags=["t"]).layout


def _digests(layout: Path) -> dict[str, str]:
    from hatch_wasm_oci.oci.layout_reader import OciLayout

    opened = OciLayout.open(layout)
    manifest = opened.manifest("t")
    return {
        "manifest": opened.tags()["t"].digest,
        "config": manifest["config"]["digest"],
        "layer": manifest["layers"][0]["digest"],
    }


def _every_reader(layout: Path, tmp_path: Path, *needles: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    env = clean_env(tmp_path / "home")
    commands = [
        ("verify", layout),
        ("inspect", layout),
        ("push", layout, "127.0.0.1:9/acme/app", "--dry-run"),
    ]
    with ThreadPoolExecutor(len(commands)) as pool:
        results = list(pool.map(lambda args: run_bounded(*args, env=env, timeout=20), commands))
    for result in results:
        result.check_clean_failure(*needles)
        assert result.seconds < 15


@pytest.mark.parametrize(
    ("name", "make", "needle"),
    [
        ("index.json", fifo, "not a regular file"),
        ("index.json", dev_zero, "not a regular file"),
        ("oci-layout", fifo, "not a regular file"),
        ("oci-layout", dev_zero, "not a regular file"),
        ("index.json", sparse(3 << 30), "larger than 4194304 bytes"),
        ("oci-layout", sparse(3 << 30), "larger than 4194304 bytes"),
        ("index.json", lambda p: p.write_bytes(nested_json(200_000)), "nested too deeply"),
        ("oci-layout", lambda p: p.write_bytes(nested_json(200_000)), "nested too deeply"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v))[:20],
)
def test_hostile_layout_files(
    layout_copy: Path, tmp_path: Path, name: str, make: object, needle: str
) -> None:
    (layout_copy / name).unlink()
    make(layout_copy / name)  # type: ignore[operator]
    _every_reader(layout_copy, tmp_path, needle)


@pytest.mark.parametrize("blob", ["manifest", "config"])
@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (fifo, "not a regular file"),
        (dev_zero, "not a regular file"),
        (sparse(3 << 30), "bytes, descriptor says"),
        (lambda p: p.write_bytes(nested_json(200_000)), "bytes, descriptor says"),
    ],
    ids=["fifo", "dev-zero", "sparse-3GiB", "nested"],
)
def test_hostile_documents(
    layout_copy: Path, tmp_path: Path, blob: str, make: object, needle: str
) -> None:
    replace_blob(layout_copy, _digests(layout_copy)[blob], make)  # type: ignore[arg-type]
    _every_reader(layout_copy, tmp_path, needle)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (fifo, "not a regular file"),
        (dev_zero, "not a regular file"),
        (sparse(64 << 30), "bytes, descriptor says 9"),
    ],
    ids=["fifo", "dev-zero", "sparse-64GiB"],
)
def test_hostile_layer_blob(layout_copy: Path, tmp_path: Path, make: object, needle: str) -> None:
    replace_blob(layout_copy, _digests(layout_copy)["layer"], make)  # type: ignore[arg-type]
    env = clean_env(tmp_path / "home")
    for args in (("verify", layout_copy), ("push", layout_copy, "127.0.0.1:9/a/b", "--dry-run")):
        result = run_bounded(*args, env=env, timeout=20)
        result.check_clean_failure(needle)


def test_nested_manifest_with_a_matching_digest_is_a_one_line_error(
    layout_copy: Path, tmp_path: Path
) -> None:
    # A manifest blob whose digest matches but whose JSON is 100,000 levels deep.
    from hatch_wasm_oci.oci.descriptor import Descriptor
    from hatch_wasm_oci.oci.layout import LayoutWriter

    deep = nested_json(100_000)
    with LayoutWriter(layout_copy) as writer:
        digest, size = writer.add_blob(deep)
        writer.tag("deep", Descriptor("application/vnd.oci.image.manifest.v1+json", digest, size))
        writer.commit()
    _every_reader(layout_copy, tmp_path, "nested too deeply")


# -- other JSON inputs: the docker config and the blob-location cache ------------------------


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (fifo, "not a regular file"),
        (dev_zero, "not a regular file"),
        (lambda p: p.write_bytes(nested_json(200_000)), "nested too deeply"),
    ],
    ids=["fifo", "dev-zero", "nested"],
)
def test_hostile_docker_config(tmp_path: Path, make: object, needle: str) -> None:
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    make(config_dir / "config.json")  # type: ignore[operator]
    env = clean_env(tmp_path / "home", DOCKER_CONFIG=str(config_dir))
    result = run_bounded("pull", "127.0.0.1:9/acme/app:1", "-o", tmp_path / "out", env=env)
    result.check_clean_failure(needle)
    assert not (tmp_path / "out").exists()


def test_corrupt_blob_location_cache_is_ignored_with_a_warning(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    layout = pack(tiny_component, tmp_path / "layout", tags=["t"]).layout
    env = clean_env(tmp_path / "home")
    cache = Path(env["XDG_CACHE_HOME"]) / "hatch-wasm-oci" / "blob-locations.json"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(nested_json(200_000))
    ref = f"{registry_anon.address}/{unique_repo('cache')}"
    result = run_bounded("push", layout, ref, "--plain-http", env=env)
    assert result.returncode == 0, result.stderr
    result.check_no_traceback()
    assert "warning: blob-location cache ignored" in result.stderr
    assert "nested too deeply" in result.stderr
    # The cache was rewritten: the next push reads it without a warning.
    again = run_bounded("push", layout, ref, "--plain-http", env=env)
    assert again.returncode == 0 and "warning" not in again.stderr, again.stderr
    digest = "sha256:" + hashlib.sha256(tiny_component.read_bytes()).hexdigest()
    assert digest in cache.read_text()


# -- writers: concurrent packs, kills, full disks --------------------------------------------


def _tags(layout: Path) -> set[str]:
    from hatch_wasm_oci.oci.layout_reader import OciLayout

    return set(OciLayout.open(layout).tags())


def test_concurrent_packs_into_one_layout_lose_no_tag(tiny_component: Path, tmp_path: Path) -> None:
    # A few MiB make each pack's read-modify-write of index.json long enough to overlap.
    wasm = padded_component(tiny_component, tmp_path / "big.wasm", 24 << 20)
    layout = tmp_path / "layout"
    pack(tiny_component, layout, tags=["first"])
    env = clean_env(tmp_path / "home")
    for round_ in range(2):
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hatch_wasm_oci",
                    "pack",
                    str(wasm),
                    "-o",
                    str(layout),
                    "-t",
                    f"r{round_}-{i}",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            for i in range(4)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
    assert _tags(layout) == {"first"} | {f"r{r}-{i}" for r in range(2) for i in range(4)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.wasm", "home", "layout"]
    assert not [p for p in layout.rglob(".*")]


def test_live_staging_of_a_writer_in_another_pid_namespace_is_kept(
    tiny_component: Path, tmp_path: Path
) -> None:
    # A writer in another PID namespace (or container, or host) sharing the directory: its PID
    # is not ours to test. It holds the layout's lock, so its staging directory is left alone
    # until it is done.
    from hatch_wasm_oci.files.lock import FileLock

    out = tmp_path / "out"
    staging = tmp_path / ".out.7.abcdef"  # PID 7 of some other namespace
    staging.mkdir()
    (staging / "blobs").mkdir()
    lock = FileLock(tmp_path / ".out-lock", "out")
    lock.acquire()
    env = clean_env(tmp_path / "home")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hatch_wasm_oci", "pack", str(tiny_component), "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        time.sleep(1.5)
        assert proc.poll() is None, proc.communicate()  # waits for the lock
        assert staging.is_dir() and not out.exists()
    finally:
        lock.release()  # the other writer died without cleaning up
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not staging.exists()  # now provably stale: removed under the lock
    assert _tags(out) == {"latest"}


@pytest.mark.parametrize("existing", [False, True])
def test_sigterm_during_pack_removes_what_it_staged(
    tiny_component: Path, tmp_path: Path, existing: bool
) -> None:
    big = tmp_path / "src" / "big.wasm"
    big.parent.mkdir()
    shutil.copyfile(tiny_component, big)
    append_custom_section(big, "padding", 384 << 20)
    work = tmp_path / "work"
    work.mkdir()
    out = work / "out"
    if existing:
        pack(tiny_component, out, tags=["old"])
    before = tree(work)

    def terminate_mid_blob(proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.stat().st_size > 0 for p in work.rglob(".incoming.*")):
                break
            time.sleep(0.005)
        assert proc.poll() is None, "pack finished before it could be stopped"
        sigterm(proc)

    result = run_bounded(
        "pack",
        big,
        "-o",
        out,
        "-t",
        "new",
        env=clean_env(tmp_path / "home"),
        on_start=terminate_mid_blob,
    )
    assert result.returncode == 143, result.stderr
    result.check_no_traceback()
    assert result.stderr.strip() == "hatch-wasm-oci: terminated"
    assert tree(work) == before


def test_pack_tar_onto_a_full_disk_leaves_neither_layout_nor_tar(
    tiny_component: Path, tmp_path: Path
) -> None:
    wasm = padded_component(tiny_component, tmp_path / "c.wasm", 3 << 20)
    env = clean_env(tmp_path / "home")
    # Room for the layout (one copy of the component), not for the tar (a second copy).
    with small_filesystem(tmp_path / "small", 5 << 20) as kind:
        disk = tmp_path / "small"
        limit = (5 << 20) if kind == "rlimit" else None
        new = run_bounded("pack", wasm, "-o", disk / "out", "--tar", env=env, file_size_limit=limit)
        new.check_clean_failure("No space left on device" if kind == "tmpfs" else "too large")
        assert tree(disk) == {}

        pack(tiny_component, disk / "out", tags=["old"])
        before = tree(disk)
        added = run_bounded(
            "pack", wasm, "-o", disk / "out", "-t", "new", "--tar", env=env, file_size_limit=limit
        )
        added.check_clean_failure("No space left on device" if kind == "tmpfs" else "too large")
        assert tree(disk) == before


@pytest.mark.parametrize(
    "make",
    [fifo, lambda p: p.symlink_to("/etc/passwd"), dev_zero],
    ids=["fifo", "symlink-to-passwd", "dev-zero"],
)
def test_pack_tar_of_a_layout_holding_a_non_regular_file(
    tiny_component: Path, core_module: Path, tmp_path: Path, make: object
) -> None:
    layout = pack(tiny_component, tmp_path / "out", tags=["old"]).layout
    make(layout / "planted")  # type: ignore[operator]
    before = tree(tmp_path)
    result = run_bounded(
        "pack",
        core_module,
        "-o",
        layout,
        "-t",
        "new",
        "--tar",
        env=clean_env(tmp_path / "home"),
        timeout=20,
    )
    result.check_clean_failure("planted: not a directory or regular file")
    assert {k: v for k, v in tree(tmp_path).items() if not k.startswith("home")} == {
        k: v for k, v in before.items() if not k.startswith("home")
    }


def test_pack_into_a_read_only_directory(tiny_component: Path, tmp_path: Path) -> None:
    parent = tmp_path / "readonly"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        result = run_bounded(
            "pack",
            tiny_component,
            "-o",
            parent / "out",
            "--tar",
            env=clean_env(tmp_path / "home"),
            obey_permissions=True,
        )
        result.check_clean_failure("Permission denied")
        assert tree(parent) == {}
    finally:
        parent.chmod(0o755)


def test_sigkilled_pull_is_cleaned_up_by_the_next_one(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big.wasm"
    shutil.copyfile(tiny_component, big)
    append_custom_section(big, "padding", 96 << 20)
    layout = pack(big, tmp_path / "layout", tags=["big"]).layout
    repo = unique_repo("killed")
    env = clean_env(tmp_path / "home")
    assert plain_push(layout, f"{registry_anon.address}/{repo}", env).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    ref = f"{registry_anon.address}/{repo}:big"

    def kill_mid_blob(proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.stat().st_size > (1 << 20) for p in out.rglob(".incoming.*")):
                break
            time.sleep(0.002)
        assert proc.poll() is None, "pull finished before it could be killed"
        proc.kill()

    killed = run_bounded("pull", ref, "-o", out, "--plain-http", env=env, on_start=kill_mid_blob)
    assert killed.returncode == -9
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["keep.txt"]
    assert [p for p in out.iterdir() if p.name.startswith(".")]  # what the killed pull left

    again = run_bounded("pull", ref, "-o", out, "--plain-http", env=env)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in out.iterdir()) == ["big.wasm", "keep.txt", "layout"]
    assert not [p for p in out.rglob(".*")]


def test_adding_to_a_layout_whose_parent_is_read_only(
    tiny_component: Path, core_module: Path, tmp_path: Path
) -> None:
    # A layout on a volume mounted into a read-only root: no lock file can go beside it, the
    # one inside serialises the writers.
    parent = tmp_path / "readonly"
    layout = pack(tiny_component, parent / "out", tags=["old"]).layout
    parent.chmod(0o555)
    try:
        env = clean_env(tmp_path / "home")
        result = run_bounded(
            "pack", core_module, "-o", layout, "-t", "new", env=env, obey_permissions=True
        )
        assert result.returncode == 0, result.stderr
        assert _tags(layout) == {"old", "new"}
        assert sorted(p.name for p in parent.iterdir()) == ["out"]
        assert not [p for p in layout.rglob(".*")]
        new = run_bounded(
            "pack", core_module, "-o", parent / "other", env=env, obey_permissions=True
        )
        new.check_clean_failure("other: cannot lock: Permission denied")
    finally:
        parent.chmod(0o755)
