"""What a publish uploads, rebuilt: the files `.funcignore` lets through (gitignore semantics, with
pathspec) and a clean virtual environment from `requirements.txt` alone.

`func azure functionapp publish` and `azd deploy` both walk the project folder and leave out what
`.funcignore` matches; the plan then installs `requirements.txt` (remote build).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pathspec

IMPORT_CHECK = Path(__file__).resolve().parents[1] / "import_check.py"
#: Files at the root of the package that the platform reads, beside the function folders and packages.
APP_ROOT_FILES = frozenset({"host.json", "requirements.txt"})
#: Kept in the upload but harmless: azd itself skips it; Core Tools uploads it.
TOLERATED = frozenset({".funcignore"})


def funcignore(root: Path, text: str | None = None) -> pathspec.GitIgnoreSpec:
    lines = (root / ".funcignore").read_text() if text is None else text
    return pathspec.GitIgnoreSpec.from_lines(lines.splitlines())


def published_files(root: Path, spec: pathspec.GitIgnoreSpec) -> list[str]:
    """Relative paths (posix) of every file a publish of `root` uploads. An ignored folder is not
    entered: like git, nothing under it can be re-included."""
    kept: list[str] = []
    for current, dirs, files in os.walk(root):
        relative = Path(current).relative_to(root)
        dirs[:] = sorted(d for d in dirs if not spec.match_file(f"{(relative / d).as_posix()}/"))
        for name in sorted(files):
            path = (relative / name).as_posix()
            if not spec.match_file(path):
                kept.append(path)
    return kept


def stage(root: Path, destination: Path, files: Iterable[str]) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    for relative in files:
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)
    return destination


def function_folders(root: Path, files: Iterable[str]) -> set[str]:
    return {Path(f).parent.as_posix() for f in files if Path(f).name == "function.json" and "/" in f}


def _imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def unexpected_files(root: Path, files: list[str]) -> list[str]:
    """Uploaded files the app does not need: anything but host.json, requirements.txt, the function
    folders (function.json + their Python) and the app's own packages the functions import."""
    functions = function_folders(root, files)
    packages: set[str] = set()
    pending = [root / f for f in files if Path(f).parent.as_posix() in functions and f.endswith(".py")]
    seen: set[Path] = set()
    while pending:  # the top-level packages of the upload the functions import, transitively
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_packages(path):
            if name not in packages and any(f.startswith(f"{name}/") for f in files):
                packages.add(name)
                pending.extend(root / f for f in files if f.startswith(f"{name}/") and f.endswith(".py"))
    allowed_dirs = functions | packages
    return [
        f for f in files
        if f not in APP_ROOT_FILES | TOLERATED
        and not (Path(f).parts[0] in allowed_dirs and (f.endswith(".py") or Path(f).name == "function.json"))
    ]


# ---- the clean virtual environment --------------------------------------------------------------------
@dataclass(frozen=True)
class CleanVenv:
    root: Path
    python: Path

    @property
    def site_packages(self) -> Path:
        (found,) = self.root.glob("lib/python*/site-packages")
        return found


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result


def clean_venv(cache: Path, requirements: Path, python: str = sys.executable) -> CleanVenv:
    """A virtual environment with `requirements.txt` installed and nothing else, rebuilt when the
    requirements or the Python change. Reused otherwise (its package list is checked each time)."""
    key = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()[:16]
    root = cache / f"venv-{key}"
    venv_python = root / "bin" / "python"
    marker = root / "installed.json"
    if marker.exists():
        recorded = json.loads(marker.read_text())
        if recorded == freeze(venv_python):
            return CleanVenv(root, venv_python)
    shutil.rmtree(root, ignore_errors=True)
    _run([python, "-m", "venv", str(root)])
    _run([str(venv_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)])
    marker.write_text(json.dumps(freeze(venv_python)))
    return CleanVenv(root, venv_python)


def freeze(python: Path) -> list[str]:
    if not python.exists():
        return []
    return sorted(_run([str(python), "-m", "pip", "freeze", "--disable-pip-version-check"]).stdout.split())


def without_distribution(venv: CleanVenv, distribution: str, destination: Path) -> Path:
    """A copy of `venv` (symlinks, so it is cheap) lacking one distribution: what the clean venv would
    be if `requirements.txt` did not list it. Returns its interpreter."""
    record = next(venv.site_packages.glob(f"{distribution.replace('-', '_')}-*.dist-info/RECORD"), None)
    if record is None:
        raise LookupError(f"{distribution} is not installed in {venv.root}")
    removed = {venv.site_packages / line.split(",")[0] for line in record.read_text().splitlines() if line}
    removed_dirs = {p.parent for p in removed} | {record.parent}
    _run([sys.executable, "-m", "venv", "--without-pip", str(destination)])
    (target_site,) = destination.glob("lib/python*/site-packages")

    def mirror(source: Path, target: Path) -> bool:
        """Link what is kept; a folder left empty is not made (it would import as a namespace package)."""
        kept = False
        for entry in sorted(source.iterdir()):
            if entry in removed or entry == record.parent or entry.name == "__pycache__":
                continue
            if entry.is_dir() and any(d == entry or entry in d.parents for d in removed_dirs):
                (target / entry.name).mkdir()
                if mirror(entry, target / entry.name):
                    kept = True
                else:
                    (target / entry.name).rmdir()
            else:
                (target / entry.name).symlink_to(entry)
                kept = True
        return kept

    mirror(venv.site_packages, target_site)
    return destination / "bin" / "python"


def worker_dependencies(cache: Path, venv: CleanVenv, dev_requirements: Path) -> Path:
    """What the worker proxy itself imports (grpcio, protobuf), at the dev pins, in a folder of their
    own: Azure's Python worker brings its own too, apart from the app's packages."""
    pins = [line.strip() for line in dev_requirements.read_text().splitlines()
            if line.strip().startswith(("grpcio==", "protobuf=="))]
    if len(pins) != 2:
        raise AssertionError(f"requirements-dev.txt must pin grpcio and protobuf, found {pins}")
    key = hashlib.sha256(" ".join(pins).encode() + sys.version.encode()).hexdigest()[:16]
    target = cache / f"worker-deps-{key}"
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        _run([str(venv.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
              "--target", str(target), *pins])
        (target / ".complete").touch()
    return target


def import_check(python: Path, app: Path, timeout: float = 120) -> list[str]:
    """Run tests/deploy/import_check.py with `python` in isolated mode on the staged app: the problems it finds."""
    result = subprocess.run(
        [str(python), "-I", str(IMPORT_CHECK), str(app)],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=app,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
    )
    if result.returncode not in (0, 1):
        raise RuntimeError(f"import check crashed ({result.returncode}): {result.stderr[-3000:]}")
    return json.loads(result.stdout)["problems"]
