"""Full JSON Schema for tool arguments (`jsonschema`), with short messages for the model.

`jsonschema` is imported at the first check, not with the module: config loading and
start-up do not need it unless a tool declares a schema (about 35 ms and 2 MB).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from roster.errors import ToolError


def check_schema(schema: Mapping[str, Any]) -> None:
    """Refuse a schema that is not valid JSON Schema, or does not describe an object."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
    if schema.get("type") != "object":
        raise ValueError('the arguments schema must have "type": "object"')


def validate_schema(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> None:
    """Raise `ToolError` naming the first (most relevant) problem, before anything runs."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(schema).iter_errors(arguments))
    if error is None:
        return
    where = "/".join(str(part) for part in error.absolute_path)
    prefix = f"argument {where!r}: " if where else "arguments: "
    raise ToolError(prefix + error.message[:300])
