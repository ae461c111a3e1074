"""Local stand-ins for the docker-compose services: PostgreSQL and Redis as found on the machine
(started if they can be), plus processes this suite starts itself. Missing pieces fail loudly."""

from __future__ import annotations

import glob
import shutil
import socket
import subprocess
import time

import pytest

POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)


def port_open(address: tuple[str, int]) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(address) == 0


def _wait(address: tuple[str, int], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(address):
            return True
        time.sleep(0.5)
    return False


def ensure_postgres() -> None:
    """PostgreSQL on localhost:5432, started with pg_ctlcluster when installed but stopped."""
    if port_open(POSTGRES):
        return
    clusters = glob.glob("/etc/postgresql/*/main")
    if clusters and shutil.which("pg_ctlcluster"):
        version = clusters[0].split("/")[3]
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
        if _wait(POSTGRES):
            return
    pytest.fail("PostgreSQL is not running on localhost:5432 and could not be started (install postgresql, trust auth)")


def ensure_redis() -> None:
    """Redis on localhost:6379, started with redis-server when installed but stopped."""
    if port_open(REDIS):
        return
    if shutil.which("redis-server"):
        subprocess.run(
            ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no"],
            check=False,
        )
        if _wait(REDIS):
            return
    pytest.fail("Redis is not running on localhost:6379 and could not be started (install redis-server)")


def postgres_admin():
    """A psycopg2 connection as a superuser (trust auth: postgres, else root), autocommit."""
    import psycopg2

    last: Exception | None = None
    for user in ("postgres", "root"):
        try:
            conn = psycopg2.connect(host=POSTGRES[0], port=POSTGRES[1], user=user, dbname="postgres")
        except psycopg2.OperationalError as exc:
            last = exc
            continue
        conn.autocommit = True
        return user, conn
    pytest.fail(f"cannot connect to PostgreSQL as postgres or root with trust auth: {last}")
