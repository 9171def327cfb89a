"""The lab works only in databases it created: a marker table says which those are.

Scenarios migrate, seed, truncate and drop their own tables. That is harmless in a database the
lab made, and destroys data anywhere else (a user's `ix_customer_notes` matched a pattern once; a
`TRUNCATE … CASCADE` emptied a user's table that referenced `bookstore_book`). So every database
the lab writes to carries `public.perflab_marker`, written in the transaction that makes it the
lab's: when the lab creates the database (embedded, external, a user project's `labs_*` database)
or when someone who owns an *empty* database hands it over (`--i-own-this-database`). A database
without the marker is refused before anything is written to it.
"""
from __future__ import annotations

import contextlib
import time

from harness.errors import StackError, UsageError
from harness.stack.urls import database_name, pg_connect_kwargs, redact

MARKER = "perflab_marker"
CLAIM_FLAG = "--i-own-this-database"


def claim(conn, how: str) -> None:
    """Mark the database `conn` is connected to as the lab's (idempotent)."""
    from harness import __version__

    with conn.transaction():
        conn.execute(f"CREATE TABLE IF NOT EXISTS public.{MARKER} (created_at timestamptz NOT NULL DEFAULT now(), "
                     "lab_version text NOT NULL, how text NOT NULL)")
        conn.execute(f"COMMENT ON TABLE public.{MARKER} IS 'this database belongs to Perf Lab (labs): it "
                     "creates, truncates and drops its own tables here'")
        if conn.execute(f"SELECT count(*) FROM public.{MARKER}").fetchone()[0] == 0:
            conn.execute(f"INSERT INTO public.{MARKER} (lab_version, how) VALUES (%s, %s)", [__version__, how])


def is_owned(conn) -> bool:
    return conn.execute("SELECT to_regclass(%s)", [f"public.{MARKER}"]).fetchone()[0] is not None


def foreign_objects(conn, limit: int = 5) -> list[str]:
    """Relations in the database that no extension owns (tables, views, sequences…): what makes it
    not empty. System schemas are left out."""
    rows = conn.execute(
        """SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'
             AND n.nspname NOT LIKE 'pg\\_temp\\_%%' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                             AND d.objid = c.oid AND d.deptype = 'e')
           ORDER BY 1 LIMIT %s""", [limit]).fetchall()
    return [r[0] for r in rows]


def ensure_owned(url: str, *, claim_empty: bool = False, create: bool = True) -> None:
    """Make sure the database `url` names is the lab's: create it (and mark it) when it is missing,
    accept it when it carries the marker, mark an empty one when `claim_empty` (the user said they
    own it), and refuse anything else — before the lab writes a byte to it."""
    import psycopg

    dbname = database_name(url)
    kwargs = pg_connect_kwargs(url)
    try:
        conn = psycopg.connect(autocommit=True, **kwargs)
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc) or not create:
            raise StackError(f"cannot connect to {redact(url)}: {str(exc).strip().splitlines()[-1]}",
                             hint="check DATABASE_URL and that the server accepts connections") from None
        _create(kwargs, dbname)
        conn = psycopg.connect(autocommit=True, **kwargs)
        with conn:
            claim(conn, "created by the lab")
        return
    with conn:
        if is_owned(conn):
            return
        found = foreign_objects(conn)
        if claim_empty and not found:
            claim(conn, f"an empty database handed over with {CLAIM_FLAG}")
            return
    where = f"database {dbname!r} on {kwargs['host']}:{kwargs['port']}"
    if found:
        raise UsageError(
            f"{where} was not created by the lab and holds tables of its own ({', '.join(found)}…): the lab "
            "migrates, truncates and drops tables where it works, so it will not work there",
            hint=f"point DATABASE_URL at a database that does not exist yet (the lab creates and marks it), "
                 f"e.g. …/perflab_lab; {CLAIM_FLAG} hands over only an empty database")
    raise UsageError(
        f"{where} was not created by the lab (no {MARKER} table): the lab migrates, truncates and drops "
        "tables where it works, so it only works in a database of its own",
        hint=f"if this empty database is yours to give, run again with {CLAIM_FLAG}; or point DATABASE_URL at "
             "a database that does not exist yet (the lab creates and marks it)")


def _create(kwargs: dict, dbname: str) -> None:
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(autocommit=True, **{**kwargs, "dbname": "postgres"}) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    except psycopg.errors.DuplicateDatabase:
        return  # another run created it a moment ago; its marker is checked next
    except psycopg.Error as exc:
        raise StackError(f"database {dbname!r} does not exist and could not be created: "
                         f"{str(exc).strip().splitlines()[-1]}",
                         hint=f"create it (CREATE DATABASE {dbname}) and run with {CLAIM_FLAG}, or give a "
                              "user that may create databases") from None


RUN_LOCK = 0x7065_7266_6C61_62  # "perflab": one run at a time in a lab database
WAIT_NOTE_S = 1.0


@contextlib.contextmanager
def exclusive_run(url: str, notify=lambda _text: None, timeout_s: float = 3600.0):
    """Hold the lab database for this run: a second run on the same warm or external stack waits
    (saying so) instead of truncating and reseeding under the first one. The lock is PostgreSQL's
    (a session advisory lock): it ends with the connection, so a killed run never leaves it held."""
    import psycopg

    conn = psycopg.connect(autocommit=True, **pg_connect_kwargs(url))
    try:
        t0 = time.monotonic()
        told = False
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", [RUN_LOCK]).fetchone()[0]:
            waited = time.monotonic() - t0
            if waited > timeout_s:
                raise StackError(f"another run held the lab database {database_name(url)!r} for {waited:.0f} s",
                                 hint="wait for it to finish, or use the embedded stack (a private one per run)")
            if not told and waited >= WAIT_NOTE_S:
                notify(f"another run is using the lab database {database_name(url)!r} on this stack: waiting "
                       "for it to finish (runs on a shared stack take turns)")
                told = True
            time.sleep(0.25)
        yield
    finally:
        conn.close()
