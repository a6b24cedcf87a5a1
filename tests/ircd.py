"""Real IRC servers for the tests: Debian's ngIRCd (and InspIRCd for IRCv3 caps).

Each server gets a generated configuration on a free loopback port and runs in the
foreground as a child process. ``stop()``/``start()`` keep the port, so a test can restart
the server under a running client. Missing binaries make the fixtures skip with a reason.

Use in a test module::

    from tests.ircd import ircd_fixture  # noqa: F401  (provides the ``ircd`` fixture)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.synapse_server import free_port

NGIRCD_CONF = """\
[Global]
Name = irc.test
Info = msnbridge test server
Listen = 127.0.0.1
Ports = {port}
MotdPhrase = "msnbridge tests"
{password}
[Limits]
MaxConnectionsIP = {max_ip}
MaxJoins = 0
MaxNickLength = 30
MaxPenaltyTime = {penalty}
PingTimeout = 120
PongTimeout = 20
[Options]
DNS = no
Ident = no
PAM = no
IncludeDir = {include}
{ssl}"""

NGIRCD_SSL = """\
[SSL]
Ports = {port}
CertFile = {cert}
KeyFile = {key}
"""

INSPIRCD_CONF = """\
<server name="irc.inspircd.test" description="msnbridge test" network="Test">
<admin name="test" nick="test" email="test@localhost">
<bind address="127.0.0.1" port="{port}" type="clients">
<connect allow="*" timeout="60" threshold="100" pingfreq="120" hardsendq="1048576"
         softsendq="65536" recvq="65536" localmax="1000" globalmax="1000"
         useident="no" limit="5000" resolvehostnames="no" nouserdns="yes">
<files motd="{motd}">
<pid file="{pid}">
<dns timeout="1">
<options syntaxhints="no">
<security hideserver="" userstats="Pu">
<performance nouserdns="yes">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{log}">
<module name="cap">
<module name="ircv3">
<module name="ircv3_ctctags">
<module name="ircv3_echomessage">
<module name="ircv3_servertime">
<module name="ircv3_batch">
<module name="ircv3_msgid">
<module name="namesx">
"""


def write_self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (IP SAN), valid for a day; returns (cert, key) paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o644)  # read by ngIRCd after it drops to "nobody"
    return cert_path, key_path


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class IRCd:
    """One IRC server process. ``kind`` is ``"ngircd"`` or ``"inspircd"``."""

    def __init__(
        self,
        workdir: Path,
        kind: str = "ngircd",
        *,
        password: str | None = None,
        penalty: int = 0,
        max_connections_ip: int = 0,
        tls: bool = False,
        extra_conf: str = "",
    ):
        self.kind = kind
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = free_port()
        self.password = password
        self.cert_path: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{kind}.log"
        workdir.mkdir(parents=True, exist_ok=True)
        # ngIRCd drops root to "nobody", which must still read its files.
        os.chmod(workdir, 0o755)
        if kind == "ngircd":
            include = workdir / "conf.d"
            include.mkdir(exist_ok=True)
            ssl = ""
            if tls:
                self.cert_path, key = write_self_signed(workdir)
                ssl = NGIRCD_SSL.format(port=self.port, cert=self.cert_path, key=key)
            self.conf = workdir / "ngircd.conf"
            self.conf.write_text(
                NGIRCD_CONF.format(
                    ssl=ssl,
                    # With TLS the one port is the TLS port.
                    port="" if tls else self.port,
                    include=include,
                    penalty=penalty,
                    max_ip=max_connections_ip,
                    password=f"Password = {password}" if password else "",
                )
            )
            self.argv = [_binary("ngircd"), "-n", "-f", str(self.conf)]
        elif kind == "inspircd":
            motd = workdir / "motd.txt"
            motd.write_text("msnbridge tests\n")
            self.conf = workdir / "inspircd.conf"
            self.conf.write_text(
                INSPIRCD_CONF.format(
                    port=self.port,
                    motd=motd,
                    pid=workdir / "inspircd.pid",
                    log=workdir / "ircd.log",
                )
                + extra_conf  # e.g. modules and a link block for test services
            )
            self.argv = [
                _binary("inspircd"),
                "--nofork",
                "--nopid",
                "--runasroot",
                "--config",
                str(self.conf),
            ]
        else:
            raise ValueError(kind)

    def start(self, timeout: float = 60.0) -> None:
        if self.proc is not None:
            return
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not _accepting(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {self.log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.kind} did not listen on {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # The port must be free again before a restart binds it.
        deadline = time.monotonic() + 5
        while _accepting(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self) -> None:
        self.stop()
        self.start()

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)


def _binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise FileNotFoundError(name)
    return path


def _have(name: str) -> bool:
    try:
        _binary(name)
        return True
    except FileNotFoundError:
        return False


def require(kind: str) -> None:
    if not _have(kind):
        pytest.skip(
            f"{kind} is not installed (apt-get install {kind}); scripts/test.sh installs ngircd"
        )


def running_ircd(tmp: Path, kind: str = "ngircd", **options: object) -> Iterator[IRCd]:
    require(kind)
    server = IRCd(tmp, kind, **options)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="ircd", scope="module")
def ircd_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IRCd]:
    """An ngIRCd shared by a test module (do not stop it in a test)."""
    yield from running_ircd(tmp_path_factory.mktemp("ngircd"))


@pytest.fixture(name="own_ircd")
def own_ircd_fixture(tmp_path: Path) -> Iterator[IRCd]:
    """An ngIRCd for one test, which it may stop and restart."""
    yield from running_ircd(tmp_path / "ngircd")


@pytest.fixture(name="ircd")
def fresh_ircd_fixture(tmp_path: Path) -> Iterator[IRCd]:
    """An ngIRCd for one test as the ``ircd`` fixture, for modules whose tests each need
    their own (a bridge's IRC side started and stopped per test)."""
    yield from running_ircd(tmp_path / "ngircd")


@pytest.fixture(name="inspircd", scope="module")
def inspircd_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IRCd]:
    """An InspIRCd 3 with IRCv3 caps (message-tags, echo-message, server-time, batch)."""
    yield from running_ircd(tmp_path_factory.mktemp("inspircd"), "inspircd")


class RawClient:
    """A plain asyncio socket speaking IRC by hand: the independent observer in tests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, nick: str):
        self.reader, self.writer, self.nick = reader, writer, nick
        self.lines: list[str] = []

    @classmethod
    async def connect(
        cls, server: IRCd, nick: str, *, caps: tuple[str, ...] = (), password: str | None = None
    ) -> RawClient:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        client = cls(reader, writer, nick)
        if password:
            client.send(f"PASS {password}")
        if caps:
            client.send(f"CAP REQ :{' '.join(caps)}")
        client.send(f"NICK {nick}")
        client.send(f"USER {nick} 0 * :raw test client")
        if caps:
            await client.expect(lambda line: " CAP " in line and " ACK " in line)
            client.send("CAP END")
        await client.expect(lambda line: command_of(line) in ("376", "422"))
        return client

    def send(self, line: str) -> None:
        self.writer.write(line.encode() + b"\r\n")

    async def readline(self, timeout: float = 5.0) -> str:
        raw = await asyncio.wait_for(self.reader.readline(), timeout)
        if not raw:
            raise ConnectionError("server closed the connection")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line.startswith("PING "):
            self.send("PONG " + line[5:])
        self.lines.append(line)
        return line

    async def expect(self, predicate, timeout: float = 5.0) -> str:  # type: ignore[no-untyped-def]
        """Read until a line matches ``predicate``; return it."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no matching line; last: {self.lines[-5:]}")
            try:
                line = await self.readline(left)
            except TimeoutError:  # say what came instead
                raise TimeoutError(f"no matching line; last: {self.lines[-5:]}") from None
            if predicate(line):
                return line

    async def join(self, channel: str) -> None:
        self.send(f"JOIN {channel}")
        await self.expect(lambda line: command_of(line) == "366")

    async def privmsgs(self, count: int, timeout: float = 10.0) -> list[str]:
        """The next ``count`` PRIVMSG lines (raw, without CRLF)."""
        got: list[str] = []
        while len(got) < count:
            got.append(await self.expect(lambda line: " PRIVMSG " in line, timeout))
        return got

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.send("QUIT :bye")
            self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def command_of(line: str) -> str:
    """The command (or numeric) of a raw line."""
    words = line.split(" ")
    if words[0].startswith("@"):
        words = words[1:]
    if words[0].startswith(":"):
        words = words[1:]
    return words[0] if words else ""


def message_text(line: str) -> str:
    """The trailing parameter of a raw line (tags skipped)."""
    if line.startswith("@"):
        line = line.split(" ", 1)[1]
    return line.split(" :", 1)[1]
