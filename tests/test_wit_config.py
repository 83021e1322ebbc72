"""The wasm-pkg configuration: file location, registry precedence, the plugin's table on top,
and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hatch_wasm_oci.wit.config import WasmPkgConfig, config_path, load_config
from hatch_wasm_oci.wit.errors import WitError
from hatch_wasm_oci.wit.names import PackageName

CONFIG = """\
default_registry = "default.example"

[namespace_registries]
acme = "acme.example"

[namespace_registries.custom]
registry = "custom.example"
metadata.preferredProtocol = "oci"
metadata.oci = { registry = "ghcr.io", namespacePrefix = "custom/" }

[package_registry_overrides]
"acme:special" = "special.example"

[registry."acme.example".oci]
auth = { username = "open", password = "sesame" }
protocol = "http"

[registry."wasi.dev".oci]
auth = "cGluZzpwb25n"
"""


def registry(config: WasmPkgConfig, name: str) -> str | None:
    return config.registry_for(PackageName.parse(name))


def test_precedence_and_file_location(tmp_path: Path) -> None:
    (tmp_path / "xdg" / "wasm-pkg").mkdir(parents=True)
    (tmp_path / "xdg" / "wasm-pkg" / "config.toml").write_text(CONFIG)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    assert config_path(env) == tmp_path / "xdg" / "wasm-pkg" / "config.toml"
    config = load_config(env)
    assert registry(config, "acme:special") == "special.example"  # package override
    assert registry(config, "acme:other@1.0.0") == "acme.example"  # namespace
    assert registry(config, "wasi:http") == "default.example"  # default beats the built-ins
    mapping = config.mapping_for(PackageName.parse("custom:x"))
    assert mapping is not None and mapping.metadata is not None
    assert mapping.metadata["oci"]["namespacePrefix"] == "custom/"
    acme = config.registries["acme.example"]
    assert (acme.username, acme.password, acme.protocol) == ("open", "sesame", "http")
    wasi = config.registries["wasi.dev"]
    assert (wasi.username, wasi.password) == ("ping", "pong")
    assert "sesame" not in repr(acme)

    # no file: the built-ins only
    empty = load_config({"HOME": str(tmp_path / "nobody")})
    assert registry(empty, "wasi:io") == "wasi.dev"
    assert registry(empty, "ba:thing") == "bytecodealliance.org"
    assert registry(empty, "acme:x") is None

    # WKG_CONFIG_FILE wins; the plugin's table is laid over the file
    other = tmp_path / "other.toml"
    other.write_text('[namespace_registries]\nwasi = "file.example"\n')
    env = {**env, "WKG_CONFIG_FILE": str(other)}
    assert registry(load_config(env), "wasi:io") == "file.example"
    table = {"namespace_registries": {"wasi": "table.example"}}
    assert registry(load_config(env, table), "wasi:io") == "table.example"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour = 1\n", "unknown key 'colour'"),
        ('default_registry = "https://x"\n', "default_registry: 'https://x' is not a registry"),
        ("[namespace_registries]\nwasi = 3\n", "namespace_registries.wasi: must be a table"),
        ('[registry."x.example".oci]\nprotocol = "ftp"\n', 'protocol: must be "http" or "https"'),
        (
            '[registry."x.example".oci]\nauth = "bm9jb2xvbg"\n',
            "auth: not base64 of username:password",
        ),
        ("not toml = = \n", "not valid TOML"),
    ],
)
def test_bad_config_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(WitError) as caught:
        load_config({"WKG_CONFIG_FILE": str(path)})
    message = str(caught.value)
    assert "\n" not in message and expected in message and str(path) in message


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(WitError, match=r"WKG_CONFIG_FILE=.* does not exist"):
        load_config({"WKG_CONFIG_FILE": str(tmp_path / "nope.toml")})


@pytest.mark.parametrize("which", ["config", "lock"])
def test_a_fifo_in_place_of_the_config_or_the_lock_is_refused_not_waited_on(
    tmp_path: Path, which: str
) -> None:
    """Opening a FIFO without a writer blocks forever: both files go through read_regular."""
    import os
    import subprocess
    import sys

    fifo = tmp_path / ("config.toml" if which == "config" else "wkg.lock")
    os.mkfifo(fifo)
    call = (
        f"load_config({{'WKG_CONFIG_FILE': {str(fifo)!r}}})"
        if which == "config"
        else f"read_lock({str(fifo)!r})"
    )
    script = (
        "from hatch_wasm_oci.wit.config import load_config\n"
        "from hatch_wasm_oci.wit.errors import WitError\n"
        "from hatch_wasm_oci.wit.lock import read_lock\n"
        f"try:\n    {call}\nexcept WitError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "not a regular file" in done.stdout and str(fifo) in done.stdout
