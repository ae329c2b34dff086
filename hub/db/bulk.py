"""Batch statements for the write paths that see hundreds of records a second (lab results).

Primitives, each one statement for a whole batch, run in the session's transaction:
:func:`select_where_in`, :func:`select_where_any`, :func:`insert_rows`,
:func:`insert_returning_ids`, :func:`insert_with_children` and :func:`insert_new_returning_ids`.

On PostgreSQL they bypass SQLAlchemy's statement machinery and send fixed SQL through the
session's psycopg connection: keys to look up as arrays (``unnest``), rows to insert as one JSON
document (``json_populate_recordset``). The SQL text does not depend on the batch size, so
psycopg prepares it once; measured here, a lookup of 8 keys costs ~50 µs of CPU this way against
~400 µs through a Core ``tuple_().in_()``. Other databases (SQLite, the embedded default) run
the equivalent Core statements.

Round trips: one costs 100–400 µs of CPU here between client and server (it varies with the
machine's load), more than most of these statements' own work. Lookups announced with
:func:`prefetch_where_in` / :func:`prefetch_where_any` run as one statement (their rows tagged
and sent as JSON) with the next statement of this module whose answer is read: another
announced lookup, or an :func:`insert_new_returning_ids` (a ``WITH`` around the INSERT; the
lookups see the tables as they were before it). The later :func:`select_where_in` /
:func:`select_where_any` asking for the same rows (or a subset) takes its answer from there.
Announcements last until the end of the transaction; a write to a table they read through this
module, or any statement other than a SELECT through SQLAlchemy (an ORM flush, a ROLLBACK TO
SAVEPOINT), drops answers read ahead. A lookup whose columns JSON does not carry exactly (a
Decimal, a time) is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Column, ColumnElement, Connection, Engine, Table, event, or_, select, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

_PG = postgresql.dialect()

# Key in the SQLAlchemy connection's ``info``: lookups announced in the current transaction.
_AHEAD = "yigong.bulk.ahead"


@dataclass
class _Ahead:
    """A lookup announced ahead, run with the next statement whose answer is read."""

    signature: tuple[Any, ...]  # ("in", columns, key columns, join) / ("any", columns, on)
    keys: tuple[frozenset[Any], ...]  # select_where_in: one set of key tuples; _any: per column
    source: str  # "FROM ... WHERE ..." with %b placeholders
    params: list[Any]
    rows: list[tuple[Any, ...]] | None = None  # once run


def prefetch_where_in(session: Session, columns: Sequence[Column[Any]],
                      key_columns: Sequence[Column[Any]], keys: Iterable[tuple[Any, ...]],
                      *, join_on: ColumnElement[bool] | None = None) -> None:
    """Announce the lookup a later :func:`select_where_in` with these arguments will make.

    The later call may ask for a subset of ``keys``. Only on PostgreSQL; elsewhere nothing
    happens and the later call queries as usual.
    """
    wanted = frozenset(keys)
    conn = _postgresql(session)
    if conn is None or not wanted:
        return
    key_columns = tuple(key_columns)
    signature = ("in", tuple(columns), key_columns, join_on)
    _readers(signature)  # refuses, here rather than at the read, what JSON cannot carry
    _announced(conn).append(_Ahead(
        signature, (wanted,), _pg_where_in(key_columns, join_on, tuple(columns)),
        [list(values) for values in zip(*wanted, strict=True)]))


def prefetch_where_any(session: Session, columns: Sequence[Column[Any]],
                       conditions: Sequence[tuple[Column[Any], Iterable[Any]]]) -> None:
    """Announce the lookup a later :func:`select_where_any` with these arguments will make."""
    wanted = [(column, frozenset(values)) for column, values in conditions]
    wanted = [(column, values) for column, values in wanted if values]
    conn = _postgresql(session)
    if conn is None or not wanted:
        return
    on = tuple(c for c, _v in wanted)
    signature = ("any", tuple(columns), on)
    _readers(signature)
    _announced(conn).append(_Ahead(signature, tuple(v for _c, v in wanted),
                                   _pg_where_any(on), [list(v) for _c, v in wanted]))


def _announced(conn: Connection) -> list[_Ahead]:
    return conn.info.setdefault(_AHEAD, [])


def _take_ahead(conn: Connection, signature: tuple[Any, ...],
                wanted: Sequence[frozenset[Any]]) -> list[tuple[Any, ...]] | None:
    """Rows of the announced lookup with ``signature`` that covers ``wanted`` (then forgotten)."""
    ahead = conn.info.get(_AHEAD) or []
    for n, entry in enumerate(ahead):
        if _same(entry.signature, signature) and all(
                w <= k for w, k in zip(wanted, entry.keys, strict=True)):
            if entry.rows is None:
                _run_ahead(conn, _unread(conn))
            del ahead[n]
            return entry.rows
    return None


def _unread(conn: Connection) -> list[_Ahead]:
    """The announced lookups not run yet: they travel with the next statement read."""
    return [e for e in conn.info.get(_AHEAD) or () if e.rows is None]


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Signatures name the same lookup: the same column objects, compared by identity.

    ``==`` on columns builds SQL expressions, which costs more than the lookup it saves.
    """
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, tuple) and isinstance(y, tuple):
            if len(x) != len(y) or any(p is not q for p, q in zip(x, y, strict=True)):
                return False
        elif x is not y and not (isinstance(x, str) and x == y):
            return False
    return True


def _run_ahead(conn: Connection, entries: list[_Ahead],
               head: tuple[str, list[Any], tuple[Column[Any], ...]] | None = None
               ) -> list[tuple[Any, ...]]:
    """Run announced lookups as one statement, each row tagged with its lookup, as JSON.

    With ``head`` (an ``INSERT ... RETURNING``, its parameters, the columns it returns) the
    statement is that INSERT with the lookups riding along; its returned rows are returned.
    """
    parts = [f"SELECT {n}, json_build_array({_row_columns(e.signature)}) {e.source}"
             for n, e in enumerate(entries)]
    params = [p for e in entries for p in e.params]
    readers = [_readers(e.signature) for e in entries]
    prefix = ""
    if head is not None:
        sql, head_params, head_columns = head
        prefix = f"WITH head AS ({sql}) "
        returning = ("returning", head_columns)
        parts.insert(0, f"SELECT -1, json_build_array({_row_columns(returning)}) FROM head")
        params = head_params + params
        readers.append(_readers(returning))  # index -1
    for e in entries:
        e.rows = []
    head_rows: list[tuple[Any, ...]] = []
    for n, values in _cursor(conn).execute(prefix + " UNION ALL ".join(parts), params):
        (head_rows if n < 0 else entries[n].rows).append(tuple(  # type: ignore[union-attr]
            v if v is None or read is None else read(v)
            for read, v in zip(readers[n], values, strict=True)))
    return head_rows


@lru_cache(maxsize=256)
def _row_columns(signature: tuple[Any, ...]) -> str:
    if signature[0] == "returning":
        return ", ".join(f"head.{c.name}" for c in signature[1])
    return _qualified(_columns_of(signature))


@lru_cache(maxsize=256)
def _columns_of(signature: tuple[Any, ...]) -> tuple[Column[Any], ...]:
    """What a row of a lookup holds: its key columns, then the columns asked for."""
    if signature[0] == "returning":
        return signature[1]
    return signature[2] + signature[1]


@lru_cache(maxsize=256)
def _tables_of(signature: tuple[Any, ...]) -> frozenset[str]:
    return frozenset(c.table.name for c in _columns_of(signature))


# What turns a column's value, read back as JSON, into what psycopg returns for the column; the
# other JSON-safe types come back as they are.
_FROM_JSON = {datetime: datetime.fromisoformat, date: date.fromisoformat,
              bytes: lambda text: bytes.fromhex(text[2:])}  # bytea: "\\x..."
_AS_IS = (str, int, bool, float, dict, list, None)


@lru_cache(maxsize=256)
def _readers(signature: tuple[Any, ...]) -> tuple[Any, ...]:
    """Per column of a lookup read ahead, its reader from :data:`_FROM_JSON` (None: as is).

    Raises:
        TypeError: a column whose values JSON does not carry exactly (a Decimal, a time...):
            such a lookup cannot be announced.
    """
    out = []
    for column in _columns_of(signature):
        try:
            kind = column.type.python_type
        except NotImplementedError:  # JSON and other types psycopg returns as parsed JSON
            kind = None
        if kind not in _FROM_JSON and kind not in _AS_IS:
            raise TypeError(f"cannot read {column} ahead: {kind.__name__} through JSON")
        out.append(_FROM_JSON.get(kind))
    return tuple(out)


@event.listens_for(Engine, "before_cursor_execute")
def _before_sqlalchemy_statement(conn: Connection, _cursor: Any, statement: str,
                                 *_args: Any) -> None:
    ahead = conn.info.get(_AHEAD)
    if ahead and statement.lstrip()[:6].upper() != "SELECT":
        # A write elsewhere (an ORM flush) or a savepoint rolled back: what was read ahead may
        # no longer be what a read would see.
        ahead.clear()


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _end_of_transaction(conn: Connection) -> None:
    conn.info.pop(_AHEAD, None)


def _forget_ahead(conn: Connection, table: Table) -> None:
    ahead = conn.info.get(_AHEAD)
    if ahead:
        ahead[:] = [e for e in ahead if table.name not in _tables_of(e.signature)]


def select_where_in(session: Session, columns: Sequence[Column[Any]],
                    key_columns: Sequence[Column[Any]], keys: Iterable[tuple[Any, ...]],
                    *, join_on: ColumnElement[bool] | None = None) -> list[tuple[Any, ...]]:
    """``SELECT columns WHERE (key_columns) IN keys``.

    The columns come from the key columns' table, or also from a second table joined with
    ``join_on`` (an equality between the two).
    """
    wanted = list(set(keys))
    if not wanted:
        return []
    conn = _postgresql(session)
    if conn is not None:
        sent = _take_ahead(conn, ("in", tuple(columns), tuple(key_columns), join_on),
                           [frozenset(wanted)])
        if sent is not None:
            width, chosen = len(key_columns), set(wanted)
            return [row[width:] for row in sent if row[:width] in chosen]
        sql = _pg_select_sql(tuple(columns), tuple(key_columns), join_on)
        arrays = [list(values) for values in zip(*wanted, strict=True)]
        return list(_cursor(conn).execute(sql, arrays))
    target = tuple_(*key_columns) if len(key_columns) > 1 else key_columns[0]
    values = wanted if len(key_columns) > 1 else [k[0] for k in wanted]
    stmt = select(*columns)
    if join_on is not None:
        stmt = stmt.join_from(key_columns[0].table, _other_table(columns, key_columns), join_on)
    return [tuple(row) for row in session.execute(stmt.where(target.in_(values)))]


def select_where_any(session: Session, columns: Sequence[Column[Any]],
                     conditions: Sequence[tuple[Column[Any], Iterable[Any]]]
                     ) -> list[tuple[Any, ...]]:
    """``SELECT columns WHERE c1 IN values1 OR c2 IN values2 ...`` (one table)."""
    wanted = [(column, list(set(values))) for column, values in conditions]
    wanted = [(column, values) for column, values in wanted if values]
    if not wanted:
        return []
    conn = _postgresql(session)
    if conn is not None:
        on = tuple(c for c, _v in wanted)
        chosen = [frozenset(v) for _c, v in wanted]
        sent = _take_ahead(conn, ("any", tuple(columns), on), chosen)
        if sent is not None:
            width = len(on)
            return [row[width:] for row in sent
                    if any(value in values for value, values in zip(row[:width], chosen,
                                                                    strict=True))]
        sql = _pg_any_sql(tuple(columns), on)
        return list(_cursor(conn).execute(sql, [v for _c, v in wanted]))
    stmt = select(*columns).where(or_(*(column.in_(values) for column, values in wanted)))
    return [tuple(row) for row in session.execute(stmt)]


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``table`` with one statement."""
    if not rows:
        return
    conn = _postgresql(session)
    if conn is not None:
        _forget_ahead(conn, table)
        _cursor(conn).execute(_pg_insert_sql(table, tuple(rows[0]), False), _pg_rows(rows))
    else:
        session.connection().execute(table.insert(), list(rows))


def insert_returning_ids(session: Session, table: Table,
                         rows: Sequence[dict[str, Any]]) -> list[int]:
    """INSERT ``rows`` into ``table``; return their new ids, in the order of ``rows``."""
    if not rows:
        return []
    conn = _postgresql(session)
    if conn is not None:
        _forget_ahead(conn, table)
        result = _cursor(conn).execute(_pg_insert_sql(table, tuple(rows[0]), True),
                                       _pg_rows(rows))
        # The rows are inserted in the order given (ORDER BY ordinality), so their sequence
        # values ascend with it.
        return sorted(row[0] for row in result)
    result = session.connection().execute(
        table.insert().returning(table.c.id, sort_by_parameter_order=True), list(rows))
    return [row[0] for row in result]


def insert_with_children(session: Session, table: Table, rows: Sequence[dict[str, Any]],
                         child_table: Table, children: Sequence[dict[str, Any]],
                         parent_column: str) -> list[int]:
    """INSERT ``rows`` and rows of ``child_table`` that point at them, in one statement.

    Each child's ``parent_column`` holds the index in ``rows`` of its parent; it is stored as
    that parent's new id. Returns the parents' new ids in the order of ``rows``.
    """
    if not children:
        return insert_returning_ids(session, table, rows)
    conn = _postgresql(session)
    if conn is None:
        ids = insert_returning_ids(session, table, rows)
        insert_rows(session, child_table, [{**c, parent_column: ids[c[parent_column]]}
                                           for c in children])
        return ids
    _forget_ahead(conn, table)
    _forget_ahead(conn, child_table)
    sql = _pg_family_sql(table, tuple(rows[0]), child_table, tuple(children[0]), parent_column)
    return [row[0] for row in _cursor(conn).execute(sql, _pg_rows(rows) + _pg_rows(children))]


def insert_new_returning_ids(session: Session, table: Table, rows: Sequence[dict[str, Any]],
                             key_columns: Sequence[Column[Any]]) -> list[int | None]:
    """INSERT the rows whose key (a unique constraint) is not taken yet.

    Returns the new ids in the order of ``rows``, None where the key was already stored (also
    by a concurrent transaction, which PostgreSQL waits for). A row with a NULL key column is
    always inserted. Keys must be distinct within ``rows``.
    """
    if not rows:
        return []
    names = [c.name for c in key_columns]
    conn = _postgresql(session)
    if conn is not None:
        _forget_ahead(conn, table)
        sql = _pg_insert_sql(table, tuple(rows[0]), True, tuple(names))
        waiting = _unread(conn)
        if waiting:  # this INSERT's answer is read at once: the lookups travel with it
            result = _run_ahead(conn, waiting, (sql, _pg_rows(rows),
                                                (table.c.id, *key_columns)))
        else:
            result = _cursor(conn).execute(sql, _pg_rows(rows))
        inserted = sorted(result)  # by id: the order the rows were inserted in
        out: list[int | None] = []
        pending = iter(inserted)
        nxt = next(pending, None)
        for row in rows:
            key = tuple(row[n] for n in names)
            if nxt is not None and (None in key or tuple(nxt[1:]) == key):
                out.append(nxt[0])
                nxt = next(pending, None)
            else:
                out.append(None)
        return out
    taken = set(select_where_in(session, key_columns, key_columns,
                                [k for k in (tuple(r[n] for n in names) for r in rows)
                                 if None not in k]))
    fresh = [r for r in rows if tuple(r[n] for n in names) not in taken]
    ids = iter(insert_returning_ids(session, table, fresh))
    return [None if tuple(r[n] for n in names) in taken else next(ids) for r in rows]


# --------------------------------------------------------------------------- PostgreSQL


def _postgresql(session: Session) -> Connection | None:
    """The session's connection when it is to PostgreSQL (one look-up per statement)."""
    conn = session.connection()
    return conn if conn.dialect.name == "postgresql" else None


def _cursor(conn: Connection) -> Any:
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def _pg_type(column: Column[Any]) -> str:
    return column.type.compile(dialect=_PG)


def _other_table(columns: Sequence[Column[Any]], key_columns: Sequence[Column[Any]]) -> Table:
    key_table = key_columns[0].table
    return next(c.table for c in columns if c.table is not key_table)  # type: ignore[return-value]


def _qualified(columns: Sequence[Column[Any]]) -> str:
    return ", ".join(f"{c.table.name}.{c.name}" for c in columns)


@lru_cache(maxsize=256)
def _pg_select_sql(columns: tuple[Column[Any], ...], key_columns: tuple[Column[Any], ...],
                   join_on: ColumnElement[bool] | None) -> str:
    return f"SELECT {_qualified(columns)} {_pg_where_in(key_columns, join_on, columns)}"


@lru_cache(maxsize=256)
def _pg_where_in(key_columns: tuple[Column[Any], ...], join_on: ColumnElement[bool] | None,
                 columns: tuple[Column[Any], ...]) -> str:
    source = key_columns[0].table.name
    if join_on is not None:
        other = _other_table(columns, key_columns).name
        source += f" JOIN {other} ON {join_on.compile(dialect=_PG)}"
    if len(key_columns) == 1:
        key = key_columns[0]
        return f"FROM {source} WHERE {_qualified([key])} = ANY(%b::{_pg_type(key)}[])"
    arrays = ", ".join(f"%b::{_pg_type(c)}[]" for c in key_columns)
    return (f"FROM {source} WHERE ({_qualified(key_columns)}) "
            f"IN (SELECT * FROM unnest({arrays}))")


@lru_cache(maxsize=256)
def _pg_any_sql(columns: tuple[Column[Any], ...], conditions: tuple[Column[Any], ...]) -> str:
    return f"SELECT {_qualified(columns)} {_pg_where_any(conditions)}"


@lru_cache(maxsize=256)
def _pg_where_any(conditions: tuple[Column[Any], ...]) -> str:
    where = " OR ".join(f"{c.name} = ANY(%b::{_pg_type(c)}[])" for c in conditions)
    return f"FROM {conditions[0].table.name} WHERE {where}"


@lru_cache(maxsize=256)
def _pg_insert_sql(table: Table, names: tuple[str, ...], returning: bool,
                   unless_taken: tuple[str, ...] = ()) -> str:
    cols = ", ".join(names)
    sql = (f"INSERT INTO {table.name} ({cols}) SELECT {cols} "
           f"FROM json_populate_recordset(NULL::{table.name}, %s::json) WITH ORDINALITY "
           "ORDER BY ordinality")
    if unless_taken:
        sql += f" ON CONFLICT ({', '.join(unless_taken)}) DO NOTHING"
    if returning:
        sql += " RETURNING " + ", ".join(("id", *unless_taken))
    return sql


@lru_cache(maxsize=64)
def _pg_family_sql(table: Table, names: tuple[str, ...], child_table: Table,
                   child_names: tuple[str, ...], parent_column: str) -> str:
    # Parents get ascending ids in the order given (ORDER BY ordinality), so numbering them by
    # id recovers each one's index. Foreign-key checks run at the end of the statement, when
    # the parents are there.
    chosen = ", ".join("numbered.id" if n == parent_column else f"r.{n}" for n in child_names)
    return (f"WITH parent AS ({_pg_insert_sql(table, names, True)}), "
            "numbered AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM parent), "
            f"children AS (INSERT INTO {child_table.name} ({', '.join(child_names)}) "
            f"SELECT {chosen} FROM json_populate_recordset(NULL::{child_table.name}, %s::json) "
            f"WITH ORDINALITY AS r JOIN numbered ON numbered.n = r.{parent_column} "
            "ORDER BY r.ordinality) "
            "SELECT id FROM numbered ORDER BY n")


def _pg_rows(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The rows as one JSON document: one parameter, whatever the number of rows and columns.

    psycopg's array adaptation costs ~5 µs per column per statement in Python; orjson encodes
    in C (dates and times included: ``json.dumps`` calls back into Python for each, ~8 times
    slower overall) and PostgreSQL reads the rows back with the table's own row type.
    """
    return [orjson.dumps(rows, default=_json_value).decode()]


def _json_value(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    raise TypeError(f"cannot send {type(value).__name__} to PostgreSQL as JSON")
