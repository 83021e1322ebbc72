"""Fixtures for the WIT dependency tests: WASI WIT packages in a real registry on 127.0.0.1 and
an HTTPS server answering ``/.well-known/wasm-pkg/registry.json`` for a test registry name.

* ``wasi_packages``: the WASI 0.2.12 WIT packages (from ``wasi_wit_dir``) encoded by
  ``wasm-tools component wit --wasm``: ``{"http": Path, ...}``.
* ``wit_registry``: ``registry_anon`` seeded with them under ``webassembly/wasi/<name>:0.2.12``
  (plus a ``latest`` tag, which resolution must ignore).
* ``well_known``: the HTTPS server, on 127.0.0.2 (a loopback address that is neither
  ``localhost`` nor ``127.0.0.1``, so the registry name is reached over HTTPS as wkg does) with
  a certificate from a test CA; its ``document`` can be changed by a test.
* ``wkg_env``: an environment whose wasm-pkg config maps ``wasi`` to that registry name and
  trusts the test CA (``SSL_CERT_FILE``), with a private cache.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.registry_fixtures import (
    RegistryServer,
    clean_env,
    make_ca_and_server_cert,
    pack_layout,
    plain_push,
)
from tests.wasm_fixtures import WASI_VERSION, wasm_tools

WASI_NAMES = ("io", "clocks", "random", "filesystem", "sockets", "cli", "http")
WELL_KNOWN_HOST = "127.0.0.2"

__all__ = ["WASI_NAMES", "WellKnown", "wasi_packages", "well_known", "wit_registry"]


@pytest.fixture(scope="session")
def wasi_packages(wasi_wit_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each WASI package encoded on its own (its dependencies nested inside, as wkg publishes)."""
    out = tmp_path_factory.mktemp("wasi-packages")
    encoded: dict[str, Path] = {}
    for name in WASI_NAMES:
        work = out / f"src-{name}"
        shutil.copytree(wasi_wit_dir / f"wasi-{name}", work)
        for other in WASI_NAMES:
            if other != name:
                shutil.copytree(wasi_wit_dir / f"wasi-{other}", work / "deps" / f"wasi-{other}")
        for path in work.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        target = out / f"{name}.wasm"
        wasm_tools("component", "wit", work, "--wasm", "-o", target)
        encoded[name] = target
    return encoded


def push_package(
    server: RegistryServer, wasm: Path, repo: str, tags: tuple[str, ...], home: Path
) -> str:
    """Pack ``wasm`` as a Wasm OCI artifact tagged ``tags`` and push it to ``repo``; returns
    the layer digest."""
    layout = pack_layout(wasm, home / f"layout-{repo.replace('/', '-')}", tags=tags)
    pushed = plain_push(layout.layout, f"{server.address}/{repo}", clean_env(home))
    assert pushed.returncode == 0, pushed.stderr
    return layout.layer.digest


@pytest.fixture(scope="session")
def wit_registry(
    registry_anon: RegistryServer,
    wasi_packages: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """``registry_anon`` seeded with the WASI packages; returns name -> layer digest."""
    home = tmp_path_factory.mktemp("wit-seed")
    return {
        name: push_package(
            registry_anon, wasm, f"webassembly/wasi/{name}", (WASI_VERSION, "latest"), home
        )
        for name, wasm in wasi_packages.items()
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        owner = self.server.owner
        owner.requests.append(self.path)
        if self.path != "/.well-known/wasm-pkg/registry.json" or owner.status == 404:
            self.send_error(404)
            return
        body = owner.document
        self.send_response(owner.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    owner: WellKnown


@dataclass
class WellKnown:
    """The HTTPS well-known server: ``name`` is the registry name (``127.0.0.2:PORT``)."""

    name: str
    ca_file: Path
    server: _Server
    document: bytes = b""
    status: int = 200
    requests: list[str] = field(default_factory=list)

    def serve(self, document: object, status: int = 200) -> None:
        """Answer with ``document`` (JSON, or raw bytes) and ``status`` from now on."""
        raw = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.document, self.status = raw, status


@pytest.fixture(scope="session")
def well_known(
    wit_registry: dict[str, str],
    registry_anon: RegistryServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WellKnown]:
    """The HTTPS registry-metadata server, answering with the ``oci`` form pointing at the
    seeded registry and prefix ``webassembly/``."""
    try:
        with socket.socket() as probe:
            probe.bind((WELL_KNOWN_HOST, 0))
    except OSError:
        pytest.skip(f"{WELL_KNOWN_HOST} is not a usable loopback address here")
    ca, cert, key = make_ca_and_server_cert(
        tmp_path_factory.mktemp("well-known-pki"), WELL_KNOWN_HOST, dns=None
    )
    server = _Server((WELL_KNOWN_HOST, 0), _Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    owner = WellKnown(f"{WELL_KNOWN_HOST}:{port}", ca, server)
    server.owner = owner
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    owner.serve(default_document(registry_anon))
    yield owner
    server.shutdown()
    server.server_close()


def default_document(registry: RegistryServer) -> dict[str, object]:
    """The current form of the registry metadata, pointing at ``registry``."""
    return {
        "preferredProtocol": "oci",
        "oci": {"registry": registry.address, "namespacePrefix": "webassembly/"},
    }


def wkg_config_text(well_known: WellKnown) -> str:
    """A wasm-pkg config mapping ``wasi`` to the test registry name (OCI over plain HTTP)."""
    return (
        "[namespace_registries]\n"
        f'wasi = "{well_known.name}"\n\n'
        f'[registry."{well_known.name}".oci]\n'
        'protocol = "http"\n'
    )


def wkg_env(well_known: WellKnown, home: Path, config: str | None = None) -> dict[str, str]:
    """An environment with a wasm-pkg config file (``config`` or the default mapping),
    ``SSL_CERT_FILE`` trusting the test CA, and HOME/caches under ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    config_file = home / "wkg-config.toml"
    config_file.write_text(wkg_config_text(well_known) if config is None else config)
    env = clean_env(
        home,
        WKG_CONFIG_FILE=str(config_file),
        SSL_CERT_FILE=str(well_known.ca_file),
        HATCH_WASM_OCI_CACHE=str(home / "hwo-cache"),
    )
    env.pop("XDG_CONFIG_HOME", None)
    return env


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a command, output captured."""
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)


APP_WIT = f"""\
package acme:app@0.1.0;

interface api {{
  use wasi:http/types@{WASI_VERSION}.{{method}};

  describe: func(m: method) -> string;
}}

world app {{
  include wasi:cli/imports@{WASI_VERSION};
  export api;
}}
"""


def make_project(root: Path, wit: str = APP_WIT) -> Path:
    """A project whose ``wit/world.wit`` is ``wit``; its ``wit`` directory."""
    (root / "wit").mkdir(parents=True)
    (root / "wit" / "world.wit").write_text(wit)
    return root / "wit"
