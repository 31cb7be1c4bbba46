"""CSV import and export of subscribers, in bounded memory at any size.

Import is all-or-nothing per file: every bad row is reported with its line
number and reason, and nothing is written unless the caller asks to skip
invalid rows. The file is read once, as a stream: each row is validated and
written to a temporary staging table inside the one write transaction (COPY
on PostgreSQL); duplicates, new people, updates and list membership are then
worked out by the database, and the transaction commits or rolls back as a
whole. Memory does not grow with the file.

Columns: an address column (``email``, ``e-mail``, ``mail``, ``Email
Address``… in any case and spacing), ``name``, then any custom fields; an
optional ``status`` column carries suppressions over from another tool. A
file without a header row is read as email, name, field1, … The separator is
``,``, ``;`` or tab, whichever the first line uses most.

Export writes a cell that a spreadsheet would run as a formula (starting
with ``=``, ``+``, ``-``, ``@``, tab or carriage return) with a single quote
in front, as OWASP recommends; import removes exactly that quote again, so
export then import gives back the original text.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import (
    Column,
    Connection,
    Index,
    Insert,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from dispatch.errors import InputError, Problem, Severity
from dispatch.store.engine import Store
from dispatch.store.schema import UTCDateTime, consents, list_members, subscribers
from dispatch.subscribers.consent import record_members_without
from dispatch.subscribers.repository import (
    STATUSES,
    Subscriber,
    SubscriberStatus,
    ensure_list,
    held_for_membership,
    set_status,
)
from dispatch.values.address import InvalidAddress, name_problem, parse_address, text_and_key
from dispatch.values.controls import LINE_BREAK

# Header names people's tools write for the address column, compared after
# folding case and dropping spaces, dashes, dots and underscores.
EMAIL_HEADERS = frozenset({"email", "mail", "emailaddress", "mailaddress", "emails",
                           "address", "emailaddr", "courriel", "correo"})
NAME_HEADERS = frozenset({"name", "fullname", "displayname"})
STATUS_HEADERS = frozenset({"status"})
SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab"}
# Cells a spreadsheet would evaluate (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PARALLEL_BYTES = 4 << 20
"""From this size on (about 50k rows) a file is read and validated in a
second process while this one writes (:mod:`dispatch.subscribers.csvworker`);
below it, starting that process costs more than it saves."""
MAX_PROBLEMS = 200

EMPTY_FILE = "the file is empty: no addresses to import"
"""Problems kept in full; past this only a count (a wrong file can have a million)."""
_BATCH = 5000
_RANK = {"active": 0, "unsubscribed": 1, "bounced": 2, "complained": 3}
_QUOTE = json.encoder.encode_basestring_ascii


@dataclass(frozen=True, slots=True)
class ImportReport:
    list_name: str
    rows: int
    """Valid addresses read (after merging duplicates)."""
    created: int
    updated: int
    kept_suppressed: int
    """Existing addresses that stayed unsubscribed/bounced/complained."""
    merged: int
    """Rows that repeated an address already in the file (in any spelling)."""
    problems: tuple[Problem, ...]
    """Invalid rows (only when skipped; otherwise they raise)."""
    sha256: str = ""
    """Hash of the file's bytes, for the sync stage's "unchanged" test."""


def fold_header(cell: str) -> str:
    return "".join(ch for ch in cell.casefold() if ch not in " -_.\ufeff")


def escape_cell(value: str) -> str:
    """A cell as exported: formula-like text gets a leading single quote."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def unescape_cell(value: str) -> str:
    """The inverse of :func:`escape_cell`, applied to every imported cell."""
    if value.startswith("'") and value[1:2] and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def sniff_separator(first_line: str) -> str:
    """The separator the header (or first) line uses most; a comma by default."""
    counts = {sep: first_line.count(sep) for sep in SEPARATORS}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


class RowProblems:
    """Problems of one file: the first MAX_PROBLEMS in full, then a count."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.kept: list[Problem] = []
        self.more = 0

    def add(self, message: str, line: int | None, field: str | None,
            expected: str | None = None) -> None:
        if len(self.kept) < MAX_PROBLEMS:
            self.kept.append(Problem(self.path, message, line, field, expected))
        else:
            self.more += 1

    def __bool__(self) -> bool:
        return bool(self.kept)

    def all(self, severity: Severity = Severity.ERROR) -> list[Problem]:
        out = [Problem(p.path, p.message, p.line, p.field, p.expected, severity)
               for p in self.kept]
        if self.more:
            out.append(Problem(self.path, f"… and {self.more} more invalid row(s) not shown",
                               None, None, None, severity))
        return out


@dataclass(frozen=True, slots=True)
class _Layout:
    header: tuple[str, ...]
    """Column names, with the address column called ``email``."""
    has_header: bool


def _layout(cells: list[str], line: int, sep: str, problems: RowProblems) -> _Layout | None:
    """Read the first row: a header we understand, or a first data row."""
    names: list[str] = []
    for cell in cells:
        folded = fold_header(cell)
        if folded in EMAIL_HEADERS:
            names.append("email")
        elif folded in NAME_HEADERS:
            names.append("name")
        elif folded in STATUS_HEADERS:
            names.append("status")
        else:
            names.append(cell.strip().lower())
    if "email" in names:
        if names.count("email") > 1:
            problems.add("two columns name an address", line, "header",
                         "one address column")
            return None
        if len({n for n in names if n}) != len([n for n in names if n]):
            problems.add("repeated column name", line, "header", "each column named once")
            return None
        return _Layout(tuple(names), True)
    first = cells[0].strip() if cells else ""
    if "@" in first and len(cells) >= 1:
        width = max(len(cells), 2)
        return _Layout(("email", "name", *(f"field{i}" for i in range(1, width - 1))), False)
    shown = ", ".join(repr(c.strip()) for c in cells)
    others = [ch for ch in "|:^~" if ch in "".join(cells)]
    if len(cells) == 1 and others:
        problems.add(f"separator not understood: the first line {cells[0].strip()!r} seems "
                     f"to be separated by {others[0]!r}", line, "header",
                     "columns separated by a comma, a semicolon or a tab")
        return None
    problems.add(f"header not understood: no address column among {shown} (read as "
                 f"{SEPARATORS[sep]}-separated)", line, "header",
                 "a column named email, e-mail, mail or email address, or a file whose "
                 "first column holds addresses")
    return None


StagedRow = tuple[int, str, str, str, str, str]
"""A valid row on its way to the staging table: (line, key, email, name,
status, fields JSON). A plain tuple: a million of them are made and sent."""


def parse_rows(stream: IO[str], path: str, problems: RowProblems) -> Iterator[StagedRow]:
    """Validate rows one by one as they are read; bad rows go to ``problems``."""
    first_line = stream.readline()
    sep = sniff_separator(first_line)
    reader = csv.reader(itertools.chain((first_line,), stream), delimiter=sep)
    start = 1
    for raw in reader:
        line, start = start, reader.line_num + 1
        cells = [unescape_cell(c) for c in raw]
        if any(c.strip() for c in cells):
            break
    else:
        return
    layout = _layout(cells, line, sep, problems)
    if layout is None:
        return
    # A file without a header starts with a data row: read it again below.
    rows: Iterator[list[str]] = reader
    if not layout.has_header:
        rows, start = itertools.chain((raw,), reader), line
    header = layout.header
    width = len(header)
    at_email = header.index("email")
    at_name = header.index("name") if "name" in header else -1
    at_status = header.index("status") if "status" in header else -1
    # Custom fields in name order, each with its JSON key already quoted.
    extras = sorted(((h, i) for i, h in enumerate(header)
                     if h not in ("email", "name", "status")))
    quoted = [(i, _QUOTE(h) + ": ") for h, i in extras]
    line_break = LINE_BREAK.search
    address = text_and_key
    # This loop runs a million times for a big list: local names, no call
    # per row that the common row can do without, tuples out.
    for raw in rows:
        line, start = start, reader.line_num + 1
        # Only a row with a quote in it can hold an escaped formula.
        cells = [unescape_cell(c) for c in raw] if "'" in "".join(raw) else raw
        n = len(cells)
        if n > width:
            if not any(c.strip() for c in cells):
                continue
            problems.add(f"{n} cells but the header has {width}", line, None,
                         "one cell per column")
            continue
        email = cells[at_email].strip() if at_email < n else ""
        if not email and not any(c.strip() for c in cells):
            continue
        try:
            text, key = address(email)
        except InvalidAddress as exc:
            problems.add(str(exc), line, "email", exc.expected)
            continue
        name = cells[at_name].strip() if 0 <= at_name < n else ""
        if name and line_break(name) is not None:
            problems.add(name_problem(name) or "", line, "name", "a name on one line")
            continue
        status = "active"
        if at_status >= 0:
            status = (cells[at_status].strip() if at_status < n else "") or "active"
            if status not in STATUSES:
                problems.add(f"unknown status {status!r}", line, "status",
                             " or ".join(STATUSES))
                continue
        fields = "{}"
        if quoted:
            extra = [k + _QUOTE(v) for i, k in quoted if i < n and (v := cells[i].strip())]
            if extra:
                fields = "{" + ", ".join(extra) + "}"
        yield line, key, text, name, status, fields


class HashingReader(io.RawIOBase):
    """Bytes of a file, hashed as they are read (one read serves both)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        self.sha.update(data)
        buffer[:len(data)] = data
        return len(data)


def _staging() -> Table:
    return Table("subscriber_import", MetaData(),
                 Column("line", Integer, primary_key=True),
                 Column("key", String(320), nullable=False),
                 Column("email", String(320), nullable=False),
                 Column("name", Text, nullable=False),
                 Column("status", String(20), nullable=False),
                 Column("fields", Text, nullable=False),
                 prefixes=["TEMPORARY"])


def _stage(conn: Connection, store: Store, staging: Table, rows: Iterable[StagedRow]) -> None:
    """Write rows to the staging table: COPY on PostgreSQL, one executemany on SQLite."""
    cols = ("line", "key", "email", "name", "status", "fields")
    if store.is_postgres:
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(  # type: ignore[union-attr]
                f"COPY {staging.name} ({', '.join(cols)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
        return
    # sqlite3 takes the rows as an iterator and steps one prepared
    # statement over them: no batches to build, nothing per row in Python.
    conn.connection.driver_connection.executemany(  # type: ignore[union-attr]
        f"INSERT INTO {staging.name} ({', '.join(cols)}) VALUES (?, ?, ?, ?, ?, ?)", rows)


def _merge_repeats(conn: Connection, staging: Table) -> int:
    """Fold rows of the file that spell one address: the first spelling and
    the first non-empty name win, fields are united (earlier wins), and the
    most restrictive status sticks. Returns how many rows were folded."""
    s = staging
    folded = 0
    last = ""
    while True:
        keys = list(conn.execute(select(s.c.key).where(s.c.key > last).group_by(s.c.key)
                                 .having(func.count() > 1).order_by(s.c.key)
                                 .limit(500)).scalars())
        if not keys:
            return folded
        rows = conn.execute(select(s).where(s.c.key.in_(keys)).order_by(s.c.key, s.c.line)
                            ).all()
        groups: dict[str, list[Any]] = {}
        for row in rows:
            groups.setdefault(row.key, []).append(row)
        for key, group in groups.items():
            first = group[0]
            fields: dict[str, str] = {}
            for r in reversed(group):
                fields.update(json.loads(r.fields))
            status = max((r.status for r in group), key=lambda st: _RANK[st])
            name = next((r.name for r in group if r.name), "")
            conn.execute(delete(s).where(s.c.key == key, s.c.line != first.line))
            conn.execute(update(s).where(s.c.line == first.line).values(
                name=name, status=status,
                fields=json.dumps(fields, sort_keys=True) if fields else "{}"))
            folded += len(group) - 1
        last = keys[-1]


_NEW_COLUMNS = ["email", "email_key", "name", "status", "fields", "created_at",
                "status_changed_at", "status_reason"]


def _join_known(conn: Connection, store: Store, staging: Table, list_name: str, now: datetime,
                source: str | None) -> None:
    """Add every person of the staging table already in ``subscribers`` to
    the list, each new membership with its consent record."""
    s, t = staging, subscribers
    joined = s.join(t, t.c.email_key == s.c.key)
    # "WHERE true": SQLite needs it to tell an upsert's ON from a join's.
    # In id order, so the membership key grows at its end instead of being
    # written all over (a million random inserts thrash the page cache).
    members = (select(literal(list_name, String()), t.c.id, literal(now, UTCDateTime()))
               .select_from(joined).where(true()).order_by(t.c.id))
    if store.is_postgres:
        # Leave out those already on the list in the same statement: one
        # anti-join over the list instead of a conflict check per row (a
        # second import of a million-row file spent 2.5 s there). The upsert
        # stays for a member added meanwhile by another transaction. Each
        # person joining is locked against a concurrent delete as they are
        # read (held_for_membership); one gone meanwhile is left out.
        lm = list_members
        held = held_for_membership(
            select(t.c.id).select_from(joined).where(~select(lm.c.subscriber_id).where(
                lm.c.list_name == list_name, lm.c.subscriber_id == t.c.id).exists())
            .order_by(t.c.id)).cte("held")
        members = select(literal(list_name, String()), held.c.id, literal(now, UTCDateTime()))
    conn.execute(store.insert_ignore(list_members).from_select(
        ["list_name", "subscriber_id", "added_at"], members))
    # Consent: each membership this import created records the file and time.
    with _no_nested_loops(conn, store):
        record_members_without(conn, list_name, "import", source, now)


def _insert_new_chained(conn: Connection, new_people: Select[Any], list_name: str,
                        now: datetime, source: str | None) -> int:
    """PostgreSQL: insert the new people, their memberships and their consent
    records in one statement, each insert fed by the ids the previous one
    returns (in key order, so every index grows at its end). Returns how
    many people it created (one consent record each)."""
    created = insert(subscribers).from_select(_NEW_COLUMNS, new_people).returning(
        subscribers.c.id).cte("created")
    joined = insert(list_members).from_select(
        ["list_name", "subscriber_id", "added_at"],
        select(literal(list_name, String()), created.c.id, literal(now, UTCDateTime()))
    ).returning(list_members.c.subscriber_id).cte("joined")
    return _inserted(conn, insert(consents).from_select(
        ["subscriber_id", "list_name", "given_at", "method", "source"],
        select(joined.c.subscriber_id, literal(list_name, String()),
               literal(now, UTCDateTime()), literal("import", String()),
               literal(source, String()))))


def _inserted(conn: Connection, statement: Insert) -> int:
    """Run an INSERT … SELECT and return how many rows it inserted (SQLAlchemy
    keeps an INSERT's row count only when asked to)."""
    return int(conn.execute(statement.execution_options(preserve_rowcount=True)).rowcount)


def _apply(conn: Connection, store: Store, staging: Table, list_name: str, now: datetime,
           source: str | None) -> tuple[int, int, int, int]:
    """Create, update and add to the list from the staging table, with a
    consent record for each new membership; returns (rows, created,
    updated, kept suppressed)."""
    s, t = staging, subscribers
    known = select(t.c.id).where(t.c.email_key == s.c.key).exists()
    rows = int(conn.execute(select(func.count()).select_from(s)).scalar_one())
    # How many are new is the count the insert of new people reports below:
    # counting them first cost a join of the whole file (a second on a
    # re-import of a million).
    joined = s.join(t, t.c.email_key == s.c.key)
    kept = int(conn.execute(select(func.count()).select_from(joined)
                            .where(t.c.status != "active")).scalar_one())
    # Existing people whose name, fields or status the file may change; the
    # exact comparison is made below, a page at a time.
    candidates = (select(s.c.line, t.c.id, t.c.name, t.c.fields, t.c.status,
                         s.c.name.label("new_name"), s.c.fields.label("new_fields"),
                         s.c.status.label("new_status"))
                  .select_from(joined)
                  .where(or_(and_(s.c.name != "", s.c.name != t.c.name),
                             and_(s.c.fields != "{}", s.c.fields != t.c.fields),
                             and_(s.c.status != "active", t.c.status == "active"))))
    updated = 0
    last = 0
    while True:
        page = conn.execute(candidates.where(s.c.line > last).order_by(s.c.line)
                            .limit(_BATCH)).all()
        if not page:
            break
        last = page[-1].line
        changes = []
        suppress: dict[SubscriberStatus, list[int]] = {}
        for r in page:
            if r.status == "active" and r.new_status != "active":
                suppress.setdefault(r.new_status, []).append(r.id)
            old = json.loads(r.fields)
            merged = {**old, **json.loads(r.new_fields)}
            name = r.new_name or r.name
            if name != r.name or merged != old:
                changes.append({"sid": r.id, "n": name, "f": json.dumps(merged, sort_keys=True)})
        if changes:
            conn.execute(update(t).where(t.c.id == bindparam("sid"))
                         .values(name=bindparam("n"), fields=bindparam("f")), changes)
            updated += len(changes)
        for status, sids in suppress.items():
            set_status(conn, sids, status, now, "imported")
    new_people = (select(s.c.email, s.c.key, s.c.name, s.c.status, s.c.fields,
                         literal(now, UTCDateTime()), literal(now, UTCDateTime()),
                         case((s.c.status == "active", null()),
                              else_=literal("imported", String())))
                  .where(~known).order_by(s.c.key))
    if store.is_postgres:
        # Known people first (the join then finds only them), new people
        # after, in one statement that feeds each new id straight to its
        # membership and its consent: no join back through the staging
        # table, and no check for a membership or consent a new id cannot
        # have yet (nothing else can see the id before this commits).
        _join_known(conn, store, staging, list_name, now, source)
        created = _insert_new_chained(conn, new_people, list_name, now, source)
        _analyze(conn, store, t.name)  # it may have grown from nothing to a million
        return rows, created, updated, kept
    # SQLite: the same order. This transaction holds the only write lock and
    # a new rowid is the largest one plus one, so the new people are exactly
    # the ids above the largest before: their memberships and consents come
    # from that range of the table, with no join and no check.
    _join_known(conn, store, staging, list_name, now, source)
    before = conn.execute(select(func.coalesce(func.max(t.c.id), 0))).scalar_one()
    created = _inserted(conn, insert(t).from_select(_NEW_COLUMNS, new_people))
    fresh = select(t.c.id).where(t.c.id > before).order_by(t.c.id)
    conn.execute(insert(list_members).from_select(
        ["subscriber_id", "list_name", "added_at"],
        fresh.add_columns(literal(list_name, String()), literal(now, UTCDateTime()))))
    conn.execute(insert(consents).from_select(
        ["subscriber_id", "list_name", "given_at", "method", "source"],
        fresh.add_columns(literal(list_name, String()), literal(now, UTCDateTime()),
                          literal("import", String()), literal(source, String()))))
    return rows, created, updated, kept


def import_stream(store: Store, stream: IO[str], path: str, list_name: str, now: datetime,
                  *, skip_invalid: bool = False, erased: Callable[[str], bool] | None = None
                  ) -> ImportReport:
    """Import rows read from ``stream`` (text) in one transaction.

    ``erased`` says whether an address was forgotten on its owner's request
    (``dispatch subscribers forget``): such rows are refused, each with a
    warning naming its line, and the rest is imported."""
    problems = RowProblems(path)
    return _import_parsed(store, parse_rows(stream, path, problems), problems, list_name, now,
                          skip_invalid=skip_invalid, erased=erased)


def _import_parsed(store: Store, rows: Iterable[StagedRow], problems: RowProblems,
                   list_name: str, now: datetime, *, skip_invalid: bool,
                   erased: Callable[[str], bool] | None) -> ImportReport:
    path = problems.path
    refused: list[Problem] = []
    if erased is not None:
        rows = _without_erased(rows, erased, path, refused)
    report = _import(store, rows, problems, list_name, now, skip_invalid=skip_invalid,
                     source=path)
    if not refused:
        return report
    return ImportReport(report.list_name, report.rows, report.created, report.updated,
                        report.kept_suppressed, report.merged, report.problems + tuple(refused),
                        report.sha256)


def _without_erased(rows: Iterable[StagedRow], erased: Callable[[str], bool], path: str,
                    refused: list[Problem]) -> Iterator[StagedRow]:
    from dispatch.subscribers.erasure import ERASED_MESSAGE

    for row in rows:
        line, key, email = row[:3]
        if erased(key):
            refused.append(Problem(path, f"{email}: not imported: {ERASED_MESSAGE}",
                                   line, "email", None, Severity.WARNING))
        else:
            yield row


@dataclass(frozen=True, slots=True)
class ImportRow:
    """A row from somewhere other than a CSV file (a form, a test, a benchmark)."""

    line: int
    email: str
    name: str
    status: SubscriberStatus
    fields: tuple[tuple[str, str], ...]


def import_rows(store: Store, rows: Iterable[ImportRow], list_name: str,
                now: datetime) -> ImportReport:
    """Import already-read rows exactly as a CSV file's would be (all-or-nothing)."""
    problems = RowProblems("<rows>")

    def staged() -> Iterator[StagedRow]:
        for r in rows:
            try:
                address = parse_address(r.email)
            except InvalidAddress as exc:
                problems.add(str(exc), r.line, "email", exc.expected)
                continue
            fields = dict(r.fields)
            yield (r.line, address.key, address.text, r.name, r.status,
                   json.dumps(fields, sort_keys=True) if fields else "{}")

    return _import(store, staged(), problems, list_name, now)


def _analyze(conn: Connection, store: Store, *tables: str) -> None:
    """Fresh planner statistics on PostgreSQL, inside the transaction (it
    counts its own rows). A temporary table is never analysed by autovacuum,
    and a table that just grew by a million rows still looks empty: the
    planner then takes a nested loop that scans a growing index once per
    row, and the import turns quadratic (minutes at 160k rows)."""
    if store.is_postgres:
        conn.exec_driver_sql(f"ANALYZE {', '.join(tables)}")


@contextmanager
def _no_nested_loops(conn: Connection, store: Store) -> Iterator[None]:
    """On PostgreSQL, plan without nested loops for a statement that inserts
    into the table it checks (consents "NOT EXISTS" consents): the planner
    sees the table as it was, small or empty, and scans it once per row,
    while each scan grows with the rows just inserted: quadratic (42 s for
    50k rows). A hash or merge anti-join reads it once."""
    if not store.is_postgres:
        yield
        return
    before = conn.exec_driver_sql("SELECT current_setting('enable_nestloop')").scalar_one()
    conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
    yield
    conn.exec_driver_sql("SELECT set_config('enable_nestloop', %s, true)", (before,))


def _index_unique(conn: Connection, staging: Table) -> bool:
    """Index the staging table by key: one sort, after loading, which the
    search for repeats, the joins and the key-ordered insert all walk. Built
    unique first: when that succeeds (most files) no address repeats, and
    the search for repeats, a pass over the whole index, is not needed.
    Returns whether it did."""
    try:
        with conn.begin_nested():
            Index("ix_subscriber_import_key", staging.c.key, unique=True).create(conn)
        return True
    except IntegrityError:
        Index("ix_subscriber_import_key", staging.c.key).create(conn)
        return False


def _bulk_settings(conn: Connection, store: Store) -> None:
    """PostgreSQL, for this transaction only: no JIT compilation (each large
    statement of an import spent a tenth of a second compiling code that ran
    once) and room in memory for the ids one insert hands the next (a
    million of them spilled to temporary files at the default 4 MB)."""
    if store.is_postgres:
        conn.exec_driver_sql("SET LOCAL jit = off")
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")


def _import(store: Store, staged: Iterable[StagedRow], problems: RowProblems, list_name: str,
            now: datetime, *, skip_invalid: bool = False, source: str | None = None
            ) -> ImportReport:
    path = problems.path
    staging = _staging()
    with store.write() as conn:
        _bulk_settings(conn, store)
        staging.create(conn)
        try:
            _stage(conn, store, staging, staged)
        except UnicodeDecodeError as exc:
            raise InputError([Problem(path, f"not UTF-8 (byte {exc.object[exc.start:exc.end]!r} "
                                            "in the text)", None, None,
                                      "a UTF-8 CSV file")]) from None
        except csv.Error as exc:
            raise InputError([Problem(path, f"not readable as CSV: {exc}", None, None,
                                      "a CSV file")]) from None
        if problems and not skip_invalid:
            raise InputError(problems.all())  # the transaction rolls back: nothing written
        header_trouble = any(p.field == "header" for p in problems.kept)
        if header_trouble:
            raise InputError(problems.all())
        repeats = not _index_unique(conn, staging)
        _analyze(conn, store, staging.name)
        merged = _merge_repeats(conn, staging) if repeats else 0
        ensure_list(conn, store, list_name, now)
        rows, created, updated, kept = _apply(conn, store, staging, list_name, now, source)
        staging.drop(conn)
    return ImportReport(list_name, rows, created, updated, kept, merged,
                        tuple(problems.all(Severity.WARNING)))


def import_csv(store: Store, path: Path, list_name: str, now: datetime, *,
               skip_invalid: bool = False, erased: Callable[[str], bool] | None = None
               ) -> ImportReport:
    """Import a CSV file (UTF-8, with or without a byte-order mark)."""
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a CSV file") from None
    with raw:
        if os.fstat(raw.fileno()).st_size >= PARALLEL_BYTES:
            return _import_in_two(store, path, list_name, now, skip_invalid=skip_invalid,
                                  erased=erased)
        hashing = HashingReader(raw)
        text = io.TextIOWrapper(io.BufferedReader(hashing, 1 << 16), encoding="utf-8-sig",
                                newline="")
        report = import_stream(store, text, str(path), list_name, now,
                               skip_invalid=skip_invalid, erased=erased)
        skip_rest(raw)
        problems = report.problems
        # "0 addresses read" alone looks like success: an empty export or a
        # file truncated on the way is worth a word.
        if not report.rows and not problems and _blank(path):
            problems = (Problem(str(path), EMPTY_FILE, None, None,
                                "a CSV file with an email column", Severity.WARNING),)
        return ImportReport(report.list_name, report.rows, report.created, report.updated,
                            report.kept_suppressed, report.merged, problems,
                            hashing.sha.hexdigest())


def _import_in_two(store: Store, path: Path, list_name: str, now: datetime, *,
                   skip_invalid: bool, erased: Callable[[str], bool] | None) -> ImportReport:
    """:func:`import_csv` with the reading and validating in a second process
    (see :mod:`dispatch.subscribers.csvworker`); same rows, same report."""
    from dispatch.subscribers.csvworker import ParsedElsewhere

    problems = RowProblems(str(path))
    with ParsedElsewhere(path, problems) as worker:
        report = _import_parsed(store, worker.rows(), problems, list_name, now,
                                skip_invalid=skip_invalid, erased=erased)
        return ImportReport(report.list_name, report.rows, report.created, report.updated,
                            report.kept_suppressed, report.merged, report.problems,
                            worker.sha256)


def _blank(path: Path) -> bool:
    """Nothing but a byte-order mark and white space (the file is below
    PARALLEL_BYTES, so read whole)."""
    return not path.read_bytes().removeprefix(b"\xef\xbb\xbf").strip()


def skip_rest(raw: IO[bytes]) -> None:
    """Read a file to its end (a file cut short by a bad header is read whole)."""
    while raw.read(1 << 16):
        pass


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 16):
            sha.update(chunk)
    return sha.hexdigest()


def field_names(store: Store, *, list_name: str | None = None,
                status: str | None = None) -> list[str]:
    """Every custom field name used by the selection, sorted (one streaming pass)."""
    from dispatch.subscribers.repository import distinct_fields

    names: set[str] = set()
    for fields in distinct_fields(store, list_name=list_name, status=status):
        names.update(json.loads(fields))
    return sorted(names)


def write_csv(out: IO[str], people: Iterable[Subscriber], extra: Sequence[str]) -> int:
    """Write email, name, status, then ``extra`` fields; returns rows written."""
    return write_rows(out, ((p.email, p.name, p.status, json.dumps(dict(p.fields)))
                            for p in people), extra)


def write_rows(out: IO[str], rows: Iterable[tuple[str, str, str, str]],
               extra: Sequence[str]) -> int:
    """Write email, name, status, then ``extra`` fields from (email, name,
    status, fields JSON) rows, as the repository's ``stream_rows`` yields them;
    returns rows written. Formula-like cells get their quote (escape_cell)."""
    # RFC 4180 line ends: with CRLF as the terminator the writer quotes any
    # cell holding a lone CR or LF, so no text can split a row.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["email", "name", "status", *extra])
    n = 0
    starts = FORMULA_STARTS
    for email, name, status, fields_json in rows:
        fields = orjson.loads(fields_json) if fields_json != "{}" else {}
        cells = [email, name, status, *(fields.get(k, "") for k in extra)]
        writer.writerow(["'" + c if c.startswith(starts) else c for c in cells])
        n += 1
    return n


def export_csv(people: Iterable[Subscriber]) -> str:
    """email, name, status, then every custom field seen, sorted (small lists;
    the CLI streams with :func:`write_csv`)."""
    people = list(people)
    extra = sorted({key for s in people for key in s.fields})
    out = io.StringIO()
    write_csv(out, people, extra)
    return out.getvalue()
