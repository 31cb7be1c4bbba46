"""Delivery at 10 ms round trip: dispatch against a stock smtplib blaster, with and
without PIPELINING and CHUNKING on the server.

Run:  .venv/bin/python bench/smtp_rtt.py [--delay-ms 5] [--per-connection 100]
                                         [--connections 1,4,16] [--no-postfix]
                                         [--rounds 1] [--only neither]
                                         [--harness-as-before | --asyncio-proxy] [--cpu]

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

The harness takes its share of a small machine, the same for every client,
and what it spends is not left to the clients. Measured per message at 16
connections against Postfix with ``--cpu`` (2 cores, dispatch sending):
Postfix about 1 ms of CPU, the earlier proxy 0.22-0.31, dispatch 0.5. So
the harness spends as little as it honestly can:

- the proxy is a plain selector loop (one FIFO, since every direction has the
  same delay) instead of asyncio protocols and a timer per direction, and
  reads 64 KiB at a time (asyncio reads 256 KiB: an mmap, mremap and munmap
  per read); the delay and the order of bytes are unchanged;
- Postfix's queue is on a journaled ext4 (see ``Postfix._journaled``) rather
  than a root file system without a journal, whose inode allocator scans past
  every queue file freed in the last minute;
- Postfix does not rewrite header addresses for the proxied clients, as for
  any client not on its host.

Postfix still queues every message, fsync and all, and logs each one.
``--harness-as-before`` restores the earlier harness (asyncio proxy, queue in
the temporary directory, header addresses rewritten) for comparison.

With ``--rounds N`` each cell is measured N times, the three senders taking
turns, and the medians are compared; the last column gives the lowest and
highest ratio of the rounds, so a tie within noise shows as a range that
straddles the goal.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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
    proxy_pid: int
    server_pid: int  # the sink, or Postfix's master with every process under it


_TICK = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) of process ``root``, the processes under it,
    and those of them already ended and reaped (Postfix's master reaps its
    services, which end after max_use clients)."""
    children: dict[int, list[int]] = {}
    own: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        reaped = int(fields[13]) + int(fields[14]) if pid == root else 0
        own[pid] = (int(fields[11]) + int(fields[12]) + reaped) / _TICK
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += own.get(pid, 0.0)
        todo.extend(children.get(pid, ()))
    return total


class CpuSplit:
    """Where the CPU went while one sender ran: itself (this process), the
    proxy and the server, in ms per message. dispatch's own share includes
    filling its outbox and queueing the edition before it sends."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.split: dict[str, list[tuple[float, float, float]]] = {}

    def _now(self) -> tuple[float, float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return (usage.ru_utime + usage.ru_stime, cpu_seconds(self.target.proxy_pid),
                cpu_seconds(self.target.server_pid))

    def measure(self, sender: str, n: int, run: Callable[..., T], *args: Any,
                **kwargs: Any) -> T:
        before = self._now()
        result = run(*args, **kwargs)
        after = self._now()
        self.split.setdefault(sender, []).append(
            tuple(1000 * (b - a) / n for a, b in zip(before, after, strict=True)))  # type: ignore[arg-type]
        return result

    def line(self) -> str:
        return "  CPU ms a message (sender / proxy / server, median): " + "; ".join(
            f"{sender} " + " / ".join(f"{statistics.median(s[i] for s in rows):.2f}"
                                      for i in range(3))
            for sender, rows in self.split.items())


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


REMOTE_CLIENT = """\
# The clients reach Postfix from 127.0.0.1 only because of the proxy; they
# stand for a sender 10 ms away, whose header addresses Postfix leaves alone
# (its default for a client not on this host: permit_inet_interfaces).
local_header_rewrite_clients =
"""

POSTFIX_LISTENERS = (("PIPELINING + CHUNKING", "", 1, 3.0),
                     ("PIPELINING", "chunking", 2, 1.8),
                     ("neither", "chunking,pipelining", 4, 1.0))


class Postfix:
    """A private Postfix instance under ``root``: its own configuration, queue
    and listeners on 127.0.0.1; the system's configuration is not touched."""

    def __init__(self, root: Path, *, as_before: bool = False) -> None:
        self.root = root
        self.as_before = as_before  # queue in the temporary directory, headers rewritten
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: list[int] = []
        self.queue_fs = "the temporary directory"
        self.mounted: Path | None = None

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
        if not self.as_before:
            self._journaled(queue)
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
""" + ("" if self.as_before else REMOTE_CLIENT))
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
        if self.mounted is not None:
            subprocess.run(["umount", "--lazy", str(self.mounted)], capture_output=True,
                           check=False)
        shutil.rmtree(self.root.parent, ignore_errors=True)

    def _journaled(self, queue: Path) -> None:
        """Mount a fresh ext4 file system, journal and all (mkfs.ext4's
        defaults), on ``queue``: a file of the same disk behind a loop device.

        The temporary directory may sit on a file system without a journal
        (this machine's root is one); there ext4 will not hand out an inode
        freed in the last minute or more, and a Postfix queue frees one for
        every message, so each new queue file costs a scan past thousands of
        them, growing through the run (a third of cleanup's CPU at 16
        connections, more with every round). A mail server's queue lives on a
        journaled file system; every file is still written and fsync'd to the
        disk. Where the mount fails the queue stays in the directory."""
        image = self.root.parent / "queue.ext4"
        with image.open("wb") as f:
            f.truncate(1 << 30)  # sparse; a delivered message's file is removed
        for cmd in (["mkfs.ext4", "-q", "-F", str(image)],
                    ["mount", "-o", "loop", str(image), str(queue)]):
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                self.queue_fs = (f"the temporary directory ({cmd[0]} failed: "
                                 f"{done.stderr.strip()[:80]})")
                return
        self.mounted = queue
        self.queue_fs = "a journaled ext4 on a loop device"


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
    parser.add_argument("--asyncio-proxy", action="store_true",
                        help="the earlier proxy (asyncio protocols) instead of the lean one")
    parser.add_argument("--harness-as-before", action="store_true",
                        help="the earlier harness: the asyncio proxy, Postfix's queue in the "
                             "temporary directory, header addresses rewritten")
    parser.add_argument("--cpu", action="store_true",
                        help="under each cell, the CPU each sender, the proxy and the server "
                             "spent per message (dispatch's with filling its outbox)")
    args = parser.parse_args()
    if args.harness_as_before:
        args.asyncio_proxy = True
    proxy_flags = ["--asyncio"] if args.asyncio_proxy else []
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
                sink_pid = procs.procs[-1].pid
                proxy = procs.start("proxy", "--quickack", "--delay-ms", str(args.delay_ms),
                                    "--upstream", str(sink), *proxy_flags)
                targets.append(Target(label, proxy, trips, goal, procs.procs[-1].pid,
                                      sink_pid))
            skipped = "--no-postfix" if args.no_postfix else Postfix.unavailable()
            if skipped is None:
                # Its own directory, readable by the postfix user (the bench's
                # temporary directory is private to root).
                postfix = Postfix(Path(tempfile.mkdtemp(prefix="dispatch-postfix-")) / "pf",
                                  as_before=args.harness_as_before)
                postfix.root.parent.chmod(0o755)
                postfix.start()
                version = subprocess.run(["postconf", "-d", "-h", "mail_version"],
                                         capture_output=True, text=True).stdout.strip()
                for port, (label, _, trips, goal) in zip(postfix.ports, POSTFIX_LISTENERS,
                                                         strict=True):
                    proxy = procs.start("proxy", "--quickack", "--delay-ms", str(args.delay_ms),
                                        "--upstream", str(port), *proxy_flags)
                    assert postfix.proc is not None
                    targets.append(Target(f"Postfix {version}, {label}", proxy, trips, goal,
                                          procs.procs[-1].pid, postfix.proc.pid))
            print(f"round trip {rtt * 1000:g} ms (proxy: {args.delay_ms:g} ms each way); "
                  f"message {size / 1024:.1f} KB; {args.per_connection} messages per "
                  f"connection per measurement")
            print("proxy: " + ("asyncio (the earlier one)" if args.asyncio_proxy
                               else "a selector loop"))
            if skipped is not None:
                print(f"Postfix: skipped ({skipped})")
            elif postfix is not None:
                print(f"Postfix's queue: {postfix.queue_fs}")
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
                    cpu = CpuSplit(target)
                    for round_ in range(args.rounds):
                        tag = f"{target.port}-{conns}-{round_}"
                        rate, steady = cpu.measure("dispatch", n, dispatch_rates, tmp,
                                                   settings, edition, n, target.port, conns,
                                                   tag)
                        steadies.append(steady)
                        e2es.append(rate)
                        bases.append(cpu.measure("blaster", n, blaster, target.port,
                                                 messages[:n], conns, sender))
                        owns.append(cpu.measure("own client", n, blaster, target.port,
                                                messages[:n], conns, sender, own=True))
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
                    if args.cpu:
                        print(cpu.line(), flush=True)
        finally:
            procs.stop()
            if postfix is not None:
                postfix.stop()


if __name__ == "__main__":
    main()
