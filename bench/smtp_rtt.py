"""Delivery at 10 ms round trip: dispatch against a stock smtplib blaster, with and
without PIPELINING and CHUNKING on the server.

Run:  .venv/bin/python bench/smtp_rtt.py [--delay-ms 5] [--per-connection 100]
                                         [--connections 1,4,16] [--no-postfix]
                                         [--rounds 1] [--only neither]

Every server sits behind a TCP proxy on 127.0.0.1 that delays each direction
by ``--delay-ms`` (5 ms: a 10 ms round trip; bench/rtt_servers.py). The servers:

- an aiosmtpd sink advertising PIPELINING + CHUNKING (BDAT added by the
  bench), PIPELINING only, and neither;
- a private Postfix instance (the system's ``postfix`` package; installed
  with apt when missing and the bench runs as root — the system's own mail
  service is neither configured nor started) with three listeners: as
  shipped (PIPELINING + CHUNKING), ``smtpd_discard_ehlo_keywords=chunking``,
  and ``=chunking,pipelining``. Messages go to Postfix's ``discard``
  transport, after Postfix has queued them (written and fsync'd) like any mail.

For each server and each connection count, same run, same proxy: dispatch
end to end (a queued edition → every message accepted, outbox bookkeeping
included) and the baseline, stock ``smtplib`` with the same pre-built
messages over the same number of reused connections (four round trips a
message: MAIL, RCPT, DATA, end of data). Goals per connection: at least
1.8x the blaster against a PIPELINING server, 3x with CHUNKING too, never
below it against a server offering neither.

A third column, "own client", sends the same pre-built messages with
dispatch's SMTP client and no outbox: what the server and the proxy allow
at dispatch's round trips, whatever dispatch's bookkeeping does. Where it
is far under the ceiling, the machine (not the protocol) is the bound.

With ``--rounds N`` each cell is measured N times, the three senders taking
turns, and the medians are compared; the last column gives the lowest and
highest ratio of the rounds, so a tie within noise shows as a range that
straddles the goal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from delivery import blaster, end_to_end, make_site, prebuilt  # noqa: E402


def dispatch_rates(tmp: Path, settings: object, edition: object, n: int, port: int,
                   connections: int, tag: str) -> tuple[float, float]:
    """dispatch end to end (queued edition → all accepted), and its steady rate
    between the first and the last accepted message (start-up left out: a
    worker process pays it once, not per message)."""
    ticks: list[float] = []
    rate, _sent = end_to_end(tmp, settings, edition, n, port, connections, tag,
                             progress=lambda done, total: ticks.append(time.perf_counter()))
    return rate, (len(ticks) - 1) / (ticks[-1] - ticks[0])


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    trips: int  # dispatch's round trips per message against it
    goal: float  # x the blaster


def _ready(proc: subprocess.Popen[str]) -> int:
    assert proc.stdout is not None
    words = proc.stdout.readline().split()
    if len(words) != 2 or words[0] != "READY":
        proc.kill()
        raise RuntimeError("a benchmark server did not start")
    return int(words[1])


class Processes:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *args: str) -> int:
        proc = subprocess.Popen([sys.executable, str(HERE / "rtt_servers.py"), *args],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return _ready(proc)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)


POSTFIX_LISTENERS = (("PIPELINING + CHUNKING", "", 1, 3.0),
                     ("PIPELINING", "chunking", 2, 1.8),
                     ("neither", "chunking,pipelining", 4, 1.0))


class Postfix:
    """A private Postfix instance under ``root``: its own configuration, queue
    and listeners on 127.0.0.1; the system's configuration is not touched."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: list[int] = []

    @staticmethod
    def unavailable() -> str | None:
        if shutil.which("postfix") is None and os.geteuid() == 0 and shutil.which("apt-get"):
            # The image's policy-rc.d (if any) keeps the system service from
            # starting; this bench runs its own instance anyway.
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "install", "-y", "-qq", "postfix"], env=env,
                           capture_output=True, check=False)
        if shutil.which("postfix") is None:
            return "the postfix package is not installed (apt-get install postfix, as root)"
        if os.geteuid() != 0:
            return "a private Postfix instance must be started as root"
        return None

    def start(self) -> None:
        from socket import socket

        etc, queue, data = self.root / "etc", self.root / "queue", self.root / "data"
        for d in (etc, queue, data):
            d.mkdir(parents=True)
        shutil.chown(data, "postfix")
        for _ in POSTFIX_LISTENERS:
            with socket() as s:
                s.bind(("127.0.0.1", 0))
                self.ports.append(int(s.getsockname()[1]))
        shipped = Path("/etc/postfix/master.cf").read_text().splitlines()
        services = []
        for line in shipped:
            fields = line.split()
            if not fields or line[0] in "# \t" or fields[:2] == ["smtp", "inet"]:
                continue
            if len(fields) > 4 and fields[4] == "y":
                fields[4] = "n"  # no chroot: this instance has no chroot tree
            services.append(" ".join(fields))
        for port, (_, discard, _, _) in zip(self.ports, POSTFIX_LISTENERS, strict=True):
            option = f" -o smtpd_discard_ehlo_keywords={discard}" if discard else ""
            services.append(f"127.0.0.1:{port} inet n - n - - smtpd{option}")
        (etc / "master.cf").write_text("\n".join(services) + "\n")
        (etc / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
myhostname = bench.localdomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
default_transport = discard
relay_transport = discard
local_transport = discard
maillog_file = /dev/stdout
alias_maps =
alias_database =
""")
        log = (self.root / "maillog").open("wb")
        self.proc = subprocess.Popen(["postfix", "-c", str(etc), "start-fg"], stdout=log,
                                     stderr=subprocess.STDOUT)
        from dispatch.delivery.smtp_client import SmtpClient, SmtpError

        for _ in range(600):  # up to ~30 s for the master to open its listeners
            try:
                client = SmtpClient("127.0.0.1", self.ports[-1], timeout=2, helo="bench.example")
                client.connect()
                client.quit()
                return
            except SmtpError:
                if self.proc.poll() is not None:
                    break
                import time

                time.sleep(0.05)
        raise RuntimeError(f"Postfix did not start; see {self.root / 'maillog'}")

    def stop(self) -> None:
        if self.proc is not None:
            subprocess.run(["postfix", "-c", str(self.root / "etc"), "stop"],
                           capture_output=True, check=False)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.root.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay-ms", type=float, default=5.0,
                        help="delay per direction (the round trip is twice this)")
    parser.add_argument("--per-connection", type=int, default=100,
                        help="messages per connection in each measurement")
    parser.add_argument("--connections", default="1,4,16")
    parser.add_argument("--no-postfix", action="store_true")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure each cell this many times, senders taking turns")
    parser.add_argument("--only", default="",
                        help="only servers whose label contains this (e.g. neither)")
    args = parser.parse_args()
    counts = [int(c) for c in args.connections.split(",")]
    rtt = 2 * args.delay_ms / 1000
    os.environ.setdefault("DISPATCH_SECRET_KEY", "bench-key")
    from dispatch.render import render_article_edition

    procs = Processes()
    postfix: Postfix | None = None
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        settings, article = make_site(tmp)
        edition = render_article_edition(settings, article, "bench")  # type: ignore[arg-type]
        messages = prebuilt(settings, edition, max(counts) * args.per_connection)
        sender = settings.sender.email  # type: ignore[attr-defined]
        size = sum(len(m) for _, m in messages) / len(messages)
        try:
            targets = []
            for label, flags, trips, goal in (
                    ("aiosmtpd, PIPELINING + CHUNKING", ["--chunking"], 1, 3.0),
                    ("aiosmtpd, PIPELINING", [], 2, 1.8),
                    ("aiosmtpd, neither", ["--no-pipelining"], 4, 1.0)):
                sink = procs.start("sink", *flags)
                proxy = procs.start("proxy", "--quickack", "--delay-ms", str(args.delay_ms),
                                    "--upstream", str(sink))
                targets.append(Target(label, proxy, trips, goal))
            skipped = "--no-postfix" if args.no_postfix else Postfix.unavailable()
            if skipped is None:
                # Its own directory, readable by the postfix user (the bench's
                # temporary directory is private to root).
                postfix = Postfix(Path(tempfile.mkdtemp(prefix="dispatch-postfix-")) / "pf")
                postfix.root.parent.chmod(0o755)
                postfix.start()
                version = subprocess.run(["postconf", "-d", "-h", "mail_version"],
                                         capture_output=True, text=True).stdout.strip()
                for port, (label, _, trips, goal) in zip(postfix.ports, POSTFIX_LISTENERS,
                                                         strict=True):
                    proxy = procs.start("proxy", "--quickack", "--delay-ms", str(args.delay_ms),
                                        "--upstream", str(port))
                    targets.append(Target(f"Postfix {version}, {label}", proxy, trips, goal))
            print(f"round trip {rtt * 1000:g} ms (proxy: {args.delay_ms:g} ms each way); "
                  f"message {size / 1024:.1f} KB; {args.per_connection} messages per "
                  f"connection per measurement")
            if skipped is not None:
                print(f"Postfix: skipped ({skipped})")
            print(f"{'server':36} {'conns':>5} {'dispatch':>10} {'(e2e)':>10} {'blaster':>10}"
                  f" {'ratio':>7} {'goal':>6}        {'own client':>10}  ceilings "
                  "(dispatch / blaster)" + ("  ratio range" if args.rounds > 1 else ""))
            print("dispatch: steady rate, first to last accepted message (ratio and goal "
                  "use it); e2e: from the call to deliver(), start-up included")
            if args.rounds > 1:
                print(f"each figure: the median of {args.rounds} rounds, senders taking turns")
            for target in targets:
                if args.only not in target.name:
                    continue
                for conns in counts:
                    n = conns * args.per_connection
                    steadies, e2es, bases, owns = [], [], [], []
                    for round_ in range(args.rounds):
                        tag = f"{target.port}-{conns}-{round_}"
                        rate, steady = dispatch_rates(tmp, settings, edition, n, target.port,
                                                      conns, tag)
                        steadies.append(steady)
                        e2es.append(rate)
                        bases.append(blaster(target.port, messages[:n], conns, sender))
                        owns.append(blaster(target.port, messages[:n], conns, sender,
                                            own=True))
                    steady, rate = statistics.median(steadies), statistics.median(e2es)
                    base, own = statistics.median(bases), statistics.median(owns)
                    ratio = steady / base
                    ok = "OK" if ratio >= target.goal else "MISSED"
                    spread = ""
                    if args.rounds > 1:
                        each = [s / b for s, b in zip(steadies, bases, strict=True)]
                        spread = f"  {min(each):.2f}-{max(each):.2f}x"
                    print(f"{target.name:36} {conns:5d} {steady:8,.1f}/s {rate:8,.1f}/s "
                          f"{base:8,.1f}/s {ratio:6.2f}x {target.goal:5.1f}x {ok:6} "
                          f"{own:8,.1f}/s  "
                          f"{conns / (target.trips * rtt):,.0f} / {conns / (4 * rtt):,.0f}"
                          f"{spread}", flush=True)
        finally:
            procs.stop()
            if postfix is not None:
                postfix.stop()


if __name__ == "__main__":
    main()
