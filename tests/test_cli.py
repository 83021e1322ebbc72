"""The ``hatch-wasm-oci`` command in a subprocess: inspect, pack, verify and bad input."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.wasm_fixtures import TINY_WIT, printed_names, wit_world


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hatch_wasm_oci", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"SOURCE_DATE_EPOCH": "1700000000", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


def test_inspect_wasm_prints_the_derived_config(calc_component: Path) -> None:
    proc = run("inspect", str(calc_component))
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    imports, exports = wit_world(calc_component)
    assert shown["kind"] == "component"
    assert shown["config"]["os"] == "wasip2"
    assert shown["config"]["created"] == "2023-11-14T22:13:20Z"
    assert set(shown["config"]["component"]["imports"]) == imports
    assert set(shown["config"]["component"]["exports"]) == exports
    assert (
        shown["config"]["component"]["imports"],
        shown["config"]["component"]["exports"],
    ) == printed_names(calc_component)
    assert shown["config"]["layerDigests"] == [shown["digest"]]


def test_pack_then_inspect_and_verify_the_layout(tiny_component: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    wit = tmp_path / "tiny.wit"
    wit.write_text(TINY_WIT)
    proc = run(
        "pack",
        str(tiny_component),
        "-o",
        str(out),
        "-t",
        "1.0.0",
        "-t",
        "latest",
        "--annotation",
        "org.opencontainers.image.source=https://example.com/x",
        "--target",
        "acme:tiny/tiny@0.1.0",
        "--wit",
        str(wit),
        "--tar",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{out}:1.0.0@sha256:")
    assert lines[-1] == f"{out}.tar"

    proc = run("inspect", str(out))
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert set(shown["tags"]) == {"1.0.0", "latest"}
    (entry,) = shown["manifests"]
    assert entry["manifest"]["annotations"]["org.opencontainers.image.source"] == (
        "https://example.com/x"
    )
    assert entry["config"]["component"]["target"] == "acme:tiny/tiny@0.1.0"

    proc = run("verify", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{out}: ok (1 manifest(s), tags: 1.0.0, latest)\n"

    layer_digest = entry["manifest"]["layers"][0]["digest"]
    blob = out / "blobs/sha256" / layer_digest.removeprefix("sha256:")
    blob.write_bytes(blob.read_bytes() + b"\0")
    proc = run("verify", str(out))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "bytes, descriptor says" in proc.stderr


def _bad_inputs(tmp: Path, component: bytes) -> dict[str, tuple[Path, str]]:
    """Name -> (file, a fragment the one-line error must contain)."""
    cases: dict[str, tuple[Path, bytes | None, str]] = {
        "empty": (tmp / "empty.wasm", b"", "empty"),
        "text": (tmp / "text.wasm", b"hello, world\n", "not a WebAssembly"),
        "magic-only": (tmp / "magic.wasm", b"\0asm", "truncated preamble: 4 of 8 bytes"),
        "unknown-version": (tmp / "version.wasm", b"\0asm\x07\x00\x00\x00", "version"),
        "truncated": (tmp / "half.wasm", component[: len(component) // 2], "at byte"),
        "overflowing-section": (
            tmp / "overflow.wasm",
            b"\0asm\x01\x00\x00\x00\x01\x7f\x00",
            "at byte 8",
        ),
        "long-leb128": (
            tmp / "leb.wasm",
            b"\0asm\x01\x00\x00\x00\x00\x80\x80\x80\x80\x80\x01",
            "at byte 9",
        ),
        "bad-utf8-name": (
            tmp / "utf8.wasm",
            b"\0asm\x01\x00\x00\x00\x00\x03\x02\xff\xfe",
            "UTF-8",
        ),
        "directory": (tmp / "adir", None, "directory"),
        "missing": (tmp / "missing.wasm", None, "missing.wasm"),
    }
    out: dict[str, tuple[Path, str]] = {}
    for name, (path, data, fragment) in cases.items():
        if name == "directory":
            path.mkdir()
        elif data is not None:
            path.write_bytes(data)
        out[name] = (path, fragment)
    archive = tmp / "zip.wasm"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", "zip")
    out["zip"] = (archive, "not a WebAssembly")
    return out


@pytest.mark.parametrize("command", ["inspect", "pack"])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(
    command: str, tiny_component: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name, (path, fragment) in _bad_inputs(inputs, tiny_component.read_bytes()).items():
        out = tmp_path / f"out-{name}"
        args = [command, str(path)] + (["-o", str(out)] if command == "pack" else [])
        proc = run(*args)
        assert proc.returncode == 2, (name, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("hatch-wasm-oci: "), (name, proc.stderr)
        assert proc.stderr.count("\n") == 1, (name, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert str(path) in proc.stderr, (name, proc.stderr)
        if command == "inspect" and name == "directory":
            fragment = "not an OCI image layout"  # inspect reads a directory as a layout
        assert fragment.lower() in proc.stderr.lower(), (name, proc.stderr)
        assert proc.stdout == ""
        assert not out.exists()
        assert not list(tmp_path.glob(f".out-{name}*"))


def test_usage_errors(tiny_component: Path, tmp_path: Path) -> None:
    proc = run("pack", str(tiny_component), "-o", str(tmp_path / "o"), "-t", ".bad")
    assert proc.returncode == 2 and "invalid OCI tag" in proc.stderr
    proc = run("pack", str(tiny_component), "-o", str(tmp_path / "o"), "--annotation", "novalue")
    assert proc.returncode == 2 and "KEY=VALUE" in proc.stderr
    assert not (tmp_path / "o").exists()
    proc = run("verify", str(tmp_path))
    assert proc.returncode == 2 and "not an OCI image layout" in proc.stderr


def test_each_command_parses_with_only_its_own_sub_parser() -> None:
    """main() builds only the sub-parser of the command it runs: the table naming them must
    cover every command of the full parser, and each reduced parser must accept its command."""
    import argparse

    from hatch_wasm_oci.cli.main import _COMMANDS, build_parser

    def choices(parser: argparse.ArgumentParser) -> set[str]:
        (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return set(sub.choices)

    assert choices(build_parser()) == set(_COMMANDS)
    for name in _COMMANDS:
        assert name in choices(build_parser(name))


@pytest.mark.parametrize("command", ["inspect", "verify", "run", "tags", "init"])
def test_help_shows_examples_that_parse(command: str) -> None:
    """Each ``--help`` ends with examples; every example line is a command its parser accepts."""
    done = run(command, "--help")
    assert done.returncode == 0, done.stderr
    assert "example" in done.stdout, done.stdout
    if command not in ("inspect", "verify", "run"):
        return
    examples = done.stdout.split("examples:\n", 1)[1].splitlines()
    from hatch_wasm_oci.cli.main import build_parser

    parser = build_parser()
    for line in filter(None, (e.split("#", 1)[0].strip() for e in examples)):
        words = shlex.split(line)
        assert words[0] == "hatch-wasm-oci", line
        parsed = parser.parse_args(words[1:])
        assert parsed.command in ("inspect", "verify", "pull", "run"), line
