"""Planted compile-cache entries never ship: an attacker's entry in the registry compile cache
(pushed with the victim's annotations, even its signature copied) or in the local
``componentize-py/`` cache (with every seal an attacker can compute) is refused and the victim's
own component is built or fetched instead. Entries are planted with public means only (the
library's generic pack and push, plain SHA-256), never with the implementation's signing code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hatch_wasm_oci.oci.layout import pack
from hatch_wasm_oci.oci.layout_reader import OciLayout
from hatch_wasm_oci.project import compile_cache
from hatch_wasm_oci.project.componentize import compiler_version, componentize, input_key
from hatch_wasm_oci.project.registry_cache import (
    BUILDER_ANNOTATION,
    COMPILER_ANNOTATION,
    KEY_ANNOTATION,
    RegistryCache,
)
from hatch_wasm_oci.project.settings import ComponentizePySource
from hatch_wasm_oci.registry.progress import Reporter
from hatch_wasm_oci.registry.push import PushOptions, plan_push, push
from tests.hatch_fixtures import EXAMPLE_PROJECT, copy_project, run_hatch, write_project
from tests.registry_fixtures import RegistryServer, clean_env, skopeo_raw, unique_repo
from tests.wasm_fixtures import CALC_APP, CALC_WIT

CACHE_KEY = "k" * 16 + "0123456789abcdef0123456789abcdef"
OTHER_CACHE_KEY = "z" * 48
SOURCE = ComponentizePySource(("wit",), "calculator", "app", ("app",))


def _project(root: Path) -> tuple[Path, str]:
    project = write_project(
        root,
        files={"wit/world.wit": CALC_WIT, "app/app.py": CALC_APP},
    )
    return project, input_key(SOURCE, project)


def _env(home: Path, key: str | None = None) -> dict[str, str]:
    return clean_env(home, **({"HATCH_WASM_OCI_CACHE_KEY": key} if key else {}))


def _plant(
    repository: str, key: str, wasm: Path, annotations: dict[str, str], tmp_path: Path
) -> None:
    """Push ``wasm`` as ``repository:key`` with ``annotations``: what anyone with push rights
    can do with public code (no cache key)."""
    layout_dir = tmp_path / "planted-layout"
    pack(wasm, layout_dir, tags=(key,), annotations=annotations)
    layout = OciLayout.open(layout_dir)
    options = PushOptions(
        plain_http=True, environ=_env(tmp_path / "attacker"), progress=Reporter("quiet")
    )
    push(layout, plan_push(layout, [f"{repository}:{key}"]), options)


def _annotations(server: RegistryServer, repository: str, key: str) -> dict[str, str]:
    manifest = json.loads(skopeo_raw(server, f"{repository.split('/', 1)[1]}:{key}"))
    return dict(manifest["annotations"])


def test_a_poisoned_entry_with_copied_annotations_is_refused_with_a_key(
    registry_anon: RegistryServer, calc_component: Path, tiny_component: Path, tmp_path: Path
) -> None:
    repository = f"{registry_anon.address}/{unique_repo('acme-cache')}"
    key = "7" * 64
    version = compiler_version()
    warnings: list[str] = []
    writer = RegistryCache(repository, _env(tmp_path / "ci", CACHE_KEY))
    assert writer.store(key, version, calc_component, warn=warnings.append) is not None
    genuine = _annotations(registry_anon, repository, key)
    assert genuine[BUILDER_ANNOTATION].startswith("hatch-wasm-oci ")
    assert f"componentize-py {version}" in genuine[BUILDER_ANNOTATION]

    # The attacker replays every annotation of the genuine entry (signature included) on their
    # own component under the same tag.
    _plant(repository, key, tiny_component, genuine, tmp_path)

    reader = RegistryCache(repository, _env(tmp_path / "victim", CACHE_KEY))
    dest = tmp_path / "victim.wasm"
    assert not reader.fetch(key, version, dest, warn=warnings.append)
    assert not dest.exists()
    assert len(warnings) == 1, warnings
    assert "Ignoring the registry cache entry" in warnings[0]
    assert "signature does not verify with HATCH_WASM_OCI_CACHE_KEY" in warnings[0]
    assert CACHE_KEY not in warnings[0]

    # Another key (a different writer) does not verify either.
    other = RegistryCache(repository, _env(tmp_path / "other", OTHER_CACHE_KEY))
    assert other.store(key, version, calc_component, warn=warnings.append) is not None
    warnings.clear()
    assert not reader.fetch(key, version, dest, warn=warnings.append)
    assert "signature does not verify" in warnings[0] and not dest.exists()

    # Without a key, a reader trusts whatever was pushed last, and says so with -v.
    _plant(repository, key, tiny_component, genuine, tmp_path)
    keyless = RegistryCache(repository, _env(tmp_path / "keyless"))
    hit = keyless.fetch(key, version, dest, warn=warnings.append)
    assert hit is not None and dest.read_bytes() == tiny_component.read_bytes()
    assert "not verified: HATCH_WASM_OCI_CACHE_KEY is not set" in hit.describe()


def test_unsigned_entries_are_refused_once_a_key_is_set(
    registry_anon: RegistryServer, calc_component: Path, tmp_path: Path
) -> None:
    repository = f"{registry_anon.address}/{unique_repo('acme-cache')}"
    key = "8" * 64
    version = compiler_version()
    warnings: list[str] = []
    # An entry with just the two annotations the old cache checked.
    _plant(
        repository,
        key,
        calc_component,
        {KEY_ANNOTATION: key, COMPILER_ANNOTATION: version},
        tmp_path,
    )
    reader = RegistryCache(repository, _env(tmp_path / "r", CACHE_KEY))
    dest = tmp_path / "out.wasm"
    assert not reader.fetch(key, version, dest, warn=warnings.append)
    assert len(warnings) == 1 and "it is not signed" in warnings[0], warnings
    assert not dest.exists()

    # The build then compiles and stores a signed entry over it, which verifies.
    assert reader.store(key, version, calc_component, warn=warnings.append) is not None
    hit = reader.fetch(key, version, dest, warn=warnings.append)
    assert hit is not None and dest.read_bytes() == calc_component.read_bytes()
    line = hit.describe()
    assert line.startswith(f"Registry cache entry {repository}:{key}: stored by hatch-wasm-oci ")
    assert f"signature verified with HATCH_WASM_OCI_CACHE_KEY (key id {reader.key_id()})" in line
    assert CACHE_KEY not in line and len(warnings) == 1


def test_cache_signed_without_a_key_and_a_short_key_use_no_registry_cache(
    registry_anon: RegistryServer, calc_component: Path, tmp_path: Path
) -> None:
    repository = f"{registry_anon.address}/{unique_repo('acme-cache')}"
    key = "9" * 64
    version = compiler_version()
    keyless = RegistryCache(repository, _env(tmp_path / "w"))
    assert keyless.store(key, version, calc_component, warn=pytest.fail) is not None
    for cache, reason in (
        (
            RegistryCache(repository, _env(tmp_path / "fork"), required=True),
            "cache-signed is set and HATCH_WASM_OCI_CACHE_KEY is not",
        ),
        (
            RegistryCache(repository, _env(tmp_path / "short", "short-secret")),
            "HATCH_WASM_OCI_CACHE_KEY is too short (12 characters, at least 32",
        ),
    ):
        warnings: list[str] = []
        assert not cache.fetch(key, version, tmp_path / "x.wasm", warn=warnings.append)
        assert cache.store(key, version, calc_component, warn=warnings.append) is None
        assert len(warnings) == 1 and reason in warnings[0], warnings
        assert "short-secret" not in warnings[0]
    # The unsigned entry is still the keyless writer's: nothing was pushed over it.
    assert "unsigned" in _annotations(registry_anon, repository, key)[BUILDER_ANNOTATION]


def test_a_planted_local_cache_entry_is_not_reused(
    registry_anon: RegistryServer, calc_component: Path, tiny_component: Path, tmp_path: Path
) -> None:
    """A file at ``componentize-py/<key>.wasm`` with every seal an attacker can compute (the
    key is a hash of public inputs) is refused; the victim's signed registry entry is used."""
    project, key = _project(tmp_path / "calc")
    repository = f"{registry_anon.address}/{unique_repo('acme-cache')}"
    ci = RegistryCache(repository, _env(tmp_path / "ci", CACHE_KEY))
    assert ci.store(key, compiler_version(), calc_component, warn=pytest.fail) is not None

    cache = tmp_path / "shared-cache"
    planted = cache / "componentize-py" / f"{key}.wasm"
    planted.parent.mkdir(parents=True)
    data = tiny_component.read_bytes()
    planted.write_bytes(data)
    digest = hashlib.sha256(key.encode() + b"\0" + data).hexdigest()
    planted.with_suffix(".seal").write_text(f"hmac-sha256:{digest}\n")

    logged: list[str] = []

    def build() -> Path:
        result = componentize(
            SOURCE,
            root=project,
            workdir=tmp_path / "work",
            where="W",
            cache_dir=cache,
            registry=RegistryCache(repository, _env(tmp_path / "victim", CACHE_KEY)),
            waiting=pytest.fail,  # nothing is compiled: the registry entry is the victim's
            log=logged.append,
            verbosity=1,
        )
        return result.path

    (tmp_path / "work").mkdir()
    assert build().read_bytes() == calc_component.read_bytes()
    assert f"Not reusing the cached component {planted}: its seal does not verify" in logged[0]
    assert any(line.startswith("Registry cache entry ") for line in logged)
    # The refused entry was replaced by a sealed copy of the victim's component: reused.
    logged.clear()
    assert build().read_bytes() == calc_component.read_bytes()
    assert logged == [f"Reusing the component compiled from identical inputs ({planted})"]

    # An unsealed file (the old cache format, or a plant without a seal) is refused too.
    planted.write_bytes(data)
    planted.with_suffix(".seal").unlink()
    logged.clear()
    assert build().read_bytes() == calc_component.read_bytes()
    assert "it has no seal" in logged[0]


@pytest.mark.parametrize("damage", ["copied", "altered", "truncated", "huge-seal"])
def test_copied_altered_or_truncated_local_entries_are_refused(
    damage: str, calc_component: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user's genuinely sealed entry copied in, a flipped byte, a cut file, or a seal
    file that never ends: each is refused with one notice, and nothing is left at ``dest``."""
    cache, key = tmp_path / "cache", "a" * 64
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / ("other" if damage == "copied" else "me")))
    entry = compile_cache.save(cache, key, calc_component, notice=pytest.fail)
    assert entry is not None
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "me"))
    data = bytearray(entry.read_bytes())
    if damage == "altered":
        data[len(data) // 2] ^= 1
        entry.write_bytes(bytes(data))
    elif damage == "truncated":
        entry.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "huge-seal":
        entry.with_suffix(".seal").write_bytes(b"hmac-sha256:" + b"0" * (1 << 20))
    notices: list[str] = []
    dest = tmp_path / "out.wasm"
    assert not compile_cache.load(cache, key, dest, notice=notices.append)
    assert not dest.exists()
    assert len(notices) == 1 and notices[0].startswith(f"Not reusing the cached component {entry}")
    assert notices[0].endswith("; compiling again")
    # A fresh save by this user replaces it, and that one is reused.
    compile_cache.save(cache, key, calc_component, notice=pytest.fail)
    assert compile_cache.load(cache, key, dest, notice=pytest.fail)
    assert dest.read_bytes() == calc_component.read_bytes()


def test_a_loose_user_key_directory_means_no_local_cache(
    calc_component: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key directory others can write to is never trusted (nor repaired): the local cache
    is neither read nor written, and one notice says how to fix it."""
    keys = tmp_path / "state" / "hatch-wasm-oci"
    keys.mkdir(parents=True)
    keys.chmod(0o777)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    cache, key = tmp_path / "cache", "b" * 64
    notices: list[str] = []
    assert compile_cache.save(cache, key, calc_component, notice=notices.append) is None
    assert not compile_cache.load(cache, key, tmp_path / "out.wasm", notice=notices.append)
    assert notices == [
        f"Not using the local compile cache: key directory {keys} is accessible to group or "
        f"others (mode 777); run: chmod 700 {keys}"
    ]
    assert not (cache / "componentize-py").exists()
    assert oct(keys.stat().st_mode & 0o777) == "0o777"


# -- through hatch build ----------------------------------------------------------------------

def _machine(tmp_path: Path, name: str, repository: str) -> Path:
    project = copy_project(EXAMPLE_PROJECT, tmp_path / name / "example-project")
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text().replace(
        'tags = ["{version}", "latest"]\n',
        f'tags = ["{{version}}", "latest"]\ncache-repository = "{repository}"\n'
        "cache-signed = true\n",
    )
    pyproject.write_text(text)
    return project


def _layer(project: Path) -> str:
    layout = project / "dist/wasm-oci/example_inventory-0.1.0"
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((layout / "blobs/sha256" / digest).read_text())
    return str(manifest["layers"][0]["digest"])


@pytest.mark.slow
def test_hatch_build_never_ships_a_poisoned_registry_cache_entry(
    hatch_env: dict[str, str],
    registry_anon: RegistryServer,
    tiny_component: Path,
    tmp_path: Path,
) -> None:
    repository = f"{registry_anon.address}/{unique_repo('acme/inventory-cache')}"

    def machine_env(name: str, key: str | None = CACHE_KEY) -> dict[str, str]:
        env = {"HATCH_WASM_OCI_CACHE": str(tmp_path / name / "component-cache")}
        return {**env, "HATCH_WASM_OCI_CACHE_KEY": key} if key else env

    first = _machine(tmp_path, "ci", repository)
    run = run_hatch(first, "build", "-t", "wasm-oci", env=hatch_env, extra_env=machine_env("ci"))
    assert f"Stored in the registry cache: {repository}:" in run.output
    assert CACHE_KEY not in run.output
    (entry,) = (tmp_path / "ci" / "component-cache" / "componentize-py").glob("*.wasm")
    key = entry.stem

    # A hit on another machine shows, with -v, who stored the entry and that it verified.
    second = _machine(tmp_path, "dev", repository)
    run = run_hatch(
        second, "-v", "build", "-t", "wasm-oci", env=hatch_env, extra_env=machine_env("dev")
    )
    assert "Compiling" not in run.output
    record = next(line for line in run.output.splitlines() if "Registry cache entry" in line)
    assert f"{repository}:{key}: stored by hatch-wasm-oci " in record
    assert "signature verified with HATCH_WASM_OCI_CACHE_KEY (key id " in record
    assert CACHE_KEY not in run.output
    assert _layer(second) == _layer(first)

    # Someone with push rights replaces the entry, replaying its annotations.
    _plant(repository, key, tiny_component, _annotations(registry_anon, repository, key), tmp_path)
    planted = "sha256:" + hashlib.sha256(tiny_component.read_bytes()).hexdigest()
    third = _machine(tmp_path, "runner", repository)
    run = run_hatch(
        third, "build", "-t", "wasm-oci", env=hatch_env, extra_env=machine_env("runner")
    )
    assert "Ignoring the registry cache entry" in run.output
    assert "signature does not verify" in run.output
    assert "Compiling inventory_app.app" in run.output
    assert _layer(third) != planted

    # A fork's CI without the key: the cache is not used at all (cache-signed), no push.
    fork = _machine(tmp_path, "fork", repository)
    run = run_hatch(
        fork, "build", "-t", "wasm-oci", env=hatch_env, extra_env=machine_env("fork", None)
    )
    assert "cache-signed is set and HATCH_WASM_OCI_CACHE_KEY is not" in run.output
    assert "Compiling inventory_app.app" in run.output
    assert "Stored in the registry cache" not in run.output
