"""A real Redis for the pool tests: $MSNBRIDGE_TEST_REDIS_URL when set, else a
`redis-server` started on a free loopback port for the session (no persistence), else the
tests skip and say why. Each test gets a database of its own (`redis_url`), emptied first."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio

from tests.synapse_server import free_port

DATABASES = 512  # one per test of a session; a given URL's server may have fewer
_next_db = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The server's URL without a database number."""
    if given := os.environ.get("MSNBRIDGE_TEST_REDIS_URL"):
        yield given.rstrip("/").rsplit("/", 1)[0] if given.count("/") > 2 else given
        return
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        pytest.skip("no redis-server installed and MSNBRIDGE_TEST_REDIS_URL not set")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="msnbridge-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--databases", str(DATABASES), "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    pytest.skip(f"redis-server exited with {proc.returncode}")
                time.sleep(0.05)
        else:
            pytest.skip("redis-server did not answer within 5 s")
        client.close()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def redis_url(redis_server: str) -> AsyncIterator[str]:
    """A Redis URL with an empty database of this test's own."""
    url = f"{redis_server}/{next(_next_db) % DATABASES}"
    client = redis.asyncio.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    yield url
