"""CSV import and export of subscribers.

Import is all-or-nothing per file: every bad row is reported
with its line number and reason, and nothing is written unless the caller
asks to skip invalid rows. Columns: ``email``, ``name``, then any custom
fields; an optional ``status`` column carries suppressions over from another
tool. A file without a header row is read as email, name, custom1, …
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import bindparam, insert, select, update

from dispatch.errors import InputError, Problem, Severity
from dispatch.store.engine import Store, chunks
from dispatch.store.schema import list_members, subscribers
from dispatch.subscribers.address import InvalidAddress, name_problem, normalise_email
from dispatch.subscribers.repository import (
    STATUSES,
    Subscriber,
    SubscriberStatus,
    ensure_list,
    set_status,
)


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int
    email: str
    name: str
    status: SubscriberStatus
    fields: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ImportReport:
    list_name: str
    rows: int
    """Valid rows read (after merging duplicates)."""
    created: int
    updated: int
    kept_suppressed: int
    """Existing addresses that stayed unsubscribed/bounced/complained."""
    merged: int
    """Rows that repeated an address already in the file."""
    problems: tuple[Problem, ...]
    """Invalid rows (only when skipped; otherwise they raise)."""


def parse_csv(text: str, path: str) -> tuple[list[ImportRow], list[Problem], int]:
    """Read rows; return (valid rows with duplicates merged, problems, merged count)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[Problem] = []
    header: list[str] | None = None
    by_email: dict[str, ImportRow] = {}
    merged = 0
    start = 1
    for cells in reader:
        line, start = start, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            lowered = [c.strip().lower() for c in cells]
            if "email" in lowered:
                header = lowered
                if len(set(header)) != len(header):
                    problems.append(Problem(path, "repeated column name", line, "header",
                                            "each column named once"))
                continue
            header = ["email", "name"] + [f"field{i}" for i in range(1, len(cells) - 1)]
        if len(cells) > len(header):
            problems.append(Problem(path, f"{len(cells)} cells but the header has {len(header)}",
                                    line, None, "one cell per column"))
            continue
        values = {key: cell.strip() for key, cell in zip(header, cells, strict=False)}
        try:
            email = normalise_email(values.get("email", ""))
        except InvalidAddress as exc:
            problems.append(Problem(path, str(exc), line, "email", exc.expected))
            continue
        bad_name = name_problem(values.get("name", ""))
        if bad_name:
            problems.append(Problem(path, bad_name, line, "name", "a name on one line"))
            continue
        status = values.get("status", "") or "active"
        if status not in STATUSES:
            problems.append(Problem(path, f"unknown status {status!r}", line, "status",
                                    " or ".join(STATUSES)))
            continue
        extra = tuple((k, v) for k, v in values.items()
                      if k not in ("email", "name", "status") and v)
        row = ImportRow(line, email, values.get("name", ""), status, extra)
        previous = by_email.get(email)
        if previous is not None:
            # Duplicates merge: the first non-empty name and the union of
            # fields win, and a suppression anywhere in the file sticks.
            merged += 1
            row = ImportRow(previous.line, email, previous.name or row.name,
                            previous.status if previous.status != "active" else row.status,
                            tuple({**dict(row.fields), **dict(previous.fields)}.items()))
        by_email[email] = row
    return list(by_email.values()), problems, merged


def read_csv_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise InputError([Problem(str(path), f"not UTF-8 at byte {exc.start}", None, None,
                                  "a UTF-8 CSV file")]) from None


def import_csv(store: Store, path: Path, list_name: str, now: datetime, *,
               skip_invalid: bool = False) -> ImportReport:
    rows, problems, merged = parse_csv(read_csv_file(path), str(path))
    if problems and not skip_invalid:
        raise InputError(problems)
    warnings = tuple(Problem(p.path, p.message, p.line, p.field, p.expected, Severity.WARNING)
                     for p in problems)
    return import_rows(store, rows, list_name, now, problems=warnings, merged=merged)


def import_rows(store: Store, rows: Sequence[ImportRow], list_name: str, now: datetime, *,
                problems: tuple[Problem, ...] = (), merged: int = 0) -> ImportReport:
    """Write parsed rows in one transaction: create, update, add to the list."""
    t = subscribers
    created = updated = kept = 0
    with store.write() as conn:
        ensure_list(conn, store, list_name, now)
        existing: dict[str, tuple[int, str, str, str]] = {}
        for part in chunks([r.email for r in rows]):
            for sid, email, name, status, fields in conn.execute(
                    select(t.c.id, t.c.email, t.c.name, t.c.status, t.c.fields)
                    .where(t.c.email.in_(part))):
                existing[email] = (sid, name, status, fields)
        new = [r for r in rows if r.email not in existing]
        if new:
            conn.execute(insert(t), [
                {"email": r.email, "name": r.name, "status": r.status,
                 "fields": json.dumps(dict(r.fields), sort_keys=True), "created_at": now,
                 "status_changed_at": now,
                 "status_reason": None if r.status == "active" else "imported"}
                for r in new])
            created = len(new)
        changes = []
        suppress: dict[SubscriberStatus, list[int]] = {}
        for r in rows:
            if r.email not in existing:
                continue
            sid, name, status, fields_json = existing[r.email]
            if status != "active":
                kept += 1  # never re-activated by an import
            elif r.status != "active":
                suppress.setdefault(r.status, []).append(sid)
            fields = {**json.loads(fields_json), **dict(r.fields)}
            new_name = r.name or name
            if new_name != name or fields != json.loads(fields_json):
                changes.append({"sid": sid, "n": new_name,
                                "f": json.dumps(fields, sort_keys=True)})
        if changes:
            conn.execute(update(t).where(t.c.id == bindparam("sid"))
                         .values(name=bindparam("n"), fields=bindparam("f")), changes)
            updated = len(changes)
        for status, sids in suppress.items():
            set_status(conn, sids, status, now, "imported")
        member_ids: list[int] = []
        for part in chunks([r.email for r in rows]):
            member_ids.extend(conn.execute(select(t.c.id).where(t.c.email.in_(part))).scalars())
        for batch in chunks(member_ids, 5000):
            conn.execute(store.insert_ignore(list_members),
                         [{"list_name": list_name, "subscriber_id": i, "added_at": now}
                          for i in batch])
    return ImportReport(list_name, len(rows), created, updated, kept, merged, problems)


def export_csv(people: Iterable[Subscriber]) -> str:
    """email, name, status, then every custom field seen, sorted."""
    people = list(people)
    extra = sorted({key for s in people for key in s.fields})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email", "name", "status", *extra])
    for s in people:
        writer.writerow([s.email, s.name, s.status, *(s.fields.get(k, "") for k in extra)])
    return out.getvalue()
