"""Service Bus SQL filter expressions: a lark grammar and a three-valued evaluator.

Supported: comparison (= <> != < <= > >=), AND/OR/NOT, [NOT] IN (...), [NOT] LIKE with % _ and
ESCAPE, IS [NOT] NULL, EXISTS(prop), arithmetic (+ - * / %), TRUE/FALSE/NULL, string and number
literals, `sys.<Name>` system properties and `user.<name>` / bare application properties.
A comparison involving a missing property is unknown (SQL NULL); a filter matches only when the
whole expression is TRUE.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError

from localcloud.emulator.sql_grammar import CONNECTIVES, OPERATORS

GRAMMAR = r"""
?start: or_expr

""" + CONNECTIVES + r"""?predicate: sum
          | sum COMP_OP sum                          -> compare
          | sum _IS _NULL                            -> is_null
          | sum _IS _NOT _NULL                       -> is_not_null
          | sum _IN "(" sum ("," sum)* ")"           -> in_
          | sum _NOT _IN "(" sum ("," sum)* ")"      -> not_in
          | sum _LIKE sum (_ESCAPE STRING)?          -> like
          | sum _NOT _LIKE sum (_ESCAPE STRING)?     -> not_like
          | _EXISTS "(" prop ")"                     -> exists
?sum: product
    | sum ADD_OP product                -> arith
?product: unary
        | product MUL_OP unary          -> arith
?unary: atom
      | "-" unary                       -> neg
      | "+" unary
?atom: NUMBER                           -> number
     | STRING                           -> string
     | _TRUE                            -> true
     | _FALSE                           -> false
     | _NULL                            -> null
     | prop
     | "(" or_expr ")"
prop: NAME ("." NAME)?

""" + OPERATORS + r"""
MUL_OP: "*" | "/" | "%"
_IS.2: /IS\b/i
_NULL.2: /NULL\b/i
_IN.2: /IN\b/i
_LIKE.2: /LIKE\b/i
_ESCAPE.2: /ESCAPE\b/i
_EXISTS.2: /EXISTS\b/i
_TRUE.2: /TRUE\b/i
_FALSE.2: /FALSE\b/i
NAME: /[A-Za-z_$][A-Za-z0-9_$]*/ | /\[[^\]]+\]/
NUMBER: /\d+(\.\d+)?([eE][+-]?\d+)?/
STRING: /'([^']|'')*'/

%import common.WS
%ignore WS
"""

_PARSER = Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)


class FilterSyntaxError(ValueError):
    """The SQL filter expression cannot be parsed."""


@dataclass(frozen=True)
class PropertyRef:
    scope: str  # "sys" or "user"
    name: str


# Each node evaluates to a Python value; None means SQL NULL / unknown.
Node = Callable[["MessageFacts"], Any]


class MessageFacts:
    """What a filter can read: system properties (case-insensitive names) and application ones."""

    def __init__(self, system: Mapping[str, Any], user: Mapping[str, Any]) -> None:
        self._system = {k.lower(): v for k, v in system.items()}
        self._user = user

    def lookup(self, ref: PropertyRef) -> tuple[bool, Any]:
        if ref.scope == "sys":
            key = ref.name.lower()
            return (key in self._system and self._system[key] is not None), self._system.get(key)
        return (ref.name in self._user), self._user.get(ref.name)


def _comparable(a: Any, b: Any) -> bool:
    numeric = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, numeric) and isinstance(b, numeric):
        return True
    return type(a) is type(b) or (isinstance(a, str) and isinstance(b, str))


def _compare(op: str, a: Any, b: Any) -> bool | None:
    if a is None or b is None or not _comparable(a, b):
        return None
    try:
        match op:
            case "=":
                return a == b
            case "<>" | "!=":
                return a != b
            case "<":
                return a < b
            case "<=":
                return a <= b
            case ">":
                return a > b
            case ">=":
                return a >= b
    except TypeError:
        return None
    raise FilterSyntaxError(f"unknown operator {op}")


def _like_regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escape and ch == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.DOTALL)


def _arith(op: str, a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if not (isinstance(a, int | float) and isinstance(b, int | float)) or isinstance(a, bool) or isinstance(b, bool):
        return None
    try:
        match op:
            case "+":
                return a + b
            case "-":
                return a - b
            case "*":
                return a * b
            case "/":
                return a / b if isinstance(a, float) or isinstance(b, float) else int(a / b)
            case "%":
                return a % b
    except ZeroDivisionError:
        return None
    return None


def _truth(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


@v_args(inline=True)
class _Compiler(Transformer):
    """Turns the parse tree into nested closures (evaluated per message without re-walking a tree)."""

    def number(self, tok: Token) -> Node:
        text = str(tok)
        value: Any = float(text) if any(c in text for c in ".eE") else int(text)
        return lambda _f: value

    def string(self, tok: Token) -> Node:
        value = str(tok)[1:-1].replace("''", "'")
        return lambda _f: value

    def true(self) -> Node:
        return lambda _f: True

    def false(self) -> Node:
        return lambda _f: False

    def null(self) -> Node:
        return lambda _f: None

    def prop(self, first: Token, second: Token | None = None) -> PropertyRef:
        def clean(tok: Token) -> str:
            text = str(tok)
            return text[1:-1] if text.startswith("[") else text

        if second is None:
            return PropertyRef("user", clean(first))
        scope = clean(first).lower()
        if scope not in ("sys", "user"):
            raise FilterSyntaxError(f"unknown property scope {clean(first)!r} (use sys. or user.)")
        return PropertyRef(scope, clean(second))

    @staticmethod
    def _node(item: Any) -> Node:
        if isinstance(item, PropertyRef):
            ref = item
            return lambda f: f.lookup(ref)[1]
        return item

    def compare(self, left: Any, op: Token, right: Any) -> Node:
        lhs, rhs, oper = self._node(left), self._node(right), str(op)
        return lambda f: _compare(oper, lhs(f), rhs(f))

    def arith(self, left: Any, op: Token, right: Any) -> Node:
        lhs, rhs, oper = self._node(left), self._node(right), str(op)
        return lambda f: _arith(oper, lhs(f), rhs(f))

    def neg(self, operand: Any) -> Node:
        inner = self._node(operand)
        return lambda f: _arith("-", 0, inner(f))

    def is_null(self, operand: Any) -> Node:
        inner = self._node(operand)
        return lambda f: inner(f) is None

    def is_not_null(self, operand: Any) -> Node:
        inner = self._node(operand)
        return lambda f: inner(f) is not None

    def in_(self, operand: Any, *options: Any) -> Node:
        inner = self._node(operand)
        choices = [self._node(o) for o in options]

        def evaluate(f: MessageFacts) -> bool | None:
            value = inner(f)
            if value is None:
                return None
            results = [_compare("=", value, c(f)) for c in choices]
            if any(r is True for r in results):
                return True
            return None if any(r is None for r in results) else False

        return evaluate

    def not_in(self, operand: Any, *options: Any) -> Node:
        positive = self.in_(operand, *options)
        return lambda f: _not(positive(f))

    def like(self, operand: Any, pattern: Any, escape: Token | None = None) -> Node:
        inner, pat = self._node(operand), self._node(pattern)
        esc = str(escape)[1:-1].replace("''", "'") if escape is not None else None
        cache: dict[str, re.Pattern[str]] = {}

        def evaluate(f: MessageFacts) -> bool | None:
            value, text = inner(f), pat(f)
            if not isinstance(value, str) or not isinstance(text, str):
                return None
            regex = cache.get(text)
            if regex is None:
                regex = cache[text] = _like_regex(text, esc)
            return regex.match(value) is not None

        return evaluate

    def not_like(self, operand: Any, pattern: Any, escape: Token | None = None) -> Node:
        positive = self.like(operand, pattern, escape)
        return lambda f: _not(positive(f))

    def exists(self, ref: PropertyRef) -> Node:
        return lambda f: f.lookup(ref)[0]

    def not_(self, operand: Any) -> Node:
        inner = self._node(operand)
        return lambda f: _not(_truth(inner(f)))

    def and_(self, left: Any, right: Any) -> Node:
        lhs, rhs = self._node(left), self._node(right)

        def evaluate(f: MessageFacts) -> bool | None:
            a = _truth(lhs(f))
            if a is False:
                return False
            b = _truth(rhs(f))
            if b is False:
                return False
            return True if a is True and b is True else None

        return evaluate

    def or_(self, left: Any, right: Any) -> Node:
        lhs, rhs = self._node(left), self._node(right)

        def evaluate(f: MessageFacts) -> bool | None:
            a = _truth(lhs(f))
            if a is True:
                return True
            b = _truth(rhs(f))
            if b is True:
                return True
            return False if a is False and b is False else None

        return evaluate


def _not(value: bool | None) -> bool | None:
    return None if value is None else not value


@dataclass(frozen=True)
class SqlFilter:
    expression: str
    _evaluate: Node

    def matches(self, facts: MessageFacts) -> bool:
        return self._evaluate(facts) is True


def compile_sql_filter(expression: str) -> SqlFilter:
    try:
        tree = _PARSER.parse(expression)
        node = _Compiler().transform(tree)
    except LarkError as exc:
        cause = exc.orig_exc if hasattr(exc, "orig_exc") else exc
        raise FilterSyntaxError(f"invalid SQL filter {expression!r}: {cause}") from exc
    return SqlFilter(expression, _Compiler._node(node))
