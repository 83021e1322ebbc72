"""Benchmark ``hatch build -t wasm-oci`` of example-project: cold build vs rebuild.

- first build: Hatch creates the build environment (uv) and componentize-py compiles;
- cold build: the environment exists, the component cache is empty, so componentize-py compiles;
- rebuild: nothing changed, the cached component is reused (target: <= 15% of the cold build)
  and the manifest digest is unchanged.

Each of cold/rebuild is the best of ``--repeat`` runs. The plugin wheel is built from this
checkout, as in the tests. Run: ``python bench/bench_build.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.hatch_fixtures import (  # noqa: E402
    EXAMPLE_PROJECT,
    copy_project,
    hatch_environment,
    make_wheelhouse,
    run_hatch,
)

TARGET_RATIO = 0.15


def build(project: Path, env: dict[str, str]) -> tuple[float, str]:
    """One ``hatch build -t wasm-oci``: its wall time and the digest tagged 0.1.0."""
    started = time.perf_counter()
    run = run_hatch(project, "build", "-t", "wasm-oci", env=env, check=False)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"hatch build failed:\n{run.output}")
    index = json.loads((project / "dist/wasm-oci/example_inventory-0.1.0/index.json").read_text())
    return seconds, str(index["manifests"][0]["digest"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp_name:
        tmp = Path(tmp_name)
        wheelhouse = make_wheelhouse(tmp / "wheelhouse", tmp / "scratch")
        env = hatch_environment(wheelhouse, tmp / "state")
        components = Path(env["HATCH_WASM_OCI_CACHE"])
        project = copy_project(EXAMPLE_PROJECT, tmp / "example-project")

        first, digest = build(project, env)
        colds: list[float] = []
        rebuilds: list[float] = []
        for _ in range(args.repeat):
            shutil.rmtree(components, ignore_errors=True)
            seconds, _ = build(project, env)
            colds.append(seconds)
            seconds, cold_digest = build(project, env)
            rebuilds.append(seconds)
            again, rebuilt_digest = build(project, env)
            rebuilds.append(again)
            if rebuilt_digest != cold_digest:
                raise SystemExit(f"rebuild changed the digest: {cold_digest} -> {rebuilt_digest}")
        cold, rebuild = min(colds), min(rebuilds)
        ratio = rebuild / cold
        verdict = "ok" if ratio <= TARGET_RATIO else "MISSED"
        print(f"first build (env creation + compile): {first:7.2f} s  (digest {digest[:19]}...)")
        print(f"cold build  (compile, env ready):     {cold:7.2f} s  (best of {len(colds)})")
        print(f"rebuild     (unchanged inputs):       {rebuild:7.2f} s  (best of {len(rebuilds)})")
        print(f"rebuild / cold = {ratio:.1%} (target <= {TARGET_RATIO:.0%}: {verdict})")
        return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
