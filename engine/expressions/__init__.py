"""The one safe expression language of the engine.

Field defaults, computed fields, ``required_if``/``visible_if`` conditions
and stage guards are all written in this language. Text is parsed with
Python's parser, checked against a whitelist and compiled once into
closures; it is never passed to ``eval``. See ``docs/expressions.md``.
"""

from .functions import FUNCTIONS
from .parser import Expression, ExpressionError, compile_expression

__all__ = ["FUNCTIONS", "Expression", "ExpressionError", "compile_expression"]
