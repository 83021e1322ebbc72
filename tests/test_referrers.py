"""SBOM and provenance as OCI referrers: built into the layout, checked by independent readers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hatch_wasm_oci.errors import ConfigurationError
from hatch_wasm_oci.oci.layout_reader import OciLayout
from hatch_wasm_oci.oci.referrers import EMPTY_CONFIG, Referrer
from hatch_wasm_oci.project.pipeline import build_artifact
from hatch_wasm_oci.project.settings import parse_settings
from tests.hatch_fixtures import (
    EXAMPLE_PROJECT,
    LAYOUT,
    copy_project,
    run_hatch,
)

SBOM = "application/vnd.cyclonedx+json"
PROVENANCE = "application/vnd.in-toto+json"


def documents(layout_dir: Path) -> dict[str, tuple[Referrer, dict[str, Any]]]:
    """artifactType -> (referrer, parsed document) of a layout's referrers."""
    layout = OciLayout.open(layout_dir)
    found = {}
    for _, referrer in layout.referrers():
        (layer,) = referrer.layers
        found[referrer.artifact_type] = (referrer, json.loads(layout.read_document(layer)))
    return found


def cyclonedx_problem(document: dict[str, Any]) -> object:
    """The CycloneDX 1.6 schema's verdict, by cyclonedx-python-lib's own validator."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    return JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hatch_wasm_oci.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_example_build_attaches_sbom_and_provenance(example_project_build: Path) -> None:
    """``hatch build -t wasm-oci`` of the example writes both documents as referrers of the
    component's manifest: verify, skopeo and the CycloneDX schema accept what it wrote."""
    layout_dir = example_project_build / LAYOUT
    layout = OciLayout.open(layout_dir)
    subject = layout.tags()["latest"]
    docs = documents(layout_dir)
    assert set(docs) == {SBOM, PROVENANCE}
    for referrer, _ in docs.values():
        assert referrer.subject.digest == subject.digest
        assert referrer.config == EMPTY_CONFIG
        assert layout.read_document(EMPTY_CONFIG) == b"{}"
    sbom = docs[SBOM][1]
    assert cyclonedx_problem(sbom) is None
    assert sbom["specVersion"] == "1.6"
    tools = {c["name"] for c in sbom["metadata"]["tools"]["components"]}
    assert {"componentize-py", "hatch-wasm-oci", "cpython"} <= tools
    (cpython,) = [c for c in sbom["components"] if c["name"] == "cpython"]
    assert cpython["version"].startswith("3.")
    layer = layout.wasm_manifest(subject).layer
    assert sbom["metadata"]["component"]["hashes"][0]["content"] == layer.digest[7:]
    statement = docs[PROVENANCE][1]
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["subject"][0]["digest"] == {"sha256": subject.digest[7:]}
    build = statement["predicate"]["buildDefinition"]
    key = build["internalParameters"]["compileCacheKey"]
    assert len(key["sha256"]) == 64 and key["covers"]
    names = {d["name"] for d in build["resolvedDependencies"]}
    assert {"source-tree", "componentize-py", "hatch-wasm-oci", "python"} <= names
    verified = cli("verify", layout_dir)
    assert verified.returncode == 0, verified.stderr
    assert "1 manifest(s), 2 referrer(s)" in verified.stdout
    shown = json.loads(cli("inspect", layout_dir).stdout)
    assert {r["artifactType"] for r in shown["referrers"]} == {SBOM, PROVENANCE}
    assert [m["digest"] for m in shown["manifests"]] == [subject.digest]
    # The referrers are not candidates to run: the layout names one component.
    called = cli(
        "run",
        layout_dir,
        "--invoke",
        'find([{sku: "a", name: "b", quantity: 1, unit-price-cents: 2}], "a")',
    )
    assert called.returncode == 0, called.stderr
    assert 'sku: "a"' in called.stdout
    # skopeo reads the layout's index and copies the component out of it.
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{layout_dir}:latest"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert raw == layout.manifest_bytes("latest")


def test_sbom_lists_a_third_party_distribution_the_app_imports(
    hatch_env: dict[str, str], tmp_path: Path
) -> None:
    """Adding ``idna`` to the build environment and importing it in the app puts it in the
    SBOM with its license, PURL and the hashes of the modules componentize-py bundled; an
    installed distribution the app does not import stays out."""
    project = copy_project(EXAMPLE_PROJECT, tmp_path / "example-project")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'requires = ["hatchling", "hatch-wasm-oci"]',
            'requires = ["hatchling", "hatch-wasm-oci", "idna"]',
        )
    )
    app = project / "src/inventory_app/app.py"
    app.write_text(
        app.read_text().replace(
            "from __future__ import annotations\n",
            "from __future__ import annotations\n\nimport idna  # noqa: F401\n",
            1,
        )
    )
    run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env)
    sbom = documents(project / LAYOUT)[SBOM][1]
    assert cyclonedx_problem(sbom) is None
    by_name = {c["name"]: c for c in sbom["components"]}
    idna = by_name["idna"]
    assert idna["purl"] == f"pkg:pypi/idna@{idna['version']}"
    assert idna["licenses"]
    files = {f["name"]: f["hashes"][0]["content"] for f in idna["components"]}
    assert "idna/core.py" in files and "idna/codec.py" not in files  # imported modules only
    assert all(len(sha) == 64 for sha in files.values())
    assert "hatchling" not in by_name and "componentize-py" not in by_name


def _command_project(root: Path, wasm: Path, extra: str = "") -> tuple[Path, dict[str, Any]]:
    (root / "src").mkdir(parents=True)
    (root / "src" / "input.txt").write_text("hello\n")
    shutil.copyfile(wasm, root / "src" / "prebuilt.wasm")
    config = {
        "command": [
            sys.executable,
            "-c",
            "import shutil; shutil.copy('src/prebuilt.wasm', 'c.wasm')",
        ],
        "path": "c.wasm",
        "sbom": True,
        "provenance": True,
    }
    return root, config


def _build(root: Path, config: dict[str, Any], out: Path) -> Path:
    settings = parse_settings(config, root=root, version="1.0.0")
    result = build_artifact(
        settings,
        root=root,
        project={"name": "demo", "version": "1.0.0", "license": "MIT"},
        name="demo",
        version="1.0.0",
        out_dir=out,
        log=lambda _: None,
        waiting=lambda _: None,
        environ={"SOURCE_DATE_EPOCH": "1700000000"},
    )
    return result.pack.layout


def test_command_build_sbom_names_the_command_and_input_digests_reproducibly(
    calc_component: Path, tmp_path: Path
) -> None:
    """A ``command`` build with ``sbom = true`` records the command and every input file's
    digest; two builds give byte-equal layouts (no clock beyond SOURCE_DATE_EPOCH)."""
    root, config = _command_project(tmp_path / "p", calc_component)
    first = _build(root, config, tmp_path / "out1")
    second = _build(root, config, tmp_path / "out2")
    assert (first / "index.json").read_bytes() == (second / "index.json").read_bytes()
    docs = documents(first)
    sbom = docs[SBOM][1]
    assert cyclonedx_problem(sbom) is None
    props = {p["name"]: p["value"] for p in sbom["metadata"]["properties"]}
    assert "shutil.copy" in props["hatch-wasm-oci:command"]
    files = {c["name"]: c["hashes"][0]["content"] for c in sbom["components"]}
    import hashlib

    assert files["src/input.txt"] == hashlib.sha256(b"hello\n").hexdigest()
    statement = docs[PROVENANCE][1]
    assert statement["predicate"]["buildDefinition"]["internalParameters"] == {
        "SOURCE_DATE_EPOCH": "1700000000"
    }
    (root / "src" / "input.txt").write_text("changed\n")
    changed = documents(_build(root, config, tmp_path / "out3"))[PROVENANCE][1]
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    after = changed["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps[0]["name"] == after[0]["name"] == "source-tree"
    assert deps[0]["digest"] != after[0]["digest"]


def test_sbom_and_provenance_are_off_by_default_for_a_command_and_settings_are_checked(
    calc_component: Path, tmp_path: Path
) -> None:
    root, config = _command_project(tmp_path / "p", calc_component)
    del config["sbom"], config["provenance"]
    assert OciLayout.open(_build(root, config, tmp_path / "out")).referrers() == []
    with pytest.raises(ConfigurationError) as caught:
        parse_settings({**config, "sbom": "yes", "provenance": 1}, root=root)
    assert str(caught.value) == (
        "tool.hatch.build.targets.wasm-oci.sbom: must be true or false, not a string; "
        "tool.hatch.build.targets.wasm-oci.provenance: must be true or false, not an integer"
    )


def test_verify_refuses_a_referrer_whose_subject_is_not_in_the_layout(
    calc_component: Path, tmp_path: Path
) -> None:
    root, config = _command_project(tmp_path / "p", calc_component)
    layout_dir = _build(root, config, tmp_path / "out")
    index = json.loads((layout_dir / "index.json").read_text())
    index["manifests"] = [m for m in index["manifests"] if "artifactType" in m]
    (layout_dir / "index.json").write_text(json.dumps(index))
    verified = cli("verify", layout_dir)
    assert verified.returncode == 2
    assert verified.stderr.count("\n") == 1
    assert "its subject sha256:" in verified.stderr and "is not in the layout" in verified.stderr
