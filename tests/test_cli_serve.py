"""`dispatch serve` says plainly when it cannot listen, before claiming to serve."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from dispatch.cli import main


def test_a_busy_port_is_a_clear_error_not_a_serving_line(site_root: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port), "--root",
                                           str(site_root)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "serving" not in result.output


def test_an_unknown_host_is_a_clear_error(site_root: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--host", "no-such-host.invalid", "--root",
                                       str(site_root)])
    assert result.exit_code == 1 and "not an address of this machine" in result.output
