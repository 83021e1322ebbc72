"""SemVer tags and WIT requirements, as wkg (the ``semver`` crate) reads them."""

from __future__ import annotations

from hatch_wasm_oci.wit.names import PackageName
from hatch_wasm_oci.wit.semver import Requirement, Version


def test_precedence_is_semver_org_s() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "2.0.0",
        "2.1.0",
        "2.1.1",
    ]
    versions = [Version.parse(v) for v in ordered]
    assert all(v is not None for v in versions)
    assert sorted(versions, key=lambda v: v._key()) == versions  # type: ignore[union-attr]
    assert [str(v) for v in versions] == ordered


def test_only_semver_tags_count() -> None:
    for tag in ("latest", "v0.2.0", "0.2", "01.2.3", "sha256-" + "a" * 64, "1.2.3.4", "1.2.3_x"):
        assert Version.parse(tag) is None, tag
    assert Version.parse("1.2.3+build.5") is not None


def test_requirements() -> None:
    tags = [Version.parse(t) for t in ("0.2.0", "0.2.12", "0.3.0-rc.1", "0.2.3")]
    versions = [v for v in tags if v is not None]
    exact = PackageName.parse("wasi:http@0.2.3").requirement
    assert str(exact) == "=0.2.3" and str(exact.highest(versions)) == "0.2.3"
    anything = PackageName.parse("wasi:http").requirement
    assert str(anything) == "*" and str(anything.highest(versions)) == "0.2.12"
    assert Requirement.for_wit("9.9.9").highest(versions) is None
    assert str(PackageName.parse("wasi:http@0.2.3").dir_name) == "wasi-http-0.2.3"
