"""The wasm-oci configuration table: every problem reported at once, each with its TOML path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hatch_wasm_oci.errors import ConfigurationError
from hatch_wasm_oci.project.annotations import git_revision, metadata_fields, project_annotations
from hatch_wasm_oci.project.settings import (
    HOOK_TABLE,
    PUBLISH_TABLE,
    TARGET_TABLE,
    USER_PUBLISH_TABLE,
    CommandSource,
    ComponentizePySource,
    PrebuiltSource,
    PublishLayer,
    PublishSettings,
    parse_publish_settings,
    parse_settings,
)

T = TARGET_TABLE


@pytest.fixture
def root(tmp_path: Path, tiny_component: Path) -> Path:
    (tmp_path / "wit").mkdir()
    (tmp_path / "wit" / "world.wit").write_text("package acme:calc@1.2.0;\nworld calculator {}\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "prebuilt.wasm").write_bytes(tiny_component.read_bytes())
    (tmp_path / "notwasm.wasm").write_text("this is text, not wasm\n")
    return tmp_path


CPY = {"wit-path": "wit", "world": "calculator", "app": "calc_app"}


def problems(config: dict[str, Any], root: Path, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigurationError) as info:
        parse_settings(config, root=root, **kwargs)
    assert str(info.value) == "; ".join(info.value.problems)
    return info.value.problems


def test_componentize_py_source_parsed(root: Path) -> None:
    settings = parse_settings(
        {
            "componentize-py": {
                **CPY,
                "wit-path": ["wit"],
                "python-path": ["src"],
                "stub-wasi": True,
                "args": ["--all-features"],
            },
            "target": "acme:calc/calculator@1.2.0",
            "annotations": {"org.example.team": "calc"},
            "tags": ["{version}", "latest"],
            "tar": True,
            "embed-metadata": False,
            "repository": "ghcr.io/acme/calc",
            "dependencies": ["x"],  # hatch's own key: accepted silently
            "versions": ["standard"],
        },
        root=root,
        version="1.2.0+local.7",
    )
    assert settings.source == ComponentizePySource(
        ("wit",), "calculator", "calc_app", ("src",), True, ("--all-features",)
    )
    assert settings.target == "acme:calc/calculator@1.2.0"
    assert dict(settings.annotations) == {"org.example.team": "calc"}
    assert settings.expand_tags("1.2.0+local.7") == ("1.2.0_local.7", "latest")
    assert (settings.tar, settings.embed_metadata) == (True, False)
    assert settings.repository == "ghcr.io/acme/calc"


def test_defaults(root: Path) -> None:
    settings = parse_settings({"path": "prebuilt.wasm"}, root=root)
    assert settings.source == PrebuiltSource("prebuilt.wasm")
    assert settings.tags == ("{version}",)
    assert settings.expand_tags("2.0.1") == ("2.0.1",)
    assert (settings.tar, settings.embed_metadata, settings.target) == (False, True, None)


def test_command_source(root: Path) -> None:
    settings = parse_settings({"command": ["make", "wasm"], "path": "out/c.wasm"}, root=root)
    assert settings.source == CommandSource(("make", "wasm"), "out/c.wasm")
    settings = parse_settings({"command": "make wasm && true", "path": "out/c.wasm"}, root=root)
    assert settings.source == CommandSource("make wasm && true", "out/c.wasm")


def test_two_sources(root: Path) -> None:
    assert problems({"componentize-py": CPY, "path": "prebuilt.wasm"}, root) == [
        f"{T}: give exactly one component source: `componentize-py` and `path` are both set"
    ]
    assert problems({"componentize-py": CPY, "command": "x", "path": "a.wasm"}, root) == [
        f"{T}: give exactly one component source: `componentize-py` and `command` and `path` "
        "are both set"
    ]


def test_no_source(root: Path) -> None:
    assert problems({"tar": True}, root) == [
        f"{T}: no component source: set `componentize-py`, `command` (with `path`) or `path`"
    ]


def test_command_without_path(root: Path) -> None:
    assert problems({"command": ["make"]}, root) == [
        f"{T}.path: missing: `command` needs the path of the .wasm it writes"
    ]


def test_missing_and_invalid_prebuilt_path(root: Path) -> None:
    assert problems({"path": "nope.wasm"}, root) == [f"{T}.path: 'nope.wasm' does not exist"]
    (root / "out").mkdir()
    assert problems({"path": "out"}, root) == [f"{T}.path: 'out' is a directory, not a .wasm file"]
    (only,) = problems({"path": "notwasm.wasm"}, root)
    assert only.startswith(f"{T}.path: notwasm.wasm is not a valid Wasm file: ")


def test_every_problem_reported_at_once(root: Path) -> None:
    found = problems(
        {
            "componentize-py": {
                "wit-path": ["wit", "missing-wit", 3],
                "world": 5,
                "python-path": ["nodir"],
                "stub-wasi": "yes",
                "args": "--flag",
                "colour": "blue",
            },
            "target": "",
            "annotations": {"a": 1, "b.c": ["x"]},
            "tags": ["{version}", "bad tag", "{nope}"],
            "tar": "true",
            "embed-metadata": 1,
            "repository": 7,
            "include-in-wheel": "pkg/c.wasm",
            "unknown": 1,
        },
        root,
        version="1.0",
    )
    cpy = f"{T}.componentize-py"
    assert found == [
        f"{T}.include-in-wheel: unknown key (known keys: componentize-py, command, path, target, "
        "annotations, tags, tar, embed-metadata, sbom, provenance, repository, wit-dependencies, "
        "wit-package, "
        "cache-repository, cache-signed, check)",
        f"{T}.unknown: unknown key (known keys: componentize-py, command, path, target, "
        "annotations, tags, tar, embed-metadata, sbom, provenance, repository, wit-dependencies, "
        "wit-package, "
        "cache-repository, cache-signed, check)",
        f"{cpy}.colour: unknown key (known keys: wit-path, world, app, python-path, stub-wasi, "
        "args)",
        f"{cpy}.wit-path[2]: must be a string, not an integer",
        f"{cpy}.app: missing: the Python module of the app",
        f"{cpy}.world: must be a string, not an integer",
        f"{cpy}.python-path[0]: 'nodir' is not a directory",
        f"{cpy}.stub-wasi: must be true or false, not a string",
        f"{cpy}.args: must be an array of strings, not a string",
        f"{T}.target: must be a non-empty string",
        f"{T}.annotations.a: must be a string, not an integer",
        f'{T}.annotations."b.c": must be a string, not an array',
        f"{T}.tags[1]: invalid OCI tag 'bad tag': a tag is 1-128 characters of letters, "
        "digits, '_', '.' and '-', starts and ends with a letter or digit, and has no two "
        "of '_', '.', '-' in a row (but '--')",
        f"{T}.tags[2]: cannot format '{{nope}}': unknown placeholder {{nope}} "
        "(only {version} is known)",
        f"{T}.tar: must be true or false, not a string",
        f"{T}.embed-metadata: must be true or false, not an integer",
        f"{T}.repository: must be a string, not an integer",
    ]


def test_wit_path_that_does_not_exist(root: Path) -> None:
    assert problems({"componentize-py": {**CPY, "wit-path": "nowit"}}, root) == [
        f"{T}.componentize-py.wit-path: 'nowit' does not exist"
    ]
    assert problems({"componentize-py": {**CPY, "wit-path": ["wit", "nowit"]}}, root) == [
        f"{T}.componentize-py.wit-path[1]: 'nowit' does not exist"
    ]
    assert problems({"componentize-py": {**CPY, "wit-path": " "}}, root) == [
        f"{T}.componentize-py.wit-path: must be a non-empty string"
    ]


def test_python_path_that_is_not_a_directory(root: Path) -> None:
    assert problems({"componentize-py": {**CPY, "python-path": "nodir"}}, root) == [
        f"{T}.componentize-py.python-path: 'nodir' is not a directory"
    ]
    assert problems({"componentize-py": {**CPY, "python-path": ["wit", "nodir"]}}, root) == [
        f"{T}.componentize-py.python-path[1]: 'nodir' is not a directory"
    ]


def test_componentize_py_missing_keys_and_wrong_type(root: Path) -> None:
    assert problems({"componentize-py": {}}, root) == [
        f"{T}.componentize-py.wit-path: missing: the WIT file or directory defining the world",
        f"{T}.componentize-py.world: missing: the WIT world to target",
        f"{T}.componentize-py.app: missing: the Python module of the app",
    ]
    assert problems({"componentize-py": "wit"}, root) == [
        f"{T}.componentize-py: must be a table, not a string"
    ]


def test_app_named_like_the_world(root: Path) -> None:
    assert problems({"componentize-py": {**CPY, "app": "calculator"}}, root) == [
        f"{T}.componentize-py.app: 'calculator' clashes with the module componentize-py "
        "generates for world 'calculator'"
    ]


def test_wrong_types_of_sources(root: Path) -> None:
    assert problems({"command": [], "path": "x.wasm"}, root) == [f"{T}.command: must not be empty"]
    assert problems({"command": 3, "path": "x.wasm"}, root) == [
        f"{T}.command: must be an array of strings, not an integer"
    ]
    assert problems({"path": 3}, root) == [f"{T}.path: must be a string, not an integer"]


def test_tags_rules(root: Path) -> None:
    assert problems({"path": "prebuilt.wasm", "tags": []}, root) == [f"{T}.tags: must not be empty"]
    assert problems({"path": "prebuilt.wasm", "tags": "latest"}, root) == [
        f"{T}.tags: must be an array of strings, not a string"
    ]
    assert problems({"path": "prebuilt.wasm"}, root, version="1!2.0") == [
        f"{T}.tags[0]: version '1!2.0' has an epoch ('!'), which no OCI tag can spell; "
        "set explicit tags"
    ]
    # Explicit tags make an epoch version buildable.
    settings = parse_settings({"path": "prebuilt.wasm", "tags": ["v2"]}, root=root, version="1!2")
    assert settings.expand_tags("1!2") == ("v2",)


def test_hook_keys(root: Path) -> None:
    settings = parse_settings(
        {
            "path": "prebuilt.wasm",
            "include-in-wheel": "pkg/component.wasm",
            "sdist": True,
            "enable-by-default": False,
        },
        root=root,
        table=HOOK_TABLE,
        hook=True,
    )
    assert (settings.include_in_wheel, settings.sdist) == ("pkg/component.wasm", True)
    assert problems(
        {"path": "prebuilt.wasm", "include-in-wheel": "../x.wasm", "sdist": "no", "versions": []},
        root,
        table=HOOK_TABLE,
        hook=True,
    ) == [
        f"{HOOK_TABLE}.versions: unknown key (known keys: componentize-py, command, path, "
        "target, annotations, tags, tar, embed-metadata, sbom, provenance, repository, "
        "wit-dependencies, wit-package, cache-repository, cache-signed, check, include-in-wheel, "
        "sdist)",
        f"{HOOK_TABLE}.include-in-wheel: must be a relative path inside the wheel, not '../x.wasm'",
        f"{HOOK_TABLE}.sdist: must be true or false, not a string",
    ]
    assert problems(
        {"path": "prebuilt.wasm", "include-in-wheel": "pkg/c.txt"},
        root,
        table=HOOK_TABLE,
        hook=True,
    ) == [f"{HOOK_TABLE}.include-in-wheel: 'pkg/c.txt' must end in .wasm"]


def test_table_not_a_table(root: Path) -> None:
    assert problems(["x"], root) == [f"{T}: must be a table, not an array"]  # type: ignore[arg-type]


def test_project_annotations_key_by_key() -> None:
    project = {
        "name": "Acme-Calc",
        "version": "1.2.0",
        "description": "A calculator\n  component",
        "license": {"text": "MIT"},
        "authors": [{"name": "Ada", "email": "ada@example.com"}, {"name": "Bob"}],
        "maintainers": [{"email": "ops@example.com"}, {"name": "Ada", "email": "ada@example.com"}],
        "urls": {
            "Homepage": "https://example.com",
            "Source Code": "https://github.com/acme/calc",
            "Documentation": "https://docs.example.com",
            "Issues": "https://github.com/acme/calc/issues",
        },
    }
    annotations = project_annotations(project)
    assert annotations == {
        "org.opencontainers.image.title": "Acme-Calc",
        "org.opencontainers.image.version": "1.2.0",
        "org.opencontainers.image.description": "A calculator component",
        "org.opencontainers.image.licenses": "MIT",
        "org.opencontainers.image.authors": "Ada <ada@example.com>, Bob, ops@example.com",
        "org.opencontainers.image.source": "https://github.com/acme/calc",
        "org.opencontainers.image.url": "https://example.com",
        "org.opencontainers.image.documentation": "https://docs.example.com",
    }
    assert project_annotations({"name": "x", "license": "Apache-2.0 OR MIT"}, version="3") == {
        "org.opencontainers.image.title": "x",
        "org.opencontainers.image.version": "3",
        "org.opencontainers.image.licenses": "Apache-2.0 OR MIT",
    }
    assert project_annotations({"urls": {"Repository": "https://r"}}) == {
        "org.opencontainers.image.source": "https://r"
    }
    assert metadata_fields(annotations) == {
        "name": "Acme-Calc",
        "authors": "Ada <ada@example.com>, Bob, ops@example.com",
        "description": "A calculator component",
        "licenses": "MIT",
        "source": "https://github.com/acme/calc",
        "homepage": "https://example.com",
        "version": "1.2.0",
    }


def test_git_revision(tmp_path: Path) -> None:
    import subprocess

    assert git_revision(tmp_path) is None
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    assert git_revision(tmp_path) is None  # no commit yet
    (tmp_path / "f").write_text("x")
    subprocess.run([*git, "-C", str(tmp_path), "add", "f"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "c"], check=True)
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert len(head) == 40
    assert git_revision(tmp_path) == head


@pytest.mark.parametrize(
    ("repository", "message"),
    [
        ("ghcr.io/Acme/calc", "repository component 'Acme' must be lowercase letters"),
        ("bad_host!/acme/calc", "repository component 'bad_host!' must be lowercase"),
        ("ghcr.io:x/acme/calc", "bad registry host 'ghcr.io:x'"),
        ("https://ghcr.io/acme/calc", "leave out the URL scheme"),
        ("ghcr.io/acme/calc:1.0", "names a tag or digest: give the repository alone"),
        (
            "todo",
            "'todo' names no registry host: write it in full, e.g. 'ghcr.io/OWNER/todo', or "
            "'docker.io/library/todo' for Docker Hub",
        ),
        ("acme/todo", "or 'docker.io/acme/todo' for Docker Hub"),
    ],
)
def test_repository_checked_by_the_reference_grammar(
    root: Path, repository: str, message: str
) -> None:
    (found,) = problems({"path": "prebuilt.wasm", "repository": repository}, root)
    assert found.startswith(f"{T}.repository: ")
    assert message in found


def layers(**tables: dict[str, Any]) -> list[PublishLayer]:
    names = {"cli": "-o", "project": PUBLISH_TABLE, "user": USER_PUBLISH_TABLE}
    return [
        PublishLayer(names[name], values, secrets_allowed=name != "project")
        for name, values in tables.items()
    ]


def publish_problems(given: list[PublishLayer], build: Any = None) -> list[str]:
    with pytest.raises(ConfigurationError) as info:
        parse_publish_settings(given, build)
    return info.value.problems


def test_publish_layers_merge_first_wins_with_typed_values(root: Path) -> None:
    build = parse_settings(
        {"path": "prebuilt.wasm", "repository": "ghcr.io/acme/from-build"}, root=root
    )
    settings = parse_publish_settings(
        layers(
            cli={"tags": "one, two", "plain-http": "yes", "chunked-above": "16M", "dry-run": "0"},
            project={"tags": ["x"], "plain-http": False, "skip-existing": True, "disable": False},
            user={"repository": "127.0.0.1:5000/acme/calc", "user": "ada", "auth": "s3cret"},
        ),
        build,
    )
    assert settings == PublishSettings(
        repository="127.0.0.1:5000/acme/calc",
        repository_from=f"{USER_PUBLISH_TABLE}.repository",
        tags=("one", "two"),
        tags_from="-o tags",
        plain_http=True,
        dry_run=False,
        chunked_above=16 << 20,
        skip_existing=True,
        user="ada",
        auth="s3cret",
        credentials_from=f"{USER_PUBLISH_TABLE}.user and {USER_PUBLISH_TABLE}.auth",
    )
    assert "s3cret" not in repr(settings)
    fallback = parse_publish_settings(layers(cli={}), build)
    assert (fallback.repository, fallback.repository_from) == (
        "ghcr.io/acme/from-build",
        f"{T}.repository",
    )
    assert parse_publish_settings(layers(cli={})).repository is None


def test_publish_problems_name_where_each_key_was_set() -> None:
    found = publish_problems(
        layers(
            cli={"dry-run": "maybe", "colour": "blue", "repository": "127.0.0.1:9/Bad/Name"},
            project={"tags": ["ok", "bad tag"], "auth": "leaked", "chunked-above": "lots"},
            user={"user": "ada", "plain-http": 3},
        )
    )
    assert found[0] == "-o dry-run: must be true or false, not 'maybe'"
    assert found[1].startswith("-o colour: unknown option (known: repository, tags, versions,")
    assert found[2].startswith("-o repository: invalid reference '127.0.0.1:9/Bad/Name'")
    assert found[3].startswith(f"{PUBLISH_TABLE}.auth: a secret does not belong in the project")
    assert found[4].startswith(f"{PUBLISH_TABLE}.chunked-above: ")
    assert found[5] == f"{USER_PUBLISH_TABLE}.plain-http: must be true or false, not 3"
    assert found[6].startswith(f"{PUBLISH_TABLE}.tags[1]: invalid OCI tag 'bad tag'")
    assert found[7] == f"{USER_PUBLISH_TABLE}.user: needs -a/--auth too (or give neither)"
    assert len(found) == 8


def test_tag_templates_use_the_given_formatter(root: Path) -> None:
    def fake_hatch(template: str, version_tag: str) -> str:
        return template.replace("{version}", version_tag).replace("{env:GIT_SHA}", "abc123")

    settings = parse_settings(
        {"path": "prebuilt.wasm", "tags": ["{version}", "{env:GIT_SHA}", "latest"]},
        root=root,
        version="1.2.0+local",
        formatter=fake_hatch,
    )
    assert settings.expand_tags("1.2.0+local") == ("1.2.0_local", "abc123", "latest")
    # without Hatch only {version} is known
    (found,) = problems({"path": "prebuilt.wasm", "tags": ["{env:GIT_SHA}"]}, root, version="1")
    assert found == (
        f"{T}.tags[0]: cannot format '{{env:GIT_SHA}}': unknown placeholder {{env}} "
        "(only {version} is known)"
    )
