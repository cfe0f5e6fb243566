"""A 3-node MariaDB Galera cluster on loopback, and HAProxy in front of it, for tests.

    with GaleraCluster(3) as cluster:          # ~6 s: one datadir made, copied, nodes join
        cluster.url(1, "app")                  # mysql+pymysql://root@127.0.0.1:PORT/app
        cluster.nodes[1].kill()                # SIGKILL node 2
        cluster.nodes[1].restart()             # recovers its position, rejoins by IST

Each node is its own mariadbd: datadir, socket, pid file, MySQL port, group (gmcast) port,
IST port and SST port, all under one temporary folder. How nodes join, fast and without a
full state transfer: one datadir is made with mariadb-install-db and copied for every node
before anything runs, node 1 bootstraps the cluster (--wsrep-new-cluster), and each joiner
starts with a grastate.dat naming the cluster and its last seqno, so it needs only the
few write sets since (an incremental state transfer from node 1's gcache). A node killed
with SIGKILL has seqno -1 in grastate.dat; `restart()` first asks InnoDB for the position
(`mariadbd --wsrep-recover`, what the packaged galera_recovery does) and then rejoins by IST.

Run as root, the nodes run as the `mysql` user (--user=mysql): Debian's SST script starts an
rsync daemon, which as root would switch to `nobody` and fail to write the datadir.

Timing: a node that dies is noticed by the others after evs.suspect_timeout; until then
commits wait (they need every member's acknowledgement). 2 s here: short enough for the
test, long enough that a loaded 2-core machine doesn't suspect a live node.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import pymysql

from tests.fakes.private_servers import INSTALL_DB, MARIADBD, _die_with_parent, free_port

GALERA_PROVIDER = next((p for p in ("/usr/lib/galera/libgalera_smm.so",
                                    "/usr/lib/libgalera_smm.so",
                                    "/usr/lib64/galera-4/libgalera_smm.so")
                        if os.path.exists(p)), None)
HAPROXY = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
RSYNC = shutil.which("rsync")
AVAILABLE = all((MARIADBD, INSTALL_DB, GALERA_PROVIDER, HAPROXY, RSYNC))
MISSING = ", ".join(name for name, path in (("mariadbd", MARIADBD),
                                           ("mariadb-install-db", INSTALL_DB),
                                           ("galera-4", GALERA_PROVIDER),
                                           ("haproxy", HAPROXY), ("rsync", RSYNC)) if not path)

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
CLUSTERCHECK = ROOT / "deploy" / "haproxy" / "clustercheck.py"

#: Provider options besides the addresses: small gcache, conflicts logged, quick eviction.
PROVIDER_OPTIONS = ("gcache.size=64M;cert.log_conflicts=ON;"
                    "evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S;"
                    "evs.suspect_timeout=PT2S;evs.inactive_timeout=PT3S;"
                    "evs.install_timeout=PT3S;gmcast.peer_timeout=PT2S")


def _mysql(port: int, *statements: str, timeout: float = 2) -> list[tuple[object, ...]]:
    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=timeout,
                           read_timeout=timeout, write_timeout=timeout, autocommit=True)
    try:
        rows: list[tuple[object, ...]] = []
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
                rows = list(cur.fetchall())
        return rows
    finally:
        conn.close()


class Node:
    def __init__(self, cluster: GaleraCluster, number: int) -> None:
        self.cluster = cluster
        self.number = number
        self.name = f"node{number}"
        self.port, self.gmcast, self.ist, self.sst = (free_port() for _ in range(4))
        self.folder = cluster.folder / self.name
        self.datadir = self.folder / "data"
        self.log_path = self.folder / "mariadbd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *extra: str) -> list[str]:
        assert MARIADBD and GALERA_PROVIDER
        command = [
            MARIADBD, "--no-defaults", f"--datadir={self.datadir}",
            f"--socket={self.folder / 'mysqld.sock'}", f"--pid-file={self.folder / 'mysqld.pid'}",
            f"--port={self.port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
            # Small and unsafe on power loss: a test cluster that starts in seconds.
            "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=48M",
            "--innodb-flush-log-at-trx-commit=0", "--sync-binlog=0", "--innodb-doublewrite=0",
            "--max-connections=300",
            # What Galera requires.
            "--binlog-format=ROW", "--innodb-autoinc-lock-mode=2",
            "--default-storage-engine=InnoDB",
            "--wsrep-on=ON", f"--wsrep-provider={GALERA_PROVIDER}",
            f"--wsrep-cluster-address={self.cluster.address}", "--wsrep-cluster-name=authserver",
            f"--wsrep-node-name={self.name}", "--wsrep-node-address=127.0.0.1",
            f"--wsrep-node-incoming-address=127.0.0.1:{self.port}",
            f"--wsrep-sst-receive-address=127.0.0.1:{self.sst}",
            "--wsrep-sst-method=rsync", "--wsrep-sst-donor=node1,",
            "--wsrep-log-conflicts=ON", "--wsrep-slave-threads=2",
            f"--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{self.gmcast};"
            f"ist.recv_addr=127.0.0.1:{self.ist};{PROVIDER_OPTIONS}",
        ]
        if os.geteuid() == 0:
            command.append("--user=mysql")
        return [*command, *extra]

    # -- life ---------------------------------------------------------------------------------
    def start(self, *extra: str) -> None:
        with self.log_path.open("ab") as log:
            # Dies with the test process (as root, mariadbd's switch to `mysql` clears this;
            # the fixture's teardown kills it then).
            self.process = subprocess.Popen(self.command(*extra), stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=_die_with_parent)

    def wait_synced(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log()[-4000:]}")
            if self.state() == "Synced":
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not sync:\n{self.log()[-4000:]}")

    def state(self) -> str | None:
        try:
            rows = _mysql(self.port, "SHOW STATUS LIKE 'wsrep_local_state_comment'", timeout=1)
        except pymysql.MySQLError:
            return None
        return str(rows[0][1]) if rows else None

    def kill(self) -> None:
        """SIGKILL: gone at once, mid-whatever, as a crashed host."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def restart(self) -> None:
        """After a crash: recover the last committed position from InnoDB, then rejoin (IST)."""
        recovery = subprocess.run(self.command("--wsrep-recover", f"--log-error={self.folder}"
                                               "/recover.log"),
                                  capture_output=True, timeout=120)
        text = (self.folder / "recover.log").read_text(errors="replace") \
            if (self.folder / "recover.log").exists() else ""
        found = re.findall(r"Recovered position: (\S+:-?\d+)",
                           text + recovery.stdout.decode(errors="replace")
                           + recovery.stderr.decode(errors="replace"))
        if not found:
            raise RuntimeError(f"{self.name}: no recovered position:\n{text[-3000:]}")
        self.start(f"--wsrep-start-position={found[-1]}")
        self.wait_synced()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class GaleraCluster:
    def __init__(self, size: int = 3, keep_logs: Path | None = None) -> None:
        self.keep_logs = keep_logs
        self.folder = Path(tempfile.mkdtemp(prefix="galera-"))
        self.folder.chmod(0o755)
        self.nodes = [Node(self, n) for n in range(1, size + 1)]
        self.address = "gcomm://" + ",".join(f"127.0.0.1:{n.gmcast}" for n in self.nodes)

    def url(self, node: int, database: str = "") -> str:
        return (f"mysql+pymysql://root@127.0.0.1:{self.nodes[node - 1].port}/{database}"
                "?charset=utf8mb4")

    def sql(self, node: int, *statements: str) -> list[tuple[object, ...]]:
        return _mysql(self.nodes[node - 1].port, *statements, timeout=10)

    def start(self) -> Self:
        assert INSTALL_DB
        template = self.folder / "template"
        subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={template}",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)
        for node in self.nodes:
            node.folder.mkdir()
            shutil.copytree(template, node.datadir)
        first, *joiners = self.nodes
        self._own(first)
        first.start("--wsrep-new-cluster")
        first.wait_synced()
        for node in joiners:
            # The cluster's id and last seqno: the joiner has the same (empty) data as of
            # then, so an IST of what followed (its own join) is all it needs.
            uuid = self.sql(1, "SHOW STATUS LIKE 'wsrep_cluster_state_uuid'")[0][1]
            seqno = self.sql(1, "SHOW STATUS LIKE 'wsrep_last_committed'")[0][1]
            (node.datadir / "grastate.dat").write_text(
                f"# GALERA saved state\nversion: 2.1\nuuid:    {uuid}\nseqno:   {seqno}\n"
                "safe_to_bootstrap: 0\n")
            self._own(node)
            node.start()
            node.wait_synced()
        return self

    def _own(self, node: Node) -> None:
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "mysql:mysql", str(node.folder)], check=True)

    def conflicts(self) -> str:
        """What the nodes logged about write conflicts (wsrep_log_conflicts,
        cert.log_conflicts): the statements' tables and keys, for a reader."""
        lines = []
        for node in self.nodes:
            for line in node.log().splitlines():
                if re.search(r"conflict|certification fail|BF-BF|abort", line, re.I):
                    lines.append(f"{node.name}: {line}")
        return "\n".join(lines)

    def close(self, keep_logs: Path | None = None) -> None:
        """Kill the nodes and remove their folder; `keep_logs`: copy the nodes' logs there
        first (what they said about conflicts, joins and state transfers)."""
        for node in self.nodes:
            node.kill()
            if keep_logs is not None and node.log_path.exists():
                keep_logs.mkdir(parents=True, exist_ok=True)
                shutil.copy(node.log_path, keep_logs / f"{node.name}.log")
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(self.keep_logs)


class HAProxy:
    """deploy/haproxy/haproxy.cfg, run for real, with clustercheck.py answering its checks.
    `order`: which cluster nodes are its servers 1-3 (server 1 takes the traffic)."""

    def __init__(self, cluster: GaleraCluster, order: tuple[int, int, int], python: str) -> None:
        self.port = free_port()
        self.check_ports = [free_port() for _ in order]
        self.folder = cluster.folder / "haproxy"
        self.folder.mkdir(exist_ok=True)
        nodes = [cluster.nodes[n - 1] for n in order]
        self.env = {**os.environ, "HAPROXY_MYSQL_BIND": f"127.0.0.1:{self.port}",
                    "CLUSTERCHECK_ADDR": "127.0.0.1"}
        for index, (node, check) in enumerate(zip(nodes, self.check_ports, strict=True), 1):
            self.env[f"GALERA_{index}"] = f"127.0.0.1:{node.port}"
            self.env[f"CLUSTERCHECK_PORT_{index}"] = str(check)
        check_args = [f"--node={check}=127.0.0.1:{node.port}"
                      for node, check in zip(nodes, self.check_ports, strict=True)]
        self.check = subprocess.Popen(
            [python, str(CLUSTERCHECK), "--listen=127.0.0.1", "--user=root", *check_args],
            stdout=(self.folder / "clustercheck.log").open("wb"), stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent)
        assert HAPROXY
        self.process = subprocess.Popen([HAPROXY, "-db", "-f", str(HAPROXY_CFG)], env=self.env,
                                        stdout=(self.folder / "haproxy.log").open("wb"),
                                        stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def server_port(self) -> int | None:
        """The MySQL port of the node a new connection through HAProxy reaches (None: the
        connection failed, as it may while a node dies)."""
        try:
            return int(_mysql(self.port, "SELECT @@port", timeout=5)[0][0])  # type: ignore[call-overload]
        except pymysql.MySQLError:
            return None

    def log(self) -> str:
        return (self.folder / "haproxy.log").read_text(errors="replace")

    def close(self) -> None:
        for process in (self.process, self.check):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
