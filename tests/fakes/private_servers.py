"""Private MariaDB and Redis servers for fault tests: stop, hang or kill them freely.

The shared services (MariaDB on 3306, Redis on 6379) serve every engineer's tests and must
never be signalled; a fault test starts its own instead, on a free loopback port, with its
data in a temporary folder:

    with PrivateRedis() as redis:
        config = {"RATELIMIT_STORAGE_URI": redis.url}
        redis.stop()      # refused connections (the port is closed)
        redis.start()     # back, same port, empty (no persistence unless asked)
        redis.pause()     # SIGSTOP: connections open, nothing ever answers (a hung server)
        redis.resume()    # SIGCONT

    with PrivateMariaDB() as mariadb:          # ~2 s: mariadb-install-db, then mariadbd
        url = mariadb.create_database("app")   # mysql+pymysql://root@127.0.0.1:PORT/app
        mariadb.pause(); mariadb.resume(); mariadb.kill(); mariadb.start()

Both stop by themselves: leaving the `with` (or `close()`) ends the server and removes its
folder, and each server is started with PR_SET_PDEATHSIG so it dies with the test process
even if that is killed. MariaDB runs with --skip-grant-tables (root, no password, loopback
only). `available()` tells whether the binaries are installed (tests skip otherwise).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

REDIS_SERVER = shutil.which("redis-server")
MARIADBD = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")
INSTALL_DB = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path,
                   timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}):\n"
                               + log.read_text(errors="replace")[-4000:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start:\n" + log.read_text(errors="replace")[-4000:])


class _PrivateServer:
    """One server process on a fixed private port, restartable, pausable."""

    name = "server"

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix=f"private-{self.name}-"))
        self.log_path = self.folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    # -- subclasses -------------------------------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> None:
        """Block until the server answers (a subclass may do more than a TCP connect)."""

    # -- control ----------------------------------------------------------------------------
    def start(self) -> Self:
        if self.running:
            return self
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL,
                                            preexec_fn=_die_with_parent)
        _wait_for_port(self.port, self.process, self.log_path)
        self.ready()
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections (the kernel's backlog) but nothing
        answers: the shape of a hung server."""
        assert self.process is not None and self.running
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """A clean shutdown; the port refuses connections until `start()`."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the server is gone at once, mid-whatever."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class PrivateRedis(_PrivateServer):
    """redis-server on a private port. `appendonly=True` keeps counters across `stop/start`."""

    name = "redis"

    def __init__(self, appendonly: bool = False) -> None:
        super().__init__()
        self.appendonly = appendonly

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        assert REDIS_SERVER, "redis-server is not installed"
        return [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.folder), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no"]

    def ready(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis did not answer PING:\n" + self.log())


class PrivateMariaDB(_PrivateServer):
    """mariadbd on a private port and datadir; root without a password, loopback only."""

    name = "mariadb"

    def __init__(self) -> None:
        super().__init__()
        self.datadir = self.folder / "data"
        self._installed = False

    def url(self, database: str = "") -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def command(self) -> list[str]:
        assert MARIADBD, "mariadbd is not installed"
        if not self._installed:
            assert INSTALL_DB, "mariadb-install-db is not installed"
            with self.log_path.open("ab") as log:
                subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={self.datadir}",
                                "--auth-root-authentication-method=normal", "--skip-test-db"],
                               stdout=log, stderr=subprocess.STDOUT, check=True, timeout=120)
            self._installed = True
        command = [MARIADBD, "--no-defaults", f"--datadir={self.datadir}",
                   f"--socket={self.folder / 'mysqld.sock'}", f"--port={self.port}",
                   "--bind-address=127.0.0.1", "--skip-grant-tables", "--skip-name-resolve",
                   "--skip-log-bin", "--innodb-buffer-pool-size=32M",
                   f"--pid-file={self.folder / 'mysqld.pid'}",
                   "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci"]
        if os.geteuid() == 0:
            command.append("--user=root")
        return command

    def ready(self) -> None:
        import pymysql

        deadline = time.monotonic() + 30
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                                connect_timeout=2, read_timeout=2).close()
                return
            except pymysql.MySQLError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mariadb did not answer:\n" + self.log()) from None
                time.sleep(0.1)

    def create_database(self, name: str) -> str:
        """Create `name` (utf8mb4) and return its SQLAlchemy URL."""
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        finally:
            conn.close()
        return self.url(name)



def available(*binaries: str | None) -> bool:
    return all(binaries)


REDIS_AVAILABLE = available(REDIS_SERVER)
MARIADB_AVAILABLE = available(MARIADBD, INSTALL_DB)
