"""Referrers through registries: the real distribution 2.8.2 (fallback tags), a fake one with
the referrers API, oras-py and skopeo as independent readers, and hostile referrers on pull."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hatch_wasm_oci.oci.descriptor import Descriptor
from hatch_wasm_oci.oci.layout import LayoutWriter
from hatch_wasm_oci.oci.layout_reader import OciLayout
from hatch_wasm_oci.oci.referrers import add_to_layout, document_referrer, fallback_tag
from tests.fake_registry import FakeRegistry, Reply, Request
from tests.hatch_fixtures import HATCH, LAYOUT, copy_project
from tests.registry_fixtures import (
    RegistryServer,
    clean_env,
    pack_layout,
    plain_pull,
    plain_push,
    run_cli,
    skopeo_raw,
    unique_repo,
)

SBOM = "application/vnd.cyclonedx+json"
PROVENANCE = "application/vnd.in-toto+json"
SIGSTORE = "application/vnd.dev.sigstore.bundle.v0.3+json"
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def attested_layout(wasm: Path, out: Path) -> tuple[Path, Descriptor, dict[str, str]]:
    """A layout of ``wasm`` (tag ``t``) with an SBOM and a provenance referrer; returns it, the
    component's descriptor and artifactType -> referrer digest."""
    packed = pack_layout(wasm, out, tags=("t",))
    digests = {}
    with LayoutWriter(out) as writer:
        for kind, body in ((SBOM, b'{"bomFormat":"CycloneDX"}'), (PROVENANCE, b'{"_type":"x"}')):
            referrer = document_referrer(packed.manifest, kind, body, title=kind.split("/")[1])
            digests[kind] = add_to_layout(writer, referrer, body).digest
        writer.commit()
    return out, packed.manifest, digests


@pytest.fixture
def fakes() -> Iterator[list[FakeRegistry]]:
    started: list[FakeRegistry] = []
    yield started
    for fake in started:
        fake.stop()


def _fake(fakes: list[FakeRegistry], **kwargs: Any) -> FakeRegistry:
    fake = FakeRegistry(**kwargs)
    fakes.append(fake.__enter__())
    return fake


def _raw_put(
    base: str, repo: str, data: bytes, ref: str | None = None, media: str = MANIFEST
) -> str:
    """Store a blob (``ref`` None) or a manifest straight through the registry API, as another
    tool would."""
    digest = _digest(data)
    if ref is None:
        start = urllib.request.Request(f"{base}/v2/{repo}/blobs/uploads/", method="POST")
        with urllib.request.urlopen(start, timeout=30) as answer:
            location = answer.headers["Location"]
        if location.startswith("/"):
            location = base + location
        sep = "&" if "?" in location else "?"
        put = urllib.request.Request(
            f"{location}{sep}digest={digest}",
            data=data,
            method="PUT",
            headers={"Content-Type": "application/octet-stream"},
        )
    else:
        put = urllib.request.Request(
            f"{base}/v2/{repo}/manifests/{ref}",
            data=data,
            method="PUT",
            headers={"Content-Type": media},
        )
    with urllib.request.urlopen(put, timeout=30):
        pass
    return digest


def _foreign_attestation(base: str, repo: str, subject: Descriptor) -> dict[str, Any]:
    """Push a GHCR-style sigstore attestation of ``subject`` and list it under the fallback tag,
    as GitHub's attest action leaves it; returns its index entry."""
    bundle = b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}'
    _raw_put(base, repo, b"{}")
    _raw_put(base, repo, bundle)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": SIGSTORE,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": _digest(b"{}"),
                "size": 2,
            },
            "layers": [{"mediaType": SIGSTORE, "digest": _digest(bundle), "size": len(bundle)}],
            "subject": subject.to_json(),
            "annotations": {"dev.sigstore.bundle.predicateType": "https://slsa.dev/provenance/v1"},
        }
    ).encode()
    digest = _raw_put(base, repo, manifest, _digest(manifest))
    entry = {
        "mediaType": MANIFEST,
        "digest": digest,
        "size": len(manifest),
        "artifactType": SIGSTORE,
        "annotations": {"com.github.package.type": "attestation"},
    }
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [entry]}).encode()
    _raw_put(base, repo, index, fallback_tag(subject.digest), INDEX)
    return entry


def test_hatch_publish_pushes_referrers_and_a_fresh_pull_gets_them_back(
    example_project_build: Path, registry_anon: RegistryServer, tmp_path: Path
) -> None:
    """The example's SBOM and provenance go up with ``hatch publish`` (distribution 2.8.2: the
    fallback tag); ``pull --referrers`` into a fresh directory gets them back, digests and
    bytes equal; oras-py and skopeo read them independently."""
    project = copy_project(example_project_build, tmp_path / "project")
    shutil.copytree(example_project_build / LAYOUT, project / LAYOUT)
    built = OciLayout.open(project / LAYOUT)
    subject = built.tags()["latest"]
    ours = {r.artifact_type: d.digest for d, r in built.referrers()}
    repo = unique_repo("referrers")
    env = clean_env(tmp_path / "home")
    config = Path(env["HOME"]) / "hatch-config.toml"
    config.write_text("")
    published = subprocess.run(
        [
            str(HATCH),
            "publish",
            "-p",
            "wasm-oci",
            "-o",
            f"repository={registry_anon.address}/{repo}",
            "-o",
            "plain-http=true",
        ],
        cwd=project,
        env={**env, "HATCH_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert published.returncode == 0, published.stdout + published.stderr
    for digest in ours.values():
        assert "referrer " in published.stdout and digest in published.stdout
    # The fallback tag holds exactly our two entries, as an image index skopeo reads.
    index = json.loads(skopeo_raw(registry_anon, f"{repo}:{fallback_tag(subject.digest)}"))
    assert index["mediaType"] == INDEX
    assert {m["artifactType"]: m["digest"] for m in index["manifests"]} == ours

    out = tmp_path / "pulled"
    pulled = run_cli(
        "pull",
        f"{registry_anon.address}/{repo}:latest",
        "-o",
        out,
        "--plain-http",
        "--referrers",
        env=env,
    )
    assert pulled.returncode == 0, pulled.stderr
    fresh = OciLayout.open(out / "layout")
    assert {r.artifact_type: d.digest for d, r in fresh.referrers()} == ours
    for (_, mine), (_, theirs) in zip(built.referrers(), fresh.referrers(), strict=True):
        assert built.read_document(mine.layers[0]) == fresh.read_document(theirs.layers[0])
    assert run_cli("verify", out / "layout", env=env).returncode == 0

    oras_client = pytest.importorskip("oras.client")
    client = oras_client.OrasClient(hostname=registry_anon.address, insecure=True)
    files = client.pull(
        target=f"{registry_anon.address}/{repo}@{ours[SBOM]}", outdir=str(tmp_path / "oras")
    )
    assert [Path(f).name for f in files] == ["sbom.cdx.json"]
    ((_, sbom_referrer),) = [x for x in built.referrers() if x[1].artifact_type == SBOM]
    assert Path(files[0]).read_bytes() == built.read_document(sbom_referrer.layers[0])
    manifest = client.get_manifest(f"{registry_anon.address}/{repo}@{ours[SBOM]}")
    assert manifest["subject"]["digest"] == subject.digest


def test_fallback_tag_keeps_other_tools_entries_and_ghcr_style_attestations_list(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    """A component with a GHCR-style attestation under its fallback tag: pull lists it without
    error; our push merges into that index, keeping the foreign entry as it was."""
    layout, subject, ours = attested_layout(tiny_component, tmp_path / "layout")
    bare = pack_layout(tiny_component, tmp_path / "bare", tags=("t",)).layout
    repo = unique_repo("fallback")
    env = clean_env(tmp_path / "home")
    base = f"http://{registry_anon.address}"
    assert plain_push(bare, f"{registry_anon.address}/{repo}:t", env).returncode == 0
    foreign = _foreign_attestation(base, repo, subject)
    listed = plain_pull(f"{registry_anon.address}/{repo}:t", tmp_path / "p1", env)
    assert listed.returncode == 0, listed.stderr
    assert f"referrer {SIGSTORE} {foreign['digest']}" in listed.stdout
    shown = run_cli("inspect", "--plain-http", f"{registry_anon.address}/{repo}:t", env=env)
    assert shown.returncode == 0, shown.stderr
    inspected = json.loads(shown.stdout)
    assert inspected["digest"] == subject.digest and inspected["referrersFrom"] == "tag"
    assert [r["artifactType"] for r in inspected["referrers"]] == [SIGSTORE]
    fetched = run_cli(
        "pull",
        f"{registry_anon.address}/{repo}:t",
        "-o",
        tmp_path / "p2",
        "--plain-http",
        "--referrers",
        env=env,
    )
    assert fetched.returncode == 0, fetched.stderr
    assert [r.artifact_type for _, r in OciLayout.open(tmp_path / "p2/layout").referrers()] == [
        SIGSTORE
    ]

    pushed = plain_push(layout, f"{registry_anon.address}/{repo}:t", env)
    assert pushed.returncode == 0, pushed.stderr
    index = json.loads(skopeo_raw(registry_anon, f"{repo}:{fallback_tag(subject.digest)}"))
    assert index["manifests"][0] == foreign
    assert {m["digest"] for m in index["manifests"][1:]} == set(ours.values())
    again = plain_push(layout, f"{registry_anon.address}/{repo}:t", env)  # idempotent
    assert again.returncode == 0
    assert json.loads(skopeo_raw(registry_anon, f"{repo}:{fallback_tag(subject.digest)}")) == index


def test_referrers_api_is_used_when_the_registry_has_it(
    fakes: list[FakeRegistry], tiny_component: Path, tmp_path: Path
) -> None:
    """With the referrers API (a fake registry) no ``sha256-*`` tag is written; pull finds the
    referrers through the API."""
    fake = _fake(fakes, referrers_api=True)
    layout, _, ours = attested_layout(tiny_component, tmp_path / "layout")
    env = clean_env(tmp_path / "home")
    pushed = plain_push(layout, f"{fake.address}/acme/app:t", env)
    assert pushed.returncode == 0, pushed.stderr
    assert [ref for _, ref in fake.manifests if ref.startswith("sha256-")] == []
    assert all(("acme/app", d) in fake.manifests for d in ours.values())
    pulled = run_cli(
        "pull",
        f"{fake.address}/acme/app:t",
        "-o",
        tmp_path / "out",
        "--plain-http",
        "--referrers",
        "--format",
        "json",
        env=env,
    )
    assert pulled.returncode == 0, pulled.stderr
    shown = json.loads(pulled.stdout)
    assert {r["artifactType"]: r["digest"] for r in shown["referrers"]} == ours
    assert not [r for r in fake.log if "/manifests/sha256-" in r.path]


def test_a_registry_refusing_referrers_fails_nothing(
    fakes: list[FakeRegistry], tiny_component: Path, tmp_path: Path
) -> None:
    """The component is pushed; one warning names what was not attached; exit status 0."""

    def refuse(request: Request) -> Reply | None:
        if request.method == "PUT" and "/manifests/sha256:" in request.path:
            return Reply(
                400,
                {"Content-Type": "application/json"},
                b'{"errors":[{"code":"MANIFEST_INVALID","message":"no subject here"}]}',
            )
        return None

    fake = _fake(fakes, misbehave=None)
    layout, _, _ = attested_layout(tiny_component, tmp_path / "layout")
    fake.misbehave = refuse
    pushed = plain_push(layout, f"{fake.address}/acme/app:t", clean_env(tmp_path / "home"))
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.startswith(f"{fake.address}/acme/app:t@sha256:")
    warnings = [line for line in pushed.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "were not attached" in warnings[0] and SBOM in warnings[0] and PROVENANCE in warnings[0]


# -- hostile referrers on pull ----------------------------------------------------------------


def _served(
    fakes: list[FakeRegistry], tiny_component: Path, tmp_path: Path
) -> tuple[FakeRegistry, Descriptor, dict[str, str]]:
    fake = _fake(fakes, referrers_api=True)
    bare = pack_layout(tiny_component, tmp_path / "bare", tags=("t",))
    assert (
        plain_push(bare.layout, f"{fake.address}/acme/app:t", clean_env(tmp_path / "h")).returncode
        == 0
    )
    return fake, bare.manifest, clean_env(tmp_path / "home")


def _plant(
    fake: FakeRegistry, subject: Descriptor, layer: dict[str, Any], blob: bytes | None
) -> None:
    """Store a referrer of ``subject`` with ``layer`` straight in the fake registry."""
    if blob is not None:
        fake.blobs[_digest(blob)] = blob
    fake.blobs[_digest(b"{}")] = b"{}"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": SBOM,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": _digest(b"{}"),
                "size": 2,
            },
            "layers": [layer],
            "subject": subject.to_json(),
        }
    ).encode()
    fake.manifests[("acme/app", _digest(manifest))] = (manifest, MANIFEST)


def _refused(pulled: subprocess.CompletedProcess[str], out: Path, words: str) -> None:
    assert pulled.returncode == 2, pulled.stdout + pulled.stderr
    assert pulled.stderr.count("\n") == 1 and pulled.stderr.startswith("hatch-wasm-oci: ")
    assert words in pulled.stderr
    assert "Traceback" not in pulled.stderr
    assert not out.exists()


def _pull_referrers(
    fake: FakeRegistry, out: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "pull",
        f"{fake.address}/acme/app:t",
        "-o",
        out,
        "--plain-http",
        "--referrers",
        "-q",
        env=env,
    )


def test_pull_refuses_a_huge_referrer_document(
    fakes: list[FakeRegistry], tiny_component: Path, tmp_path: Path
) -> None:
    fake, subject, env = _served(fakes, tiny_component, tmp_path)
    huge = {"mediaType": SBOM, "digest": "sha256:" + "a" * 64, "size": 1 << 34}
    _plant(fake, subject, huge, None)
    out = tmp_path / "out"
    _refused(_pull_referrers(fake, out, env), out, "over the 16777216-byte limit")


def test_pull_refuses_a_deeply_nested_referrer_document(
    fakes: list[FakeRegistry], tiny_component: Path, tmp_path: Path
) -> None:
    fake, subject, env = _served(fakes, tiny_component, tmp_path)
    nested = b"[" * 200_000 + b"]" * 200_000
    _plant(
        fake, subject, {"mediaType": SBOM, "digest": _digest(nested), "size": len(nested)}, nested
    )
    out = tmp_path / "out"
    _refused(_pull_referrers(fake, out, env), out, "nested too deeply")


def test_pull_refuses_a_referrer_whose_subject_points_elsewhere(
    fakes: list[FakeRegistry], tiny_component: Path, tmp_path: Path
) -> None:
    fake, _, env = _served(fakes, tiny_component, tmp_path)
    body = b'{"bomFormat":"CycloneDX"}'
    layer = {"mediaType": SBOM, "digest": _digest(body), "size": len(body)}
    elsewhere = Descriptor(MANIFEST, "sha256:" + "b" * 64, 100)
    _plant(fake, elsewhere, layer, body)
    # The listing claims it for our subject, but its manifest names another.
    (planted,) = [
        k
        for k in fake.manifests
        if k[1] not in ("t",) and fake.subject_of(fake.manifests[k][0]) == elsewhere.digest
    ]
    original = fake.referrers_answer

    def lying(name: str, digest: str) -> Reply:
        manifest = fake.manifests[planted][0]
        entry = {
            "mediaType": MANIFEST,
            "digest": planted[1],
            "size": len(manifest),
            "artifactType": SBOM,
        }
        return Reply(
            200,
            {"Content-Type": INDEX},
            json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode(),
        )

    fake.referrers_answer = lying  # type: ignore[method-assign]
    out = tmp_path / "out"
    _refused(_pull_referrers(fake, out, env), out, f"its subject is {elsewhere.digest}")
    fake.referrers_answer = original  # type: ignore[method-assign]


def test_a_fallback_tag_holding_junk_is_one_line(
    fakes: list[FakeRegistry], tiny_component: Path, tmp_path: Path
) -> None:
    """Junk under the fallback tag: ``pull --referrers`` refuses with one line and writes
    nothing; a plain ``pull`` still pulls the component, with one warning."""
    fake = _fake(fakes)
    bare = pack_layout(tiny_component, tmp_path / "bare", tags=("t",))
    env = clean_env(tmp_path / "home")
    assert plain_push(bare.layout, f"{fake.address}/acme/app:t", env).returncode == 0
    fake.manifests[("acme/app", fallback_tag(bare.manifest.digest))] = (b"\x00junk{", INDEX)
    out = tmp_path / "out"
    _refused(
        _pull_referrers(fake, out, env),
        out,
        f"the referrers tag {fallback_tag(bare.manifest.digest)}",
    )
    plain = plain_pull(f"{fake.address}/acme/app:t", tmp_path / "plain", env)
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr.count("warning") == 1 and "is not valid JSON" in plain.stderr
