"""The package's metadata as the ecosystem reads it: license, classifiers, typing marker, one
version source, and a torch floor that is the version this suite runs on."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import re
from pathlib import Path

import torch
from packaging.requirements import Requirement
from packaging.version import Version

import squeezer

REPO = Path(__file__).resolve().parents[1]
METADATA = importlib.metadata.metadata("squeezer")


def test_the_license_is_apache_2_as_an_spdx_expression_with_its_text():
    assert METADATA["License-Expression"] == "Apache-2.0"
    assert "LICENSE" in METADATA.get_all("License-File")
    head = (REPO / "LICENSE").read_text().split()
    assert head[:4] == ["Apache", "License", "Version", "2.0,"]


def test_classifiers_say_typed_and_the_python_versions_requires_python_allows():
    classifiers = METADATA.get_all("Classifier")
    assert "Typing :: Typed" in classifiers
    floor = Version(METADATA["Requires-Python"].removeprefix(">="))
    versions = [c.rsplit(" ", 1)[1] for c in classifiers
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]  # fmt: skip
    assert versions and all(Version(v) >= floor for v in versions)
    assert f"{floor.major}.{floor.minor}" in versions


def test_the_package_carries_its_typing_marker():
    assert importlib.resources.files("squeezer").joinpath("py.typed").is_file()


def test_one_version_source():
    """`squeezer.__version__` is the installed metadata's; the changelog's newest entry and
    the CLI say the same."""
    version = importlib.metadata.version("squeezer")
    assert squeezer.__version__ == version
    init = (REPO / "src" / "squeezer" / "__init__.py").read_text()
    assert re.search(r"__version__\s*=\s*[\"']\d+\.\d+", init) is None  # no second, written copy
    newest = re.search(r"^## (\S+)", (REPO / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert newest is not None and newest.group(1) == version


def test_the_torch_floor_is_the_version_the_suite_runs_on():
    """A floor below what is tested would be a promise nothing checks."""
    requirements = [Requirement(r) for r in METADATA.get_all("Requires-Dist")]
    (torch_requirement,) = [r for r in requirements if r.name == "torch" and not r.marker]
    (floor,) = [s.version for s in torch_requirement.specifier if s.operator == ">="]
    tested = Version(torch.__version__.split("+")[0])
    assert Version(floor) == Version(f"{tested.major}.{tested.minor}"), (floor, tested)
