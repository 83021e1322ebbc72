"""One artifact model: verify and pull accept the same artifacts and reject the same malformed
ones with the same message; reference-shaped artifacts (as ``wkg oci push`` writes them) pass.

Layouts here are written by hand from the spec and oci-wasm's types, not by our writer.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hatch_wasm_oci.oci.layout_reader import OciLayout
from tests.registry_fixtures import (
    RegistryServer,
    clean_env,
    plain_pull,
    plain_push,
    run_cli,
    skopeo_copy,
    skopeo_tags,
    unique_repo,
)
from tests.wasm_fixtures import printed_names, wasm_tools, wit_world

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.wasm.config.v0+json"
TITLE = "org.opencontainers.image.title"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compact(obj: Any) -> bytes:
    """serde_json's output: compact, keys in the order given (oci-wasm's struct order)."""
    return json.dumps(obj, separators=(",", ":")).encode()


def write_layout(root: Path, manifest: bytes, blobs: list[bytes], tag: str = "t") -> str:
    """A layout holding ``manifest`` (tagged ``tag``) and ``blobs``, by hand."""
    (root / "blobs" / "sha256").mkdir(parents=True)
    for blob in [manifest, *blobs]:
        (root / "blobs" / "sha256" / sha(blob).split(":")[1]).write_bytes(blob)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entry = {
        "mediaType": MANIFEST,
        "digest": sha(manifest),
        "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return sha(manifest)


def wkg_config(layer: bytes, imports: list[str], exports: list[str]) -> dict[str, Any]:
    """oci-wasm's WasmConfig for a component, field for field (wall-clock created, nulls)."""
    return {
        "created": "2026-11-25T13:45:12.123456789Z",
        "author": None,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [sha(layer)],
        "component": {"exports": exports, "imports": imports, "target": None},
    }


def wkg_manifest(config: bytes, layer: bytes, name: str, **extra: Any) -> dict[str, Any]:
    """oci-client's OciImageManifest as ``wkg oci push`` sends it: no manifest annotations."""
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": sha(config), "size": len(config)},
        "layers": [
            {
                "mediaType": "application/wasm",
                "digest": sha(layer),
                "size": len(layer),
                "annotations": {TITLE: name},
            }
        ],
    }
    manifest.update(extra)
    return manifest


def wkg_layout(
    root: Path,
    wasm: Path,
    edit: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
    layer: bytes | None = None,
) -> Path:
    data = wasm.read_bytes() if layer is None else layer
    imports, exports = wit_world(wasm)
    config = wkg_config(data, sorted(imports), sorted(exports))
    manifest = wkg_manifest(b"", data, wasm.name)
    if edit:
        edit(manifest, config)
    config_bytes = compact(config)
    manifest["config"]["digest"] = sha(config_bytes)
    manifest["config"]["size"] = len(config_bytes)
    write_layout(root, compact(manifest), [config_bytes, data])
    return root


def test_reference_shaped_artifacts_verify_inspect_and_pull(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    def no_media_type(manifest: dict[str, Any], config: dict[str, Any]) -> None:
        del manifest["mediaType"]
        del config["author"]
        del config["component"]["target"]
        config["extra"] = {"unknown": True}

    env = clean_env(tmp_path / "home")
    for name, edit in (("wkg", None), ("bare", no_media_type)):
        layout = wkg_layout(tmp_path / name, tiny_component, edit)
        verified = run_cli("verify", layout, env=env)
        assert verified.returncode == 0, verified.stderr
        shown = run_cli("inspect", layout, env=env)
        assert shown.returncode == 0, shown.stderr
        repo = unique_repo(name)
        pushed = plain_push(layout, f"{registry_anon.address}/{repo}:t", env)
        assert pushed.returncode == 0, pushed.stderr
        pulled = plain_pull(f"{registry_anon.address}/{repo}:t", tmp_path / f"{name}-out", env)
        assert pulled.returncode == 0, pulled.stderr
        assert (tmp_path / f"{name}-out" / tiny_component.name).read_bytes() == (
            tiny_component.read_bytes()
        )
        again = run_cli("verify", tmp_path / f"{name}-out" / "layout", env=env)
        assert again.returncode == 0, again.stderr


def _set(path: str, value: Any) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def edit(manifest: dict[str, Any], config: dict[str, Any]) -> None:
        doc, *keys = path.split(".")
        target = manifest if doc == "manifest" else config
        for key in keys[:-1]:
            target = target[key]
        if value is DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return edit


DELETE = object()
# distribution refuses to store these manifests, so only verify sees them.
REGISTRY_REFUSES = {"schema", "docker"}
MALFORMED: list[tuple[str, Callable[[dict[str, Any], dict[str, Any]], None], bytes | None, str]] = [
    (
        "target5",
        _set("config.component.target", 5),
        None,
        "component.target is neither null nor a string",
    ),
    ("targetbad", _set("config.component.target", "not a world!"), None, "is not a world name"),
    ("nocreated", _set("config.created", DELETE), None, "created is missing"),
    ("yesterday", _set("config.created", "yesterday"), None, "is not an RFC 3339 time"),
    ("arch", _set("config.architecture", "amd64"), None, "architecture is not 'wasm'"),
    ("os", _set("config.os", "linux"), None, "is neither wasip1 nor wasip2"),
    ("nocomponent", _set("config.component", None), None, "must have a component object"),
    ("imports", _set("config.component.imports", "x"), None, "component.imports is not a list"),
    (
        "digests",
        _set("config.layerDigests", ["sha256:" + "0" * 64]),
        None,
        "layerDigests do not list",
    ),
    ("schema", _set("manifest.schemaVersion", 1), None, "schemaVersion is not 2"),
    (
        "docker",
        _set("manifest.mediaType", "application/vnd.docker.distribution.manifest.v2+json"),
        None,
        "is not application/vnd.oci.image.manifest.v1+json",
    ),
    ("empty", lambda m, c: None, b"", "is empty"),
    ("notwasm", lambda m, c: None, b"#!/bin/sh\necho hi\n", "is not a Wasm binary"),
]


@pytest.mark.parametrize("case", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_verify_and_pull_reject_the_same_with_the_same_message(
    registry_anon: RegistryServer,
    tiny_component: Path,
    tmp_path: Path,
    case: tuple[str, Callable[[dict[str, Any], dict[str, Any]], None], bytes | None, str],
) -> None:
    name, edit, layer, message = case
    env = clean_env(tmp_path / "home")
    layout = wkg_layout(tmp_path / name, tiny_component, edit, layer)
    verified = run_cli("verify", layout, env=env)
    assert verified.returncode == 2
    assert message in verified.stderr
    if name in REGISTRY_REFUSES:
        return
    repo = unique_repo(name)
    # push refuses it too, in the same words, before contacting the registry ...
    pushed = plain_push(layout, f"{registry_anon.address}/{repo}:t", env)
    assert pushed.returncode == 2
    assert message in pushed.stderr
    assert skopeo_tags(registry_anon, repo) == []
    # ... so an independent tool puts it there, for pull to meet it
    skopeo_copy(layout, "t", registry_anon, f"{repo}:t")
    out = tmp_path / "out"
    pulled = plain_pull(f"{registry_anon.address}/{repo}:t", out, env)
    assert pulled.returncode == 2
    assert message in pulled.stderr
    assert len(pulled.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_verify_reports_duplicate_tags(tiny_component: Path, tmp_path: Path) -> None:
    layout = wkg_layout(tmp_path / "dup", tiny_component)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"].append(dict(index["manifests"][0]))
    (layout / "index.json").write_text(json.dumps(index))
    verified = run_cli("verify", layout, env=clean_env(tmp_path / "home"))
    assert verified.returncode == 2
    assert "tag 't' is listed twice" in verified.stderr


def test_pack_refuses_a_manifest_that_verify_and_push_would_refuse(
    tiny_component: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hatch_wasm_oci.cli.main import main  # in-process: 6 MiB is past the argv limit

    big = "x" * (6 << 20)
    out = tmp_path / "big"
    assert main(["pack", str(tiny_component), "-o", str(out), "--annotation", f"a.b={big}"]) == 2
    err = capsys.readouterr().err
    assert "over the 4194304-byte limit" in err
    assert "largest annotation: a.b" in err
    assert len(err.splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []
    # Just under the limit: pack, verify and the layout reader agree.
    fits = "x" * ((4 << 20) - 2048)
    out = tmp_path / "fits"
    assert main(["pack", str(tiny_component), "-o", str(out), "--annotation", f"a.b={fits}"]) == 0
    assert main(["verify", str(out)]) == 0


def _put_manifest(
    server: RegistryServer, repo: str, ref: str, data: bytes, media_type: str
) -> None:
    request = urllib.request.Request(
        f"http://{server.address}/v2/{repo}/manifests/{ref}",
        data=data,
        method="PUT",
        headers={"Content-Type": media_type},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201


def test_pull_of_an_index_picks_the_wasm_manifest(
    registry_anon: RegistryServer, tiny_component: Path, core_module: Path, tmp_path: Path
) -> None:
    env = clean_env(tmp_path / "home")
    repo = unique_repo("index")
    digests = {}
    for name, wasm in (("component", tiny_component), ("module", core_module)):
        packed = run_cli("pack", wasm, "-o", tmp_path / name, "-t", name, env=env)
        assert packed.returncode == 0, packed.stderr
        pushed = plain_push(tmp_path / name, f"{registry_anon.address}/{repo}:{name}", env)
        assert pushed.returncode == 0, pushed.stderr
        digests[name] = OciLayout.open(tmp_path / name).tags()[name]

    def entry(name: str, os_name: str) -> dict[str, Any]:
        d = digests[name]
        return {
            "mediaType": MANIFEST,
            "digest": d.digest,
            "size": d.size,
            "platform": {"architecture": "wasm", "os": os_name},
        }

    both = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [entry("module", "wasip1"), entry("component", "wasip2")],
    }
    _put_manifest(registry_anon, repo, "both", compact(both), INDEX)
    pulled = plain_pull(f"{registry_anon.address}/{repo}:both", tmp_path / "both", env)
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "both" / tiny_component.name).read_bytes() == tiny_component.read_bytes()
    assert (
        OciLayout.open(tmp_path / "both" / "layout").tags()["both"].digest
        == digests["component"].digest
    )

    only_module = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [entry("module", "wasip1")]}
    _put_manifest(registry_anon, repo, "module-only", compact(only_module), INDEX)
    pulled = plain_pull(f"{registry_anon.address}/{repo}:module-only", tmp_path / "m", env)
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "m" / core_module.name).read_bytes() == core_module.read_bytes()

    two = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [entry("component", "wasip2"), entry("module", "wasip2")],
    }
    _put_manifest(registry_anon, repo, "two", compact(two), INDEX)
    failed = plain_pull(f"{registry_anon.address}/{repo}:two", tmp_path / "two", env)
    assert failed.returncode == 2
    assert len(failed.stderr.strip().splitlines()) == 1
    assert "2 wasm/wasip2 manifests" in failed.stderr
    assert digests["module"].digest in failed.stderr
    assert not (tmp_path / "two").exists()

    linux = dict(entry("component", "linux"), platform={"architecture": "amd64", "os": "linux"})
    none = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [linux]}
    _put_manifest(registry_anon, repo, "none", compact(none), INDEX)
    failed = plain_pull(f"{registry_anon.address}/{repo}:none", tmp_path / "none", env)
    assert failed.returncode == 2
    assert f"amd64/linux {digests['component'].digest}" in failed.stderr
    assert "no wasm/wasip2 or wasm/wasip1 manifest" in failed.stderr


def test_pull_by_digest_then_push_creates_no_sha256_tag(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    env = clean_env(tmp_path / "home")
    repo = unique_repo("bydigest")
    layout = wkg_layout(tmp_path / "src", tiny_component)
    assert plain_push(layout, f"{registry_anon.address}/{repo}:t", env).returncode == 0
    digest = OciLayout.open(layout).tags()["t"].digest
    pulled = plain_pull(f"{registry_anon.address}/{repo}@{digest}", tmp_path / "d", env)
    assert pulled.returncode == 0, pulled.stderr
    local = OciLayout.open(tmp_path / "d" / "layout")
    assert local.tags() == {}
    assert [d.digest for d in local.manifests()] == [digest]
    assert run_cli("verify", tmp_path / "d" / "layout", env=env).returncode == 0
    other = unique_repo("copy")
    pushed = plain_push(tmp_path / "d" / "layout", f"{registry_anon.address}/{other}", env)
    assert pushed.returncode == 0, pushed.stderr
    assert f"{registry_anon.address}/{other}@{digest}" in pushed.stdout
    assert skopeo_tags(registry_anon, other) == []
    assert not [t for t in skopeo_tags(registry_anon, repo) if t.startswith("sha256-")]


# -- configs as the reference implementation writes them -----------------------------------

FOREIGN_WIT = """\
package acme:app@0.3.0;

world service {
  import other:lib/log@1.0.0;
  export other:lib/handler@1.0.0;
  export run: func() -> u32;
  export local;
}

interface local {
  ping: func();
}

package other:lib@1.0.0 {
  interface log {
    write: func(msg: string);
  }
  interface handler {
    handle: func(x: u32) -> u32;
  }
}
"""


@pytest.fixture(scope="module")
def foreign_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WIT package whose world exports a foreign interface and a bare function."""
    root = tmp_path_factory.mktemp("foreign")
    (root / "app.wit").write_text(FOREIGN_WIT)
    wasm_tools("component", "wit", "--wasm", root / "app.wit", "-o", root / "app.wasm")
    return root / "app.wasm"


# oci-wasm's Component for each fixture, by its rules (component.rs): a component lists its
# world's import and export keys in decoded (binary) order; a WIT package lists, as a set, every
# world's export keys, every world's qualified name and every interface's; a module has none.
# Literal where the WIT is ours; from `wasm-tools print` where componentize-py decides.
REFERENCE: dict[str, Callable[[Path], dict[str, Any] | None]] = {
    "core_module": lambda path: None,
    "tiny_component": lambda path: {
        "exports": ["add", "acme:tiny/math@0.1.0"],
        "imports": ["acme:tiny/host@0.1.0"],
        "target": None,
    },
    "calc_component": lambda path: {
        "exports": printed_names(path)[1],
        "imports": printed_names(path)[0],
        "target": None,
    },
    "cli_component": lambda path: {
        "exports": printed_names(path)[1],
        "imports": printed_names(path)[0],
        "target": None,
    },
    "http_component": lambda path: {
        "exports": printed_names(path)[1],
        "imports": printed_names(path)[0],
        "target": None,
    },
    "wit_package": lambda path: {
        "exports": {
            "acme:calc/ops@1.2.0",
            "greet",
            "acme:calc/calculator@1.2.0",
            "acme:calc/client@1.2.0",
            "acme:calc/types@1.2.0",
            "acme:calc/logging@1.2.0",
        },
        "imports": [],
        "target": None,
    },
    "foreign_package": lambda path: {
        "exports": {
            "other:lib/handler@1.0.0",
            "run",
            "acme:app/local@0.3.0",
            "acme:app/service@0.3.0",
        },
        "imports": [],
        "target": None,
    },
}


@pytest.mark.parametrize("fixture", list(REFERENCE))
def test_config_component_equals_the_reference_implementations(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from hatch_wasm_oci.oci.layout import pack

    wasm: Path = request.getfixturevalue(fixture)
    expected = REFERENCE[fixture](wasm)
    result = pack(wasm, tmp_path / "ours", tags=["t"])
    ours = OciLayout.open(result.layout).config("t")
    if expected is None:
        assert ours["os"] == "wasip1" and "component" not in ours
        return
    component = dict(ours["component"], target=ours["component"].get("target"))
    if isinstance(expected["exports"], set):  # a HashSet in oci-wasm: order is not defined
        assert len(component["exports"]) == len(set(component["exports"]))
        component["exports"] = set(component["exports"])
    assert component == expected
    assert ours["os"] == "wasip2"
    # The reference's own bytes (null target and author, its field order) verify too.
    reference = wkg_layout(tmp_path / "wkg", wasm)
    verified = run_cli("verify", reference, env=clean_env(tmp_path / "home"))
    assert verified.returncode == 0, verified.stderr


# -- annotations: embedded metadata and the spec's value rules ------------------------------


@pytest.fixture(scope="module")
def described_component(tiny_component: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_component`` with every wasm-metadata field set by wasm-tools."""
    out = tmp_path_factory.mktemp("described") / "described.wasm"
    wasm_tools(
        "metadata", "add", tiny_component, "-o", out,
        "--name", "tiny-thing",
        "--authors", "Ada <ada@example.com>",
        "--description", "Adds numbers",
        "--licenses", "Apache-2.0 OR MIT",
        "--source", "https://example.com/src",
        "--homepage", "https://example.com/",
        "--revision", "0123abc",
        "--version", "1.2.3",
    )  # fmt: skip
    return out


def test_pack_maps_embedded_metadata_like_wkg_and_explicit_values_win(
    described_component: Path, tmp_path: Path
) -> None:
    env = clean_env(tmp_path / "home")
    packed = run_cli("pack", described_component, "-o", tmp_path / "a", "-t", "1.2.3", env=env)
    assert packed.returncode == 0, packed.stderr
    assert packed.stderr == ""
    manifest = json.loads(OciLayout.open(tmp_path / "a").manifest_bytes("1.2.3"))
    p = "org.opencontainers.image."
    assert {k: v for k, v in manifest["annotations"].items() if k != p + "created"} == {
        p + "title": "tiny-thing",
        p + "authors": "Ada <ada@example.com>",
        p + "description": "Adds numbers",
        p + "licenses": "Apache-2.0 OR MIT",
        p + "source": "https://example.com/src",
        p + "url": "https://example.com/",
        p + "revision": "0123abc",
        p + "version": "1.2.3",
    }
    overridden = run_cli(
        "pack", described_component, "-o", tmp_path / "b", "-t", "1.2.3",
        "--annotation", f"{p}description=Adds two numbers",
        "--annotation", f"{p}licenses=Apache-2.0 OR MIT",
        env=env,
    )  # fmt: skip
    assert overridden.returncode == 0, overridden.stderr
    assert overridden.stderr.splitlines() == [
        f"hatch-wasm-oci: warning: annotation {p}description='Adds two numbers' overrides the "
        "component's embedded metadata 'Adds numbers'"
    ]
    manifest = json.loads(OciLayout.open(tmp_path / "b").manifest_bytes("1.2.3"))
    assert manifest["annotations"][p + "description"] == "Adds two numbers"
    assert run_cli("verify", tmp_path / "b", env=env).returncode == 0


def test_an_embedded_version_that_disagrees_with_the_tag_says_what_to_do(
    described_component: Path, tmp_path: Path
) -> None:
    """The component says 1.2.3, the tag 1.0.0: refused, and the one line names both ways
    out; each of them then packs."""
    env = clean_env(tmp_path / "home")
    out = tmp_path / "out"
    packed = run_cli("pack", described_component, "-o", out, "-t", "1.0.0", env=env)
    version = "org.opencontainers.image.version"
    assert packed.returncode == 2 and not out.exists()
    assert packed.stderr.splitlines() == [
        f"hatch-wasm-oci: annotation {version}='1.2.3' disagrees with tag '1.0.0'; the "
        "component's embedded version is '1.2.3': tag it '1.2.3', or pass "
        f"--annotation {version}=1.0.0"
    ]
    retagged = run_cli("pack", described_component, "-o", out, "-t", "1.2.3", env=env)
    assert retagged.returncode == 0, retagged.stderr
    annotated = run_cli(
        "pack", described_component, "-o", tmp_path / "b", "-t", "1.0.0",
        "--annotation", f"{version}=1.0.0", env=env,
    )  # fmt: skip
    assert annotated.returncode == 0, annotated.stderr
    # An explicit annotation that disagrees: the hint names the annotation, not the flag.
    explicit = run_cli(
        "pack", described_component, "-o", tmp_path / "c", "-t", "2.0.0",
        "--annotation", f"{version}=1.0.0", env=env,
    )  # fmt: skip
    assert explicit.returncode == 2
    assert explicit.stderr.strip().endswith(
        f"disagrees with tag '2.0.0'; tag it '1.0.0', or set the {version} annotation to the "
        "tag's version"
    )


BAD_VALUES = [
    ("created", "yesterday", "1.2.3", "is not an RFC 3339 time"),
    ("licenses", "MIT OR ((", "1.2.3", "is not an SPDX license expression"),
    ("source", "github.com/acme/x", "1.2.3", "is not an absolute URL"),
    ("url", "/relative/page", "1.2.3", "is not an absolute URL"),
    ("version", "9.9.9", "1.2.3", "disagrees with tag '1.2.3'"),
    ("ref.name", "latest", "1.2.3", "is reserved for index.json"),
]


@pytest.mark.parametrize("case", BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_bad_annotation_values_fail_pack_verify_and_pull_alike(
    case: tuple[str, str, str, str],
    tiny_component: Path,
    tmp_path: Path,
    registry_anon: RegistryServer,
) -> None:
    registry = registry_anon
    key, value, tag, message = case
    full = f"org.opencontainers.image.{key}"
    env = clean_env(tmp_path / "home")
    packed = run_cli(
        "pack", tiny_component, "-o", tmp_path / "out", "-t", tag,
        "--annotation", f"{full}={value}", env=env,
    )  # fmt: skip
    assert packed.returncode == 2
    assert len(packed.stderr.splitlines()) == 1
    assert f"annotation {full}" in packed.stderr and message in packed.stderr
    assert not (tmp_path / "out").exists()

    def annotate(manifest: dict[str, Any], config: dict[str, Any]) -> None:
        manifest["annotations"] = {full: value}

    layout = wkg_layout(tmp_path / "wkg", tiny_component, annotate)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = tag
    (layout / "index.json").write_text(json.dumps(index))
    verified = run_cli("verify", layout, env=env)
    assert verified.returncode == 2
    assert f"annotation {full}" in verified.stderr and message in verified.stderr
    # pull refuses what verify would refuse of the layout it writes, in the same words
    repo = unique_repo(key.replace(".", "-"))
    pushed = plain_push(layout, f"{registry.address}/{repo}:{tag}", env)
    assert pushed.returncode == 2
    assert f"annotation {full}" in pushed.stderr and message in pushed.stderr
    assert skopeo_tags(registry, repo) == []
    skopeo_copy(layout, tag, registry, f"{repo}:{tag}")
    pulled = plain_pull(f"{registry.address}/{repo}:{tag}", tmp_path / "pulled", env)
    assert pulled.returncode == 2
    assert f"annotation {full}" in pulled.stderr and message in pulled.stderr
    assert not (tmp_path / "pulled").exists()


def test_good_values_and_unrelated_tags_pass(tiny_component: Path, tmp_path: Path) -> None:
    p = "org.opencontainers.image."
    packed = run_cli(
        "pack", tiny_component, "-o", tmp_path / "ok",
        "-t", "1.2.3rc1", "-t", "1.2.3-rc.1", "-t", "latest", "-t", "abc1234",
        "--annotation", f"{p}version=1.2.3rc1",
        "--annotation", f"{p}created=2024-05-01T12:00:00.5+02:00",
        "--annotation", f"{p}licenses=Apache-2.0 WITH LLVM-exception OR MIT",
        "--annotation", f"{p}source=https://github.com/acme/x",
        env=clean_env(tmp_path / "home"),
    )  # fmt: skip
    assert packed.returncode == 0, packed.stderr
    assert run_cli("verify", tmp_path / "ok", env=clean_env(tmp_path / "home")).returncode == 0


@pytest.mark.parametrize(
    ("target", "ok"),
    [
        ("wasi:http/proxy@0.2.0", True),
        ("acme:calc/calculator", True),
        ("wasi:cli/command@0.2.0-rc-2023-12-05", True),
        ("not a world!", False),
        ("wasi:http", False),
        ("wasi:http/proxy@0.2", False),
        ("Wasi:http/Proxy@0.2.0", False),
    ],
)
def test_pack_target_follows_the_world_name_grammar(
    target: str, ok: bool, tiny_component: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    packed = run_cli(
        "pack", tiny_component, "-o", out, "--target", target, env=clean_env(tmp_path / "home")
    )
    if ok:  # a well-formed name still has to be targeted: without WIT it cannot be checked
        assert packed.returncode == 2
        assert packed.stderr.startswith("hatch-wasm-oci: --target: no WIT to check world ")
        assert not out.exists()
    else:
        assert packed.returncode == 2
        assert packed.stderr.splitlines() == [
            f"hatch-wasm-oci: target {target!r} is not a world name: use ns:pkg/world@version, "
            "e.g. wasi:http/proxy@0.2.0"
        ]
        assert not out.exists()


def test_tag_underscore_x_is_refused_by_pack_and_verify(
    tiny_component: Path, tmp_path: Path
) -> None:
    env = clean_env(tmp_path / "home")
    packed = run_cli("pack", tiny_component, "-o", tmp_path / "out", "-t", "_x", env=env)
    assert packed.returncode == 2 and "invalid OCI tag '_x'" in packed.stderr
    assert not (tmp_path / "out").exists()
    layout = wkg_layout(tmp_path / "wkg", tiny_component)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "_x"
    (layout / "index.json").write_text(json.dumps(index))
    verified = run_cli("verify", layout, env=env)
    assert verified.returncode == 2 and "tag '_x' breaks the OCI tag grammar" in verified.stderr
