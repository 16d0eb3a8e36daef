"""Where things are, for the checks and their tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from deploy.checks.bicep import BicepFile

REPO_ROOT = Path(__file__).resolve().parents[3]
INFRA = REPO_ROOT / "infra"
README = REPO_ROOT / "README.md"
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"

#: seeded_infra(relative file, old text, new text) -> the parsed copy of infra/ with that one edit.
InfraEditor = Callable[[str, str, str], Mapping[Path, BicepFile]]
