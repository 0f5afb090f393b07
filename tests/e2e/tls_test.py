#!/usr/bin/env python3
"""TLS and mTLS of hubmetricsd's gRPC API, against real processes; and the exporter's
HTTP server with idle connections open.

Certificates are made here with the openssl command: a CA, a server certificate for
127.0.0.1 and localhost (subjectAltName), a client certificate, and a second,
unrelated CA. hubmetricsd ingests a small loadgen file; then

  flags    the daemon refuses to start (exit 2, a message naming the flag and the file)
           with only --tls_cert_file, an empty key file, a key of another certificate,
           or --tls_client_ca_file without a certificate; the exporter likewise;
  tls      hubctl over TLS with the right CA gets the right stats; a plaintext hubctl
           and one trusting the other CA are refused, each for its own reason (hubctl's
           message and the daemon's handshake error);
  mtls     with --tls_client_ca_file: hubctl without a client certificate is refused,
           with one it works; the exporter polls through mTLS and its /metrics shows
           the daemon's counts; an exporter without a client certificate is refused;
  web      the exporter's own /metrics over HTTPS (--web_tls_cert_file, --web_tls_key_file):
           a scrape trusting the CA gets the daemon's counts, one trusting another CA and
           a plain-HTTP request are refused; with --web_tls_client_ca_file a scrape
           without a client certificate is refused (403) and one with it is answered;
           bad --web_tls_* combinations stop the exporter (exit 2);
  idle     the exporter's /metrics answers at once while 64 idle connections are open
           (its HTTP server is one event loop: an idle connection costs a socket, not a
           thread), and closes an idle connection after --web_idle_timeout.

Every server listens on 127.0.0.1. Readiness is awaited by polling a condition with a
generous deadline; no sleep decides an outcome.

  tls_test.py --bin_dir BUILD/services [--only flags,tls,mtls,web,idle] [--keep]

Prints "N passed, N failed" last; exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from e2e_test import Checker, free_port, u64  # noqa: E402

DEADLINE_S = 60  # for any one condition to come true
EVENTS = 2000
CHECKS = ("flags", "tls", "mtls", "web", "idle")


def log(msg: str) -> None:
    print(f"[tls {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_for(predicate, timeout: float = DEADLINE_S, interval: float = 0.2):
    """The first true value of predicate(), or None when the deadline passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# ---------------------------------------------------------------- certificates

def make_certs(d: str) -> dict[str, str]:
    """PEM files in `d`: ca, server (SAN 127.0.0.1, localhost), client, other-ca."""

    def openssl(*argv: str) -> None:
        subprocess.run(["openssl", *argv], cwd=d, check=True, capture_output=True)

    def ca(name: str) -> None:
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-days", "2", "-subj", f"/CN=hubmetrics test {name}",
                "-keyout", f"{name}.key", "-out", f"{name}.crt")

    def leaf(name: str, issuer: str, extensions: str) -> None:
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-subj", f"/CN=hubmetrics test {name}", "-keyout", f"{name}.key", "-out", f"{name}.csr")
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(extensions + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.crt", "-CAkey", f"{issuer}.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt")

    ca("ca")
    ca("other-ca")
    leaf("server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth")
    leaf("client", "ca", "extendedKeyUsage=clientAuth")
    open(os.path.join(d, "empty.key"), "w").close()
    return {n: os.path.join(d, n) for n in os.listdir(d)}


# ---------------------------------------------------------------- processes

class Run:
    """A finished command: exit code and output."""

    def __init__(self, argv: list[str], timeout: float = DEADLINE_S):
        try:
            p = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
            self.code, self.out, self.err = p.returncode, p.stdout.decode(errors="replace"), \
                p.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired:
            self.code, self.out, self.err = None, "", f"timed out after {timeout}s"
        self.argv = argv

    def detail(self) -> list[str]:
        return [" ".join(self.argv), f"exit {self.code}", f"stderr: {self.err.strip()[:600]}"]


class Servers:
    """Every process started here, stopped whatever happens; logs in `work`."""

    def __init__(self, work: str):
        self.work = work
        self.procs: dict[str, subprocess.Popen] = {}

    def log_path(self, name: str) -> str:
        return os.path.join(self.work, f"{name}.log")

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        with open(self.log_path(name), "ab") as logf:
            p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs[name] = p
        return p

    def log(self, name: str) -> str:
        with open(self.log_path(name), errors="replace") as f:
            return f.read()

    def stop(self, name: str) -> None:
        p = self.procs.get(name)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)


def http_get(url: str, timeout: float = DEADLINE_S, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as r:
            return r.status, r.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


def metric(body: str, name: str, labels: str = "") -> float | None:
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


class Env:
    def __init__(self, args, work: str, certs: dict[str, str], servers: Servers, c: Checker):
        self.daemon_bin = os.path.join(args.bin_dir, "hubmetricsd", "hubmetricsd")
        self.hubctl_bin = os.path.join(args.bin_dir, "hubctl", "hubctl")
        self.exporter_bin = os.path.join(args.bin_dir, "exporter", "hubmetrics-exporter")
        self.loadgen_bin = os.path.join(args.bin_dir, "loadgen", "loadgen")
        self.work = work
        self.certs = certs
        self.servers = servers
        self.c = c
        self.events = os.path.join(work, "events.ndjson")
        self.models = os.path.join(work, "models.ndjson")

    def cert(self, name: str) -> str:
        return self.certs[name]

    def daemon_argv(self, name: str, port: int, *tls: str) -> list[str]:
        return [self.daemon_bin, f"--state_dir={os.path.join(self.work, 'state-' + name)}",
                f"--grpc_listen=127.0.0.1:{port}", f"--events_file={self.events}",
                f"--models_file={self.models}", *tls]

    def server_tls(self, client_ca: bool = False) -> list[str]:
        flags = [f"--tls_cert_file={self.cert('server.crt')}", f"--tls_key_file={self.cert('server.key')}"]
        if client_ca:
            flags.append(f"--tls_client_ca_file={self.cert('ca.crt')}")
        return flags

    def client_tls(self, ca: str = "ca.crt", client_cert: bool = False) -> list[str]:
        flags = [f"--tls_ca_file={self.cert(ca)}"]
        if client_cert:
            flags += [f"--tls_cert_file={self.cert('client.crt')}",
                      f"--tls_key_file={self.cert('client.key')}"]
        return flags

    def hubctl(self, port: int, *flags: str, host: str = "127.0.0.1") -> Run:
        return Run([self.hubctl_bin, f"--addr={host}:{port}", "--json", "--timeout=20s", *flags, "stats"])

    def start_daemon(self, name: str, *tls: str) -> int:
        """Starts a daemon named `name` with the flags `tls`; returns its port."""
        port = free_port()
        self.servers.start(name, self.daemon_argv(name, port, *tls))
        return port

    def wait_exhausted(self, name: str, port: int, *client: str) -> dict | None:
        """The daemon's stats once it has read the whole events file, asked by a hubctl
        with the flags `client`; None (a failed check) if that does not happen."""
        def ready():
            if self.servers.procs[name].poll() is not None:
                return {"exited": self.servers.procs[name].returncode}
            r = self.hubctl(port, *client)
            if r.code == 0:
                stats = json.loads(r.out)
                if stats.get("source_exhausted"):
                    return stats
            return None

        stats = wait_for(ready)
        if stats is None or "exited" in stats:
            self.c.check(False, f"[{name}] hubmetricsd serves and reads the whole file",
                         [f"{stats}", self.servers.log(name)[-1500:]])
            return None
        return stats

    def wait_log(self, name: str, phrase: str, before: int) -> bool:
        """Whether `phrase` appears in the log of `name` more than `before` times."""
        return bool(wait_for(lambda: self.servers.log(name).count(phrase) > before))


# ---------------------------------------------------------------- checks

def check_flags(e: Env) -> None:
    c = e.c
    port = free_port()

    def refused(what: str, tls: list[str], names: list[str]) -> None:
        r = Run(e.daemon_argv("flags", port, *tls))
        c.check(r.code == 2 and all(n in r.err for n in names),
                f"[flags] hubmetricsd with {what} refuses to start (exit 2, naming {', '.join(names)})",
                r.detail())

    refused("only --tls_cert_file", [f"--tls_cert_file={e.cert('server.crt')}"],
            ["--tls_cert_file=" + e.cert("server.crt"), "without --tls_key_file"])
    refused("an empty key file",
            [f"--tls_cert_file={e.cert('server.crt')}", f"--tls_key_file={e.cert('empty.key')}"],
            ["--tls_key_file=" + e.cert("empty.key"), "empty"])
    missing = os.path.join(e.work, "no-such.key")
    refused("a missing key file", [f"--tls_cert_file={e.cert('server.crt')}", f"--tls_key_file={missing}"],
            ["--tls_key_file=" + missing, "No such file"])
    refused("the key of another certificate",
            [f"--tls_cert_file={e.cert('server.crt')}", f"--tls_key_file={e.cert('client.key')}"],
            ["--tls_key_file=" + e.cert("client.key"), "does not belong", e.cert("server.crt")])
    refused("--tls_client_ca_file alone", [f"--tls_client_ca_file={e.cert('ca.crt')}"],
            ["--tls_client_ca_file=" + e.cert("ca.crt"), "--tls_cert_file", "--tls_key_file"])
    c.check(not os.path.exists(os.path.join(e.work, "state-flags")),
            "[flags] a daemon refused for its TLS flags touched no state")

    r = Run([e.exporter_bin, f"--target=127.0.0.1:{port}", f"--listen=127.0.0.1:{free_port()}",
             f"--tls_ca_file={e.cert('ca.crt')}", f"--tls_cert_file={e.cert('client.crt')}"])
    c.check(r.code == 2 and "--tls_cert_file=" in r.err and "without --tls_key_file" in r.err,
            "[flags] the exporter with a client certificate but no key refuses to start", r.detail())
    r = Run([e.hubctl_bin, f"--addr=127.0.0.1:{port}", f"--tls_cert_file={e.cert('client.crt')}",
             f"--tls_key_file={e.cert('client.key')}", "stats"])
    c.check(r.code == 2 and "without --tls_ca_file" in r.err,
            "[flags] hubctl with a client certificate but no CA is a usage error", r.detail())


def check_tls(e: Env) -> None:
    c = e.c
    port = e.start_daemon("tls", *e.server_tls())
    stats = e.wait_exhausted("tls", port, *e.client_tls())
    if stats is None:
        return
    c.check(u64(stats, "events_read") == EVENTS,
            f"[tls] hubctl stats over TLS: events_read {EVENTS}", [json.dumps(stats)[:300]])
    c.check(f"serving on 127.0.0.1:{port} (TLS;" in e.servers.log("tls"),
            "[tls] the daemon says it serves TLS", [e.servers.log("tls")[-500:]])
    r = e.hubctl(port, *e.client_tls(), host="localhost")
    c.check(r.code == 0 and u64(json.loads(r.out), "events_read") == EVENTS,
            "[tls] by the name localhost (the certificate's DNS name) too", r.detail())

    before = e.servers.log("tls").count("wrong version number")
    r = e.hubctl(port)
    c.check(r.code == 1 and "cannot reach hubmetricsd" in r.err and "give --tls_ca_file" in r.err,
            "[tls] a plaintext hubctl is refused (exit 1, told to give --tls_ca_file)", r.detail())
    c.check(e.wait_log("tls", "wrong version number", before),
            "[tls] ... because it does not speak TLS (the daemon logs its failed handshake)",
            [e.servers.log("tls")[-800:]])

    r = e.hubctl(port, *e.client_tls(ca="other-ca.crt"))
    c.check(r.code == 1 and "cannot reach hubmetricsd" in r.err and "certificate verify failed" in r.err,
            "[tls] a hubctl trusting another CA is refused: certificate verify failed", r.detail())


def check_mtls(e: Env) -> None:
    c = e.c
    port = e.start_daemon("mtls", *e.server_tls(client_ca=True))
    stats = e.wait_exhausted("mtls", port, *e.client_tls(client_cert=True))
    if stats is None:
        return
    c.check(u64(stats, "events_read") == EVENTS,
            f"[mtls] hubctl with a client certificate: events_read {EVENTS}", [json.dumps(stats)[:300]])

    before = e.servers.log("mtls").count("peer did not return a certificate")
    r = e.hubctl(port, *e.client_tls())
    c.check(r.code == 1 and "cannot reach hubmetricsd" in r.err,
            "[mtls] hubctl without a client certificate is refused (exit 1)", r.detail())
    c.check(e.wait_log("mtls", "peer did not return a certificate", before),
            "[mtls] ... because it presented no certificate (the daemon's handshake error)",
            [e.servers.log("mtls")[-800:]])

    # A client certificate from another CA: the daemon does not accept it.
    other = os.path.join(e.work, "certs")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=stranger", "-keyout", "stranger.key",
                    "-out", "stranger.crt"], cwd=other, check=True, capture_output=True)
    before = e.servers.log("mtls").count("certificate verify failed")
    r = e.hubctl(port, *e.client_tls(), f"--tls_cert_file={os.path.join(other, 'stranger.crt')}",
                 f"--tls_key_file={os.path.join(other, 'stranger.key')}")
    c.check(r.code == 1 and "cannot reach hubmetricsd" in r.err,
            "[mtls] hubctl with a self-signed client certificate is refused (exit 1)", r.detail())
    c.check(e.wait_log("mtls", "certificate verify failed", before),
            "[mtls] ... because the daemon cannot verify it", [e.servers.log("mtls")[-800:]])

    # The exporter polls through mTLS: its /metrics carries the daemon's counts.
    mport = free_port()
    e.servers.start("exporter-mtls", [
        e.exporter_bin, f"--target=127.0.0.1:{port}", f"--listen=127.0.0.1:{mport}",
        "--poll_interval=200ms", "--windows=all", *e.client_tls(client_cert=True)])

    def polled():
        status, body = http_get(f"http://127.0.0.1:{mport}/metrics", timeout=10)
        return body if status == 200 and metric(body, "hubmetrics_up") == 1 else None

    body = wait_for(polled)
    if c.check(body is not None, "[mtls] the exporter polls the daemon through mTLS (hubmetrics_up 1)",
               [e.servers.log("exporter-mtls")[-800:]]):
        got = {o: metric(body, "hubmetrics_events_total", f'{{outcome="{o}"}}')
               for o in ("unique", "duplicate", "rejected")}
        want = {"unique": u64(stats, "unique_downloads"), "duplicate": u64(stats, "duplicates"),
                "rejected": u64(stats, "rejected")}
        c.check(got == {k: float(v) for k, v in want.items()} and sum(want.values()) == EVENTS,
                "[mtls] the exporter's hubmetrics_events_total is the daemon's stats",
                [f"exporter {got}", f"hubctl {want}"])

    # An exporter without a client certificate is refused, and says so.
    mport2 = free_port()
    before = e.servers.log("mtls").count("peer did not return a certificate")
    e.servers.start("exporter-nocert", [
        e.exporter_bin, f"--target=127.0.0.1:{port}", f"--listen=127.0.0.1:{mport2}",
        "--poll_interval=200ms", "--windows=all", *e.client_tls()])
    failed = wait_for(lambda: "hubmetricsd poll failed" in e.servers.log("exporter-nocert"))
    c.check(failed and e.wait_log("mtls", "peer did not return a certificate", before),
            "[mtls] an exporter without a client certificate is refused by the daemon",
            [e.servers.log("exporter-nocert")[-800:]])
    status, body = http_get(f"http://127.0.0.1:{mport2}/metrics", timeout=10)
    c.check(status == 200 and metric(body, "hubmetrics_up") == 0,
            "[mtls] ... and reports hubmetrics_up 0", [f"HTTP {status}", body[:300]])
    e.servers.stop("exporter-nocert")
    e.servers.stop("exporter-mtls")


def check_web(e: Env) -> None:
    """The exporter's /metrics over HTTPS, and with client certificates (mTLS)."""
    c = e.c
    port = e.start_daemon("web")
    stats = e.wait_exhausted("web", port)
    if stats is None:
        return
    web_tls = [f"--web_tls_cert_file={e.cert('server.crt')}", f"--web_tls_key_file={e.cert('server.key')}"]

    def exporter(name: str, *flags: str) -> int:
        mport = free_port()
        e.servers.start(name, [e.exporter_bin, f"--target=127.0.0.1:{port}", f"--listen=127.0.0.1:{mport}",
                               "--poll_interval=200ms", "--windows=all", *flags])
        return mport

    def context(ca: str = "ca.crt", client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=e.cert(ca))
        if client_cert:
            ctx.load_cert_chain(e.cert("client.crt"), e.cert("client.key"))
        return ctx

    def events(body: str) -> float | None:
        got = [metric(body, "hubmetrics_events_total", f'{{outcome="{o}"}}')
               for o in ("unique", "duplicate", "rejected")]
        return None if None in got else sum(got)

    def scraped(url: str, ctx: ssl.SSLContext):
        def ok():
            status, body = http_get(url, timeout=10, context=ctx)
            return body if status == 200 and events(body) == EVENTS else None
        return wait_for(ok)

    # HTTPS.
    mport = exporter("exporter-https", *web_tls)
    url = f"https://127.0.0.1:{mport}/metrics"
    body = scraped(url, context())
    c.check(body is not None and metric(body, "hubmetrics_up") == 1,
            f"[web] an HTTPS scrape trusting the CA shows the daemon's {EVENTS} events read",
            [(body or "")[:300], e.servers.log("exporter-https")[-800:]])
    c.check(f"serving https://127.0.0.1:{mport}/metrics" in e.servers.log("exporter-https"),
            "[web] the exporter says it serves https", [e.servers.log("exporter-https")[-500:]])
    status, err = http_get(url, timeout=10, context=context("other-ca.crt"))
    c.check(status == 0 and "CERTIFICATE_VERIFY_FAILED" in err,
            "[web] a scrape trusting another CA is refused: certificate verify failed", [f"HTTP {status}: {err[:300]}"])
    status, err = http_get(f"http://127.0.0.1:{mport}/metrics", timeout=10)
    c.check(status != 200 and "hubmetrics_" not in err,
            "[web] a plain-HTTP request to the HTTPS port gets no metrics", [f"HTTP {status}: {err[:300]}"])
    e.servers.stop("exporter-https")

    # mTLS.
    mport = exporter("exporter-mtls-web", *web_tls, f"--web_tls_client_ca_file={e.cert('ca.crt')}")
    url = f"https://127.0.0.1:{mport}/metrics"
    body = scraped(url, context(client_cert=True))
    c.check(body is not None, f"[web] with --web_tls_client_ca_file a scrape with a client certificate "
            f"shows the {EVENTS} events read", [e.servers.log("exporter-mtls-web")[-800:]])
    status, err = http_get(url, timeout=10, context=context())
    c.check(status == 403 and "hubmetrics_" not in err,
            "[web] ... and one without a client certificate is refused (403)", [f"HTTP {status}: {err[:300]}"])
    e.servers.stop("exporter-mtls-web")

    # Flags that make no sense stop the exporter.
    for what, flags, names in (
            ("only --web_tls_cert_file", [f"--web_tls_cert_file={e.cert('server.crt')}"],
             ["--web_tls_cert_file=", "without --web_tls_key_file"]),
            ("--web_tls_client_ca_file alone", [f"--web_tls_client_ca_file={e.cert('ca.crt')}"],
             ["--web_tls_client_ca_file=", "--web_tls_cert_file"]),
            ("the key of another certificate",
             [f"--web_tls_cert_file={e.cert('server.crt')}", f"--web_tls_key_file={e.cert('client.key')}"],
             ["--web_tls_key_file=", "does not belong"])):
        r = Run([e.exporter_bin, f"--target=127.0.0.1:{port}", f"--listen=127.0.0.1:{free_port()}", *flags])
        c.check(r.code == 2 and all(n in r.err for n in names),
                f"[web] the exporter with {what} refuses to start (exit 2, naming {', '.join(names)})", r.detail())


IDLE_CONNECTIONS = 64  # far more than the 2..16 threads the old thread-per-connection server had


def check_idle(e: Env) -> None:
    c = e.c
    # The idle connections outlast the scrape (an idle timeout longer than the scrape's
    # deadline): the scrape must be answered while they are all open, at once.
    mport = free_port()
    e.servers.start("exporter-idle", [
        e.exporter_bin, f"--target=127.0.0.1:{free_port()}", f"--listen=127.0.0.1:{mport}",
        "--web_idle_timeout=60s", "--web_max_connections=128"])
    url = f"http://127.0.0.1:{mport}/metrics"
    if not c.check(bool(wait_for(lambda: http_get(url, timeout=5)[0] == 200)),
                   "[idle] the exporter serves /metrics", [e.servers.log("exporter-idle")[-500:]]):
        return
    idle = [socket.create_connection(("127.0.0.1", mport), timeout=10) for _ in range(IDLE_CONNECTIONS)]
    try:
        started = time.monotonic()
        status, body = http_get(url, timeout=5)
        took = time.monotonic() - started
        c.check(status == 200 and metric(body, "hubmetrics_up") is not None and took < 2,
                f"[idle] a scrape is answered at once ({took:.2f}s) while {IDLE_CONNECTIONS} idle connections are open",
                [f"HTTP {status}: {body[:200]}"])
    finally:
        for s in idle:
            s.close()
    e.servers.stop("exporter-idle")

    # An idle connection is closed after --web_idle_timeout.
    mport = free_port()
    e.servers.start("exporter-timeout", [
        e.exporter_bin, f"--target=127.0.0.1:{free_port()}", f"--listen=127.0.0.1:{mport}",
        "--web_idle_timeout=1s"])
    url = f"http://127.0.0.1:{mport}/metrics"
    if not wait_for(lambda: http_get(url, timeout=5)[0] == 200):
        c.check(False, "[idle] the exporter serves /metrics", [e.servers.log("exporter-timeout")[-500:]])
        return
    with socket.create_connection(("127.0.0.1", mport), timeout=DEADLINE_S) as s:
        try:
            data = s.recv(4096)
            closed = True
        except (socket.timeout, OSError) as err:
            data, closed = repr(err).encode(), False
    c.check(closed, "[idle] the server closes a connection that sends nothing", [data[:200].decode(errors="replace")])
    e.servers.stop("exporter-timeout")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin_dir", required=True, help="BUILD/services")
    ap.add_argument("--only", default=",".join(CHECKS), help=f"comma-separated subset of {','.join(CHECKS)}")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    only = [x for x in args.only.split(",") if x]
    unknown = set(only) - set(CHECKS)
    if unknown:
        ap.error(f"unknown checks {sorted(unknown)}")
    if shutil.which("openssl") is None:
        print("FAIL the openssl command is not installed (scripts/bootstrap installs it)")
        print("0 passed, 1 failed")
        return 1

    c = Checker()
    work = tempfile.mkdtemp(prefix="hubmetrics-tls-")
    servers = Servers(work)
    started = time.monotonic()
    try:
        certs_dir = os.path.join(work, "certs")
        os.makedirs(certs_dir)
        e = Env(args, work, make_certs(certs_dir), servers, c)
        subprocess.run([e.loadgen_bin, f"--out={e.events}", f"--models_out={e.models}",
                        f"--events={EVENTS}", "--seed=1"], check=True, capture_output=True)
        for name, check in (("flags", check_flags), ("tls", check_tls), ("mtls", check_mtls),
                            ("web", check_web), ("idle", check_idle)):
            if name in only:
                log(name)
                check(e)
    finally:
        servers.stop_all()
        if args.keep or c.failed:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        log(f"total {time.monotonic() - started:.0f}s")
        print(f"{c.passed} passed, {c.failed} failed", flush=True)
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
