"""Benchmark the core against peers measured in the same run.

- ``inspect`` of a componentize-py component vs ``wasm-tools component wit`` (whole processes)
  and vs wasmtime compiling it (what a runtime needs to learn its type);
- ``pack`` of a ~256 MiB component vs ``sha256sum`` + ``cp`` of the same file;
- peak RSS of each (target: ours <= 64 MiB whatever the blob size).

Run: ``python bench/bench_core.py`` (from the repository, with the test tools installed).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._measure import measure, ratio_line  # noqa: E402
from tests.padding import append_custom_section  # noqa: E402

WIT = """package bench:calc@0.1.0;

world calc {
  export add: func(a: s32, b: s32) -> s32;
}
"""
APP = """import wit_world


class WitWorld(wit_world.WitWorld):
    def add(self, a: int, b: int) -> int:
        return a + b
"""


def componentize_py_component(work: Path) -> Path:
    """A real componentize-py component (~18 MB), compiled once and cached under .cache/bench."""
    cache = ROOT / ".cache" / "bench" / "calc.wasm"
    if cache.exists():
        return cache
    src = work / "src"
    (src / "wit").mkdir(parents=True)
    (src / "wit" / "calc.wit").write_text(WIT)
    (src / "app.py").write_text(APP)
    out = work / "calc.wasm"
    subprocess.run(
        ["componentize-py", "-d", "wit", "-w", "calc", "componentize", "app", "-o", str(out)],
        cwd=src,
        check=True,
        capture_output=True,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out, cache)
    return cache


def main() -> None:
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        component = componentize_py_component(tmp)
        size_mib = component.stat().st_size / 2**20
        print(f"component: {component} ({size_mib:.1f} MiB)")

        inspect = measure(["hatch-wasm-oci", "inspect", str(component)], repeat=7)
        wit = measure(["wasm-tools", "component", "wit", str(component)], repeat=7)
        compile_ = measure(
            [
                py,
                "-c",
                "import sys, wasmtime, wasmtime.component as c; "
                "c.Component.from_file(wasmtime.Engine(), sys.argv[1])",
                str(component),
            ],
            repeat=1,
        )
        print(ratio_line("inspect vs wasm-tools component wit", inspect, wit, "wasm-tools", 1.0))
        print(ratio_line("inspect vs wasmtime compile", inspect, compile_, "wasmtime", 1.0))

        big = tmp / "big.wasm"
        shutil.copyfile(component, big)
        append_custom_section(big, "bench-padding", 256 * 2**20 - big.stat().st_size - 64)
        print(f"big component: {big.stat().st_size / 2**20:.1f} MiB")
        out = tmp / "layout"
        copy = tmp / "copy.wasm"

        def fresh_pack() -> list[str]:
            shutil.rmtree(out, ignore_errors=True)
            return [py, "-m", "hatch_wasm_oci", "pack", str(big), "-o", str(out)]

        pack_runs = [measure(fresh_pack(), repeat=1) for _ in range(3)]
        pack = min(pack_runs, key=lambda r: r.seconds)
        pack = type(pack)(pack.seconds, max(r.peak_rss_mib for r in pack_runs))
        peer = measure(["sha256sum", str(big), "&&", "cp", str(big), str(copy)], shell=True)
        print(ratio_line("pack 256 MiB vs sha256sum + cp", pack, peer, "sha256sum+cp", 1.1))
        rss_ok = "ok" if max(inspect.peak_rss_mib, pack.peak_rss_mib) <= 64 else "MISSED"
        print(
            f"peak RSS: inspect {inspect.peak_rss_mib:.1f} MiB, pack {pack.peak_rss_mib:.1f} MiB "
            f"(target <= 64 MiB: {rss_ok})"
        )


if __name__ == "__main__":
    main()
