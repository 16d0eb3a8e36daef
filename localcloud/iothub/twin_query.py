"""IoT Hub registry query language, device-twin subset: a lark grammar and a three-valued evaluator.

Pure: no I/O, no hub state. `parse_query(text)` returns a `Query` that filters and projects twin JSON
documents (the dicts `twins.Twin.to_json()` builds); `twins.run_query` adds ordering and paging.

Supported (see QUERY.md for the contract and the deviations from the real hub):
  SELECT * | SELECT <path> [AS alias] [, ...]   FROM devices   [WHERE <condition>]
  conditions: AND, OR, NOT (precedence NOT > AND > OR), parentheses, = != <> < > <= >=,
  <operand> IN [c, ...], <operand> NIN [c, ...], IS_DEFINED(<path>), a bare boolean operand;
  operands: property paths (deviceId, status, tags.a.b, properties.reported.x, ...; `[[name]]` quotes a
  name that is a keyword or has other characters), string literals in single or double quotes with the
  escapes \\' \\" \\\\ \\uXXXX, decimal and 0x hexadecimal numbers, true, false, null, undefined.

Semantics follow the documented (Cosmos DB style) rules: a path that does not resolve is *undefined*;
comparing undefined, values of different JSON types, or objects/arrays gives undefined; NOT/AND/OR are
three-valued (NOT undefined = undefined, false AND undefined = false, true OR undefined = true); a twin
is selected only when the whole condition is exactly true. `x IN [a, b]` is `x = a OR x = b` and
`x NIN [...]` is `NOT (x IN [...])`.

Everything else raises `QueryError` carrying the real hub's 400 error shape: `InvalidQuery` for text the
real hub rejects too (syntax errors, unknown collections or functions, a query over 8192 characters),
`UnsupportedQuery` for features the real hub has but this emulator does not implement (GROUP BY,
aggregates, TOP, arithmetic, FROM devices.modules / devices.jobs, projections of non-path expressions).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar, Final, Literal

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedInput, UnexpectedToken, VisitError

from localcloud.emulator.sql_grammar import CONNECTIVES, OPERATORS

MAX_QUERY_LENGTH: Final = 8192  # "Query expressions can have a maximum length of 8192 characters" (query-twins doc)
JSON_CONTENT_TYPE: Final = "application/json; charset=utf-8"

ItemType = Literal["twin", "raw"]


# --------------------------------------------------------------------------------------------- errors
@dataclass(frozen=True)
class HttpReply:
    """A complete HTTP response, framework-neutral: the handler copies it onto its own response."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def error_body(error_code: str, message: str, *, tracking_id: str | None = None,
               now: datetime | None = None) -> dict[str, str]:
    """The classic IoT Hub REST error envelope, e.g.
    {"Message":"ErrorCode:ArgumentNull;BadRequest",
     "ExceptionMessage":"Tracking ID:0145380c335046479275c10be0eb278f-G:0-TimeStamp:11/10/2016 08:37:23"}
    (a real POST /devices/query response quoted in Azure/azure-iot-sdks#941; the same two fields and
    formats are what azure-iot-sdk-csharp's ErrorPayload2/ResponseMessage2 parse)."""
    tracking = tracking_id if tracking_id is not None else uuid.uuid4().hex
    moment = now or datetime.now(UTC)
    stamp = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).strftime("%m/%d/%Y %H:%M:%S")
    return {
        "Message": f"ErrorCode:{error_code};{message}",
        "ExceptionMessage": f"Tracking ID:{tracking}-G:0-TimeStamp:{stamp}",
    }


class HubError(Exception):
    """An error the hub answers with `status` and the classic error envelope; `error_code` is the
    IoT Hub error name that also goes into the `iothub-errorcode` response header."""

    status: ClassVar[int] = 400
    error_code: ClassVar[str] = "BadRequest"

    def __init__(self, message: str, *, status: int | None = None, error_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status  # type: ignore[misc]  # per-instance override of the class default
        if error_code is not None:
            self.error_code = error_code  # type: ignore[misc]

    def body(self, *, tracking_id: str | None = None, now: datetime | None = None) -> dict[str, str]:
        return error_body(self.error_code, self.message, tracking_id=tracking_id, now=now)

    def to_reply(self, *, tracking_id: str | None = None, now: datetime | None = None) -> HttpReply:
        body = json.dumps(self.body(tracking_id=tracking_id, now=now)).encode()
        headers = {"Content-Type": JSON_CONTENT_TYPE, "iothub-errorcode": self.error_code}
        return HttpReply(self.status, headers, body)


class QueryError(HubError):
    """A query the emulator refuses: HTTP 400, error code BadRequest (400000)."""


class InvalidQuery(QueryError):
    """The real hub rejects this query as well (syntax error, unknown collection or function, ...)."""


class MissingQuery(InvalidQuery):
    """The request body carries no query string (the real hub answers ErrorCode:ArgumentNull)."""

    error_code: ClassVar[str] = "ArgumentNull"


class UnsupportedQuery(QueryError):
    """Valid for the real hub, outside the emulator's subset; answered with the same 400 shape so that
    callers see a failure rather than wrong results."""


# ------------------------------------------------------------------------------------------------ AST
class _Undefined:
    """The query language's `undefined`: a path that does not resolve, or an incomparable comparison."""

    _instance: ClassVar[_Undefined | None] = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final = _Undefined()

CompareOp = Literal["=", "!=", "<>", "<", ">", "<=", ">="]


@dataclass(frozen=True)
class Path:
    segments: tuple[str, ...]


@dataclass(frozen=True)
class Const:
    value: Any


@dataclass(frozen=True)
class Compare:
    op: CompareOp
    left: Expr
    right: Expr


@dataclass(frozen=True)
class InList:
    operand: Expr
    values: tuple[Any, ...]
    negated: bool  # NIN


@dataclass(frozen=True)
class IsDefined:
    path: Path


@dataclass(frozen=True)
class _Connective:
    left: Expr
    right: Expr


class And(_Connective):
    pass


class Or(_Connective):
    pass


@dataclass(frozen=True)
class Not:
    operand: Expr


Expr = Path | Const | Compare | InList | IsDefined | And | Or | Not


@dataclass(frozen=True)
class Projection:
    path: Path
    name: str  # the key in the result object: the alias, else the path's last name


@dataclass(frozen=True)
class Query:
    """A parsed query. `projections` is None for SELECT *; `where` is None without a WHERE clause."""

    text: str
    projections: tuple[Projection, ...] | None
    where: Expr | None

    @property
    def item_type(self) -> ItemType:
        """The `x-ms-item-type` of the result pages: whole twins, or raw JSON for projections."""
        return "twin" if self.projections is None else "raw"

    def matches(self, doc: Mapping[str, Any]) -> bool:
        return self.where is None or evaluate(self.where, doc) is True

    def project(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The result item for a matching twin document (the document itself for SELECT *).
        A projected path that does not resolve is left out of the item, as the hub leaves out undefined."""
        if self.projections is None:
            return dict(doc)
        item: dict[str, Any] = {}
        for projection in self.projections:
            value = resolve(doc, projection.path.segments)
            if value is not UNDEFINED:
                item[projection.name] = value
        return item


# -------------------------------------------------------------------------------------- evaluation
# Root properties of a twin document. Their names are matched case-insensitively (the docs query
# `SELECT DeviceID, LastActivityTime` and get back deviceId/lastActivityTime); so are `desired` and
# `reported` under `properties`. Names inside tags and properties are case-sensitive, like twin JSON.
ROOT_NAMES: Final = (
    "deviceId", "moduleId", "etag", "deviceEtag", "status", "statusReason", "statusUpdateTime",
    "connectionState", "lastActivityTime", "cloudToDeviceMessageCount", "authenticationType",
    "x509Thumbprint", "modelId", "version", "tags", "properties", "capabilities", "deviceScope",
    "parentScopes",
)
_CANONICAL_ROOT: Final = {name.lower(): name for name in ROOT_NAMES}
_CANONICAL_SECTION: Final = {"desired": "desired", "reported": "reported"}


def _case_insensitive_level(segments: tuple[str, ...], depth: int) -> bool:
    return depth == 0 or (depth == 1 and segments[0].lower() == "properties")


def canonical_name(segments: tuple[str, ...]) -> str:
    """The result key for a projected path without an alias."""
    last = segments[-1]
    if len(segments) == 1:
        return _CANONICAL_ROOT.get(last.lower(), last)
    if _case_insensitive_level(segments, len(segments) - 1):
        return _CANONICAL_SECTION.get(last.lower(), last)
    return last


def resolve(doc: Mapping[str, Any], segments: tuple[str, ...]) -> Any:
    """The value at a dotted path, or UNDEFINED (a missing name, or a name under a non-object)."""
    node: Any = doc
    for depth, segment in enumerate(segments):
        if not isinstance(node, Mapping):
            return UNDEFINED
        if segment in node:
            node = node[segment]
            continue
        if not _case_insensitive_level(segments, depth):
            return UNDEFINED
        folded = segment.lower()
        key = next((k for k in node if isinstance(k, str) and k.lower() == folded), None)
        if key is None:
            return UNDEFINED
        node = node[key]
    return node


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "structured"  # objects and arrays: "comparisons are supported only between primitive types"


def compare(op: CompareOp, left: Any, right: Any) -> bool | _Undefined:
    """Comparison of two JSON values: undefined unless both are defined primitives of one JSON type.
    Numbers compare numerically (1 = 1.0), strings ordinally (case-sensitive), false < true."""
    if left is UNDEFINED or right is UNDEFINED:
        return UNDEFINED
    kind = _kind(left)
    if kind != _kind(right) or kind == "structured":
        return UNDEFINED
    order = 0 if kind == "null" else (left > right) - (left < right)
    match op:
        case "=":
            return order == 0
        case "!=" | "<>":
            return order != 0
        case "<":
            return order < 0
        case ">":
            return order > 0
        case "<=":
            return order <= 0
        case ">=":
            return order >= 0
    raise AssertionError(op)  # pragma: no cover - the grammar admits no other operator


def _truth(value: Any) -> bool | _Undefined:
    return value if isinstance(value, bool) else UNDEFINED


def _and(left: bool | _Undefined, right: bool | _Undefined) -> bool | _Undefined:
    if left is False or right is False:
        return False
    return True if left is True and right is True else UNDEFINED


def _or(left: bool | _Undefined, right: bool | _Undefined) -> bool | _Undefined:
    if left is True or right is True:
        return True
    return False if left is False and right is False else UNDEFINED


def _in(operand: Any, values: tuple[Any, ...]) -> bool | _Undefined:
    result: bool | _Undefined = False
    for value in values:
        result = _or(result, compare("=", operand, value))
    return result


def evaluate(expr: Expr, doc: Mapping[str, Any]) -> Any:
    """Value of an expression for one twin document: a JSON value, True/False, or UNDEFINED."""
    match expr:
        case Const(value):
            return value
        case Path(segments):
            return resolve(doc, segments)
        case Compare(op, left, right):
            return compare(op, evaluate(left, doc), evaluate(right, doc))
        case InList(operand, values, negated):
            found = _in(evaluate(operand, doc), values)
            if not negated or found is UNDEFINED:
                return found
            return not found
        case IsDefined(path):
            return resolve(doc, path.segments) is not UNDEFINED
        case And(left, right):
            return _and(_truth(evaluate(left, doc)), _truth(evaluate(right, doc)))
        case Or(left, right):
            return _or(_truth(evaluate(left, doc)), _truth(evaluate(right, doc)))
        case Not(operand):
            value = _truth(evaluate(operand, doc))
            return value if value is UNDEFINED else not value
    raise AssertionError(expr)  # pragma: no cover


# ------------------------------------------------------------------------------------------- grammar
GRAMMAR = r"""
start: _SELECT top? select_list _FROM collection where? group_by?

top: _TOP unary
select_list: STAR                               -> select_star
           | projection ("," projection)*       -> select_items
projection: sum (_AS name)?
collection: name ("." name)*
where: _WHERE or_expr
group_by: _GROUP _BY sum ("," sum)*

""" + CONNECTIVES + r"""?predicate: sum
          | sum COMP_OP sum                     -> compare
          | sum _IN array                       -> in_
          | sum _NIN array                      -> nin
?sum: product
    | sum ADD_OP product                        -> arith
?product: unary
        | product (STAR | DIV_OP) unary         -> arith
?unary: atom
      | ADD_OP unary                            -> sign
?atom: literal
     | path
     | call
     | "(" or_expr ")"
array: "[" [unary ("," unary)*] "]"
call: name "(" [or_expr ("," or_expr)*] ")"
path: name ("." name)*
name: NAME | QUOTED_NAME
?literal: STRING                                -> string
        | HEX                                   -> hex
        | NUMBER                                -> number
        | _TRUE                                 -> true
        | _FALSE                                -> false
        | _NULL                                 -> null
        | _UNDEFINED                            -> undefined

_SELECT.2: /SELECT\b/i
_TOP.2: /TOP\b/i
_FROM.2: /FROM\b/i
_WHERE.2: /WHERE\b/i
_GROUP.2: /GROUP\b/i
_BY.2: /BY\b/i
_AS.2: /AS\b/i
_IN.2: /IN\b/i
_NIN.2: /NIN\b/i
_TRUE.2: /TRUE\b/i
_FALSE.2: /FALSE\b/i
_NULL.2: /NULL\b/i
_UNDEFINED.2: /UNDEFINED\b/i
""" + OPERATORS + r"""
STAR: "*"
DIV_OP: "/" | "%"
HEX.2: /0[xX][0-9A-Fa-f]+\b/
NUMBER: /\d+(\.\d+)?([eE][+-]?\d+)?\b/
STRING: /'(?:[^'\\]|\\.)*'/ | /"(?:[^"\\]|\\.)*"/
NAME: /[A-Za-z_$][A-Za-z0-9_$]*/
QUOTED_NAME: /\[\[(?:(?!\]\]).)+\]\]/

%import common.WS
%ignore WS
"""

_PARSER = Lark(GRAMMAR, parser="lalr", lexer="basic", maybe_placeholders=False)

_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|['\"\\])")
_AGGREGATES: Final = frozenset({"count", "avg", "sum", "min", "max"})
# Functions the docs list for routing conditions only; the real twin query may or may not take them.
_ROUTING_FUNCTIONS: Final = frozenset({
    "abs", "exp", "power", "square", "ceiling", "floor", "sign", "sqrt", "as_number", "is_array", "is_bool",
    "is_null", "is_number", "is_object", "is_primitive", "is_string", "concat", "length", "lower", "upper",
    "substring", "index_of", "starts_with", "ends_with", "startswith", "endswith", "contains",
})


def unescape_string(token: str) -> str:
    """A string literal's value. Only the documented escapes are accepted: \\' \\" \\\\ \\uXXXX."""
    inner = token[1:-1]
    pos = 0
    out: list[str] = []
    while (backslash := inner.find("\\", pos)) >= 0:
        out.append(inner[pos:backslash])
        match = _ESCAPE.match(inner, backslash)
        if match is None:
            raise InvalidQuery(f"Invalid escape sequence in string literal {token}")
        escape = match.group(1)
        out.append(chr(int(escape[1:], 16)) if escape[0] == "u" else escape)
        pos = match.end()
    out.append(inner[pos:])
    return "".join(out)


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class _Arith:
    op: str


@dataclass(frozen=True)
class _Select:
    projections: tuple[tuple[Any, str | None], ...] | None


@dataclass(frozen=True)
class _Where:
    condition: Expr


def _expr(node: Any) -> Expr:
    """An operand used as an expression; calls other than IS_DEFINED and arithmetic are refused."""
    if isinstance(node, _Call):
        lowered = node.name.lower()
        if lowered in _AGGREGATES:
            raise UnsupportedQuery(f"Aggregate {node.name.upper()}() is not supported by the local IoT Hub emulator")
        if lowered in _ROUTING_FUNCTIONS:
            raise UnsupportedQuery(f"Function {node.name.upper()} is not supported by the local IoT Hub emulator; "
                                   "twin queries support IS_DEFINED only")
        raise InvalidQuery(f"Unknown function {node.name}")
    if isinstance(node, _Arith):
        raise UnsupportedQuery(f"Arithmetic operator '{node.op}' is not supported by the local IoT Hub emulator")
    return node


class _ToAst(Transformer[Token, Any]):
    def name(self, children: list[Token]) -> str:
        token = children[0]
        return token[2:-2] if token.type == "QUOTED_NAME" else str(token)

    def path(self, children: list[str]) -> Path:
        return Path(tuple(children))

    def string(self, children: list[Token]) -> Const:
        return Const(unescape_string(children[0]))

    def number(self, children: list[Token]) -> Const:
        text = str(children[0])
        return Const(float(text) if any(c in text for c in ".eE") else int(text))

    def hex(self, children: list[Token]) -> Const:
        return Const(int(children[0], 16))

    def true(self, _: list[Any]) -> Const:
        return Const(True)

    def false(self, _: list[Any]) -> Const:
        return Const(False)

    def null(self, _: list[Any]) -> Const:
        return Const(None)

    def undefined(self, _: list[Any]) -> Const:
        return Const(UNDEFINED)

    @v_args(inline=True)
    def sign(self, op: Token, operand: Any) -> Any:
        """A signed number literal folds to a constant; a sign before anything else is arithmetic."""
        if isinstance(operand, Const) and _kind(operand.value) == "number":
            return Const(-operand.value if op == "-" else operand.value)
        return _Arith(f"unary {op}")

    def arith(self, children: list[Any]) -> _Arith:
        return _Arith(str(children[1]))

    def call(self, children: list[Any]) -> Any:
        name, *args = children
        if name.lower() == "is_defined":
            if len(args) != 1 or not isinstance(args[0], Path):
                raise InvalidQuery("IS_DEFINED takes one property path")
            return IsDefined(args[0])
        return _Call(name, tuple(args))

    @v_args(inline=True)
    def compare(self, left: Any, op: Token, right: Any) -> Compare:
        return Compare(str(op), _expr(left), _expr(right))  # type: ignore[arg-type]

    def array(self, children: list[Any]) -> tuple[Any, ...]:
        if not children:
            raise InvalidQuery("IN / NIN need at least one constant in the list")
        values = []
        for child in children:
            if not isinstance(child, Const):
                raise InvalidQuery("IN / NIN lists may contain constants only")
            values.append(child.value)
        return tuple(values)

    @v_args(inline=True)
    def in_(self, operand: Any, values: tuple[Any, ...]) -> InList:
        return InList(_expr(operand), values, negated=False)

    @v_args(inline=True)
    def nin(self, operand: Any, values: tuple[Any, ...]) -> InList:
        return InList(_expr(operand), values, negated=True)

    @v_args(inline=True)
    def and_(self, left: Any, right: Any) -> And:
        return And(_expr(left), _expr(right))

    @v_args(inline=True)
    def or_(self, left: Any, right: Any) -> Or:
        return Or(_expr(left), _expr(right))

    @v_args(inline=True)
    def not_(self, operand: Any) -> Not:
        return Not(_expr(operand))

    @v_args(inline=True)
    def where(self, condition: Any) -> _Where:
        return _Where(_expr(condition))

    def top(self, _: list[Any]) -> None:
        raise UnsupportedQuery("SELECT TOP is not supported by the local IoT Hub emulator")

    def group_by(self, _: list[Any]) -> None:
        raise UnsupportedQuery("GROUP BY is not supported by the local IoT Hub emulator")

    def collection(self, children: list[str]) -> str:
        collection = ".".join(children).lower()
        if collection in ("devices.modules", "devices.jobs"):
            raise UnsupportedQuery(f"FROM {collection} is not supported by the local IoT Hub emulator; "
                                   "only FROM devices is")
        if collection != "devices":
            raise InvalidQuery(f"Unknown collection '{'.'.join(children)}': "
                               "use devices, devices.modules or devices.jobs")
        return collection

    def select_star(self, _: list[Any]) -> _Select:
        return _Select(None)

    @v_args(inline=True)
    def projection(self, value: Any, alias: str | None = None) -> tuple[Any, str | None]:
        return value, alias

    def select_items(self, children: list[tuple[Any, str | None]]) -> _Select:
        return _Select(tuple(children))


def _projections(select: _Select) -> tuple[Projection, ...] | None:
    if select.projections is None:
        return None
    projections: list[Projection] = []
    for value, alias in select.projections:
        if isinstance(value, _Call) and value.name.lower() in _AGGREGATES:
            _expr(value)  # raises UnsupportedQuery
        if not isinstance(value, Path):
            raise UnsupportedQuery("SELECT supports * or property paths only in the local IoT Hub emulator")
        projections.append(Projection(value, alias or canonical_name(value.segments)))
    names = [p.name for p in projections]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise InvalidQuery(f"Duplicate name(s) in the SELECT list: {', '.join(duplicates)}; use AS to rename")
    return tuple(projections)


def _syntax_error(text: str, exc: UnexpectedInput) -> InvalidQuery:
    pos = getattr(exc, "pos_in_stream", None)
    at_end = isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    if at_end or not isinstance(pos, int) or pos < 0 or pos >= len(text):
        return InvalidQuery("Syntax error: unexpected end of the query")
    line, column = exc.line, exc.column
    return InvalidQuery(f"Syntax error at line {line}, column {column}, near '{text[pos:pos + 20]}'")


def parse_query(text: Any) -> Query:
    """Parse a registry query; raises InvalidQuery / UnsupportedQuery (both QueryError, HTTP 400).
    A missing or blank query raises MissingQuery (ErrorCode:ArgumentNull, as the real hub answers)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        raise MissingQuery("BadRequest")
    if not isinstance(text, str):
        raise InvalidQuery("The query must be a string")
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidQuery(f"The query is {len(text)} characters long; the maximum is {MAX_QUERY_LENGTH}")
    return _parse(text)


@lru_cache(maxsize=256)
def _parse(text: str) -> Query:
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    try:
        parts = _ToAst().transform(tree).children
    except VisitError as exc:
        if isinstance(exc.orig_exc, QueryError):
            raise exc.orig_exc from None
        raise
    select = next(p for p in parts if isinstance(p, _Select))
    where = next((p.condition for p in parts if isinstance(p, _Where)), None)
    return Query(text, _projections(select), where)
