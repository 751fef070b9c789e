"""Group-commit statements on SQLite, compiled once per shape and run through the driver.

The write-behind repeats a handful of statement shapes (insert a run, update its status,
insert audit rows) hundreds of times a second. SQLAlchemy compiles each only once, but
per execution it still builds cache keys, an execution context and parameter sets, and
that work holds the GIL the event loop needs. Here a shape is compiled once; a batch's
rows go through the columns' own bind processors (the conversions SQLAlchemy applies)
straight to `executemany` on the DBAPI cursor, inside the SQLAlchemy transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # Per positional parameter: the row key it takes and the column's bind processor.
    binds: tuple[tuple[str, Callable[[Any], Any] | None], ...]


_cache: dict[tuple[Any, ...], _Compiled] = {}


def insert_many(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[dict[str, Any]],
    *,
    or_ignore: bool,
) -> None:
    shape = ("insert", table.name, columns, or_ignore)
    compiled = _cache.get(shape)
    if compiled is None:
        missing = [c.name for c in table.columns if c.default is not None and c.name not in columns]
        if missing:  # SQLAlchemy fills Python-side defaults; leave those rows to it
            statement: Any = sqlite_insert(table) if or_ignore else insert(table)
            if or_ignore:
                statement = statement.on_conflict_do_nothing()
            conn.execute(statement, list(rows))
            return
        base = sqlite_insert(table).on_conflict_do_nothing() if or_ignore else insert(table)
        statement = base.values({c: bindparam(c) for c in columns})
        compiled = _cache[shape] = _compile(conn, statement, table, lambda name: name)
    _run(conn, compiled, rows)


def update_many(
    conn: Connection,
    table: Table,
    key: str,
    columns: tuple[str, ...],
    rows: Sequence[dict[str, Any]],
) -> None:
    """`UPDATE table SET columns WHERE key = row[key]`, once per row."""
    shape = ("update", table.name, key, columns)
    compiled = _cache.get(shape)
    if compiled is None:
        statement = (
            table.update()
            .where(table.c[key] == bindparam(f"_{key}"))
            .values({c: bindparam(f"_{c}") for c in columns if c != key})
        )
        compiled = _cache[shape] = _compile(conn, statement, table, lambda name: name[1:])
    _run(conn, compiled, rows, strip=1)


def _run(
    conn: Connection, compiled: _Compiled, rows: Sequence[dict[str, Any]], strip: int = 0
) -> None:
    params = [
        tuple(
            row[name[strip:]] if process is None else process(row[name[strip:]])
            for name, process in compiled.binds
        )
        for row in rows
    ]
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(compiled.sql, params)
    finally:
        cursor.close()


def _compile(
    conn: Connection, statement: Any, table: Table, column_of: Callable[[str], str]
) -> _Compiled:
    dialect = conn.dialect
    compiled = statement.compile(dialect=dialect)
    binds = tuple(
        (name, table.c[column_of(name)].type._cached_bind_processor(dialect))
        for name in compiled.positiontup or ()
    )
    return _Compiled(str(compiled), binds)
