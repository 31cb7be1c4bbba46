"""End to end through a real MTA: dispatch sends an edition over SMTP to a
private Postfix instance; one reader's address does not exist, so Postfix
itself writes the RFC 3464 DSN to the message's VERP return path and
delivers it into the bounce maildir. Beside it, through the same Postfix,
arrive an ARF complaint about a second reader's message, a mailto
unsubscribe from a third, and a vacation reply from a fourth.
``dispatch bounces process`` must bounce, complain and unsubscribe exactly
those readers and leave the vacationer alone.

Marked ``mta``: it needs Debian's postfix package (installed by .ci/run) and
root, and says so when it skips.
"""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from tests.bounce_kit import arf_report, mailto_unsubscribe, sent_from_raw, vacation_reply
from tests.mta_kit import postfix_unavailable, private_postfix
from tests.web_kit import SECRET

from dispatch.cli import main
from dispatch.store import open_store
from dispatch.store.schema import bounce_events
from dispatch.subscribers import get_subscriber

pytestmark = pytest.mark.mta

GONE = "nosuchuser@readers.test"
READERS = {"ann@readers.test": "ann", "bob@readers.test": "bob", "cy@readers.test": "cy"}
ANN, BOB, CY = READERS


def test_postfix_dsn_arf_and_mailto_change_the_right_readers_and_a_vacation_nobody(
        example_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    why = postfix_unavailable()
    if why:
        pytest.skip(why)
    mailboxes = {"bounces@bounces.test": "bounces", "unsubscribe@bounces.test": "bounces",
                 **READERS}
    with private_postfix(mailboxes) as postfix:
        db = f"sqlite:///{tmp_path / 'mta.db'}"
        monkeypatch.setenv("DISPATCH_SECRET_KEY", SECRET)
        monkeypatch.setenv("DISPATCH_DATABASE_URL", db)
        monkeypatch.setenv("DISPATCH_SMTP_URL", f"smtp://127.0.0.1:{postfix.port}?tls=none")
        monkeypatch.delenv("DISPATCH_BOUNCE_MAILBOX", raising=False)
        toml = example_site / "dispatch.toml"
        toml.write_text(toml.read_text(encoding="utf-8").replace(
            "[email]\n", '[email]\nunsubscribe_mailto = "unsubscribe@bounces.test"\n', 1)
            + '\n[bounces]\naddress = "bounces@bounces.test"\n', encoding="utf-8")
        root = ["--root", str(example_site)]
        runner = CliRunner()
        for address in (GONE, *READERS):
            added = runner.invoke(main, ["subscribers", "add", address, "--list", "mta", *root])
            assert added.exit_code == 0, added.output
        sent = runner.invoke(main, ["send", "sleep-and-blood-pressure", "--audience", "mta",
                                    "--deliver", *root])
        assert sent.exit_code == 0, sent.output
        assert "sent 4" in sent.output, sent.output  # Postfix accepted all four

        # Postfix delivered three and wrote a DSN for the fourth.
        delivered = {address: sent_from_raw(postfix.wait_for(name, 1)[0].read_bytes())
                     for address, name in READERS.items()}
        dsn = postfix.wait_for("bounces", 1)[0].read_bytes()
        assert b"report-type=delivery-status" in dsn and b"Status: 5.1.1" in dsn
        for address, one in delivered.items():
            assert one.email == address and one.return_path.startswith("bounces+")

        # The other reports come through the same MTA, as they would in life.
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as smtp:
            smtp.sendmail("fbl@fbl.example.com", ["bounces@bounces.test"],
                          arf_report(delivered[BOB]))
            mailto = delivered[ANN].mailto.split("?")[0]
            assert mailto.startswith("unsubscribe+")
            smtp.sendmail(ANN, [mailto], mailto_unsubscribe(delivered[ANN]))
            # RFC 3834: an automatic reply goes to the return path, from <>.
            smtp.sendmail("", [delivered[CY].return_path],
                          vacation_reply(delivered[CY], "auto-submitted"))
        arrived = postfix.wait_for("bounces", 4)
        assert len(arrived) == 4

        monkeypatch.setenv("DISPATCH_BOUNCE_MAILBOX", f"maildir://{postfix.maildir('bounces')}")
        result = runner.invoke(main, ["bounces", "process", *root])
        assert result.exit_code == 0, result.output
        assert "4 message(s) read, 4 recognised, 0 left untouched" in result.output

        store = open_store(db)
        try:
            status = {a: getattr(get_subscriber(store, a), "status", None)
                      for a in (GONE, *READERS)}
            assert status == {GONE: "bounced", BOB: "complained", ANN: "unsubscribed",
                              CY: "active"}
            with store.read() as conn:
                rows = {r.email: r for r in conn.execute(select(bounce_events))}
            hard = rows[GONE]
            assert hard.kind == "hard" and hard.status_code == "5.1.1"
            assert "unknown user" in hard.diagnostic
            assert hard.report_id.endswith("@mx.dispatch-test.localdomain>")
            assert rows[CY].kind == "autoreply"
        finally:
            store.dispose()
        # Recognised reports were moved, none deleted.
        assert not list((postfix.maildir("bounces") / "new").iterdir())
        moved = list((postfix.maildir("bounces") / ".dispatch-processed" / "cur").iterdir())
        assert len(moved) == 4
