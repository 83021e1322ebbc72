"""The ``wasm-oci`` Hatch publisher: ``hatch publish -p wasm-oci`` pushes OCI layouts.

Options (each key is looked up in ``-o key=value``, then ``[tool.hatch.publish.wasm-oci]``, then
Hatch's user config ``[publish.wasm-oci]``; ``repository`` finally falls back to
``[tool.hatch.build.targets.wasm-oci].repository``): repository, tags, plain-http, ca-file,
dry-run, summary, chunked-above.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hatch.publish.plugin.interface import PublisherInterface

from hatch_wasm_oci.errors import WasmOciError

KNOWN_OPTIONS = (
    "repository",
    "tags",
    "plain-http",
    "ca-file",
    "dry-run",
    "summary",
    "chunked-above",
)
HATCH_OPTIONS = ("no_prompt", "initialize_auth", "disable")
SUMMARY_NAME = "wasm-oci-publish.json"
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def coerce_bool(key: str, value: Any) -> bool:
    """A boolean from a TOML bool or a ``-o`` string (true/false/1/0/yes/no/on/off)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise WasmOciError(f"option {key}: expected true or false, got {value!r}")


def coerce_tags(value: Any) -> list[str]:
    """Tags from ``a,b`` or a TOML list of strings."""
    if isinstance(value, str):
        items = [t.strip() for t in value.split(",")]
    elif isinstance(value, list) and all(isinstance(t, str) for t in value):
        items = [t.strip() for t in value]
    else:
        raise WasmOciError("option tags: expected a comma-separated string or a list of strings")
    return [t for t in items if t]


def _read_pyproject(root: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with (root / "pyproject.toml").open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise WasmOciError(f"{root / 'pyproject.toml'}: {exc}") from None


class WasmOciPublisher(PublisherInterface):
    """Push the Wasm OCI layouts in ``dist/`` (or the given ones) to an OCI registry."""

    PLUGIN_NAME = "wasm-oci"

    def publish(self, artifacts: list[str], options: dict[str, Any]) -> None:
        """Called by ``hatch publish``; errors abort with one line."""
        try:
            self._publish(artifacts, options)
        except WasmOciError as exc:
            self.app.abort(str(exc))
        except OSError as exc:
            self.app.abort(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))

    def _settings(self, options: dict[str, Any]) -> dict[str, Any]:
        cli = {k: v for k, v in options.items() if k not in HATCH_OPTIONS}
        unknown = sorted(set(cli) - set(KNOWN_OPTIONS))
        if unknown:
            raise WasmOciError(
                f"unknown option(s) {', '.join(unknown)} (known: {', '.join(KNOWN_OPTIONS)})"
            )
        # -o, then [tool.hatch.publish.wasm-oci], then [publish.wasm-oci] in Hatch's config.
        sources = [cli, self.project_config, self.plugin_config]
        settings: dict[str, Any] = {}
        for key in KNOWN_OPTIONS:
            for source in sources:
                if key in source:
                    settings[key] = source[key]
                    break
        if "repository" not in settings:
            pyproject = _read_pyproject(Path(self.root))
            target = (
                pyproject.get("tool", {})
                .get("hatch", {})
                .get("build", {})
                .get("targets", {})
                .get("wasm-oci", {})
            )
            if isinstance(target, dict) and target.get("repository"):
                settings["repository"] = target["repository"]
        return settings

    def _layouts(self, artifacts: list[str]) -> list[Path]:
        from hatch_wasm_oci.oci.layout_reader import find_layouts

        root = Path(self.root)
        if not artifacts:
            dist = root / "dist"
            found = find_layouts(dist) if dist.is_dir() else []
            if not found:
                raise WasmOciError(
                    f"no OCI layout under {dist}; build one with `hatch build -t wasm-oci`"
                )
            return found
        layouts: list[Path] = []
        for artifact in artifacts:
            path = Path(artifact)
            if not path.is_absolute():
                path = Path.cwd() / path
            if not path.is_dir():
                raise WasmOciError(f"{artifact}: not an OCI layout directory")
            found = find_layouts(path)
            if not found:
                raise WasmOciError(f"{artifact}: no OCI layout in it")
            layouts.extend(p for p in found if p not in layouts)
        return layouts

    def _publish(self, artifacts: list[str], options: dict[str, Any]) -> None:
        from hatch_wasm_oci.files.atomic import write_json
        from hatch_wasm_oci.oci.layout_reader import OciLayout
        from hatch_wasm_oci.registry.push import (
            PushOptions,
            PushResult,
            chunked_above_from_env,
            dry_run,
            dry_run_lines,
            parse_size,
            plan_push,
            push,
        )

        settings = self._settings(options)
        repository = settings.get("repository")
        if not isinstance(repository, str) or not repository.strip():
            raise WasmOciError(
                "no repository to publish to: pass -o repository=REGISTRY/NAMESPACE/NAME or set "
                "repository in [tool.hatch.publish.wasm-oci]"
            )
        repository = repository.strip()
        tags = coerce_tags(settings["tags"]) if "tags" in settings else []
        is_dry_run = coerce_bool("dry-run", settings.get("dry-run", False))
        chunked = settings.get("chunked-above")
        ca_file = settings.get("ca-file")
        push_options = PushOptions(
            plain_http=coerce_bool("plain-http", settings.get("plain-http", False)),
            ca_file=Path(str(ca_file)).expanduser() if ca_file else None,
            chunked_above=(
                parse_size(str(chunked), "option chunked-above")
                if chunked is not None
                else chunked_above_from_env()
            ),
        )
        refs = [f"{repository}:{t}" for t in tags] if tags else [repository]
        total = PushResult(dry_run=is_dry_run)
        for layout_path in self._layouts(artifacts):
            layout = OciLayout.open(layout_path)
            targets = plan_push(layout, refs)
            if is_dry_run:
                result = dry_run(targets)
                lines = dry_run_lines(targets)
            else:
                result = push(layout, targets, push_options)
                lines = [ref.line for ref in result.references]
            for line in lines:
                self.app.display(line)
            total.references.extend(result.references)
            for name in vars(total.stats):
                setattr(total.stats, name, getattr(total.stats, name) + getattr(result.stats, name))
        summary = settings.get("summary")
        summary_path = Path(str(summary)) if summary else Path(self.root) / "dist" / SUMMARY_NAME
        if not summary_path.is_absolute():
            summary_path = Path(self.root) / summary_path
        write_json(summary_path, total.summary())
