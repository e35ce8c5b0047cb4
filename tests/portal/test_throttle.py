"""The sign-in throttle: counted before the password is checked, and configured from the environment."""

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import urlencode

import pytest
import redis

import portal.principals
from tenants.core.settings import PROJECT_ROOT
from tests.console_support import Console, csrf_token

REDIS_URL = "redis://127.0.0.1:6379/0"


def test_concurrent_wrong_passwords_get_at_most_the_limit_of_checks(console: Console, monkeypatch) -> None:
    checks: list[str] = []
    real_check = portal.principals.check_password_hash

    def slow_check(hashed: str, password: str) -> bool:  # slow enough that every attempt is in flight at once
        checks.append(password)
        time.sleep(0.3)
        return real_check(hashed, password)

    monkeypatch.setattr(portal.principals, "check_password_hash", slow_check)
    console.app.config["PORTAL_LOGIN_CLIENT_LIMIT"] = "100 per 15 minutes"  # the account limit (5) decides
    clients = [console.app.test_client() for _ in range(20)]
    tokens = [csrf_token(c) for c in clients]
    start = threading.Barrier(20)
    statuses: list[int] = []

    def attempt(i: int) -> None:
        start.wait()
        statuses.append(clients[i].post("/login", data={
            "email": "alice@example.com", "password": f"wrong {i}", "csrf_token": tokens[i]}).status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(checks) <= 5
    assert sorted(statuses) == [200] * len(checks) + [429] * (20 - len(checks))


def test_successful_sign_in_clears_the_accounts_failures(console: Console) -> None:
    client = console.app.test_client()
    for _ in range(4):
        assert _post(client, "alice@example.com", "wrong password").status_code == 200
    assert _post(client, "alice@example.com", "correct horse battery").status_code == 302
    other = console.app.test_client()
    for _ in range(4):  # a fresh allowance, not one attempt left
        assert _post(other, "alice@example.com", "wrong password").status_code == 200


def _post(client, email: str, password: str):  # type: ignore[no-untyped-def]
    return client.post("/login", data={"email": email, "password": password, "csrf_token": csrf_token(client)})


# --- under gunicorn: two workers share the counters in Redis, configured from the environment only ---


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wrong_attempt(port: int) -> int:
    """One wrong sign-in on a new connection (so either worker may take it); return the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/login")
        page = conn.getresponse()
        cookie = page.headers["Set-Cookie"].split(";", 1)[0]
        token = re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', page.read().decode()).group(1)
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/login", urlencode({"email": "alice@example.com", "password": "wrong password",
                                                  "csrf_token": token}),
                     {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.fixture
def redis_prefix() -> str:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis unreachable under CI: {e}", pytrace=False)
        pytest.skip(f"Redis unreachable: {e}")
    prefix = f"tp_test_{uuid.uuid4().hex[:12]}"
    yield prefix
    for key in client.scan_iter(f"*{prefix}*"):
        client.delete(key)
    client.close()


@pytest.mark.slow
def test_gunicorn_workers_share_the_throttle_set_in_the_environment(console: Console, cli_env, redis_prefix) -> None:
    port = _free_port()
    env = {**os.environ, **cli_env, "PYTHONPATH": str(PROJECT_ROOT), "RATELIMIT_STORAGE_URI": REDIS_URL,
           "RATELIMIT_KEY_PREFIX": redis_prefix, "PORTAL_LOGIN_ACCOUNT_LIMIT": "3 per 15 minutes",
           "PORTAL_LOGIN_CLIENT_LIMIT": "50 per 15 minutes"}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--chdir", str(PROJECT_ROOT), "-b", f"127.0.0.1:{port}",
                             "-w", "2", "--log-level", "warning", "portal:create_app()"],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read().decode()[-2000:]
                time.sleep(0.2)
        statuses = [_wrong_attempt(port) for _ in range(6)]
        assert statuses == [200, 200, 200, 429, 429, 429]
        keys = list(redis.Redis.from_url(REDIS_URL).scan_iter(f"*{redis_prefix}*"))
        assert keys, "no throttle counters in Redis"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stderr.close()
