"""The ``wasm-oci`` Hatch publisher: ``hatch publish -p wasm-oci`` pushes OCI layouts.

Options come from, first one wins: ``hatch publish -r/--repo -u/--user -a/--auth`` (given on the
command line), ``-o key=value``, ``[tool.hatch.publish.wasm-oci]``, Hatch's user config
``[publish.wasm-oci]``; ``repository`` finally falls back to the build table's. Every layer and
the build table go through :mod:`hatch_wasm_oci.project.settings`, the parser ``hatch build``
uses, so a key is checked the same way (and named by its TOML path) at build and at publish.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatch.publish.plugin.interface import PublisherInterface

from hatch_wasm_oci.errors import ConfigurationError, WasmOciError
from hatch_wasm_oci.plugin.builder import SUMMARY_NAME, project_settings, tag_formatter
from hatch_wasm_oci.project.publish_plan import PublishRefused

#: ``hatch publish`` flags the publisher reads, by click parameter name, and our option name.
HATCH_FLAGS = {
    "repo": ("repository", "hatch publish -r/--repo"),
    "user": ("user", "hatch publish -u/--user"),
    "auth": ("auth", "-a/--auth"),
}


def hatch_flags() -> dict[str, str]:
    """``-r/--repo``, ``-u/--user``, ``-a/--auth`` as typed on this ``hatch publish`` command line.

    Hatch hands them to its ``index`` publisher only, so they are read from the click context.
    Values from the HATCH_INDEX_* environment variables are ignored: they are meant for a
    Python package index, and an index token must not be sent to an OCI registry.
    """
    try:
        import click
        from click.core import ParameterSource
    except ImportError:  # pragma: no cover - hatch always ships click
        return {}
    context = click.get_current_context(silent=True)
    if context is None:
        return {}
    flags: dict[str, str] = {}
    for name, (option, _) in HATCH_FLAGS.items():
        value = context.params.get(name)
        if value and context.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            flags[option] = value
    return flags


class WasmOciPublisher(PublisherInterface):
    """Push the Wasm OCI layouts in ``dist/`` (or the given ones) to an OCI registry."""

    PLUGIN_NAME = "wasm-oci"

    def publish(self, artifacts: list[str], options: dict[str, Any]) -> None:
        """Called by ``hatch publish``; errors abort with one line per problem."""
        try:
            self._publish(artifacts, options)
        except (ConfigurationError, PublishRefused) as exc:
            for problem in exc.problems[:-1]:
                self.app.display_error(problem)
            self.app.abort(exc.problems[-1])
        except WasmOciError as exc:
            self.app.abort(str(exc))
        except OSError as exc:
            self.app.abort(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))

    def _settings(self, options: dict[str, Any]) -> tuple[Any, Any]:
        """The checked publish settings and the project's (build settings, metadata)."""
        from hatch_wasm_oci.project.settings import (
            PUBLISH_TABLE,
            USER_PUBLISH_TABLE,
            PublishLayer,
            parse_publish_settings,
        )

        metadata = self.app.project.metadata
        build = project_settings(metadata, Path(self.root))
        layers = [
            PublishLayer(
                "hatch publish",
                hatch_flags(),
                names={option: flag for option, flag in HATCH_FLAGS.values()},
            ),
            PublishLayer("-o", options),
            PublishLayer(PUBLISH_TABLE, self.project_config, secrets_allowed=False),
            PublishLayer(USER_PUBLISH_TABLE, self.plugin_config),
        ]
        return parse_publish_settings(layers, build), metadata

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

    def _wit_packages(self, layouts: list[Any], push_options: Any) -> tuple[list[Any], list[Any]]:
        """The ``wit-package`` layouts (planned for their package's location) and the others."""
        import os

        from hatch_wasm_oci.project.wit_package import wit_package_pushes

        build = project_settings(self.app.project.metadata, Path(self.root))
        table = build.wit_dependencies if build is not None else None
        return wit_package_pushes(
            layouts,
            push_options,
            overrides=table if isinstance(table, dict) else None,
            environ=os.environ,
            log=self.app.display_info,
        )

    def _publish(self, artifacts: list[str], options: dict[str, Any]) -> None:
        from hatch_wasm_oci.files.atomic import write_json
        from hatch_wasm_oci.oci.layout_reader import OciLayout
        from hatch_wasm_oci.project.publish_plan import (
            PlannedPush,
            PublishRefused,
            TagRules,
            check_tags,
            conflicts,
            layout_version,
            select_layouts,
        )
        from hatch_wasm_oci.project.settings import expand_tags
        from hatch_wasm_oci.registry.credentials import Credentials
        from hatch_wasm_oci.registry.push import (
            PushOptions,
            PushResult,
            chunked_above_from_env,
            dry_run,
            dry_run_lines,
            plan_push,
            push,
        )
        from hatch_wasm_oci.registry.remote_tags import remote_tags

        settings, metadata = self._settings(options)
        if settings.repository is None:
            raise WasmOciError(
                "no repository to publish to: pass -r/--repo REGISTRY/NAMESPACE/NAME (or "
                "-o repository=...), or set repository in [tool.hatch.publish.wasm-oci] or "
                "[tool.hatch.build.targets.wasm-oci]"
            )
        credentials = None
        if settings.user is not None and settings.auth is not None:
            credentials = Credentials(
                source=str(settings.credentials_from),
                username=settings.user,
                password=settings.auth,
            )
        push_options = PushOptions(
            plain_http=settings.plain_http,
            ca_file=Path(settings.ca_file).expanduser() if settings.ca_file else None,
            chunked_above=(
                settings.chunked_above
                if settings.chunked_above is not None
                else chunked_above_from_env()
            ),
            credentials=credentials,
        )
        repository = settings.repository
        formatter = tag_formatter(metadata)

        def references(version: str | None) -> list[str]:
            """``repository:tag`` per tag option, templates formatted for the layout's version
            (by the build's rule and Hatch's context); the layout's own tags without one."""
            if not settings.tags:
                return [repository]
            tags = expand_tags(settings.tags, version or "", settings.tags_from, formatter)
            return [f"{repository}:{tag}" for tag in tags]

        found = [OciLayout.open(p) for p in self._layouts(artifacts)]
        versions = {layout.path: layout_version(layout) for layout in found}
        if not artifacts or settings.versions:
            chosen, skipped = select_layouts(
                [(layout.path, versions[layout.path]) for layout in found],
                settings.versions,
                str(metadata.version),
            )
            for line in skipped:
                self.app.display_info(line)
            found = [layout for layout in found if layout.path in chosen]
        wit_pushes, found = self._wit_packages(found, push_options)
        plans = [
            PlannedPush(
                layout, plan_push(layout, references(versions[layout.path])), versions[layout.path]
            )
            for layout in found
        ]
        refused = conflicts(plans)
        if refused:
            raise PublishRefused(refused)

        total = PushResult(dry_run=settings.dry_run)
        if settings.dry_run:
            for plan in plans:
                for line in dry_run_lines(plan.targets):
                    self.app.display(line)
                total.references.extend(dry_run(plan.targets).references)
        else:
            rules = TagRules(settings.skip_existing, settings.immutable_tags, settings.force)
            wanted: dict[str, tuple[Any, set[str]]] = {}
            for plan in plans:
                for target in plan.targets:
                    entry = wanted.setdefault(
                        target.repository.repo_ref, (target.repository, set())
                    )
                    entry[1].update(target.tags)
            remote = {
                repo: remote_tags(ref, sorted(tags), push_options)
                for repo, (ref, tags) in wanted.items()
            }
            checked = [(plan, check_tags(plan, remote, rules)) for plan in plans]
            refused = [line for _, check in checked for line in check.refused]
            if refused:
                raise PublishRefused(refused)
            for plan, check in checked:
                for line in check.skipped + check.moved:
                    self.app.display(line)
                if not check.kept:
                    continue
                result = push(plan.layout, check.kept, push_options)
                for ref in result.references:
                    self.app.display(ref.line)
                for attached in result.referrers:
                    self.app.display(f"  referrer {attached.artifact_type} {attached.digest}")
                for warning in result.warnings:
                    self.app.display_warning(warning)
                total.add(result)
        for wit_push in wit_pushes:  # WIT packages go to their own location (as wkg finds it)
            if settings.dry_run:
                for line in dry_run_lines(wit_push.targets):
                    self.app.display(line)
                total.references.extend(dry_run(wit_push.targets).references)
                continue
            result = push(wit_push.layout, wit_push.targets, wit_push.options)
            for ref in result.references:
                self.app.display(ref.line)
            total.add(result)
        summary = settings.summary
        summary_path = Path(summary) if summary else Path(self.root) / "dist" / SUMMARY_NAME
        if not summary_path.is_absolute():
            summary_path = Path(self.root) / summary_path
        write_json(summary_path, total.summary())
