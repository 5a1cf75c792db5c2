"""Hot statements written once in SQLAlchemy Core and run on PostgreSQL as the SQL they compile
to.

Every request of the load mix reads through a handful of statements (a session's tags,
segments and feedback count, a student's sessions and metrics for the progress rules).
Through ``session.execute`` each costs 0.4-0.6 ms of CPU in SQLAlchemy (cache key, compiled
cache lookup, parameter and result processing) against 0.1-0.2 ms for the same SQL sent with
``AsyncConnection.exec_driver_sql``, which keeps SQLAlchemy's connection, transaction and
error handling (a dead connection still becomes ``database_unavailable``).

A :class:`Query` holds the statement for PostgreSQL (arrays bound with
``column == any_(bindparam(...))``, one parameter whatever the list's length) and the same
statement for the other back ends (``column.in_(bindparam(..., expanding=True))``), built by
one function so the two cannot drift. On PostgreSQL it is compiled once to SQL text with
positional parameters; values are passed as the driver takes them (no bind or result
processors: the columns read this way are UUIDs, numbers, text and aware timestamps, which
asyncpg returns as SQLAlchemy would). Elsewhere (SQLite) it runs through the session as usual.
A statement that writes may be a :class:`Query` too when it returns rows (``UPDATE ...
RETURNING``) and sets no column with a Python-side default (those would be computed once,
when it is compiled): the change counter of every session write is one.

On PostgreSQL the SQL goes to the dialect's own asyncpg cursor (the adapter SQLAlchemy's
``exec_driver_sql`` ends in: its prepared-statement cache, its lock, and the transaction
it begins lazily unless the session is in autocommit), skipping the execution context and
the result's metadata that SQLAlchemy builds for every statement it runs (about half of
``exec_driver_sql``'s CPU: 0.1 ms a request of the load mix on the slow host). An error is
handed to SQLAlchemy's own handler, so it is raised as SQLAlchemy would raise it (an
``IntegrityError``, or a ``DBAPIError`` with ``connection_invalidated`` after invalidating
the connection and the pool on a dead connection). Rows are named tuples of the statement's
columns (indexable and by attribute, as a Core row). When the engine has cursor event
listeners (tests counting statements) or the connection was invalidated, the statement
takes ``exec_driver_sql`` as before.

:class:`Rows` does the same for the inserts of a session write (``INSERT`` or an upsert
without ``RETURNING``, one round trip for a list of rows): compiled once, each value through
its column type's bind processor, sent with the cursor's ``executemany``.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVarTuple

from sqlalchemy import ColumnElement, Insert, any_, bindparam
from sqlalchemy.engine import Connection, Dialect, Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.selectable import TypedReturnsRows

__all__ = ["Member", "Query", "Rows", "flushed_connection"]

#: Builds "``column`` is one of ``values``" for one back end: ``values`` is the name of a
#: list bound per call, or a fixed tuple of values.
Column = ColumnElement[Any] | QueryableAttribute[Any]
Member = Callable[[Column, str | tuple[Any, ...]], ColumnElement[bool]]
_Ts = TypeVarTuple("_Ts")


def _any_of(column: Column, values: str | tuple[Any, ...]) -> ColumnElement[bool]:
    if isinstance(values, str):
        return column == any_(bindparam(values))
    return column == any_(bindparam(None, value=list(values)))


def _in_list(column: Column, values: str | tuple[Any, ...]) -> ColumnElement[bool]:
    if isinstance(values, str):
        return column.in_(bindparam(values, expanding=True))
    return column.in_(values)


async def flushed_connection(db: AsyncSession) -> AsyncConnection:
    """``db``'s connection once its pending changes are flushed, for SQL sent past the ORM
    (``exec_driver_sql``) that must see them."""
    if db.new or db.dirty or db.deleted:
        await db.flush()
    return await db.connection()


class Query(Generic[*_Ts]):
    """A statement returning rows for every back end, run as plain SQL on PostgreSQL.

    Parameters
    ----------
    build : callable
        ``build(member)`` returns the select (or ``UPDATE ... RETURNING``);
        ``member(column, name)`` is the clause that ``column`` is in the list bound as
        ``name`` (``= ANY($n)`` on PostgreSQL, an expanding ``IN`` elsewhere),
        ``member(column, (a, b, ...))`` that it is one of fixed values. Scalar parameters
        are plain ``bindparam`` s.
    """

    def __init__(self, build: Callable[[Member], TypedReturnsRows[*_Ts]]) -> None:
        self._pg_stmt = build(_any_of)
        self._portable = build(_in_list)
        self._pg: tuple[str, tuple[str, ...], dict[str, Any]] | None = None
        self._row: Any = None  # the rows' named tuple, made when the first rows come
        self.required = frozenset(
            name for name, bind in self._pg_stmt.compile().binds.items()
            if bind.value is None and bind.callable is None
        )

    def _compiled(self, dialect: Dialect) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        if self._pg is None:
            compiled = self._pg_stmt.compile(dialect=dialect)
            if "POSTCOMPILE" in str(compiled):
                raise ValueError("an expanding IN in a Query: use member(column, values)")
            names = tuple(compiled.positiontup or ())
            self._pg = (str(compiled), names, dict(compiled.params))
        return self._pg

    async def rows(self, db: AsyncSession, **params: Any) -> Sequence[Row[*_Ts]]:
        """The rows for ``params`` (every bind parameter without a value in the statement),
        read in ``db``'s transaction after flushing its pending changes."""
        missing = self.required - params.keys()
        if missing:
            raise TypeError(f"missing query parameters: {', '.join(sorted(missing))}")
        conn = await flushed_connection(db)
        if conn.dialect.name == "postgresql":
            sql, names, defaults = self._compiled(conn.dialect)
            values = {**defaults, **params}
            args = tuple(values[name] for name in names)
            fast = await self._driver_rows(conn, sql, args)
            if fast is not None:
                return fast
            plain: Sequence[Row[*_Ts]] = (await conn.exec_driver_sql(sql, args)).all()
            return plain
        return (await conn.execute(self._portable, params)).all()

    async def _driver_rows(self, conn: AsyncConnection, sql: str,
                           args: tuple[Any, ...]) -> list[Any] | None:
        """The rows through the dialect's asyncpg cursor (see the module docstring), or
        None when this connection must take ``exec_driver_sql``."""
        sync = _driver_path(conn)
        if sync is None:
            return None
        cursor = await _on_cursor(conn, sync, sql, args, many=False)
        if self._row is None:
            self._row = namedtuple(  # type: ignore[misc]  # its columns are known only now
                "QueryRow", [column[0] for column in cursor.description or ()], rename=True)
        make = self._row._make
        return [make(record) for record in cursor._rows]


def _driver_path(conn: AsyncConnection) -> Connection | None:
    """``conn``'s connection when a statement may go to the dialect's cursor (PostgreSQL,
    no cursor event listening, not invalidated), else None."""
    sync = conn.sync_connection
    if (conn.dialect.name != "postgresql" or sync is None or sync.invalidated or sync.closed
            or sync.dispatch.before_cursor_execute or sync.dispatch.after_cursor_execute):
        return None
    return sync


async def _on_cursor(conn: AsyncConnection, sync: Connection, sql: str, args: Any, *,
                     many: bool) -> Any:
    """Run ``sql`` on the dialect's asyncpg cursor (``executemany`` with ``many``) and
    return the cursor. A driver error is raised as SQLAlchemy raises it; a statement
    cancelled midway invalidates the connection, as SQLAlchemy does (its state is
    unknown; it is closed, not given back to the pool)."""
    cursor = sync.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if many:
            await cursor._executemany(sql, args)
        else:
            await cursor._prepare_and_execute(sql, args)
    except sync.dialect.loaded_dbapi.Error as error:
        await conn.run_sync(_raise_as_sqlalchemy, error, sql, args, cursor)
        raise  # not reached: SQLAlchemy's handler raises
    except BaseException as error:
        if not isinstance(error, Exception):
            sync.invalidate(error)
        raise
    return cursor


def _raise_as_sqlalchemy(sync: Connection, error: Exception, sql: str, args: Any,
                         cursor: Any) -> None:
    """What ``exec_driver_sql`` does with a driver error: wrap it as SQLAlchemy's exception
    and, for a dead connection, invalidate it and the pool (so the next checkouts reconnect).
    The handler reads the exception being handled, so it is raised again here first."""
    try:
        raise error
    except type(error):
        sync._handle_dbapi_exception(error, sql, args, cursor, None)


# the SQL, its parameters in order (and as a set), each one's bind processor or None
_CompiledRows = tuple[str, tuple[str, ...], frozenset[str], tuple[Any, ...]]


class Rows:
    """An ``INSERT`` (or an upsert) without ``RETURNING``, run with a list of rows: as the
    SQL it compiles to on PostgreSQL (compiled once; each value through its column type's
    bind processor, as SQLAlchemy would send it), through the session elsewhere. Every row
    must give every column the statement names (a Python-side default would otherwise be
    skipped): a row that does not takes the session's path.

    Parameters
    ----------
    statement : Insert
        Built once (module level); the columns are those of ``insert(table)``.
    """

    def __init__(self, statement: Insert) -> None:
        self.statement = statement
        self._pg: _CompiledRows | None = None

    def _compiled(self, dialect: Dialect) -> _CompiledRows:
        if self._pg is None:
            compiled = self.statement.compile(dialect=dialect)
            names = tuple(compiled.positiontup or ())
            processors = tuple(
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names
            )
            self._pg = (str(compiled), names, frozenset(names), processors)
        return self._pg

    async def insert(self, db: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per row of ``rows`` (one round trip), in ``db``'s
        transaction."""
        if not rows:
            return
        conn = await flushed_connection(db)
        sync = _driver_path(conn)
        if sync is not None:
            sql, names, required, processors = self._compiled(conn.dialect)
            if all(row.keys() >= required for row in rows):
                args = [tuple(row[name] if process is None else process(row[name])
                              for name, process in zip(names, processors, strict=True))
                        for row in rows]
                await _on_cursor(conn, sync, sql, args, many=True)
                return
        await db.execute(self.statement, list(rows))

