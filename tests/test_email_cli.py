"""``dispatch preview`` and ``dispatch check`` on email templates."""

from __future__ import annotations

import email
import socket
import threading
import urllib.request
from email import policy
from pathlib import Path

from click.testing import CliRunner

from dispatch.cli import main
from dispatch.cli.email import preview_server
from email_fixtures import make_site, write


def test_preview_article_writes_html_text_and_eml(tmp_path: Path) -> None:
    make_site(tmp_path / "s")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["preview", "salt", "--root", str(tmp_path / "s"),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    for suffix in ("html", "txt", "eml"):
        path = out / f"salt.{suffix}"
        assert str(path) in result.output and path.stat().st_size > 0
    html = (out / "salt.html").read_text(encoding="utf-8")
    assert "Salt &amp; the heart" in html and "sample.reader@example.org" in html
    assert "DISPATCHx" not in html and "DISPATCHx" not in (out / "salt.txt").read_text()
    message = email.message_from_bytes((out / "salt.eml").read_bytes(), policy=policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (out / "index.html").exists()


def test_preview_digest_since_and_default_folder(tmp_path: Path) -> None:
    root = tmp_path / "s"
    make_site(root)
    result = CliRunner().invoke(main, ["preview", "--digest", "--since", "2026-10-02",
                                       "--root", str(root)])
    assert result.exit_code == 0, result.output
    text = (root / ".dispatch" / "preview" / "digest.txt").read_text(encoding="utf-8")
    assert "Walking after meals" in text and "Salt & the heart" not in text
    assert "Hi Sam," in text


def test_preview_mistakes_are_clean_errors(tmp_path: Path) -> None:
    root = tmp_path / "s"
    make_site(root)
    runner = CliRunner()
    for args, expected in ((["preview", "nope"], "no article with slug 'nope'"),
                           (["preview", "--digest", "--since", "yesterday"], "not a date"),
                           (["preview", "--digest", "--since", "2099-01-01"], "no articles"),
                           (["preview"], "give a SLUG")):
        result = runner.invoke(main, [*args, "--root", str(root)])
        assert result.exit_code == 1, result.output
        assert expected in result.output
        assert "Traceback" not in result.output


def test_preview_template_error_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "s"
    make_site(root)
    write(root, "templates/email/article.html", "{% extends 'base.html' %}\n{% block content %"
          "}\n{{ article.title }\n{% endblock %}\n")
    result = CliRunner().invoke(main, ["preview", "salt", "--root", str(root)])
    assert result.exit_code == 1
    assert "templates/email/article.html:3: template: template syntax error" in result.output
    check = CliRunner().invoke(main, ["check", "--root", str(root)])
    assert check.exit_code == 1 and "templates/email/article.html:3" in check.output


def test_preview_server_serves_the_index_on_loopback(tmp_path: Path) -> None:
    root = tmp_path / "s"
    make_site(root)
    out = tmp_path / "out"
    CliRunner().invoke(main, ["preview", "salt", "--root", str(root), "--out", str(out)])
    server = preview_server(out, 0)
    assert server.server_address[0] == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        with urllib.request.urlopen(base, timeout=30) as response:
            index = response.read().decode()
        assert 'href="salt.html"' in index
        with urllib.request.urlopen(base + "salt.html", timeout=30) as response:
            assert b"Salt &amp; the heart" in response.read()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_preview_serve_on_a_port_in_use_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    root = tmp_path / "s"
    make_site(root)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["preview", "--serve", "--port", str(port),
                                           "--out", str(tmp_path / "out"), "--root", str(root)])
    assert isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.output
