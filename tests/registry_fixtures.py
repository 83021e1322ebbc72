"""Session fixtures: Debian's docker-registry (CNCF distribution 2.8) on 127.0.0.1.

Variants: anonymous over plain HTTP, htpasswd basic auth, TLS with a CA the test generates, and
bearer-token auth backed by ``tests.token_server``. Each gets a temporary config and storage and a
free loopback port (never the packaged default config), and is killed at session end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hatch_wasm_oci.oci.layout import PackResult, pack
from hatch_wasm_oci.wasm.leb128 import encode_u32 as leb128

if TYPE_CHECKING:
    from tests.token_server import TokenServer

REGISTRY_BIN = "/usr/bin/docker-registry"
TEST_USER = "wasm-publisher"
TEST_PASSWORD = "s3cret-Pa55word-for-tests"
TOKEN_SERVICE = "hatch-wasm-oci-test-registry"
TOKEN_ISSUER = "hatch-wasm-oci-test-issuer"

__all__ = [
    "TEST_PASSWORD",
    "TEST_USER",
    "RegistryServer",
    "registry_anon",
    "registry_basic",
    "registry_tls",
    "registry_token",
    "start_registry",
]


@dataclass
class RegistryServer:
    """A running registry: ``address`` is ``127.0.0.1:PORT``."""

    address: str
    root: Path
    process: subprocess.Popen[bytes]
    scheme: str = "http"
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def log(self) -> str:
        """What the registry wrote to stderr/stdout so far."""
        return (self.root / "registry.log").read_text(errors="replace")

    def stop(self) -> None:
        """Terminate the registry process (then kill it if it lingers)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _self_signed(directory: Path, stem: str, subject: str) -> tuple[Path, Path]:
    """A self-signed RSA certificate valid for two days: (``STEM.pem``, ``STEM.key``)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
    args = f"req -x509 -newkey rsa:2048 -nodes -days 2 -keyout {key.name} -out {cert.name}"
    _openssl(*args.split(), "-subj", subject, cwd=directory)
    return cert, key


def make_ca_and_server_cert(
    directory: Path, ip: str = "127.0.0.1", dns: str | None = "localhost"
) -> tuple[Path, Path, Path]:
    """A test CA and a server cert for ``ip`` (and ``dns``) signed by it: (ca, cert, key)."""
    _self_signed(directory, "ca", "/CN=hatch-wasm-oci test CA")
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        f"/CN={ip}",
        cwd=directory,
    )
    names = f"IP:{ip}" + (f",DNS:{dns}" if dns else "")
    (directory / "san.ext").write_text(f"subjectAltName={names}\nextendedKeyUsage=serverAuth\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        cwd=directory,
    )
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


def make_signing_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed RSA certificate for signing registry tokens: (cert, key)."""
    return _self_signed(directory, "token", "/CN=hatch-wasm-oci token signer")


def start_registry(
    root: Path,
    *,
    auth: str = "",
    tls: tuple[Path, Path] | None = None,
    timeout: float = 20.0,
) -> RegistryServer:
    """Start ``docker-registry serve`` with a config written under ``root``; wait until ready.

    ``auth`` is a YAML fragment for the ``auth:`` section (empty: anonymous).
    """
    if not os.path.exists(REGISTRY_BIN):
        pytest.skip(f"{REGISTRY_BIN} is not installed (apt-get install docker-registry)")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    tls_block = ""
    if tls is not None:
        tls_block = f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n"
    config = (
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {root / 'storage'}\n"
        "  delete:\n    enabled: true\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
        "  secret: hatch-wasm-oci-test-secret\n"
        f"{tls_block}" + (f"auth:\n{auth}" if auth else "")
    )
    config_path = root / "config.yml"
    config_path.write_text(config)
    log = (root / "registry.log").open("wb")
    process = subprocess.Popen(
        [REGISTRY_BIN, "serve", str(config_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root)},
    )
    log.close()
    scheme = "https" if tls else "http"
    server = RegistryServer(f"127.0.0.1:{port}", root, process, scheme)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited {process.returncode}: {server.log[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(
                    f"docker-registry did not listen: {server.log[-2000:]}"
                ) from None
            time.sleep(0.05)
    if scheme == "http":
        with contextlib.suppress(urllib.error.HTTPError):  # 401 is ready too
            urllib.request.urlopen(f"http://{server.address}/v2/", timeout=5).close()
    return server


@pytest.fixture(scope="session")
def registry_anon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """An anonymous plain-HTTP registry."""
    server = start_registry(tmp_path_factory.mktemp("registry-anon"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry_basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A plain-HTTP registry with htpasswd basic auth for TEST_USER/TEST_PASSWORD."""
    if shutil.which("htpasswd") is None:
        pytest.skip("htpasswd is not installed (apt-get install apache2-utils)")
    root = tmp_path_factory.mktemp("registry-basic")
    line = subprocess.run(
        ["htpasswd", "-Bbn", TEST_USER, TEST_PASSWORD], check=True, capture_output=True
    ).stdout
    (root / "htpasswd").write_bytes(line.strip() + b"\n")
    auth = f"  htpasswd:\n    realm: hatch-wasm-oci-test\n    path: {root / 'htpasswd'}\n"
    server = start_registry(root, auth=auth)
    server.username, server.password = TEST_USER, TEST_PASSWORD
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """An anonymous HTTPS registry whose certificate is signed by a CA the test made."""
    root = tmp_path_factory.mktemp("registry-tls")
    ca, cert, key = make_ca_and_server_cert(root / "pki")
    server = start_registry(root, tls=(cert, key))
    server.ca_file = ca
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A plain-HTTP registry with bearer-token auth from ``tests.token_server``."""
    from tests.token_server import TokenServer

    root = tmp_path_factory.mktemp("registry-token")
    cert, key = make_signing_cert(root / "pki")
    tokens = TokenServer(
        key, cert, service=TOKEN_SERVICE, issuer=TOKEN_ISSUER, users={TEST_USER: TEST_PASSWORD}
    ).start()
    auth = (
        "  token:\n"
        f"    realm: {tokens.realm}\n"
        f"    service: {TOKEN_SERVICE}\n"
        f"    issuer: {TOKEN_ISSUER}\n"
        f"    rootcertbundle: {cert}\n"
    )
    server = start_registry(root, auth=auth)
    server.username, server.password = TEST_USER, TEST_PASSWORD
    server.extra["tokens"] = tokens
    yield server
    server.stop()
    tokens.stop()


# -- helpers for the registry tests (not fixtures) ----------------------------------------

SECRET_ENV = (
    "HATCH_WASM_OCI_USERNAME",
    "HATCH_WASM_OCI_PASSWORD",
    "HATCH_WASM_OCI_TOKEN",
    "DOCKER_CONFIG",
    "HATCH_WASM_OCI_CHUNKED_ABOVE",
    "HATCH_WASM_OCI_MAX_RETRY_SECONDS",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a CLI run: no credentials, HOME and XDG_CACHE_HOME under ``home``."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    env["XDG_CACHE_HOME"] = str(home / "cache")
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env.pop(name, None)
    env.update(extra)
    return env


def run_cli(
    *args: str | os.PathLike[str], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """``python -m hatch_wasm_oci ARGS``."""
    return subprocess.run(
        [sys.executable, "-m", "hatch_wasm_oci", *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=300,
        check=False,
    )


def plain_push(
    layout: Path, ref: str, env: Mapping[str, str], *extra: str | os.PathLike[str]
) -> subprocess.CompletedProcess[str]:
    """``hatch-wasm-oci push LAYOUT REF --plain-http EXTRA...``."""
    return run_cli("push", layout, ref, "--plain-http", *extra, env=env)


def plain_pull(ref: str, out: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``hatch-wasm-oci pull REF -o OUT --plain-http``."""
    return run_cli("pull", ref, "-o", out, "--plain-http", env=env)


def push_own_layout(
    server: RegistryServer, source: Path, tmp_path: Path, padding: int, repo: str
) -> PackResult:
    """Push a layout of its own (``source`` padded by ``padding`` bytes, tag ``t``) to ``repo``,
    so no other test shares its blobs."""
    wasm = padded_component(source, tmp_path / "own.wasm", padding)
    layout = pack_layout(wasm, tmp_path / "layout", tags=("t",))
    pushed = plain_push(layout.layout, f"{server.address}/{repo}", clean_env(tmp_path / "home"))
    assert pushed.returncode == 0, pushed.stderr
    return layout


def user_env(server: RegistryServer) -> dict[str, str]:
    """HATCH_WASM_OCI_USERNAME/PASSWORD for the server's test user."""
    assert server.username and server.password
    return {"HATCH_WASM_OCI_USERNAME": server.username, "HATCH_WASM_OCI_PASSWORD": server.password}


def token_server(server: RegistryServer) -> TokenServer:
    """The token server behind ``registry_token``."""
    from tests.token_server import TokenServer

    tokens = server.extra["tokens"]
    assert isinstance(tokens, TokenServer)
    return tokens


def skopeo_raw(server: RegistryServer, ref: str) -> bytes:
    """``skopeo inspect --raw`` of ``ADDRESS/ref`` (the manifest bytes the registry holds)."""
    args = ["skopeo", "inspect", "--raw", f"docker://{server.address}/{ref}"]
    if server.ca_file is not None:
        args.insert(3, f"--cert-dir={_cert_dir(server.ca_file)}")
    else:
        args.insert(3, "--tls-verify=false")
    if server.username:
        args.insert(3, f"--creds={server.username}:{server.password}")
    result = subprocess.run(args, capture_output=True, check=False, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"skopeo failed: {result.stderr.decode(errors='replace')}")
    return result.stdout


def skopeo_copy(layout: Path, tag: str, server: RegistryServer, ref: str) -> None:
    """Copy ``layout``'s manifest ``tag`` to ``ADDRESS/ref`` with skopeo (plain HTTP registry),
    manifest bytes unchanged: how tests put artifacts our own push refuses into a registry."""
    args = ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:{tag}"]
    args.append(f"docker://{server.address}/{ref}")
    result = subprocess.run(args, capture_output=True, check=False, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"skopeo copy failed: {result.stderr.decode(errors='replace')}")


def _cert_dir(ca: Path) -> Path:
    directory = ca.parent / "skopeo-certs"
    directory.mkdir(exist_ok=True)
    shutil.copy(ca, directory / "ca.crt")
    return directory


def skopeo_tags(server: RegistryServer, repo: str) -> list[str]:
    """Tags of ``repo`` as skopeo lists them (empty when the registry answers 404: no such
    repository). Any other failure raises, so that "no tags" is never a failed lookup."""
    args = ["skopeo", "list-tags", "--tls-verify=false", f"docker://{server.address}/{repo}"]
    if server.username:
        args.insert(2, f"--creds={server.username}:{server.password}")
    result = subprocess.run(args, capture_output=True, check=False, timeout=60)
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace")
        if "404 (Not Found)" in error or "NAME_UNKNOWN" in error:
            return []
        raise AssertionError(f"skopeo list-tags failed: {error}")
    return list(json.loads(result.stdout).get("Tags") or [])


def unique_repo(prefix: str = "test") -> str:
    """A repository name no other test uses."""
    return f"{prefix}/c{uuid.uuid4().hex[:10]}"


def padded_component(source: Path, dest: Path, size: int) -> Path:
    """``source`` plus a custom section of ``size`` random bytes (still a valid component)."""
    data = source.read_bytes()
    name = b"padding"
    body = leb128(len(name)) + name
    with dest.open("wb") as out:
        out.write(data)
        out.write(b"\x00" + leb128(len(body) + size) + body)
        left = size
        while left:
            n = min(left, 1 << 20)
            out.write(os.urandom(n))
            left -= n
    return dest


def pack_layout(wasm: Path, out: Path, tags: tuple[str, ...] = ("1.0.0", "latest")) -> PackResult:
    """A Wasm OCI layout of ``wasm`` (lead's ``layout.pack``)."""
    return pack(wasm, out, tags=tags)


def blob_in_storage(server: RegistryServer, digest: str) -> Path:
    """Where distribution's filesystem driver keeps a blob's bytes."""
    hexpart = digest.split(":", 1)[1]
    return (
        server.root
        / "storage"
        / "docker"
        / "registry"
        / "v2"
        / "blobs"
        / "sha256"
        / hexpart[:2]
        / hexpart
        / "data"
    )
