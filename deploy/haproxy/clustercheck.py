"""Health of MySQL cluster nodes over HTTP, for HAProxy's `option httpchk` (haproxy.cfg).

    CLUSTERCHECK_PASSWORD=… python clustercheck.py --user clustercheck \\
        --node 9201=galera-1:3306 --node 9202=galera-2:3306 --node 9203=galera-3:3306

Each `--node PORT=HOST:MYSQLPORT` answers `GET /` on PORT with 200 when that node may take
the app's reads and writes, else 503 (the contract of Percona's `clustercheck`), so HAProxy
sends traffic to a node only while it is a synced member of the primary component:

- Galera: `wsrep_local_state` 4 (Synced), `wsrep_ready` ON, `wsrep_cluster_status` Primary.
  A joiner, a donor, a desynced node or one cut off from the majority answer 503, although
  each still accepts MySQL connections (which is why `option mysql-check` is not enough);
- Group Replication: the member is ONLINE and writable (not `super_read_only`: in
  single-primary mode only the primary passes);
- a server with neither: 200 whenever it answers.

The check's MySQL user needs no privilege at all (`CREATE USER clustercheck@'%' IDENTIFIED BY
…`: SHOW STATUS and performance_schema's group members are readable by anyone). Standard
library and PyMySQL (already in the app's image) only.
"""

from __future__ import annotations

import argparse
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymysql

GALERA_STATUS = ("SHOW GLOBAL STATUS WHERE Variable_name IN "
                 "('wsrep_local_state', 'wsrep_ready', 'wsrep_cluster_status')")
GROUP_MEMBER = ("SELECT MEMBER_STATE, @@global.super_read_only FROM "
                "performance_schema.replication_group_members WHERE MEMBER_ID = @@server_uuid")


def node_health(host: str, port: int, user: str, password: str,
                timeout: float = 1.0) -> tuple[bool, str]:
    """(whether the node may take traffic, why) from one short connection."""
    try:
        conn = pymysql.connect(host=host, port=port, user=user, password=password,
                               connect_timeout=timeout, read_timeout=timeout,
                               write_timeout=timeout)
    except pymysql.MySQLError as exc:
        return False, f"no connection ({exc.args[0] if exc.args else '?'})"
    try:
        with conn.cursor() as cur:
            cur.execute(GALERA_STATUS)
            status = {str(name): str(value) for name, value in cur.fetchall()}
            if status:
                synced = (status.get("wsrep_local_state") == "4"
                          and status.get("wsrep_ready") == "ON"
                          and status.get("wsrep_cluster_status") == "Primary")
                return synced, "galera " + ", ".join(f"{k}={v}" for k, v in sorted(status.items()))
            try:
                cur.execute(GROUP_MEMBER)
                row = cur.fetchone()
            except pymysql.MySQLError:
                row = None  # no performance_schema table: not Group Replication
            if row is not None:
                online = row[0] == "ONLINE" and not int(row[1])
                return online, f"group replication {row[0]}, super_read_only={row[1]}"
            return True, "single server"
    except pymysql.MySQLError as exc:
        return False, f"status query failed ({exc.args[0] if exc.args else '?'})"
    finally:
        conn.close()


def serve(listen_host: str, listen_port: int, host: str, port: int, user: str,
          password: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok, why = node_health(host, port, user, password)
            body = f"{host}:{port} {'synced' if ok else 'not ready'}: {why}\n".encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # every half second per node: too much for a log

    server = ThreadingHTTPServer((listen_host, listen_port), Handler)
    server.daemon_threads = True
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--node", action="append", required=True,
                        metavar="PORT=HOST:MYSQLPORT", help="one per cluster node")
    parser.add_argument("--listen", default="0.0.0.0",  # noqa: S104 - HAProxy's network
                        help="address to answer on")
    parser.add_argument("--user", default="clustercheck")
    args = parser.parse_args()
    password = os.environ.get("CLUSTERCHECK_PASSWORD", "")
    servers = []
    for spec in args.node:
        listen_port, target = spec.split("=", 1)
        host, _, port = target.rpartition(":")
        servers.append(serve(args.listen, int(listen_port), host, int(port), args.user,
                             password))
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
