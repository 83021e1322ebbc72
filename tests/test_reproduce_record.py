"""``reproduce REF`` explains a difference from REF's provenance referrer: which recorded build
input changed (source tree, SOURCE_DATE_EPOCH, ...), or that none did; a junk provenance is one
line and exit 2; without a provenance it says so and keeps the section diff."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hatch_wasm_oci.errors import LayoutError
from hatch_wasm_oci.oci import media_types as mt
from hatch_wasm_oci.oci.descriptor import Descriptor
from hatch_wasm_oci.oci.layout import LayoutWriter, blob_relpath
from hatch_wasm_oci.oci.referrers import add_to_layout, document_referrer
from hatch_wasm_oci.project.record import MAX_PROVENANCE_SIZE, changed_inputs, parse_provenance
from tests.hatch_fixtures import LAYOUT, copy_project, write_project
from tests.registry_fixtures import RegistryServer, clean_env, plain_push, run_cli
from tests.wasm_fixtures import TINY_COMMAND, TINY_CORE_WAT, TINY_WIT

EPOCH = "1700000000"
HEAD = "'s provenance (unsigned: it says what its builder claimed): inputs that changed:"


def _project(root: Path, *, provenance: bool = True) -> Path:
    table = f'command = {json.dumps(TINY_COMMAND)}\npath = "build/tiny.wasm"\n'
    table += f"provenance = {'true' if provenance else 'false'}\n"
    return write_project(
        root, wasm_oci=table, files={"tiny.wat": TINY_CORE_WAT, "wit/tiny.wit": TINY_WIT}
    )


@dataclass(frozen=True)
class Published:
    project: Path
    layout: Path
    digest: str


def _publish(root: Path, *, provenance: bool = True) -> Published:
    from hatch_wasm_oci.project.reproduce import cold_build

    project = _project(root / "project", provenance=provenance)
    env = {**clean_env(root / "home"), "SOURCE_DATE_EPOCH": EPOCH}
    built = cold_build(project, root / "published", environ=env, log=lambda _line: None)
    (layout,) = (root / "published").iterdir()
    return Published(project, layout, built.digest)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """The tiny command project built once, with its provenance, SOURCE_DATE_EPOCH=EPOCH."""
    return _publish(tmp_path_factory.mktemp("record"))


def _checkout(published: Published, tmp_path: Path) -> Path:
    project = tmp_path / "checkout"
    shutil.copytree(published.project, project, ignore=shutil.ignore_patterns("build"))
    return project


def _reproduce(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hatch_wasm_oci", "reproduce", *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _changed(stdout: str, target: str, digest: str) -> list[str]:
    """The changed-input lines of a ``not reproducible`` report (checked to be in order)."""
    first, head, *rest = stdout.splitlines()
    assert first.startswith(f"not reproducible: {target} is {digest}, the rebuild "), stdout
    assert head == f"  {target}{HEAD}", stdout
    changed = [line[4:] for line in rest if line.startswith("    ")]
    sections = rest[len(changed) :]
    assert sections and all(line.startswith("  core-module[0]/") for line in sections), stdout
    return changed


def _env(tmp_path: Path, epoch: str = EPOCH) -> dict[str, str]:
    return {**clean_env(tmp_path / "home"), "SOURCE_DATE_EPOCH": epoch}


def test_an_edited_source_file_is_named_as_the_one_input_that_changed(
    published: Published, tmp_path: Path
) -> None:
    project = _checkout(published, tmp_path)
    same = _reproduce(project, str(published.layout), env=_env(tmp_path))
    assert (same.returncode, same.stdout) == (0, f"reproducible: {published.digest}\n"), same
    (project / "tiny.wat").write_text(TINY_CORE_WAT.replace("i32.add", "i32.sub"))
    run = _reproduce(project, str(published.layout), env=_env(tmp_path))
    assert run.returncode == 1, run.stderr
    (line,) = _changed(run.stdout, str(published.layout), published.digest)
    sha = r"sha256:[0-9a-f]{12}…"
    assert re.fullmatch(f"source tree: {sha} → {sha}", line), line
    old, new = re.findall(sha, line)
    assert old != new
    assert "Traceback" not in run.stderr


def test_a_changed_source_date_epoch_is_named_with_both_values(
    published: Published, tmp_path: Path
) -> None:
    project = _checkout(published, tmp_path)
    run = _reproduce(project, str(published.layout), env=_env(tmp_path, "1700000100"))
    assert run.returncode == 1, run.stderr
    _first, head, changed, *rest = run.stdout.splitlines()
    assert head == f"  {published.layout}{HEAD}"
    assert changed == (
        "    SOURCE_DATE_EPOCH: 1700000000 → 1700000100 "
        "(set SOURCE_DATE_EPOCH=1700000000 to rebuild as recorded)"
    ), run.stdout
    again = _reproduce(project, str(published.layout), env=_env(tmp_path, EPOCH))
    assert (again.returncode, again.stdout) == (0, f"reproducible: {published.digest}\n")
    # The component is the same; only the created time moved.
    assert rest == ["  the components are identical; the configs differ in created"], run.stdout


def test_a_registry_reference_reads_the_provenance_through_its_referrers(
    published: Published, tmp_path: Path, registry_anon: RegistryServer
) -> None:
    env = _env(tmp_path)
    ref = f"{registry_anon.address}/record/tiny:1.0.0"
    pushed = plain_push(published.layout, ref, env)
    assert pushed.returncode == 0, pushed.stderr
    assert f"referrer {mt.PROVENANCE} sha256:" in pushed.stdout  # sent, so pull can find it
    project = _checkout(published, tmp_path)
    (project / "wit" / "extra.txt").write_text("not WIT, but part of the source tree\n")
    run = _reproduce(project, ref, "--plain-http", env=env)
    assert run.returncode == 0, run.stderr  # extra.txt changes no byte of the artifact
    (project / "tiny.wat").write_text(TINY_CORE_WAT.replace("i32.add", "i32.sub"))
    run = _reproduce(project, ref, "--plain-http", env=env)
    assert run.returncode == 1, run.stderr
    (line,) = _changed(run.stdout, ref, published.digest)
    assert line.startswith("source tree: sha256:"), line


# Builds build/tiny.wasm with $OP in place of i32.add, its intermediates outside the tree: an
# input (the environment) that no provenance records.
ENV_COMMAND = (
    'd=$(mktemp -d) && sed "s/i32.add/${OP:-i32.add}/" tiny.wat > $d/t.wat'
    " && wasm-tools parse $d/t.wat -o $d/core.wasm"
    " && wasm-tools component embed --world tiny wit/tiny.wit $d/core.wasm -o $d/e.wasm"
    " && mkdir -p build && wasm-tools component new $d/e.wasm -o build/tiny.wasm"
)


def test_the_same_recorded_inputs_and_other_bytes_say_the_build_is_not_deterministic(
    tmp_path: Path,
) -> None:
    from hatch_wasm_oci.project.reproduce import cold_build

    table = f'command = {json.dumps(ENV_COMMAND)}\npath = "build/tiny.wasm"\nprovenance = true\n'
    files = {"tiny.wat": TINY_CORE_WAT, "wit/tiny.wit": TINY_WIT}
    project = write_project(tmp_path / "project", wasm_oci=table, files=files)
    env = _env(tmp_path)
    built = cold_build(project, tmp_path / "published", environ=env, log=lambda _line: None)
    (layout,) = (tmp_path / "published").iterdir()
    run = _reproduce(project, str(layout), env={**env, "OP": "i32.sub"})
    assert run.returncode == 1, run.stderr
    first, head, *sections = run.stdout.splitlines()
    assert first.startswith(f"not reproducible: {layout} is {built.digest}, the rebuild ")
    assert head == (
        f"  {layout}'s provenance (unsigned: it says what its builder claimed) lists the same "
        "inputs as the rebuild: the compiler is not deterministic here"
    ), run.stdout
    assert sections and all(line.startswith("  core-module[0]/") for line in sections)


def _with_document(published: Published, tmp_path: Path, data: bytes, layer_type: str) -> Path:
    """A copy of ``published``'s layout with ``data`` as a (second) provenance referrer."""
    layout = tmp_path / "layout"
    shutil.copytree(published.layout, layout)
    size = (layout / blob_relpath(published.digest)).stat().st_size
    subject = Descriptor(mt.MANIFEST, published.digest, size)
    referrer = document_referrer(
        subject, mt.PROVENANCE, data, title="junk.json", annotations={}, layer_media_type=layer_type
    )
    with LayoutWriter(layout) as writer:
        add_to_layout(writer, referrer, data)
        writer.commit()
    return layout


def test_a_junk_provenance_is_one_line_and_exit_2_before_any_rebuild(tmp_path: Path) -> None:
    bare = _publish(tmp_path / "bare", provenance=False)
    for i, junk in enumerate(
        [b"[" * 100_000 + b"]" * 100_000, b"not json", b'{"_type": "something else"}']
    ):
        layout = _with_document(bare, tmp_path / str(i), junk, mt.PROVENANCE)
        run = _reproduce(bare.project, str(layout), env=_env(tmp_path))
        assert (run.returncode, run.stdout) == (2, ""), run
        (line,) = run.stderr.splitlines()
        assert line.startswith(f"hatch-wasm-oci: {layout}: the provenance "), line
        assert "made the tiny component" not in run.stderr  # refused before the build


def test_without_a_provenance_it_says_so_and_keeps_the_section_diff(tmp_path: Path) -> None:
    bare = _publish(tmp_path / "bare", provenance=False)
    (bare.project / "tiny.wat").write_text(TINY_CORE_WAT.replace("i32.add", "i32.sub"))
    run = _reproduce(bare.project, str(bare.layout), env=_env(tmp_path))
    assert run.returncode == 1, run.stderr
    _first, *sections = run.stdout.splitlines()
    assert sections and all(line.startswith("  core-module[0]/") for line in sections)
    notes = [line for line in run.stderr.splitlines() if "provenance" in line]
    assert notes == [f"hatch-wasm-oci: {bare.layout} has no provenance; comparing the "
                     "components only"]  # fmt: skip


def _statement(**internal: object) -> dict[str, object]:
    from hatch_wasm_oci.project.provenance import BUILD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE

    return {
        "_type": STATEMENT_TYPE,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "internalParameters": internal,
                "resolvedDependencies": [
                    {"name": "source-tree", "digest": {"sha256": "a" * 64}},
                    {"name": "wkg.lock", "digest": {"sha256": "b" * 64}},
                    {"name": "componentize-py", "uri": "pkg:pypi/componentize-py@0.25.0"},
                ],
            }
        },
    }


def test_recorded_inputs_are_parsed_bounded_and_compared() -> None:
    doc = _statement(SOURCE_DATE_EPOCH="1", compileCacheKey={"sha256": "c" * 64})
    recorded = parse_provenance(json.dumps(doc).encode(), "REF")
    assert recorded is not None
    envelope = {
        "payloadType": mt.PROVENANCE,
        "payload": base64.b64encode(json.dumps(doc).encode()).decode(),
        "signatures": [],
    }
    assert parse_provenance(json.dumps(envelope).encode(), "REF") == recorded
    newer = dict(recorded, **{"componentize-py": "0.26.0", "wkg.lock": "sha256:" + "d" * 64})
    assert changed_inputs(recorded, newer) == [
        "componentize-py 0.25.0 → 0.26.0",
        f"wkg.lock: sha256:{'b' * 12}… → sha256:{'d' * 12}…",
    ]
    # The compile key is named only when nothing it is derived from changed.
    keyed = dict(recorded, **{"compile cache key": "sha256:" + "e" * 64})
    (line,) = changed_inputs(recorded, keyed)
    assert line.startswith("compile cache key: sha256:cccccccccccc… → sha256:eeeeeeeeeeee…")
    assert changed_inputs(recorded, recorded) == []
    # Another kind of in-toto statement is not ours to read; junk is one LayoutError line.
    other = dict(doc, predicateType="https://spdx.dev/Document")
    assert parse_provenance(json.dumps(other).encode(), "REF") is None
    for junk in (
        b"x" * (MAX_PROVENANCE_SIZE + 1),
        b"[" * 50_000,
        b"{}",
        json.dumps({"payloadType": mt.PROVENANCE, "payload": "!!"}).encode(),
        json.dumps(dict(envelope, payloadType="text/plain")).encode(),
        json.dumps(_statement(SOURCE_DATE_EPOCH=[1])).encode(),
        json.dumps(dict(doc, predicate={"buildDefinition": {
            "buildType": doc["predicate"]["buildDefinition"]["buildType"],  # type: ignore[index]
            "resolvedDependencies": [{"name": "x"}], "internalParameters": {},
        }})).encode(),
    ):  # fmt: skip
        with pytest.raises(LayoutError) as caught:
            parse_provenance(junk, "REF")
        assert str(caught.value).startswith("REF: the provenance ")
        assert "\n" not in str(caught.value)


def test_the_build_environment_is_recorded_and_its_differences_named() -> None:
    doc = _statement(
        SOURCE_DATE_EPOCH="1",
        compileCacheKey={"sha256": "c" * 64},
        buildEnvironment=["hatchling==1.33.0", "uv==0.5.0", "wasmtime==50.0.0"],
    )
    recorded = parse_provenance(json.dumps(doc).encode(), "REF")
    assert recorded is not None
    here = json.loads(json.dumps(doc))
    here["predicate"]["buildDefinition"]["internalParameters"].update(
        compileCacheKey={"sha256": "e" * 64},
        buildEnvironment=["hatchling==1.34.0", "pytest==8.3.0", "wasmtime==50.0.0"],
    )
    rebuilt = parse_provenance(json.dumps(here).encode(), "REF")
    assert rebuilt is not None
    # Named instead of the bare compile key the distributions feed.
    assert changed_inputs(recorded, rebuilt) == [
        "build environment: 1 changed (hatchling 1.33.0 → 1.34.0), 1 only here (pytest 8.3.0), "
        "1 only where it was built (uv 0.5.0); rebuild where the recorded distributions are "
        "installed"
    ]
    many = json.loads(json.dumps(here))
    many["predicate"]["buildDefinition"]["internalParameters"]["buildEnvironment"] = [
        f"pkg{i}==1.0" for i in range(20)
    ]
    (line,) = changed_inputs(recorded, parse_provenance(json.dumps(many).encode(), "REF") or {})
    assert line.startswith(
        "build environment: 20 only here (pkg0 1.0, pkg1 1.0, pkg10 1.0, pkg11 1.0, …), "
        "3 only where it was built ("
    ), line
    for junk in ("x", ["no-version"], [1], ["a==1"] * 5000, ["a==" + "1" * 300], ["a==1\n"]):
        bad = _statement(buildEnvironment=junk)
        with pytest.raises(LayoutError, match="has a buildEnvironment that is not a list"):
            parse_provenance(json.dumps(bad).encode(), "REF")


@pytest.mark.slow
def test_reproduce_against_a_hatch_build_names_the_distributions_that_differ(
    example_project_build: Path, tmp_path: Path
) -> None:
    """`hatch build` compiles in Hatch's isolated build environment; a `reproduce` run here
    (the test environment, with pytest) names the distributions only one of them has."""
    layout = example_project_build / LAYOUT
    statement = _provenance_of(layout)
    recorded = statement["predicate"]["buildDefinition"]["internalParameters"]["buildEnvironment"]
    assert recorded == sorted(recorded) and any(d.startswith("componentize-py==") for d in recorded)
    assert not any(d.startswith("pytest==") for d in recorded)  # isolated: no test tools
    project = copy_project(example_project_build, tmp_path / "checkout")
    run = _reproduce(project, str(layout), env=clean_env(tmp_path / "home"))
    assert run.returncode == 1, run.stdout + run.stderr
    (line,) = [x.strip() for x in run.stdout.splitlines() if "build environment: " in x]
    from hatch_wasm_oci.project.componentize import visible_distributions

    names = {d.split("==")[0] for d in recorded}
    only_here = {d.split("==")[0] for d in visible_distributions()} - names
    assert "pytest" in only_here
    assert f" {len(only_here)} only here (" in line, line


def _provenance_of(layout: Path) -> dict[str, Any]:
    from hatch_wasm_oci.oci.layout_reader import OciLayout

    opened = OciLayout.open(layout)
    (subject,) = [d for d in opened.manifests() if d.artifact_type != mt.PROVENANCE][:1]
    for _desc, referrer in opened.referrers(subject.digest):
        if referrer.artifact_type == mt.PROVENANCE:
            statement: dict[str, Any] = json.loads(opened.read_document(referrer.layers[0]))
            return statement
    raise AssertionError(f"{layout}: no provenance referrer")


def test_reproduce_help_describes_the_provenance_check(tmp_path: Path) -> None:
    run = run_cli("reproduce", "--help", env=clean_env(tmp_path / "home"))
    assert run.returncode == 0
    text = " ".join(run.stdout.split())
    assert "provenance referrer" in text and "unsigned" in text
    assert "SOURCE_DATE_EPOCH" in text and "exit 2" in text
