"""Dependencies that earn their place: every package pinned in requirements.txt is imported by a
deployed module, or has a stated, checked reason to be there."""

from __future__ import annotations

import ast
import importlib.metadata
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from packaging.requirements import Requirement

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==")


def pinned(requirements: str) -> list[str]:
    """Distribution names of `name==version` lines (comments and blanks skipped)."""
    names = []
    for line in requirements.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = _NAME.match(line)
            if not match:
                raise AssertionError(f"requirements.txt: {line!r} is not pinned with ==")
            names.append(canonical(match.group(1)))
    return names


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imports(paths: Iterable[Path]) -> dict[str, set[str]]:
    """Absolute module names imported anywhere in `paths` (top level or inside functions) -> files."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                found.setdefault(name, set()).add(path.as_posix())
    return found


def provided_modules(distribution: str) -> set[str]:
    """Importable modules and packages a distribution installs (namespace parents like `azure` excluded)."""
    modules = set()
    for file in importlib.metadata.distribution(distribution).files or []:
        parts = file.parts
        if not parts or ".dist-info" in parts[0] or parts[0] in ("..", "bin"):
            continue
        if file.name == "__init__.py":
            modules.add(".".join(parts[:-1]))
        elif file.suffix in (".py", ".so"):
            modules.add(".".join((*parts[:-1], file.name.split(".")[0])))
    return modules


def importers(distribution: str, imported: Mapping[str, set[str]]) -> set[str]:
    provided = provided_modules(distribution)
    return {f for name, files in imported.items() if name in provided for f in files}


def unused(requirements: str, imported: Mapping[str, set[str]], allowed: Mapping[str, str]) -> list[str]:
    problems = []
    for name in pinned(requirements):
        users = importers(name, imported)
        if name in allowed and users:
            problems.append(f"{name} is allow-listed ({allowed[name]}) but deployed code imports it: "
                            "drop it from the allow-list")
        elif not users and name not in allowed:
            problems.append(f"{name} is pinned in requirements.txt but no deployed module imports it")
    return problems


def requires_closure(roots: Iterable[str]) -> set[str]:
    """Distributions `roots` pull in through their declared requirements (markers evaluated, no extras)."""
    seen: set[str] = set()
    pending = [canonical(r) for r in roots]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in importlib.metadata.distribution(name).requires or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonical(requirement.name))
    return seen


def modules_importing(distribution: str, module: str) -> list[str]:
    """Files of an installed distribution that import `module` (at any depth)."""
    hits = []
    for file in importlib.metadata.distribution(distribution).files or []:
        if file.suffix != ".py":
            continue
        path = Path(str(file.locate()))
        names = imports([path])
        if any(name == module or name.startswith(f"{module}.") for name in names):
            hits.append(file.as_posix())
    return sorted(hits)


def declared(distribution: str) -> set[str]:
    """Distributions `distribution` declares it requires (any marker)."""
    return {canonical(Requirement(spec).name) for spec in importlib.metadata.distribution(distribution).requires or []}
