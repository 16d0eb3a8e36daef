"""The Bicep templates under infra/, parsed with pycep-parser, and the few expression helpers the
checks need (resolving variables, following module parameters, evaluating the mode switches).

pycep returns identifiers and string literals alike as Python strings, so a string is read as an
identifier when it names a parameter, variable, resource or module of its file, else as a literal.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycep import BicepParser

Expr = Any


@dataclass(frozen=True)
class Resource:
    symbol: str
    type: str
    api_version: str
    existing: bool
    condition: Expr | None
    loop: Mapping[str, Any] | None
    body: Mapping[str, Any]

    @property
    def properties(self) -> Mapping[str, Any]:
        value = self.body.get("properties")
        return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Module:
    symbol: str
    path: Path
    condition: Expr | None
    params: Mapping[str, Expr]
    depends_on: tuple[str, ...]


@dataclass
class BicepFile:
    path: Path
    tree: Mapping[str, Any] = field(repr=False)
    resources: dict[str, Resource] = field(default_factory=dict, repr=False)
    modules: dict[str, Module] = field(default_factory=dict, repr=False)

    @property
    def parameters(self) -> Mapping[str, Mapping[str, Any]]:
        return self.tree.get("parameters") or {}

    @property
    def variables(self) -> Mapping[str, Mapping[str, Any]]:
        return self.tree.get("variables") or {}

    @property
    def outputs(self) -> Mapping[str, Mapping[str, Any]]:
        return self.tree.get("outputs") or {}

    def is_param(self, expr: Expr) -> bool:
        return isinstance(expr, str) and expr in self.parameters

    def resources_of_type(self, resource_type: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type.lower() == resource_type.lower()]

    def param_default(self, name: str) -> Expr:
        return self.parameters[name].get("default")

    def decorator(self, name: str, kind: str) -> Any:
        for decorator in self.parameters[name].get("decorators") or []:
            if decorator.get("type") == kind:
                return decorator.get("argument")
        return None


def _split_config(config: Mapping[str, Any]) -> tuple[Expr | None, Mapping[str, Any] | None, Mapping[str, Any]]:
    """pycep nests a conditional / looped body as {condition, config} / {loop_type, condition, config}."""
    if "loop_type" in config:
        return config.get("condition"), config["loop_type"], config["config"]
    if set(config) == {"condition", "config"}:
        return config["condition"], None, config["config"]
    return None, None, config


@functools.cache
def _parser() -> BicepParser:
    return BicepParser()


@functools.lru_cache(maxsize=256)
def _parse_text(text: str) -> Mapping[str, Any]:
    return _parser().parse(text=text)


def parse(path: Path) -> BicepFile:
    """Parse one file (trees are cached by content: seeded copies re-parse only what they changed)."""
    tree = copy.deepcopy(_parse_text(path.read_text()))
    parsed = BicepFile(path=path.resolve(), tree=tree)
    for symbol, raw in (tree.get("resources") or {}).items():
        condition, loop, body = _split_config(raw["config"])
        parsed.resources[symbol] = Resource(
            symbol, raw["type"], raw["api_version"], bool(raw.get("existing")), condition, loop, body
        )
    for symbol, raw in (tree.get("modules") or {}).items():
        condition, _, body = _split_config(raw["config"])
        target = (path.parent / raw["detail"]["path"]).resolve() if raw.get("type") == "local" else Path(raw["detail"]["full"])
        parsed.modules[symbol] = Module(
            symbol, target, condition, body.get("params") or {}, tuple(body.get("dependsOn") or ())
        )
    return parsed


def parse_all(infra: Path) -> dict[Path, BicepFile]:
    return {path.resolve(): parse(path) for path in sorted(infra.rglob("*.bicep"))}


# ---- expressions ------------------------------------------------------------------------------
def operator(expr: Expr) -> tuple[str, Mapping[str, Any]] | None:
    if isinstance(expr, Mapping) and isinstance(expr.get("operator"), Mapping):
        return expr["operator"]["type"], expr["operator"]["operands"]
    return None


def function(expr: Expr) -> tuple[str, Mapping[str, Any]] | None:
    if isinstance(expr, Mapping) and isinstance(expr.get("function"), Mapping):
        return expr["function"]["type"], expr["function"].get("parameters") or {}
    return None


def accessor_chain(expr: Expr) -> list[Expr]:
    """`a.b.c` -> ['a', 'b', 'c'] (pycep nests property accessors to the right)."""
    op = operator(expr)
    if op and op[0] == "property_accessor":
        return accessor_chain(op[1]["operand_1"]) + accessor_chain(op[1]["operand_2"])
    return [expr]


def unquote(key: str) -> str:
    """Object keys keep their Bicep quotes ('azd-service-name'); string escapes stay escaped."""
    if len(key) >= 2 and key[0] == key[-1] == "'":
        key = key[1:-1]
    return key.replace("\\'", "'")


def resolve_variable(file: BicepFile, expr: Expr) -> Expr:
    seen: set[str] = set()
    while isinstance(expr, str) and expr in file.variables and expr not in seen:
        seen.add(expr)
        expr = file.variables[expr]["value"]
    return expr


def evaluate_bool(file: BicepFile, expr: Expr, switches: Mapping[str, bool]) -> bool | None:
    """Value of a condition under fixed values of the template's bool switches (None: not decided by them)."""
    expr = resolve_variable(file, expr)
    if isinstance(expr, bool):
        return expr
    if isinstance(expr, str):
        return switches.get(expr)
    op = operator(expr)
    if op is None:
        return None
    kind, operands = op
    if kind == "not":
        value = evaluate_bool(file, operands["bool_value"], switches)
        return None if value is None else not value
    if kind in ("and", "or"):
        left = evaluate_bool(file, operands["operand_1"], switches)
        right = evaluate_bool(file, operands["operand_2"], switches)
        if kind == "and":
            return False if False in (left, right) else (None if None in (left, right) else True)
        return True if True in (left, right) else (None if None in (left, right) else False)
    return None


def alternatives(file: BicepFile, expr: Expr, switches: Mapping[str, bool] | None = None) -> list[Expr]:
    """Every value `expr` can take: variables resolved, conditionals expanded (or decided by `switches`)."""
    expr = resolve_variable(file, expr)
    op = operator(expr)
    if op and op[0] == "conditional":
        operands = op[1]
        decided = evaluate_bool(file, operands["condition"], switches or {})
        if decided is True:
            return alternatives(file, operands["true_value"], switches)
        if decided is False:
            return alternatives(file, operands["false_value"], switches)
        return alternatives(file, operands["true_value"], switches) + alternatives(
            file, operands["false_value"], switches
        )
    return [expr]


def object_value(file: BicepFile, expr: Expr, switches: Mapping[str, bool]) -> dict[str, Expr]:
    """An object expression (literal, variable, union(...), condition ? a : b) under `switches`."""
    result: dict[str, Expr] = {}
    for alternative in alternatives(file, expr, switches):
        func = function(alternative)
        if func and func[0] == "union":
            for argument in func[1].values():
                result.update(object_value(file, argument, switches))
        elif isinstance(alternative, Mapping) and not operator(alternative) and not func:
            result.update({unquote(k): v for k, v in alternative.items()})
        else:
            raise ValueError(f"{file.path.name}: cannot read {alternative!r} as an object")
    return result


def callers(files: Mapping[Path, BicepFile], target: Path) -> Iterator[tuple[BicepFile, Module]]:
    for file in files.values():
        for module in file.modules.values():
            if module.path == target:
                yield file, module


def trace(files: Mapping[Path, BicepFile], file: BicepFile, expr: Expr) -> list[tuple[BicepFile, Expr]]:
    """Follow a parameter up to what every caller passes for it (variables resolved on the way)."""
    expr = resolve_variable(file, expr)
    if not file.is_param(expr):
        return [(file, expr)]
    found: list[tuple[BicepFile, Expr]] = []
    module_callers = list(callers(files, file.path))
    for caller, module in module_callers:
        if expr in module.params:
            found.extend(trace(files, caller, module.params[expr]))
        elif file.param_default(expr) is not None:
            found.append((file, file.param_default(expr)))
    if not module_callers and file.param_default(expr) is not None:
        found.append((file, file.param_default(expr)))  # the entry template's default
    return found or [(file, expr)]  # a parameter nothing gives a value


def module_output(files: Mapping[Path, BicepFile], file: BicepFile, expr: Expr) -> tuple[BicepFile, Expr] | None:
    """`mod.outputs.x` -> (the module's file, the expression of its output x)."""
    chain = accessor_chain(expr)
    if len(chain) == 3 and chain[1] == "outputs" and chain[0] in file.modules:
        target = files.get(file.modules[chain[0]].path)
        if target is not None and chain[2] in target.outputs:
            return target, resolve_variable(target, target.outputs[chain[2]]["value"])
    return None


def source_of(files: Mapping[Path, BicepFile], file: BicepFile, expr: Expr) -> list[tuple[BicepFile, list[Expr]]]:
    """Where a value comes from: parameters traced to their callers and module outputs followed down,
    ending at an accessor chain on a resource (or a literal)."""
    results: list[tuple[BicepFile, list[Expr]]] = []
    for origin_file, origin in trace(files, file, expr):
        output = module_output(files, origin_file, origin)
        if output is not None:
            results.extend(source_of(files, output[0], output[1]))
        else:
            results.append((origin_file, accessor_chain(origin)))
    return results


_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")


def interpolations(text: str) -> list[str]:
    return _INTERPOLATION.findall(text)


def literal_values(files: Mapping[Path, BicepFile], file: BicepFile, expr: Expr, depth: int = 0) -> set[str]:
    """The string values an expression can have, following variables, parameters (to every caller),
    module outputs, `<resource>.name` and simple `${identifier}` interpolation. Raises ValueError
    when some value cannot be worked out offline."""
    if depth > 20:
        raise ValueError(f"{file.path.name}: {expr!r} is too deep to resolve")
    values: set[str] = set()
    for alternative in alternatives(file, expr):
        if file.is_param(alternative):
            origins = trace(files, file, alternative)
            if origins == [(file, alternative)]:
                raise ValueError(f"{file.path.name}: parameter {alternative} has no value")
            for origin_file, origin in origins:
                values |= literal_values(files, origin_file, origin, depth + 1)
            continue
        output = module_output(files, file, alternative)
        if output is not None:
            values |= literal_values(files, output[0], output[1], depth + 1)
            continue
        chain = accessor_chain(alternative)
        if len(chain) == 2 and chain[1] == "name" and chain[0] in file.resources:
            values |= literal_values(files, file, file.resources[chain[0]].body.get("name"), depth + 1)
            continue
        if isinstance(alternative, str) and alternative not in file.resources and alternative not in file.modules:
            values |= _interpolate(files, file, alternative, depth)
            continue
        raise ValueError(f"{file.path.name}: cannot resolve {alternative!r} offline")
    return values


def _interpolate(files: Mapping[Path, BicepFile], file: BicepFile, text: str, depth: int) -> set[str]:
    results = {""}
    position = 0
    for match in _INTERPOLATION.finditer(text):
        literal = text[position:match.start()]
        name = match.group(1).strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{file.path.name}: cannot resolve ${{{name}}} offline")
        parts = literal_values(files, file, name, depth + 1)
        results = {r + literal + p for r in results for p in parts}
        position = match.end()
    return {r + text[position:] for r in results}


def file_named(files: Mapping[Path, BicepFile], name: str) -> BicepFile:
    (found,) = [f for f in files.values() if f.path.name == name]
    return found
