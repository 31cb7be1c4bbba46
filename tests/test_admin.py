"""The staff control room: accounts, login, CSRF, every route behind the login,
and pages that say the same as the CLI (real SQLite store, real app)."""

from __future__ import annotations

import email
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from dispatch.cli import main
from dispatch.config import Settings, load_settings
from dispatch.staff import add_staff, audit_entries
from dispatch.store.engine import Store, open_store
from dispatch.web.admin import ADMIN_ROUTES, AdminApp, admin_routes
from dispatch.web.app import create_app

PASSWORD = "correct horse battery staple"
STAFF = "editor@journal.test"
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def cli(root: Path, *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--root", str(root)], input=input)
    return result.exit_code, result.output


@pytest.fixture
def site(example_site: Path) -> Iterator[tuple[Settings, Store]]:
    settings = load_settings(example_site)
    store = open_store(settings.database_url)
    add_staff(store, STAFF, PASSWORD, NOW)
    yield settings, store
    store.dispose()


def client_for(settings: Settings, store: Store, now: datetime = NOW) -> TestClient:
    app = Starlette(routes=admin_routes(AdminApp(settings, store, clock=lambda: now)))
    # https: the session cookie is Secure, so a client only sends it over TLS.
    return TestClient(app, base_url="https://testserver")


def login_form(client: TestClient) -> str:
    page = client.get("/admin/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def log_in(client: TestClient, password: str = PASSWORD, who: str = STAFF):
    token = login_form(client)
    return client.post("/admin/login", data={"csrf": token, "email": who,
                                             "password": password, "next": "/admin/"},
                       follow_redirects=False)


def csrf_of(page_text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page_text)
    assert found is not None
    return found.group(1)


def concrete(path: str) -> str:
    return (path.replace("{edition_id:path}", "some.edition")
            .replace("{subscriber_id:int}", "1").replace("{action}", "pause"))


def test_every_admin_route_refuses_an_anonymous_request(site: tuple[Settings, Store]) -> None:
    settings, store = site
    app = create_app(settings, store)
    served = {r.path for r in app.routes if isinstance(r, Route) and r.path.startswith("/admin")}
    # Nothing under /admin/ escapes the list the guard is applied from.
    assert served - {p for p, _m, _f in ADMIN_ROUTES} == {"/admin/login", "/admin/admin.css",
                                                          "/admin/progress.js"}
    client = TestClient(app, base_url="https://testserver")
    for path, methods, _page in ADMIN_ROUTES:
        url = concrete(path)
        for method in methods:
            response = client.request(method, url, follow_redirects=False,
                                      data={"csrf": "x"} if method == "POST" else None)
            if method == "GET":
                assert response.status_code == 303, url
                assert response.headers["location"].startswith("/admin/login?next=")
            else:
                assert response.status_code == 403, url
            assert STAFF not in response.text
        # A forged cookie is no session either.
        client.cookies.set("__Host-dispatch-staff", "forged-value")
        assert client.get(url, follow_redirects=False).status_code in (303, 405)
        client.cookies.clear()


def test_login_sets_a_strict_secure_http_only_session(site: tuple[Settings, Store]) -> None:
    settings, store = site
    client = client_for(settings, store)
    response = log_in(client)
    assert response.status_code == 303
    cookie = next(v for k, v in response.headers.multi_items()
                  if k == "set-cookie" and v.startswith("__Host-dispatch-staff="))
    for flag in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
        assert flag in cookie
    assert client.get("/admin/calendar").status_code == 200
    entries = audit_entries(store)
    assert [e.action for e in entries][-1] == "login" and entries[-1].actor == STAFF


def test_passwords_are_kept_only_as_argon2_hashes(site: tuple[Settings, Store]) -> None:
    _settings, store = site
    from sqlalchemy import select

    from dispatch.store.schema import staff_accounts
    with store.read() as conn:
        stored = conn.execute(select(staff_accounts.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_a_wrong_password_and_an_unknown_account_read_the_same(
        site: tuple[Settings, Store]) -> None:
    settings, store = site
    client = client_for(settings, store)
    wrong = log_in(client, password="not the password at all")
    unknown = log_in(client, who="nobody@journal.test")
    assert wrong.status_code == unknown.status_code == 401
    message = "do not match a staff account"
    assert message in wrong.text and message in unknown.text
    assert "__Host-dispatch-staff" not in wrong.headers.get("set-cookie", "")


def test_failed_logins_are_limited_across_processes(site: tuple[Settings, Store]) -> None:
    settings, store = site
    first, second = client_for(settings, store), client_for(settings, store)
    for attempt in range(5):
        assert log_in(first if attempt % 2 else second, password=f"guess{attempt}"
                      ).status_code == 401
    # Even the right password is refused now, by either process, with a wait.
    refused = log_in(second)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "Too many failed logins" in refused.text
    # After the window the right password works again.
    later = client_for(settings, store, NOW + timedelta(minutes=16))
    assert log_in(later).status_code == 303
    actions = [e.action for e in audit_entries(store)]
    assert actions.count("login failed") == 5 and "login refused" in actions


def test_a_login_form_without_its_token_is_refused(site: tuple[Settings, Store]) -> None:
    settings, store = site
    client = client_for(settings, store)
    client.get("/admin/login")
    response = client.post("/admin/login", data={"csrf": "made-up", "email": STAFF,
                                                 "password": PASSWORD},
                           follow_redirects=False)
    assert response.status_code == 403


def test_login_next_never_leaves_the_admin(site: tuple[Settings, Store]) -> None:
    settings, store = site
    client = client_for(settings, store)
    token = login_form(client)
    response = client.post("/admin/login", data={"csrf": token, "email": STAFF,
                                                 "password": PASSWORD,
                                                 "next": "//evil.example/admin/"},
                           follow_redirects=False)
    assert response.headers["location"] == "/admin/"


def _queue_digest(root: Path) -> str:
    code, out = cli(root, "run", "--once")  # syncs the example's CSV lists
    assert code == 0, out
    code, out = cli(root, "send", "--digest", "--audience", "weekly", "--since", "2026-10-01")
    assert code == 0, out
    found = re.search(r"edition (\S+): queued", out)
    assert found is not None
    return found.group(1)


def test_pausing_an_edition_needs_confirmation_and_csrf(
        site: tuple[Settings, Store]) -> None:
    settings, store = site
    edition_id = _queue_digest(settings.root)
    client = client_for(settings, store)
    log_in(client)
    page = client.get(f"/admin/editions/{edition_id}")
    assert page.status_code == 200 and "sending" in page.text
    assert 'src="/admin/progress.js"' in page.text  # live counts while it sends
    live = client.get(f"/admin/editions/{edition_id}/progress").json()
    assert live["state"] == "sending" and live["pending"] == live["total"] > 0
    assert 'sandbox=""' in page.text
    # Without the token: refused, nothing changes.
    no_token = client.post(f"/admin/editions/{edition_id}/control/pause", data={})
    assert no_token.status_code == 403
    assert "sending" in client.get("/admin/editions").text
    confirm = client.get(f"/admin/editions/{edition_id}/control/pause")
    assert "Yes, pause" in confirm.text
    done = client.post(f"/admin/editions/{edition_id}/control/pause",
                       data={"csrf": csrf_of(confirm.text)}, follow_redirects=False)
    assert done.status_code == 303
    from dispatch.outbox import edition_status
    assert edition_status(store, edition_id).state == "paused"
    code, out = cli(settings.root, "staff", "log")
    assert code == 0 and "edition pause" in out and edition_id in out


def test_the_email_frame_is_sandboxed(site: tuple[Settings, Store]) -> None:
    settings, store = site
    edition_id = _queue_digest(settings.root)
    client = client_for(settings, store)
    log_in(client)
    frame = client.get(f"/admin/editions/{edition_id}/email")
    assert frame.status_code == 200
    assert frame.headers["content-security-policy"].startswith("sandbox;")
    assert "<html" in frame.text.lower()


def test_the_calendar_matches_plan_json_firing_for_firing(
        site: tuple[Settings, Store], monkeypatch: pytest.MonkeyPatch) -> None:
    settings, store = site
    monkeypatch.setattr("dispatch.cli.schedule.now", lambda: NOW)
    until = (NOW.astimezone(settings.site.tz).date() + timedelta(days=30)).isoformat()
    code, out = cli(settings.root, "plan", "--until", until, "--json")
    assert code == 0, out
    planned = sorted((f["schedule"], f["fire_time"], f["action"]) for f in json.loads(out))
    assert len(planned) > 30  # the example site plans feeds, digests and posts
    client = client_for(settings, store)
    log_in(client)
    page = client.get("/admin/calendar").text
    shown = sorted(re.findall(r'data-schedule="([^"]+)" data-fire-time="([^"]+)" '
                              r'data-action="([^"]+)"', page))
    assert shown == planned


def test_the_week_view_shades_quiet_hours(site: tuple[Settings, Store]) -> None:
    settings, store = site
    (settings.root / "schedules.yaml").write_text(
        "timezone: Europe/London\nschedules:\n"
        "  - id: weekly-digest\n    kind: digest\n    cron: \"0 9 * * 1\"\n"
        "    audience: [weekly]\n    quiet_hours: \"21:00-07:00\"\n", encoding="utf-8")
    client = client_for(settings, store)
    log_in(client)
    page = client.get("/admin/calendar?view=week").text
    rows = re.findall(r"<tr><th scope=\"row\">(\d\d):00</th>(.*?)</tr>", page, re.S)
    quiet = {hour for hour, cells in rows if 'class="quiet"' in cells}
    assert quiet == {f"{h:02d}" for h in (*range(21, 24), *range(0, 7))}


def test_schedules_page_shows_problems_exactly_as_check(site: tuple[Settings, Store]) -> None:
    settings, store = site
    (settings.root / "schedules.yaml").write_text(
        "schedules:\n  - id: broken\n    kind: digest\n    cron: \"61 9 * * *\"\n"
        "    audience: [weekly]\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["check", "--root", str(settings.root)])
    check_lines = [line for line in result.output.splitlines()
                   if line.startswith("schedules.yaml")]
    assert check_lines
    client = client_for(settings, store)
    log_in(client)
    page = client.get("/admin/schedules").text
    assert "has errors" in page
    import html
    text = html.unescape(page)
    for line in check_lines:
        assert line in text


def test_subscriber_search_and_history(site: tuple[Settings, Store]) -> None:
    settings, store = site
    edition_id = _queue_digest(settings.root)
    assert cli(settings.root, "worker", "--burst")[0] == 0
    client = client_for(settings, store)
    log_in(client)
    from dispatch.subscribers import find_subscribers
    someone = find_subscribers(store, list_name="weekly")[0]
    found = client.get("/admin/subscribers", params={"q": someone.email.upper()[:6]}).text
    assert someone.email in found
    from dispatch.bounces.history import Event, insert_event
    from dispatch.bounces.model import Kind
    with store.write() as conn:
        insert_event(conn, store, Event(NOW, "mailbox", "<report-1@mx.test>", someone.email,
                                        someone.id, None, edition_id, Kind.SOFT, "4.2.2",
                                        "mailbox full", "counted"))
    history = client.get(f"/admin/subscribers/{someone.id}").text
    assert edition_id in history and "sent" in history
    assert "4.2.2" in history and "mailbox full" in history
    assert "&lt;report-1@mx.test&gt;" in history
    assert "Consent" in history and "import" in history  # synced from the list's CSV
    assert "List growth" in found and "<svg" in found


def test_test_send_reaches_only_the_given_address_and_is_not_an_edition(
        site: tuple[Settings, Store]) -> None:
    settings, store = site
    code, out = cli(settings.root, "send", "handwashing-and-colds", "--test",
                    "me@journal.test")
    assert code == 0, out
    messages = list((settings.state_dir / "maildir" / "new").glob("*.eml"))
    assert len(messages) == 1
    parsed = email.message_from_bytes(messages[0].read_bytes(), policy=policy.default)
    assert parsed["To"] == "me@journal.test"
    assert str(parsed["Subject"]).startswith("[TEST] ")
    code, listing = cli(settings.root, "editions")
    assert "no editions" in listing
    # Web: the same, audited.
    client = client_for(settings, store)
    log_in(client)
    form = client.get("/admin/test-send").text
    sent = client.post("/admin/test-send", data={"csrf": csrf_of(form), "what": "digest",
                                                 "to": "a@journal.test, b@journal.test"})
    assert sent.status_code == 200 and "[TEST]" in sent.text
    assert len(list((settings.state_dir / "maildir" / "new").glob("*.eml"))) == 3
    assert "no editions" in cli(settings.root, "editions")[1]
    assert any(e.action == "test send" for e in audit_entries(store))


def test_test_send_refuses_bad_addresses_without_sending(site: tuple[Settings, Store]) -> None:
    settings, _store = site
    code, out = cli(settings.root, "send", "handwashing-and-colds", "--test", "not-an-address")
    assert code == 1 and "not an email address" in out
    assert not (settings.state_dir / "maildir" / "new").exists() or not list(
        (settings.state_dir / "maildir" / "new").glob("*.eml"))


@pytest.mark.parametrize(("given", "expected"), [
    (["Ann Reader <ann@journal.test>"], ["ann@journal.test"]),
    (['"Lee, Jo" <jo@journal.test>, bob@journal.test'], ["jo@journal.test", "bob@journal.test"]),
    (["a@journal.test b@journal.test", "A@journal.test"], ["a@journal.test", "b@journal.test"]),
])
def test_test_addresses_take_the_forms_people_paste(given: list[str],
                                                    expected: list[str]) -> None:
    from dispatch.staff.testsend import test_addresses

    assert test_addresses(given) == expected


@pytest.mark.parametrize("given", ["Ann <not-an-address>", "Ann Reader", "<>"])
def test_test_addresses_refuse_what_is_not_an_address(given: str) -> None:
    from dispatch.errors import InputError
    from dispatch.staff.testsend import test_addresses

    with pytest.raises(InputError, match="not an email address"):
        test_addresses([given])


def test_dry_run_shows_a_made_up_reader_not_a_subscriber(site: tuple[Settings, Store]) -> None:
    settings, store = site
    from dispatch.subscribers import find_subscribers
    cli(settings.root, "run", "--once")  # syncs the example's CSV lists
    real = [s.email for s in find_subscribers(store, list_name="weekly")]
    assert real
    code, out = cli(settings.root, "send", "--digest", "--audience", "weekly", "--since",
                    "2026-10-01", "--dry-run")
    assert code == 0, out
    assert "sample.reader@example.org" in out
    assert not any(address in out for address in real)


def test_editions_lists_counts(site: tuple[Settings, Store]) -> None:
    settings, _store = site
    edition_id = _queue_digest(settings.root)
    cli(settings.root, "worker", "--burst")
    code, out = cli(settings.root, "editions", "--since", "2026-01-01")
    assert code == 0 and edition_id in out
    assert re.search(r"sent (\d+)/\1, waiting 0, failed 0, bounced 0", out), out


def test_staff_cli_adds_removes_and_logs(site: tuple[Settings, Store]) -> None:
    settings, _store = site
    code, out = cli(settings.root, "staff", "add", "second@journal.test", "--password-stdin",
                    input="another long password\n")
    assert code == 0 and "added" in out
    code, out = cli(settings.root, "staff", "add", "third@journal.test", "--password-stdin",
                    input="short\n")
    assert code == 1 and "at least 12 characters" in out
    code, out = cli(settings.root, "staff", "remove", "second@journal.test")
    assert code == 0
    code, out = cli(settings.root, "staff", "remove", "second@journal.test")
    assert code == 1 and "no staff account" in out
    code, out = cli(settings.root, "staff", "log")
    assert "staff add" in out and "staff remove" in out


def test_a_test_send_is_dkim_signed_like_the_real_send(
        example_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "dkim.pem"
    code, out = cli(example_site, "dkim", "keygen", "--selector", "news", "--out", str(key))
    assert code == 0, out
    record = next(line for line in out.splitlines() if " IN TXT " in line)
    with open(example_site / "dispatch.toml", "a", encoding="utf-8") as fh:
        fh.write('\n[dkim]\nselector = "news"\n')
    monkeypatch.setenv("DISPATCH_DKIM_KEY_FILE", str(key))
    code, out = cli(example_site, "send", "handwashing-and-colds", "--test", "me@journal.test")
    assert code == 0, out
    [message] = (example_site / ".dispatch" / "maildir" / "new").glob("*.eml")
    verified = CliRunner().invoke(main, ["dkim", "verify", str(message), "--txt", record])
    assert verified.exit_code == 0 and "pass: " in verified.output, verified.output


@pytest.mark.parametrize("path", [
    "/admin/subscribers/99999999999999999999999",   # beyond any database integer
    "/admin/subscribers/9223372036854775808",
    "/admin/editions/no.such.edition",
    "/admin/editions/a'b\"c<x>",
    "/admin/editions/a/b/c",
    "/admin/editions/..%2F..%2Fetc%2Fpasswd/email",
    "/admin/editions/no.such.edition/control/pause",
    "/admin/editions/no.such.edition/control/explode",
])
def test_odd_ids_in_the_address_are_a_plain_not_found(
        site: tuple[Settings, Store], path: str) -> None:
    settings, store = site
    client = client_for(settings, store)
    log_in(client)
    page = client.get(path)
    assert page.status_code == 404, (path, page.text[:300])
    assert "<x>" not in page.text  # whatever came in the address is escaped


def test_an_oversized_login_form_says_so_rather_than_expired(
        site: tuple[Settings, Store]) -> None:
    settings, store = site
    client = client_for(settings, store)
    token = login_form(client)
    page = client.post("/admin/login", data={"csrf": token, "email": STAFF,
                                             "password": "x" * 20_000})
    assert page.status_code == 413 and "too big" in page.text
    assert log_in(client).status_code == 303  # a normal login still works


def test_a_password_too_long_for_the_login_form_is_refused_at_staff_add(
        site: tuple[Settings, Store]) -> None:
    settings, store = site
    code, out = cli(settings.root, "staff", "add", "huge@journal.test", "--password-stdin",
                    input="p" * 100_000 + "\n")
    assert code == 1 and "at most 1024 characters" in out and "Traceback" not in out
    # The longest allowed one, in the widest characters, still logs in through the form.
    longest = "\U0001f511" * 1024
    code, out = cli(settings.root, "staff", "add", "wide@journal.test", "--password-stdin",
                    input=longest + "\n")
    assert code == 0, out
    client = client_for(settings, store)
    assert log_in(client, password=longest, who="wide@journal.test").status_code == 303


def test_check_does_not_call_a_key_file_an_article(example_site: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with open(example_site / "dispatch.toml", "a", encoding="utf-8") as fh:
        fh.write('\n[dkim]\nselector = "news"\n')
    (example_site / "notes.md").write_text("not a key\n", encoding="utf-8")
    monkeypatch.setenv("DISPATCH_DKIM_KEY_FILE", str(example_site / "notes.md"))
    code, out = cli(example_site, "check")
    assert code == 1
    assert "article(s) with errors" not in out
