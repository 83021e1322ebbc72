"""The ``wasm-oci`` configuration table: parsed and checked, with every problem reported at once.

The same keys live in ``[tool.hatch.build.targets.wasm-oci]`` (the builder) and
``[tool.hatch.build.hooks.wasm-oci]`` (the build hook). The publisher's options (``-o key=value``,
``[tool.hatch.publish.wasm-oci]``, Hatch's user config ``[publish.wasm-oci]``) are parsed here
too (:func:`parse_publish_settings`), on top of the build table's checked ``repository``. Each
problem names its full TOML path (or option), e.g.
``tool.hatch.build.targets.wasm-oci.componentize-py.world: must be a string``.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from hatch_wasm_oci.errors import ConfigurationError, WasmOciError

PLUGIN_NAME = "wasm-oci"
TARGET_TABLE = f"tool.hatch.build.targets.{PLUGIN_NAME}"
HOOK_TABLE = f"tool.hatch.build.hooks.{PLUGIN_NAME}"

PUBLISH_TABLE = f"tool.hatch.publish.{PLUGIN_NAME}"
USER_PUBLISH_TABLE = f"publish.{PLUGIN_NAME}"

DEFAULT_TAGS = ("{version}",)

#: Formats one tag template: ``(template, version_tag) -> tag``; raises ValueError on a bad one.
TagFormatter = Callable[[str, str], str]


def version_only_formatter(template: str, version_tag: str) -> str:
    """The formatter used without Hatch: ``{version}`` is the only placeholder."""
    unknown = [n for _, n, _, _ in string.Formatter().parse(template) if n not in (None, "version")]
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}} (only {{version}} is known)")
    return template.replace("{version}", version_tag)


#: Keys hatch itself reads from a build target table; never reported as unknown.
HATCH_TARGET_KEYS = frozenset(
    {
        "dependencies",
        "require-runtime-dependencies",
        "require-runtime-features",
        "versions",
        "hooks",
        "directory",
        "include",
        "exclude",
        "only-include",
        "force-include",
        "sources",
        "packages",
        "only-packages",
        "artifacts",
        "ignore-vcs",
        "reproducible",
        "skip-excluded-dirs",
        "dev-mode-dirs",
        "dev-mode-exact",
        "strict-naming",
    }
)
#: Keys hatch itself reads from a build hook table.
HATCH_HOOK_KEYS = frozenset(
    {
        "dependencies",
        "require-runtime-dependencies",
        "require-runtime-features",
        "enable-by-default",
    }
)

COMMON_KEYS = (
    "componentize-py",
    "command",
    "path",
    "target",
    "annotations",
    "tags",
    "tar",
    "embed-metadata",
    "sbom",
    "provenance",
    "repository",
    "wit-dependencies",
    "wit-package",
    "cache-repository",
    "cache-signed",
    "check",
)
CHECKS = ("instantiate",)
HOOK_ONLY_KEYS = ("include-in-wheel", "sdist")
COMPONENTIZE_PY_KEYS = ("wit-path", "world", "app", "python-path", "stub-wasi", "args")


@dataclass(frozen=True)
class ComponentizePySource:
    """Compile a Python app with componentize-py against a WIT world."""

    wit_paths: tuple[str, ...]
    world: str
    app: str
    python_path: tuple[str, ...] = ()
    stub_wasi: bool = False
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandSource:
    """Run ``command`` from the project root; it writes the component to ``path``.

    A string command runs through the shell; a list runs as is.
    """

    command: str | tuple[str, ...]
    path: str


@dataclass(frozen=True)
class PrebuiltSource:
    """A ``.wasm`` file (component or module) that already exists."""

    path: str


ComponentSource = ComponentizePySource | CommandSource | PrebuiltSource


@dataclass(frozen=True)
class WasmOciSettings:
    """A checked ``wasm-oci`` table; ``table`` is its TOML path, used in later error messages."""

    table: str
    source: ComponentSource
    target: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = DEFAULT_TAGS
    tar: bool = False
    embed_metadata: bool = True
    #: ``sbom`` / ``provenance``: attach them as referrers (None: on for componentize-py).
    sbom: bool | None = None
    provenance: bool | None = None
    repository: str | None = None
    #: Where compiled components are also cached (an OCI repository), see build.registry_cache.
    cache_repository: str | None = None
    #: ``cache-signed``: registry cache entries count only when signed with the cache key
    #: (``HATCH_WASM_OCI_CACHE_KEY``); without the key the registry cache is not used.
    cache_signed: bool = False
    include_in_wheel: str | None = None
    sdist: bool = False
    #: ``wit-dependencies``: None (fetch when the WIT lacks packages), False, or a wasm-pkg
    #: config table (which also turns the step on).
    wit_dependencies: bool | Mapping[str, Any] | None = None
    #: ``wit-package``: also build the project's WIT (this directory; true: the
    #: componentize-py wit-path) as a WIT package layout.
    wit_package: bool | str | None = None
    #: ``check``: "instantiate" links the built component against a WASI 0.2 host first.
    check: str | None = None
    formatter: TagFormatter = field(default=version_only_formatter, compare=False, repr=False)

    def key(self, *names: str) -> str:
        """The full TOML path of a key of this table."""
        return ".".join((self.table, *names))

    def expand_tags(self, version: str) -> tuple[str, ...]:
        """The tags for ``version``: templates expanded, each checked against the OCI grammar."""
        return expand_tags(self.tags, version, self.key("tags"), self.formatter)


def expand_tags(
    templates: Sequence[str], version: str, path: str, formatter: TagFormatter
) -> tuple[str, ...]:
    """``templates`` formatted for ``version``; ConfigurationError names each bad one by path."""
    problems = _Problems()
    tags = _expand_tags(templates, version, path, problems, formatter)
    if problems.items:
        raise ConfigurationError(problems.items)
    return tags


class _Problems:
    """Collects problems, each prefixed with the TOML path it concerns."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _string(config: Mapping[str, Any], key: str, path: str, problems: _Problems) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    problem = _not_a_string(value)
    if problem:
        problems.add(f"{path}.{key}", problem)
        return None
    assert isinstance(value, str)
    return value


def _not_a_string(value: object) -> str | None:
    """Why ``value`` is not a usable string setting, or None when it is one."""
    if not isinstance(value, str):
        return f"must be a string, not {_describe(value)}"
    if not value.strip():
        return "must be a non-empty string"
    return None


def _bool(
    config: Mapping[str, Any], key: str, path: str, problems: _Problems, default: bool
) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        problems.add(f"{path}.{key}", f"must be true or false, not {_describe(value)}")
        return default
    return value


def _optional_bool(
    config: Mapping[str, Any], key: str, path: str, problems: _Problems
) -> bool | None:
    """``true``/``false`` when set, None when absent (the default depends on the source)."""
    if key not in config:
        return None
    return _bool(config, key, path, problems, False)


def _describe(value: object) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


def _str_list(
    value: object, path: str, problems: _Problems, *, allow_str: bool, allow_empty: bool = True
) -> tuple[str, ...] | None:
    items = [value] if allow_str and isinstance(value, str) else value
    if not isinstance(items, list):
        wanted = "a string or an array of strings" if allow_str else "an array of strings"
        problems.add(path, f"must be {wanted}, not {_describe(value)}")
        return None
    ok = True
    for index, item in enumerate(items):
        problem = _not_a_string(item)
        if problem:
            problems.add(_item_path(path, value, index), problem)
            ok = False
    if ok and not items and not allow_empty:
        problems.add(path, "must not be empty")
        ok = False
    return tuple(items) if ok else None


def _item_path(path: str, value: object, index: int) -> str:
    """The TOML path of item ``index`` of ``value``: ``path`` itself for a lone string."""
    return path if isinstance(value, str) else f"{path}[{index}]"


def _unknown_keys(
    config: Mapping[str, Any],
    known: tuple[str, ...],
    reserved: frozenset[str],
    path: str,
    problems: _Problems,
) -> None:
    for key in config:
        if key not in known and key not in reserved:
            problems.add(f"{path}.{key}", f"unknown key (known keys: {', '.join(known)})")


def _relative_to_root(root: Path, rel: str) -> Path:
    path = Path(rel)
    return path if path.is_absolute() else root / path


def _componentize_py(
    value: object, path: str, root: Path, problems: _Problems
) -> ComponentizePySource | None:
    if not isinstance(value, Mapping):
        problems.add(path, f"must be a table, not {_describe(value)}")
        return None
    _unknown_keys(value, COMPONENTIZE_PY_KEYS, frozenset(), path, problems)
    before = len(problems.items)

    wit_paths: tuple[str, ...] | None = None
    if "wit-path" not in value:
        problems.add(f"{path}.wit-path", "missing: the WIT file or directory defining the world")
    else:
        wit_paths = _str_list(
            value["wit-path"], f"{path}.wit-path", problems, allow_str=True, allow_empty=False
        )
        for index, rel in enumerate(wit_paths or ()):
            if not _relative_to_root(root, rel).exists():
                where = _item_path(f"{path}.wit-path", value["wit-path"], index)
                problems.add(where, f"{rel!r} does not exist")
    for key in ("world", "app"):
        if key not in value:
            what = "the WIT world to target" if key == "world" else "the Python module of the app"
            problems.add(f"{path}.{key}", f"missing: {what}")
    world = _string(value, "world", path, problems)
    app = _string(value, "app", path, problems)
    if app is not None and world is not None and app.split(".")[0] == world.replace("-", "_"):
        problems.add(
            f"{path}.app",
            f"{app!r} clashes with the module componentize-py generates for world {world!r}",
        )
    python_path: tuple[str, ...] | None = ()
    if "python-path" in value:
        python_path = _str_list(
            value["python-path"], f"{path}.python-path", problems, allow_str=True
        )
        for index, rel in enumerate(python_path or ()):
            if not _relative_to_root(root, rel).is_dir():
                where = _item_path(f"{path}.python-path", value["python-path"], index)
                problems.add(where, f"{rel!r} is not a directory")
    stub_wasi = _bool(value, "stub-wasi", path, problems, False)
    args: tuple[str, ...] | None = ()
    if "args" in value:
        args = _str_list(value["args"], f"{path}.args", problems, allow_str=False)
    if len(problems.items) > before or wit_paths is None or world is None or app is None:
        return None
    return ComponentizePySource(
        wit_paths, world, app, tuple(python_path or ()), stub_wasi, tuple(args or ())
    )


def _expand_tags(
    templates: Sequence[str],
    version: str,
    path: str,
    problems: _Problems,
    formatter: TagFormatter = version_only_formatter,
) -> tuple[str, ...]:
    from hatch_wasm_oci.oci.tags import validate_tag, version_to_tag

    tags: list[str] = []
    for index, template in enumerate(templates):
        where = f"{path}[{index}]"
        try:
            fields = [n for _, n, _, _ in string.Formatter().parse(template) if n is not None]
        except ValueError:
            problems.add(where, f"malformed template {template!r}")
            continue
        try:
            version_tag = version_to_tag(version) if "version" in fields else version
            tag = validate_tag(formatter(template, version_tag))
        except WasmOciError as exc:
            problems.add(where, str(exc))
            continue
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            problems.add(where, f"cannot format {template!r}: {exc}")
            continue
        if tag not in tags:
            tags.append(tag)
    return tuple(tags)


def _repository(config: Mapping[str, Any], key: str, path: str, problems: _Problems) -> str | None:
    """A ``REGISTRY/NAMESPACE/NAME`` setting, checked by the reference grammar (no tag, digest)."""
    from hatch_wasm_oci.registry.reference import parse_reference

    text = _string(config, key, path, problems)
    if text is None:
        return None
    try:
        ref = parse_reference(text.strip())
    except WasmOciError as exc:
        problems.add(f"{path}.{key}", str(exc))
        return None
    if ref.tag or ref.digest:
        problems.add(
            f"{path}.{key}",
            f"{text!r} names a tag or digest: give the repository alone (tags go in `tags`)",
        )
        return None
    first = text.strip().split("/", 1)[0]
    if "." not in first and ":" not in first and first != "localhost":
        name = ref.repository.rsplit("/", 1)[-1]
        problems.add(
            f"{path}.{key}",
            f"{text!r} names no registry host: write it in full, e.g. 'ghcr.io/OWNER/{name}', "
            f"or '{ref.repo_ref}' for Docker Hub",
        )
        return None
    return text.strip()


def parse_settings(
    config: Mapping[str, Any],
    *,
    root: Path | str,
    table: str = TARGET_TABLE,
    hook: bool = False,
    version: str | None = None,
    formatter: TagFormatter = version_only_formatter,
) -> WasmOciSettings:
    """Check a ``wasm-oci`` table and parse it; ConfigurationError lists every problem found.

    ``root`` is the project root (relative paths resolve against it); ``hook`` allows the hook's
    own keys; ``version``, when given, also expands and checks the tags with ``formatter``
    (Hatch's context formatter in the plugins).
    """
    root = Path(root)
    problems = _Problems()
    if not isinstance(config, Mapping):
        raise ConfigurationError([f"{table}: must be a table, not {_describe(config)}"])

    known = COMMON_KEYS + (HOOK_ONLY_KEYS if hook else ())
    reserved = HATCH_HOOK_KEYS if hook else HATCH_TARGET_KEYS
    _unknown_keys(config, known, reserved, table, problems)

    given = [key for key in ("componentize-py", "command", "path") if key in config]
    source: ComponentSource | None = None
    if "componentize-py" in config and ("command" in config or "path" in config):
        others = " and ".join(f"`{k}`" for k in given if k != "componentize-py")
        problems.add(
            table,
            f"give exactly one component source: `componentize-py` and {others} are both set",
        )
    elif not given:
        problems.add(
            table,
            "no component source: set `componentize-py`, `command` (with `path`) or `path`",
        )
    if "componentize-py" in config:
        source = _componentize_py(
            config["componentize-py"], f"{table}.componentize-py", root, problems
        )
    command: str | tuple[str, ...] | None = None
    if "command" in config:
        raw = config["command"]
        if isinstance(raw, str):
            if raw.strip():
                command = raw
            else:
                problems.add(f"{table}.command", "must not be empty")
        else:
            command = _str_list(
                raw, f"{table}.command", problems, allow_str=False, allow_empty=False
            )
        if "path" not in config:
            problems.add(
                f"{table}.path", "missing: `command` needs the path of the .wasm it writes"
            )
    wasm_path = _string(config, "path", table, problems) if "path" in config else None
    if wasm_path is not None and "command" not in config and "componentize-py" not in config:
        problem = wasm_path_problem(root, wasm_path)
        if problem:
            problems.add(f"{table}.path", problem)
    if "componentize-py" not in config:
        if command is not None and wasm_path is not None:
            source = CommandSource(command, wasm_path)
        elif "command" not in config and wasm_path is not None:
            source = PrebuiltSource(wasm_path)

    target = _string(config, "target", table, problems)
    if target is not None:
        from hatch_wasm_oci.project.world import world_name_problem

        problem = world_name_problem(target)
        if problem:
            problems.add(f"{table}.target", problem)
    annotations: dict[str, str] = {}
    if "annotations" in config:
        raw_annotations = config["annotations"]
        if not isinstance(raw_annotations, Mapping):
            problems.add(
                f"{table}.annotations", f"must be a table, not {_describe(raw_annotations)}"
            )
        else:
            for key, value in raw_annotations.items():
                if not isinstance(value, str):
                    problems.add(
                        f"{table}.annotations.{_toml_key(key)}",
                        f"must be a string, not {_describe(value)}",
                    )
                else:
                    annotations[key] = value
    tags: tuple[str, ...] | None = DEFAULT_TAGS
    if "tags" in config:
        tags = _str_list(
            config["tags"], f"{table}.tags", problems, allow_str=False, allow_empty=False
        )
    if tags is not None and version is not None:
        _expand_tags(tags, version, f"{table}.tags", problems, formatter)
    tar = _bool(config, "tar", table, problems, False)
    embed = _bool(config, "embed-metadata", table, problems, True)
    sbom = _optional_bool(config, "sbom", table, problems)
    provenance = _optional_bool(config, "provenance", table, problems)
    repository = _repository(config, "repository", table, problems)
    wit_dependencies = config.get("wit-dependencies")
    if wit_dependencies is not None and not isinstance(wit_dependencies, (bool, Mapping)):
        problems.add(
            f"{table}.wit-dependencies",
            f"must be true, false or a table, not {_describe(wit_dependencies)}",
        )
    wit_package = config.get("wit-package")
    if wit_package is not None and not isinstance(wit_package, (bool, str)):
        problems.add(
            f"{table}.wit-package",
            f"must be true, false or a WIT directory, not {_describe(wit_package)}",
        )
    cache_repository = _repository(config, "cache-repository", table, problems)
    cache_signed = _bool(config, "cache-signed", table, problems, False)

    check = _string(config, "check", table, problems)
    if check is not None and check not in CHECKS:
        problems.add(f"{table}.check", f'must be "instantiate", not {check!r}')

    include_in_wheel = None
    sdist = False
    if hook:
        include_in_wheel = _string(config, "include-in-wheel", table, problems)
        if include_in_wheel is not None:
            posix = PurePosixPath(include_in_wheel)
            if posix.is_absolute() or ".." in posix.parts or "\\" in include_in_wheel:
                problems.add(
                    f"{table}.include-in-wheel",
                    f"must be a relative path inside the wheel, not {include_in_wheel!r}",
                )
            elif posix.suffix != ".wasm":
                problems.add(f"{table}.include-in-wheel", f"{include_in_wheel!r} must end in .wasm")
        sdist = _bool(config, "sdist", table, problems, False)

    if problems.items or source is None or tags is None:
        raise ConfigurationError(problems.items or [f"{table}: invalid configuration"])
    return WasmOciSettings(
        table=table,
        source=source,
        target=target,
        annotations=annotations,
        tags=tags,
        tar=tar,
        embed_metadata=embed,
        sbom=sbom,
        provenance=provenance,
        repository=repository,
        cache_repository=cache_repository,
        cache_signed=cache_signed,
        include_in_wheel=include_in_wheel,
        sdist=sdist,
        wit_dependencies=wit_dependencies,
        wit_package=wit_package,
        check=check,
        formatter=formatter,
    )


def _toml_key(key: str) -> str:
    bare = set(string.ascii_letters + string.digits + "-_")
    return key if key and set(key) <= bare else '"' + key.replace('"', '\\"') + '"'


def wasm_path_problem(root: Path, rel: str, *, after: str = "") -> str | None:
    """None if ``rel`` (relative to ``root``) is a Wasm file, else why not, in one line.

    ``after`` ends the "does not exist" message (e.g. " after running `command`").
    """
    file = _relative_to_root(root, rel)
    if file.is_dir():
        return f"{rel!r} is a directory, not a .wasm file"
    if not file.is_file():
        return f"{rel!r} does not exist{after}"
    return check_wasm_file(file)


def check_wasm_file(path: Path) -> str | None:
    """None if ``path`` reads as a Wasm module or component, else the reader's one-line reason."""
    from hatch_wasm_oci.errors import WasmFormatError
    from hatch_wasm_oci.wasm.binary import read_wasm

    try:
        read_wasm(path)
    except WasmFormatError as exc:
        return f"{path.name} is not a valid Wasm file: {exc.reason}"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    return None


# -- the publisher's options ------------------------------------------------------------------

#: Publisher option -> (kind, help). Kinds: str, bool, tags, size, list.
PUBLISH_KEYS: dict[str, str] = {
    "repository": "str",
    "tags": "tags",
    "versions": "list",
    "plain-http": "bool",
    "ca-file": "str",
    "dry-run": "bool",
    "summary": "str",
    "chunked-above": "size",
    "skip-existing": "bool",
    "immutable-tags": "bool",
    "force": "bool",
    "user": "str",
    "auth": "str",
}
#: Keys Hatch itself puts in a publisher's options or reads from its tables.
HATCH_PUBLISH_KEYS = frozenset({"no_prompt", "initialize_auth", "disable"})
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


@dataclass(frozen=True)
class PublishLayer:
    """One source of publisher options: ``values`` and how to name a key of it in a message.

    ``prefix`` is a TOML table (``tool.hatch.publish.wasm-oci``) or ``-o`` for options given on
    the command line; ``names`` maps a key to its own spelling there (``--repo`` for -r).
    """

    prefix: str
    values: Mapping[str, Any]
    names: Mapping[str, str] = field(default_factory=dict)
    secrets_allowed: bool = True

    def path(self, key: str) -> str:
        """Where ``key`` was set, as the user wrote it."""
        if key in self.names:
            return self.names[key]
        return f"-o {key}" if self.prefix == "-o" else f"{self.prefix}.{key}"


@dataclass(frozen=True)
class PublishSettings:
    """The publisher's checked options, merged from every layer (first layer wins)."""

    repository: str | None
    repository_from: str | None = None
    tags: tuple[str, ...] = ()
    tags_from: str = "tags"
    versions: tuple[str, ...] = ()
    plain_http: bool = False
    ca_file: str | None = None
    dry_run: bool = False
    summary: str | None = None
    chunked_above: int | None = None
    skip_existing: bool = False
    immutable_tags: bool = False
    force: bool = False
    user: str | None = None
    auth: str | None = field(default=None, repr=False)
    #: Where ``user`` and ``auth`` were set (``--user and --auth``), for the credential hint.
    credentials_from: str | None = None


def _publish_value(kind: str, value: Any, where: str, problems: _Problems) -> Any:
    """``value`` (a TOML value or a ``-o`` string) as ``kind``; None after adding a problem."""
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, str) else None
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        problems.add(where, f"must be true or false, not {value!r}")
        return None
    if kind in ("tags", "list"):
        if isinstance(value, str):
            items: object = [t.strip() for t in value.split(",") if t.strip()]
        else:
            items = value
        return _str_list(items, where, problems, allow_str=False, allow_empty=False)
    if kind == "size":
        from hatch_wasm_oci.registry.push import parse_size

        try:
            return parse_size(str(value), where)
        except WasmOciError as exc:
            problems.add(where, str(exc).removeprefix(f"{where}: "))
            return None
    problem = _not_a_string(value)
    if problem:
        problems.add(where, problem)
        return None
    return str(value).strip()


def parse_publish_settings(
    layers: Sequence[PublishLayer], build: WasmOciSettings | None = None
) -> PublishSettings:
    """Merge and check the publisher's options; ConfigurationError lists every problem.

    Every key of every layer is checked (unknown keys too), then the first layer that sets a
    key wins. ``repository`` falls back to the build table's (already checked) ``repository``.
    ``auth`` is refused in a layer that is committed with the project (``secrets_allowed``).
    """
    from hatch_wasm_oci.oci.tags import validate_tag

    problems = _Problems()
    chosen: dict[str, tuple[Any, str]] = {}
    for layer in layers:
        for key, value in layer.values.items():
            if key in HATCH_PUBLISH_KEYS:
                continue
            where = layer.path(key)
            if key not in PUBLISH_KEYS:
                problems.add(where, f"unknown option (known: {', '.join(PUBLISH_KEYS)})")
                continue
            if key == "auth" and not layer.secrets_allowed:
                problems.add(
                    where,
                    "a secret does not belong in the project's files: pass -a/--auth or set it "
                    f"in Hatch's config file [{USER_PUBLISH_TABLE}]",
                )
                continue
            if key == "repository":
                parsed = _repository({key: value}, key, layer.prefix, _Relabel(problems, where))
            else:
                parsed = _publish_value(PUBLISH_KEYS[key], value, where, problems)
            if parsed is not None and key not in chosen:
                chosen[key] = (parsed, where)
    if "repository" not in chosen and build is not None and build.repository:
        chosen["repository"] = (build.repository, build.key("repository"))
    tags: tuple[str, ...] = chosen["tags"][0] if "tags" in chosen else ()
    for index, tag in enumerate(tags):
        if "{" not in tag:  # templates are formatted per layout (its version) at publish time
            try:
                validate_tag(tag)
            except WasmOciError as exc:
                problems.add(f"{chosen['tags'][1]}[{index}]", str(exc))
    user, auth = chosen.get("user"), chosen.get("auth")
    if (user is None) != (auth is None):
        missing, given = ("auth", user) if auth is None else ("user", auth)
        assert given is not None
        problems.add(
            given[1],
            f"needs {'-a/--auth' if missing == 'auth' else '-u/--user'} too (or give neither)",
        )
    if problems.items:
        raise ConfigurationError(problems.items)

    def get(key: str, default: Any = None) -> Any:
        return chosen[key][0] if key in chosen else default

    return PublishSettings(
        repository=get("repository"),
        repository_from=chosen["repository"][1] if "repository" in chosen else None,
        tags=tags,
        tags_from=chosen["tags"][1] if "tags" in chosen else "tags",
        versions=tuple(get("versions", ())),
        plain_http=get("plain-http", False),
        ca_file=get("ca-file"),
        dry_run=get("dry-run", False),
        summary=get("summary"),
        chunked_above=get("chunked-above"),
        skip_existing=get("skip-existing", False),
        immutable_tags=get("immutable-tags", False),
        force=get("force", False),
        user=get("user"),
        auth=get("auth"),
        credentials_from=f"{user[1]} and {auth[1]}" if user and auth else None,
    )


class _Relabel(_Problems):
    """Adds problems to ``target`` under a fixed label (a ``-o`` option's name, say)."""

    def __init__(self, target: _Problems, label: str) -> None:
        super().__init__()
        self.target = target
        self.label = label

    def add(self, path: str, message: str) -> None:
        self.target.add(self.label, message)
