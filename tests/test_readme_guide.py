"""The README's guide, run as written: its walkthrough blocks, in order, as one bash script in an
empty directory, against a TLS registry on 127.0.0.1 (test CA) that serves both the WIT mirror
the guide seeds and the component repository.

Extraction rule (documented in the README): every ```bash block whose previous line is
``<!-- walkthrough -->``. A line assigning WHEELS, REGISTRY or WASI gets the test's value
(the session's plugin wheelhouse, the registry's address, the vendored WASI WIT); nothing else
is changed. SSL_CERT_FILE (the README's way to trust a private CA) is set to the test CA.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.registry_fixtures import SECRET_ENV, RegistryServer

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parent.parent / "README.md"
MARK = "<!-- walkthrough -->"
VARIABLES = ("WHEELS", "REGISTRY", "WASI")
STEP = "@@ walkthrough step "


def walkthrough_blocks(text: str) -> list[str]:
    """The bodies of the ```bash blocks right after a ``<!-- walkthrough -->`` line."""
    lines = text.splitlines()
    blocks: list[str] = []
    for i, line in enumerate(lines):
        if line.strip() != MARK:
            continue
        where = f"README line {i + 2}: {MARK} before no bash block"
        assert lines[i + 1].strip() == "```bash", where
        end = lines.index("```", i + 2)
        blocks.append("\n".join(lines[i + 2 : end]))
    return blocks


def substitute(block: str, values: dict[str, str]) -> str:
    """``block`` with each documented variable's assignment replaced by ``values``."""
    pattern = re.compile(rf"^(\s*(?:export\s+)?)({'|'.join(VARIABLES)})=\S*(.*)$")

    def one(line: str) -> str:
        match = pattern.match(line)
        if match is None:
            return line
        return f"{match.group(1)}{match.group(2)}={shlex.quote(values[match.group(2)])}"

    return "\n".join(one(line) for line in block.splitlines())


def test_walkthrough_blocks_are_found() -> None:
    blocks = walkthrough_blocks(README.read_text())
    text = "\n".join(blocks)
    for command in (
        "hatch-wasm-oci init greeter --world command",
        "hatch-wasm-oci wit publish",
        "hatch-wasm-oci wit fetch",
        "hatch build -t wasm-oci",
        "hatch publish -p wasm-oci",
        "hatch-wasm-oci pull",
        'hatch-wasm-oci run "$REGISTRY/',
    ):
        assert command in text, command


def test_the_readme_walkthrough_runs_as_written(
    tmp_path: Path,
    hatch_env: dict[str, str],
    plugin_wheelhouse: Path,
    registry_tls: RegistryServer,
    wasi_wit_dir: Path,
) -> None:
    assert registry_tls.ca_file is not None
    values = {
        "WHEELS": str(plugin_wheelhouse),
        "REGISTRY": registry_tls.address,
        "WASI": str(wasi_wit_dir),
    }
    blocks = walkthrough_blocks(README.read_text())
    script = ["set -euo pipefail", "trap 'echo \"failed: $BASH_COMMAND\" >&2' ERR"]
    for number, block in enumerate(blocks, 1):
        script.append(f"echo '{STEP}{number}'; echo '{STEP}{number}' >&2")
        script.append(substitute(block, values))
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "docker").mkdir()
    env = {k: v for k, v in hatch_env.items() if k not in SECRET_ENV}
    for name in ("WKG_CONFIG_FILE", "XDG_CONFIG_HOME", *VARIABLES):
        env.pop(name, None)
    env["DOCKER_CONFIG"] = str(tmp_path / "docker")  # no credentials of the user's
    env["SSL_CERT_FILE"] = str(registry_tls.ca_file)
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=work, env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert done.stdout.count(STEP) == len(blocks)
    steps = {
        int(m.group(1)): m.group(2)
        for m in re.finditer(rf"^{re.escape(STEP)}(\d+)\n(.*?)(?=^{re.escape(STEP)}|\Z)",
                             done.stdout, re.MULTILINE | re.DOTALL)
    }  # fmt: skip
    out = done.stdout

    project = work / "greeter"
    # The mirror served wit fetch: the lock names the local registry, the deps are there.
    lock = (project / "wkg.lock").read_text()
    assert f'registry = "{registry_tls.address}"' in lock, lock
    assert (project / "wit" / "deps" / "wasi-cli-0.2.12" / "package.wit").is_file()
    # The local run printed the command's output, with its arguments.
    assert "Hello from Python! ['Ada', 'Lin']\n" in out, out
    # The publish pushed the layout's manifest; the pulled layout holds the same one.
    layout = project / "dist" / "wasm-oci" / "greeter-0.1.0"
    (entry,) = [
        m for m in json.loads((layout / "index.json").read_text())["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "0.1.0"
    ]  # fmt: skip
    digest = entry["digest"]
    assert f"{registry_tls.address}/acme/greeter:0.1.0@{digest}" in out, out
    pulled = json.loads((work / "pulled" / "layout" / "index.json").read_text())
    assert digest in {m["digest"] for m in pulled["manifests"]}
    assert (work / "pulled" / "greeter-0.1.0.wasm").is_file()  # as the README says
    # The last step ran the component from the registry.
    last = steps[len(blocks)]
    assert last.endswith("Hello from Python! ['Ada']\n"), last
