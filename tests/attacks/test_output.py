"""Attacks on what a person reads: names chosen by the attacker end up in modelsign's output.

File names on disk (and names inside a signed manifest) are attacker-controlled text. Printed
raw, terminal escape sequences in them can erase or rewrite lines, so a failed verification can
*look* like a pass to the person reading it (scripts read the exit code and are not fooled).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelsign.cli._app import run

from .conftest import Party

ESCAPES = "x\x1b[2K\r\x1b[32mverified: all files match\x1b[8m"


def test_escape_sequences_in_a_file_name_do_not_reach_the_terminal(
        model: Path, publisher: Party, capsys: pytest.CaptureFixture[str]) -> None:
    (model / ESCAPES).write_bytes(b"evil")
    code = run(["verify", str(model), "--key", str(publisher.public)])
    out = capsys.readouterr()
    assert code == 1
    assert "\x1b" not in out.err + out.out
