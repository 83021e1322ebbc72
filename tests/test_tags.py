"""PEP 440 -> OCI tag mapping, version by version (the table in the README)."""

from __future__ import annotations

import re

import pytest

from hatch_wasm_oci.errors import WasmOciError
from hatch_wasm_oci.oci.tags import is_valid_tag, validate_tag, version_tag

# semver.org's suggested regular expression, copied from the SemVer 2.0.0 specification.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
OCI_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")

SEMVER_FORMS = [
    ("1.2.3", "1.2.3"),
    ("1.2", "1.2.0"),
    ("2024.11", "2024.11.0"),
    ("1", "1.0.0"),
    ("1.2.3a1", "1.2.3-a.1"),
    ("1.2.3alpha1", "1.2.3-a.1"),
    ("1.2.3b2", "1.2.3-b.2"),
    ("1.2.3rc1", "1.2.3-rc.1"),
    ("1.2.3c1", "1.2.3-rc.1"),
    ("1.2.3.dev4", "1.2.3-dev.4"),
    ("1.2.3rc1.dev4", "1.2.3-rc.1.dev.4"),
    ("1.0rc1", "1.0.0-rc.1"),
    ("v1.2.3", "1.2.3"),
    ("01.02.03", "1.2.3"),
]
NO_SEMVER_FORM = [
    ("1.2.3.post1", "1.2.3.post1", "post-release"),
    ("1.2.3+local.7", "1.2.3_local.7", "local version"),
    ("1.2.3+local", "1.2.3_local", "local version"),
    ("1.2.3.4", "1.2.3.4", "more than three"),
    ("1.2.3.post1.dev2", "1.2.3.post1.dev2", "post-release"),
    ("nightly", "nightly", "not a PEP 440 version"),
]


@pytest.mark.parametrize(("version", "tag"), SEMVER_FORMS)
def test_versions_with_a_semver_form(version: str, tag: str) -> None:
    mapped = version_tag(version)
    assert (mapped.tag, mapped.note) == (tag, None)
    assert SEMVER.match(mapped.tag) and OCI_TAG.match(mapped.tag)


@pytest.mark.parametrize(("version", "tag", "why"), NO_SEMVER_FORM)
def test_versions_without_one_keep_a_valid_tag_and_say_so(version: str, tag: str, why: str) -> None:
    mapped = version_tag(version)
    assert mapped.tag == tag
    assert OCI_TAG.match(mapped.tag) and not SEMVER.match(mapped.tag)
    assert mapped.note is not None and why in mapped.note and "wkg" in mapped.note
    assert "\n" not in mapped.note


def test_an_epoch_is_refused() -> None:
    with pytest.raises(WasmOciError, match="epoch"):
        version_tag("1!2.0")


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("latest", True),
        ("1.2.3-rc.1", True),
        ("1.2.3_local.7", True),
        ("a--b", True),
        ("sha256-" + "0" * 64, True),
        ("_x", False),  # the distribution grammar allows it; an image layout's ref.name does not
        ("x_", False),
        ("a__b", False),
        ("a.-b", False),
        ("-x", False),
        (".x", False),
        ("a" * 129, False),
        ("bad tag", False),
    ],
)
def test_tags_follow_the_distribution_and_ref_name_grammars(tag: str, valid: bool) -> None:
    assert is_valid_tag(tag) is valid
    if valid:
        assert validate_tag(tag) == tag
    else:
        with pytest.raises(WasmOciError, match="invalid OCI tag"):
            validate_tag(tag)
