"""The package is ready for PyPI: sdist and wheel pass ``twine check --strict`` and carry the
license and the project URLs (issue 19: ``requires = ["hatch-wasm-oci"]`` must one day resolve)."""

from __future__ import annotations

import email.parser
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist and wheel built from this checkout, as ``python -m build`` makes them."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


def test_twine_check_strict_passes(distributions: tuple[Path, Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, distributions)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_license_file_ships_in_both(distributions: tuple[Path, Path]) -> None:
    sdist, wheel = distributions
    license_text = (REPO / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0" in license_text
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
        assert "LICENSE" in names, sorted(names)[:20]
        member = tar.extractfile(f"{tar.getnames()[0].split('/')[0]}/LICENSE")
        assert member is not None and member.read().decode() == license_text
    with zipfile.ZipFile(wheel) as whl:
        licenses = [n for n in whl.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert licenses, whl.namelist()[-10:]
        assert whl.read(licenses[0]).decode() == license_text


def test_wheel_metadata_names_license_and_urls(distributions: tuple[Path, Path]) -> None:
    _, wheel = distributions
    with zipfile.ZipFile(wheel) as whl:
        (metadata_name,) = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(whl.read(metadata_name).decode())
        assert any(
            n.startswith("hatch_wasm_oci/") and n.endswith("py.typed") for n in whl.namelist()
        )
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    urls = dict(
        (label.strip(), url.strip())
        for label, url in (entry.split(",", 1) for entry in metadata.get_all("Project-URL") or [])
    )
    assert {"Homepage", "Source", "Issues", "Changelog"} <= set(urls), urls
    assert all(url.startswith("https://") for url in urls.values()), urls
    # The long description is the README, rendered as Markdown on PyPI.
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert "hatch build -t wasm-oci" in metadata.get_payload()
    # The console script and the Hatch entry point are declared.
    with zipfile.ZipFile(wheel) as whl:
        (entry_points,) = [n for n in whl.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = whl.read(entry_points).decode()
    assert "hatch-wasm-oci = hatch_wasm_oci.cli.main:main" in text
    assert "wasm-oci = hatch_wasm_oci.plugin.hooks" in text
