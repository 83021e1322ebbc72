"""``hatch publish -p wasm-oci`` in a subprocess, against a real registry on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from hatch_wasm_oci.oci.layout_reader import OciLayout, find_layouts
from tests.fault_proxy import FaultProxy
from tests.hatch_fixtures import EXPECTED_CALLS, call_inventory, run_hatch, write_prebuilt_project
from tests.registry_fixtures import (
    RegistryServer,
    clean_env,
    pack_layout,
    plain_pull,
    skopeo_raw,
    skopeo_tags,
    unique_repo,
    user_env,
)

HATCH = Path(sys.executable).with_name("hatch")
TARGET = "tool.hatch.build.targets.wasm-oci"


def _project(root: Path, wasm: Path, *, extra_toml: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        '[project]\nname = "demo-component"\nversion = "1.2.0"\n' + extra_toml
    )
    pack_layout(wasm, root / "dist" / "wasm-oci" / "demo-component-1.2.0", tags=("1.2.0", "latest"))
    shutil.copyfile(wasm, root / "c.wasm")
    return root


def _hatch_publish(
    project: Path,
    *options: str,
    env: Mapping[str, str],
    user_config: str = "",
) -> subprocess.CompletedProcess[str]:
    config = Path(env["HOME"]) / "hatch-config.toml"
    config.write_text(user_config)
    args = [str(HATCH), "publish", "-p", "wasm-oci"]
    for option in options:
        args += ["-o", option] if "=" in option and not option.startswith("-") else [option]
    return subprocess.run(
        args,
        cwd=project,
        env={**env, "HATCH_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _manifests(layout: Path) -> dict[str, bytes]:
    opened = OciLayout.open(layout)
    return {tag: opened.manifest_bytes(tag) for tag in opened.tags()}


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_publish_dist_layouts_with_options(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    project = _project(tmp_path / "proj", tiny_component)
    repo = f"{registry_anon.address}/{unique_repo()}"
    result = _hatch_publish(
        project, f"repository={repo}", "plain-http=true", env=clean_env(tmp_path / "home")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    layout = project / "dist" / "wasm-oci" / "demo-component-1.2.0"
    manifests = _manifests(layout)
    lines = result.stdout.splitlines()
    for tag, data in manifests.items():
        assert f"{repo}:{tag}@{_digest(data)}" in lines
        assert skopeo_raw(registry_anon, f"{repo.split('/', 1)[1]}:{tag}") == data
    summary = json.loads((project / "dist" / "wasm-oci-publish.json").read_text())
    assert summary["dryRun"] is False
    assert sorted(r["reference"] for r in summary["references"]) == sorted(
        f"{repo}:{t}" for t in manifests
    )
    for entry in summary["references"]:
        assert entry["digest"] == _digest(manifests[entry["reference"].rsplit(":", 1)[1]])
        assert entry["pinned"] == f"{repo}@{entry['digest']}"
        assert entry["size"] == len(manifests["latest"])
    # Every blob of the layout is accounted for, once per repository, with its outcome.
    manifest = json.loads(manifests["latest"])
    wanted = {d["digest"]: d["size"] for d in [manifest["config"], *manifest["layers"]]}
    assert {b["digest"]: b["size"] for b in summary["blobs"]} == wanted, summary["blobs"]
    assert {(b["repository"], b["outcome"]) for b in summary["blobs"]} == {
        (repo, "uploaded")
    }
    assert summary["stats"]["blobsUploaded"] == len(wanted) == len(summary["blobs"])


def test_option_precedence_and_bool_strings(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    repo_project = f"{registry_anon.address}/{unique_repo('proj')}"
    repo_target = f"{registry_anon.address}/{unique_repo('target')}"
    repo_user = f"{registry_anon.address}/{unique_repo('user')}"
    project = _project(
        tmp_path / "proj",
        tiny_component,
        extra_toml=(
            f'\n[tool.hatch.publish.wasm-oci]\nrepository = "{repo_project}"\n'
            'tags = ["stable", "edge"]\nplain-http = true\nsummary = "out/summary.json"\n'
            f'\n[tool.hatch.build.targets.wasm-oci]\npath = "c.wasm"\n'
            f'repository = "{repo_target}"\n'
        ),
    )
    env = clean_env(tmp_path / "home")
    user = f'[publish.wasm-oci]\nrepository = "{repo_user}"\ntags = "from-user"\n'
    # project config beats user config; the -o tags string beats both.
    result = _hatch_publish(project, "tags=one,two", env=env, user_config=user)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split("@")[0] for line in result.stdout.splitlines()] == [
        f"{repo_project}:one",
        f"{repo_project}:two",
    ]
    assert (project / "out" / "summary.json").is_file()
    # project tags when -o gives none
    result = _hatch_publish(project, env=env, user_config=user)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(skopeo_tags(registry_anon, repo_project.split("/", 1)[1])) == [
        "edge",
        "one",
        "stable",
        "two",
    ]
    # "-o plain-http=false" (a string) overrides the project's true: TLS against plain HTTP fails
    result = _hatch_publish(project, "plain-http=false", env=env, user_config=user)
    assert result.returncode != 0
    assert "--plain-http" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_repository_from_builder_target_and_user_config(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    repo_target = f"{registry_anon.address}/{unique_repo('target')}"
    repo_user = f"{registry_anon.address}/{unique_repo('user')}"
    project = _project(
        tmp_path / "proj",
        tiny_component,
        extra_toml=(
            f'\n[tool.hatch.build.targets.wasm-oci]\npath = "c.wasm"\n'
            f'repository = "{repo_target}"\n'
        ),
    )
    env = clean_env(tmp_path / "home")
    with_user = _hatch_publish(
        project,
        env=env,
        user_config=f'[publish.wasm-oci]\nrepository = "{repo_user}"\nplain-http = "yes"\n',
    )
    assert with_user.returncode == 0, with_user.stdout + with_user.stderr
    assert skopeo_tags(registry_anon, repo_user.split("/", 1)[1])
    builder_only = _hatch_publish(project, "plain-http=1", env=env)
    assert builder_only.returncode == 0, builder_only.stdout + builder_only.stderr
    assert sorted(skopeo_tags(registry_anon, repo_target.split("/", 1)[1])) == ["1.2.0", "latest"]


@pytest.mark.slow
def test_build_and_publish_read_one_checked_repository(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path, hatch_env: dict[str, str]
) -> None:
    """The build table's repository: checked by `hatch build` and `hatch publish` alike, with
    its TOML path; once right (here in hatch.toml), publish pushes to it."""
    project = write_prebuilt_project(
        tmp_path / "proj",
        tiny_component,
        wasm_oci=f'repository = "{registry_anon.address}/Acme/Calc"\n',
        version="1.2.0",
    )
    build = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env, check=False)
    assert build.returncode != 0
    wanted = (
        f"{TARGET}.repository: invalid reference '{registry_anon.address}/Acme/Calc': "
        "repository component 'Acme' must be lowercase"
    )
    assert f"wasm-oci: {wanted}" in build.stderr
    assert "Traceback" not in build.output
    env = clean_env(tmp_path / "home")
    publish = _hatch_publish(project, "plain-http=true", env=env)
    assert publish.returncode != 0
    assert wanted in publish.stdout + publish.stderr
    assert "Traceback" not in publish.stdout + publish.stderr
    # a bad host is caught the same way
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(
        text.replace("/Acme/Calc", "/acme/calc").replace(registry_anon.address, "bad_host:port")
    )
    publish = _hatch_publish(project, "plain-http=true", env=env)
    assert f"{TARGET}.repository: invalid reference 'bad_host:port/acme/calc'" in publish.stderr
    # moved to hatch.toml (which hatch merges over pyproject's [tool.hatch]) and fixed
    repo = f"{registry_anon.address}/{unique_repo('hatchtoml')}"
    (project / "pyproject.toml").write_text(text.split("[tool.hatch.build.targets.wasm-oci]")[0])
    (project / "hatch.toml").write_text(
        f'[build.targets.wasm-oci]\npath = "c.wasm"\nrepository = "{repo}"\n'
    )
    (project / "hatch.toml").write_text(
        f'[build.targets.wasm-oci]\npath = "c.wasm"\nrepository = "{repo.upper()}"\n'
    )
    in_hatch_toml = "hatch.toml build.targets.wasm-oci.repository: invalid reference"
    build = run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env, check=False)
    assert in_hatch_toml in build.stderr
    assert in_hatch_toml in _hatch_publish(project, "plain-http=true", env=env).stderr
    (project / "hatch.toml").write_text(
        f'[build.targets.wasm-oci]\npath = "c.wasm"\nrepository = "{repo}"\n'
    )
    run_hatch(project, "build", "-t", "wasm-oci", env=hatch_env)
    publish = _hatch_publish(project, "plain-http=true", env=env)
    assert publish.returncode == 0, publish.stdout + publish.stderr
    assert skopeo_tags(registry_anon, repo.split("/", 1)[1]) == ["1.2.0"]


def test_hatch_user_and_auth_flags_authenticate(
    registry_basic: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    """`hatch publish -u ada -a s3cret`: Hatch's own flags are the credentials, before the
    environment; a wrong -a is named in the hint, never printed."""
    assert registry_basic.username and registry_basic.password
    project = _project(tmp_path / "proj", tiny_component)
    repo = f"{registry_basic.address}/{unique_repo('flags')}"
    env = clean_env(
        tmp_path / "home",
        HATCH_WASM_OCI_USERNAME=registry_basic.username,
        HATCH_WASM_OCI_PASSWORD="env-Wrong-Pa55",
    )
    ok = _hatch_publish(
        project,
        "-u",
        registry_basic.username,
        "-a",
        registry_basic.password,
        "-r",
        repo,
        "plain-http=true",
        env=env,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert sorted(line.split("@")[0] for line in ok.stdout.splitlines()) == [
        f"{repo}:1.2.0",
        f"{repo}:latest",
    ]
    assert registry_basic.password not in ok.stdout + ok.stderr
    wrong = "flag-Wrong-Pa55"
    failed = _hatch_publish(
        project, "-u", registry_basic.username, "-a", wrong, "-r", repo, "plain-http=true", env=env
    )
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert wrong not in output
    assert "hatch publish -u/--user and -a/--auth were rejected" in output
    # Hatch's user config [publish.wasm-oci] user/auth, the same way
    configured = _hatch_publish(
        project,
        "-r",
        repo,
        "plain-http=true",
        env=env,
        user_config=(
            f'[publish.wasm-oci]\nuser = "{registry_basic.username}"\n'
            f'auth = "{registry_basic.password}"\n'
        ),
    )
    assert configured.returncode == 0, configured.stdout + configured.stderr
    assert registry_basic.password not in configured.stdout + configured.stderr
    # Hatch's HATCH_INDEX_USER/HATCH_INDEX_AUTH hold package-index secrets: never used here
    index_env = clean_env(
        tmp_path / "home",
        HATCH_INDEX_USER=registry_basic.username,
        HATCH_INDEX_AUTH=registry_basic.password,
    )
    index = _hatch_publish(project, "-r", repo, "plain-http=true", env=index_env)
    assert index.returncode != 0
    assert "no credentials were found" in index.stdout + index.stderr
    alone = _hatch_publish(project, "-u", "ada", "-r", repo, "plain-http=true", env=env)
    assert "hatch publish -u/--user: needs -a/--auth too" in alone.stdout + alone.stderr


def _versioned_project(
    root: Path, wasm: Path, version: str, layouts: dict[str, tuple[str, ...]]
) -> Path:
    """A project at ``version`` whose dist/ holds one layout per version in ``layouts``."""
    from hatch_wasm_oci.oci.layout import pack

    root.mkdir(parents=True, exist_ok=True)
    _set_version(root, version)
    for layout_version, tags in layouts.items():
        out = root / "dist" / "wasm-oci" / f"demo_component-{layout_version}"
        pack(wasm, out, tags=tags, annotations={"org.opencontainers.image.version": layout_version})
    return root


def _set_version(root: Path, version: str) -> None:
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "demo-component"\nversion = "{version}"\n'
    )


def test_publish_pushes_the_current_version_and_never_moves_a_tag_back(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    """dist/ with 0.9.0 and 0.10.0 both tagged latest (the stale-layout case)."""
    project = _versioned_project(
        tmp_path / "proj",
        tiny_component,
        "0.10.0",
        {"0.9.0": ("0.9.0", "latest"), "0.10.0": ("0.10.0", "latest")},
    )
    old = project / "dist" / "wasm-oci" / "demo_component-0.9.0"
    new = project / "dist" / "wasm-oci" / "demo_component-0.10.0"
    repo = f"{registry_anon.address}/{unique_repo('stale')}"
    path = repo.split("/", 1)[1]
    env = clean_env(tmp_path / "home")
    base = (f"repository={repo}", "plain-http=true")

    first = _hatch_publish(project, *base, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"skipped {old} (version 0.9.0, not 0.10.0;" in first.stdout + first.stderr
    assert sorted(skopeo_tags(registry_anon, path)) == ["0.10.0", "latest"]
    assert skopeo_raw(registry_anon, f"{path}:latest") == _manifests(new)["latest"]

    # both layouts at once: refused before anything is pushed, one line naming both
    both = _hatch_publish(project, *base, "versions=all", env=env)
    assert both.returncode != 0
    output = (both.stdout + both.stderr).strip()
    (line,) = [line for line in output.splitlines() if f"{repo}:latest is claimed by" in line]
    assert str(old) in line and str(new) in line and "nothing was pushed" in line
    assert sorted(skopeo_tags(registry_anon, path)) == ["0.10.0", "latest"]

    # the project goes back to 0.9.0: latest names 0.10.0 in the registry, so nothing moves
    _set_version(project, "0.9.0")
    back = _hatch_publish(project, *base, env=env)
    assert back.returncode != 0
    assert (
        f"{repo}:latest names version 0.10.0 ({_digest(_manifests(new)['latest'])}); not moving "
        "it back to 0.9.0 — hint: -o force=true moves it anyway"
    ) in back.stdout + back.stderr
    assert "Traceback" not in back.stdout + back.stderr
    assert sorted(skopeo_tags(registry_anon, path)) == ["0.10.0", "latest"]
    forced = _hatch_publish(project, *base, "force=true", env=env)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert skopeo_raw(registry_anon, f"{path}:latest") == _manifests(old)["latest"]

    # skip-existing: references that already name the same manifest are left alone
    again = _hatch_publish(project, *base, "skip-existing=true", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    digest = _digest(_manifests(old)["latest"])
    assert sorted(again.stdout.splitlines()) == [
        f"exists {repo}:0.9.0@{digest} (skip-existing)",
        f"exists {repo}:latest@{digest} (skip-existing)",
    ]
    summary = json.loads((project / "dist" / "wasm-oci-publish.json").read_text())
    assert summary["references"] == [] and summary["stats"]["manifestsPut"] == 0

    # immutable-tags: no existing tag moves, not even forward or forced
    _set_version(project, "0.10.0")
    frozen = _hatch_publish(project, *base, "immutable-tags=true", "force=true", env=env)
    assert frozen.returncode != 0
    assert (
        f"{repo}:latest already names {digest}; immutable-tags forbids moving it"
        in frozen.stdout + frozen.stderr
    )
    assert skopeo_raw(registry_anon, f"{path}:latest") == _manifests(old)["latest"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["repository=127.0.0.1:9/x/y", "dry-run=maybe"], "-o dry-run: must be true or false"),
        (["repository=127.0.0.1:9/x/y", "colour=blue"], "-o colour: unknown option (known: "),
        ([], "no repository to publish to"),
        (["repository=127.0.0.1:9/Bad/Name"], "-o repository: invalid reference"),
        (["repository=todo"], "-o repository: 'todo' names no registry host: write it in full"),
    ],
)
def test_bad_options_abort_with_one_line(
    options: list[str], message: str, tiny_component: Path, tmp_path: Path
) -> None:
    project = _project(tmp_path / "proj", tiny_component)
    result = _hatch_publish(project, *options, env=clean_env(tmp_path / "home"))
    assert result.returncode != 0
    output = (result.stdout + result.stderr).strip()
    assert message in output
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1


def test_dry_run_contacts_nothing_and_no_layout_is_an_error(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    project = _project(tmp_path / "proj", tiny_component)
    env = clean_env(tmp_path / "home")
    with FaultProxy(registry_anon.address, lifetime=60) as proxy:
        repo = f"{proxy.address}/{unique_repo()}"
        result = _hatch_publish(project, f"repository={repo}", "dry-run=true", env=env)
        assert proxy.seen == []
    assert result.returncode == 0, result.stderr
    layout = OciLayout.open(next(iter(find_layouts(project / "dist"))))
    expected = []
    for tag, desc in sorted(layout.tags().items()):
        expected.append(f"would push {repo}:{tag}@{desc.digest} (manifest {desc.size} bytes)")
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("would push")] == expected
    blob_lines = [line for line in lines if not line.startswith("would push")]
    layer = layout.layer(next(iter(layout.tags())))
    assert f"  blob {layer.digest} {layer.size} bytes application/wasm" in blob_lines
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "pyproject.toml").write_text('[project]\nname = "e"\nversion = "1"\n')
    none = _hatch_publish(empty, f"repository={repo}", env=env)
    assert none.returncode != 0
    assert "no OCI layout under" in none.stdout + none.stderr


def test_explicit_artifact_and_wrong_password(
    registry_basic: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    assert registry_basic.username and registry_basic.password
    project = _project(tmp_path / "proj", tiny_component)
    other = pack_layout(tiny_component, tmp_path / "elsewhere" / "layout", tags=("other",))
    repo = f"{registry_basic.address}/{unique_repo()}"
    wrong = "publisher-Wrong-Pa55"
    bad_env = clean_env(
        tmp_path / "home",
        HATCH_WASM_OCI_USERNAME=registry_basic.username,
        HATCH_WASM_OCI_PASSWORD=wrong,
    )
    failed = _hatch_publish(
        project, f"repository={repo}", "plain-http=true", str(other.layout), env=bad_env
    )
    assert failed.returncode != 0
    assert wrong not in failed.stdout + failed.stderr
    assert "rejected" in failed.stdout + failed.stderr
    good_env = clean_env(tmp_path / "home", **user_env(registry_basic))
    ok = _hatch_publish(
        project, f"repository={repo}", "plain-http=true", str(other.layout), env=good_env
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert [line.split("@")[0] for line in ok.stdout.splitlines()] == [f"{repo}:other"]
    assert registry_basic.password not in ok.stdout + ok.stderr
    summary = (project / "dist" / "wasm-oci-publish.json").read_text()
    assert registry_basic.password not in summary and registry_basic.username not in summary


@pytest.mark.slow
def test_example_project_build_publish_pull_run(
    example_project_build: Path, registry_anon: RegistryServer, tmp_path: Path
) -> None:
    """example-project: hatch build -t wasm-oci -> hatch publish -> skopeo -> pull -> wasmtime."""
    project = tmp_path / "example"
    shutil.copytree(example_project_build, project)
    (project / "dist" / "wasm-oci-publish.json").unlink(missing_ok=True)
    layouts = find_layouts(project / "dist")
    assert len(layouts) == 1
    repo = f"{registry_anon.address}/{unique_repo('example')}"
    env = clean_env(tmp_path / "home")
    result = _hatch_publish(project, f"repository={repo}", "plain-http=true", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    manifests = _manifests(layouts[0])
    assert len(manifests) >= 2
    for tag, data in manifests.items():
        assert f"{repo}:{tag}@{_digest(data)}" in result.stdout.splitlines()
        assert skopeo_raw(registry_anon, f"{repo.split('/', 1)[1]}:{tag}") == data
    tag = next(iter(manifests))
    out = tmp_path / "pulled"
    pulled = plain_pull(f"{repo}:{tag}", out, env)
    assert pulled.returncode == 0, pulled.stderr
    layer = OciLayout.open(layouts[0]).layer(tag)
    wasm = out / layer.annotations.get("org.opencontainers.image.title", "x.wasm")
    assert wasm.read_bytes() == OciLayout.open(layouts[0]).blob_path(layer.digest).read_bytes()
    assert call_inventory(wasm) == EXPECTED_CALLS


def test_version_order_is_pep_440() -> None:
    from hatch_wasm_oci.project.publish_plan import newer

    assert newer("0.10.0", "0.9.0")  # not string order
    assert newer("1.0", "1.0rc1") and newer("1.0.post1", "1.0") and newer("1.0", "1.0.dev4")
    assert not newer("1.0.0", "1.0") and not newer("1.0", "1.0.0")
    assert not newer("not-a-version", "1.0") and not newer(None, "1.0")


def test_publish_tag_templates_use_the_layout_version_and_hatch_context(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    project = _project(tmp_path / "proj", tiny_component)
    repo = f"{registry_anon.address}/{unique_repo('templates')}"
    env = clean_env(tmp_path / "home", GIT_SHA="abc1234")
    result = _hatch_publish(
        project,
        f"repository={repo}",
        "plain-http=true",
        "tags={version},sha-{env:GIT_SHA}",
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(skopeo_tags(registry_anon, repo.split("/", 1)[1])) == ["1.2.0", "sha-abc1234"]
    bad = _hatch_publish(
        project, f"repository={repo}", "plain-http=true", "tags={env:NOPE}", env=env
    )
    assert bad.returncode != 0
    assert (
        "-o tags[0]: cannot format '{env:NOPE}': Nonexistent environment variable must set a "
        "default: NOPE"
    ) in bad.stdout + bad.stderr


def test_publisher_reads_the_build_hook_table(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    """No target table: the hook table's repository is used, checked by the same parser."""
    repo = f"{registry_anon.address}/{unique_repo('hook')}"
    project = _project(
        tmp_path / "proj",
        tiny_component,
        extra_toml=f'\n[tool.hatch.build.hooks.wasm-oci]\npath = "c.wasm"\nrepository = "{repo}"\n',
    )
    env = clean_env(tmp_path / "home")
    ok = _hatch_publish(project, "plain-http=true", env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert sorted(skopeo_tags(registry_anon, repo.split("/", 1)[1])) == ["1.2.0", "latest"]
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text.replace(repo, repo.upper()))
    bad = _hatch_publish(project, "plain-http=true", env=env)
    assert bad.returncode != 0
    assert "tool.hatch.build.hooks.wasm-oci.repository: invalid reference" in bad.stderr


def test_a_version_tag_does_not_move_unless_forced_and_latest_says_where_from(
    registry_anon: RegistryServer, tiny_component: Path, tmp_path: Path
) -> None:
    """Republishing 2.0.0 with other bytes is refused by default (naming both digests)."""
    from hatch_wasm_oci.oci.layout import pack

    project = _versioned_project(
        tmp_path / "proj", tiny_component, "2.0.0", {"2.0.0": ("2.0.0", "latest")}
    )
    layout = project / "dist" / "wasm-oci" / "demo_component-2.0.0"
    repo = f"{registry_anon.address}/{unique_repo('semver')}"
    path = repo.split("/", 1)[1]
    env = clean_env(tmp_path / "home")
    base = (f"repository={repo}", "plain-http=true")
    first = _hatch_publish(project, *base, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    old = _digest(_manifests(layout)["2.0.0"])

    shutil.rmtree(layout)
    annotations = {"org.opencontainers.image.version": "2.0.0", "org.example.rebuilt": "yes"}
    pack(tiny_component, layout, tags=("2.0.0", "latest"), annotations=annotations)
    new = _digest(_manifests(layout)["2.0.0"])
    assert new != old
    refused = _hatch_publish(project, *base, env=env)
    assert refused.returncode != 0
    output = (refused.stdout + refused.stderr).strip()
    assert output.splitlines() == [
        f"{repo}:2.0.0 already names {old}, not {new}; a version tag does not move — hint: "
        "publish a new version, or -o force=true moves it"
    ]
    assert skopeo_raw(registry_anon, f"{path}:2.0.0") != _manifests(layout)["2.0.0"]
    assert skopeo_raw(registry_anon, f"{path}:latest") != _manifests(layout)["latest"]

    # a moving tag alone moves, and says from where
    latest = _hatch_publish(project, *base, "tags=latest", env=env)
    assert latest.returncode == 0, latest.stdout + latest.stderr
    assert f"moved {repo}:latest from {old} to {new}" in latest.stdout.splitlines()
    assert skopeo_raw(registry_anon, f"{path}:latest") == _manifests(layout)["latest"]

    forced = _hatch_publish(project, *base, "force=true", env=env)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert f"moved {repo}:2.0.0 from {old} to {new}" in forced.stdout.splitlines()
    assert skopeo_raw(registry_anon, f"{path}:2.0.0") == _manifests(layout)["2.0.0"]
