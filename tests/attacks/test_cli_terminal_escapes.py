"""Attacks on what a person reads, beyond ``verify``: names from outside in every command's text.

File names, claim contents (free-text fields, parent URIs), policy files and store paths are text
someone else chose. Printed raw, an ``ESC ]0;...BEL`` retitles the terminal and ``ESC [...m``
recolours or hides what follows; the CLI prints them escaped (``\\x1b``), never as the bytes.
Each test runs the real command on a real input and checks both streams.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelsign._frameworks import Environment
from modelsign.claims import attest
from modelsign.cli._app import run

from .conftest import Party, make_model

OSC = "\x1b]0;pwned\x07"  # set the terminal's title
OSC_ESCAPED = "\\x1b]0;pwned\\x07"
CSI = "\x1b[31mred"
CSI_ESCAPED = "\\x1b[31mred"


def _run(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, str]:
    code = run([str(a) for a in args])
    captured = capsys.readouterr()
    both = captured.out + captured.err
    assert "\x1b" not in both and "\x07" not in both, both
    return code, both


def _attest(model: Path, party: Party, **kw: Any) -> None:
    attest(model, signer=party.signer, relation="finetune", environment=Environment(frameworks=()),
           use_cache=False, **kw)


def test_claims_prints_claim_fields_escaped(model: Path, publisher: Party,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _attest(model, publisher, method=f"lora{OSC}",
            base_models=[f"sha256:{'ab' * 32}=https://evil.example/{OSC}"])
    code, text = _run(capsys, "claims", model)
    assert code == 0
    assert f"lora{OSC_ESCAPED}" in text and f"https://evil.example/{OSC_ESCAPED}" in text


def test_lineage_tree_prints_parent_uris_escaped(model: Path, publisher: Party,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _attest(model, publisher, base_models=[f"sha256:{'cd' * 32}=https://evil.example/{OSC}"])
    code, text = _run(capsys, "lineage", model, "--key", publisher.public)
    assert code == 1  # the parent is unresolved
    assert f"https://evil.example/{OSC_ESCAPED}" in text


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_lineage_graph_formats_escape_parent_uris(model: Path, publisher: Party, fmt: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _attest(model, publisher, base_models=[f"sha256:{'cd' * 32}=https://evil.example/{OSC}"])
    code, text = _run(capsys, "lineage", model, "--key", publisher.public, "--format", fmt)
    assert code == 1
    assert OSC_ESCAPED in text


def test_policy_lint_prints_file_names_and_keys_escaped(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    bad = tmp_path / f"bad{CSI}.yaml"
    # YAML takes no raw control characters; a double-quoted key spells them \e (ESC), \a (BEL).
    bad.write_text('apiVersion: modelsign/v1\nkind: ModelPolicy\n"x\\e]0;pwned\\a": 1\n',
                   encoding="utf-8")
    code, text = _run(capsys, "policy", "lint", bad)
    assert code == 2
    assert f"bad{CSI_ESCAPED}.yaml" in text and f"x{OSC_ESCAPED}" in text
    code, text = _run(capsys, "policy", "lint", bad, "--format", "json")
    assert code == 2


def test_hash_never_prints_a_file_name_raw(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    model = make_model(tmp_path / "m", {f"a{CSI}.bin": b"x", "b.bin": b"y"})
    for fmt in ("text", "json"):
        code, _ = _run(capsys, "hash", model, "--format", fmt)
        assert code == 0
    code, text = _run(capsys, "hash", tmp_path / f"missing{CSI}")
    assert code == 2
    assert f"missing{CSI_ESCAPED}" in text


def test_sign_prints_the_model_name_escaped(tmp_path: Path, publisher: Party,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    model = make_model(tmp_path / f"m{OSC}")
    code, text = _run(capsys, "sign", model, "--key", publisher.private)
    assert code == 0
    assert f"m{OSC_ESCAPED}" in text


def test_store_add_prints_the_store_path_escaped(model: Path, publisher: Party, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run(capsys, "store", "add", model, "--store", tmp_path / f"store{OSC}",
                      "--key", publisher.public)
    assert code == 0
    assert f"store{OSC_ESCAPED}" in text
