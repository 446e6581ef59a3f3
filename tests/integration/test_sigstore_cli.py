"""``modelsign sigstore serve`` / ``token``: the loopback Sigstore from the command line."""

from __future__ import annotations

import ipaddress
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sigstore import dsse
from sigstore.models import ClientTrustConfig
from sigstore.oidc import IdentityToken
from sigstore.sign import SigningContext
from sigstore.verify import Verifier, policy

from modelsign.cli import main
from modelsign.testing import LoopbackSigstore

START_TIMEOUT_SECONDS = 30
IDENTITY = "ci-release@modelsign.test"


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connection from this process that would leave this machine."""
    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            assert ipaddress.ip_address(address[0]).is_loopback, f"tried to reach {address[0]}"
        connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@dataclass
class Served:
    process: subprocess.Popen[str]
    lines: list[str]
    fields: dict[str, str]


def _read_until_serving(process: subprocess.Popen[str]) -> tuple[list[str], dict[str, str]]:
    """Lines printed up to "Serving until Ctrl-C.", and their "name: value" fields."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if line.startswith("Serving until"):
            fields = {m[1]: m[2] for text in seen
                      if (m := re.match(r"^\s*([a-z ]+):\s+(.*)$", text))}
            return seen, fields
    process.kill()
    _, stderr = process.communicate(timeout=10)
    pytest.fail(f"`modelsign sigstore serve` did not come up: stdout={seen!r} stderr={stderr!r}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    process = subprocess.Popen(
        [sys.executable, "-m", "modelsign", "sigstore", "serve", "--port", "0",
         "--dir", str(tmp_path / "loopback")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines, fields = _read_until_serving(process)
        yield Served(process, lines, fields)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def test_serve_prints_trust_config_and_a_token_command_that_signs(
        served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trust_config_path = Path(served.fields["trust config"])
    issuer = served.fields["issuer"]
    assert trust_config_path == tmp_path / "loopback" / "trust_config.json"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", issuer)

    # The printed curl command's URL, fetched as curl would.
    (token_url,) = re.findall(r"curl -fsS '([^']+)'", served.fields["token"])
    token_url = token_url.replace("you@example.com", IDENTITY)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(token_url, timeout=10) as response:
        raw_token = response.read().decode().strip()
    # ... and the printed `modelsign sigstore token` alternative.
    command = served.fields["or"].split()
    assert command[:3] == ["modelsign", "sigstore", "token"]
    assert main([*command[1:-1], IDENTITY]) == 0
    cli_token = capsys.readouterr().out.strip()

    trust_config = ClientTrustConfig.from_json(trust_config_path.read_text())
    verifier = Verifier(trusted_root=trust_config.trusted_root)
    for token in (raw_token, cli_token):
        assert IdentityToken(token).identity == IDENTITY
        stmt = (dsse.StatementBuilder()
                .subjects([dsse.Subject(name="model", digest={"sha256": "ab" * 32})])
                .predicate_type("https://model_signing/signature/v1.0")
                .predicate({"resources": []}).build())
        with SigningContext.from_trust_config(trust_config).signer(
                IdentityToken(token)) as signer:
            bundle = signer.sign_dsse(stmt)
        verifier.verify_dsse(bundle, policy.Identity(identity=IDENTITY, issuer=issuer))

    served.process.send_signal(signal.SIGTERM)
    _, stderr = served.process.communicate(timeout=15)
    assert served.process.returncode == 0, stderr
    assert "stopped; 2 log entries" in stderr
    # --dir is the user's: the trust config outlives the server, for offline verification.
    assert ClientTrustConfig.from_json(trust_config_path.read_text()).trusted_root
    assert (tmp_path / "loopback" / "trusted_root.json").is_file()


def test_serve_without_dir_removes_its_temporary_directory() -> None:
    process = subprocess.Popen([sys.executable, "-m", "modelsign", "sigstore", "serve"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, fields = _read_until_serving(process)
        directory = Path(fields["trust config"]).parent
        assert directory.is_dir()
        process.send_signal(signal.SIGINT)  # Ctrl-C
        process.communicate(timeout=15)
        assert process.returncode == 0
        assert not directory.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def test_serve_on_a_busy_port_is_bad_input(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["sigstore", "serve", "--port", str(port), "--dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "--port" in err


def test_token_from_an_unreachable_server_is_bad_input(
        capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as closed:  # a port that nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    code = main(["sigstore", "token", "--url", f"http://127.0.0.1:{port}", IDENTITY])
    assert code == 2
    assert "modelsign sigstore serve" in capsys.readouterr().err


def test_token_refused_by_the_server_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    with LoopbackSigstore() as sigstore:
        code = main(["sigstore", "token", "--url", sigstore.url, ""])
    assert code == 2
    assert "refused the token request: give the identity" in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["--url", "ftp://127.0.0.1:1", IDENTITY],
    ["--url", "http://127.0.0.1:1", "--ttl", "90000", IDENTITY],
], ids=["not_http", "ttl_over_a_day"])
def test_token_usage_errors_exit_2(args: list[str]) -> None:
    assert main(["sigstore", "token", *args]) == 2
