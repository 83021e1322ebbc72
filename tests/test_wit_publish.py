"""``hatch-wasm-oci wit publish DIR REF`` seeds a private mirror that ``wit fetch`` then reads:
the README's recipe, run as written against a real registry on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from tests.registry_fixtures import clean_env, run_cli, skopeo_raw, start_registry
from tests.wasm_fixtures import WASI_VERSION, wasm_tools
from tests.wit_registry import WASI_NAMES, make_project


def test_a_mirror_seeded_by_wit_publish_serves_wit_fetch(
    tmp_path: Path, wasi_wit_dir: Path
) -> None:
    server = start_registry(tmp_path / "registry")
    try:
        home = tmp_path / "home"
        config = home / "wasm-pkg.toml"
        home.mkdir()
        config.write_text(
            f'[namespace_registries]\nwasi = "{server.address}"\n\n'
            f'[registry."{server.address}".oci]\nprotocol = "http"\n'
        )
        env = clean_env(home, WKG_CONFIG_FILE=str(config), HATCH_WASM_OCI_CACHE=str(home / "c"))
        pushed: dict[str, str] = {}
        for name in WASI_NAMES:
            ref = f"{server.address}/wasi/{name}"
            done = run_cli(
                "wit", "publish", wasi_wit_dir / f"wasi-{name}", ref,
                "--deps", wasi_wit_dir, "--plain-http", env=env,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            line = done.stdout.strip()
            assert line.startswith(f"{ref}:{WASI_VERSION}@sha256:"), line
            pushed[name] = line.rsplit("@", 1)[1]
        # the artifact's layer is the encoded WIT package, named and versioned
        raw = skopeo_raw(server, f"wasi/http:{WASI_VERSION}")
        assert b"application/vnd.wasm.config.v0+json" in raw
        pulled = tmp_path / "pulled"
        got = run_cli(
            "pull", f"{server.address}/wasi/http:{WASI_VERSION}", "-o", pulled, "--plain-http",
            env=env,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
        (wasm,) = pulled.glob("*.wasm")
        assert f"package wasi:http@{WASI_VERSION};" in wasm_tools("component", "wit", wasm)
        # publishing the same bytes again moves nothing and succeeds
        again = run_cli(
            "wit", "publish", wasi_wit_dir / "wasi-io", f"{server.address}/wasi/io",
            "--deps", wasi_wit_dir, "--plain-http", env=env,
        )  # fmt: skip
        assert again.returncode == 0 and again.stdout.strip().endswith(pushed["io"]), again.stderr

        project = tmp_path / "project"
        make_project(project)
        fetched = run_cli("wit", "fetch", project, env=env)
        assert fetched.returncode == 0, fetched.stderr
        deps = sorted(p.name for p in (project / "wit" / "deps").iterdir())
        assert deps == sorted(f"wasi-{n}-{WASI_VERSION}" for n in WASI_NAMES)
        lock = (project / "wkg.lock").read_text()
        assert f'registry = "{server.address}"' in lock
        assert "package acme:app@0.1.0;" in wasm_tools("component", "wit", project / "wit")
    finally:
        server.stop()


def test_wit_publish_refuses_a_package_without_a_version(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.wit").write_text("package acme:noversion;\ninterface i { f: func(); }\n")
    done = run_cli(
        "wit", "publish", tmp_path / "pkg", "127.0.0.1:9/acme/noversion",
        env=clean_env(tmp_path / "home"),
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        f"hatch-wasm-oci: {tmp_path / 'pkg'}: the WIT package acme:noversion has no version; a "
        "published package needs one: `package acme:noversion@0.1.0;`\n"
    )
