"""Grammar pieces both emulators' SQL dialects share (IoT Hub's registry queries, Service Bus filters).

Both combine predicates with SQL's precedence, OR below AND below NOT, and compare with the same
operators; each dialect adds its own predicates, atoms and keywords around these rules.
"""

from __future__ import annotations

#: `or_expr` down to `predicate`, which each dialect defines (with `sum` below it).
CONNECTIVES = r"""
?or_expr: and_expr
        | or_expr _OR and_expr          -> or_
?and_expr: not_expr
         | and_expr _AND not_expr       -> and_
?not_expr: predicate
         | _NOT not_expr                -> not_
"""

#: The terminals `CONNECTIVES` uses, plus comparison and sign operators.
OPERATORS = r"""
COMP_OP: "<>" | "!=" | "<=" | ">=" | "=" | "<" | ">"
ADD_OP: "+" | "-"
_OR.2: /OR\b/i
_AND.2: /AND\b/i
_NOT.2: /NOT\b/i
"""
