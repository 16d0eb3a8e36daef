"""Run by the deployed interpreter (the clean virtual environment), isolated (`python -I`), on a staged
app folder: import every function module and every module of the app's packages, and look up every
module they import (at the top or inside a function), as the worker would need them.

    python -I tests/deploy/import_check.py APP_FOLDER

Prints {"problems": [...], "imported": [...]} as JSON; exits 1 when there is a problem.
Standard library only: it runs where nothing but requirements.txt is installed.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import sys
from pathlib import Path


def modules_of(app: Path) -> tuple[list[str], list[Path]]:
    """Dotted names to import (function folders, then every module of each package) and their files."""
    names, files = [], []
    for spec in sorted(app.glob("*/function.json")):
        names.append(spec.parent.name)
        files.extend(sorted(spec.parent.glob("*.py")))
    for package in sorted(p.parent for p in app.glob("*/__init__.py")):
        if (package / "function.json").exists():
            continue
        for path in sorted(package.rglob("*.py")):
            parts = path.relative_to(app).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
            files.append(path)
    return names, files


def imported_names(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def main(app: Path) -> int:
    sys.path.insert(0, str(app))  # as the worker does: the app root first
    problems: list[str] = []
    names, files = modules_of(app)
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException as error:
            problems.append(f"import {name}: {type(error).__name__}: {error}")
    for path in files:
        for name in sorted(imported_names(path)):
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                problems.append(f"{path.relative_to(app).as_posix()} imports {name}, which is not installed")
    print(json.dumps({"problems": problems, "imported": names, "python": sys.executable}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve()))
