"""The CLI builds only the command it runs (start-up), yet every command is reachable."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import typer

from modelsign.cli import _app
from modelsign.testing import make_key


def _registered(module: str) -> set[str]:
    app = typer.Typer()
    import_module(module).register(app)
    return ({c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
            | {g.name for g in app.registered_groups if g.name})


def test_the_command_table_names_what_each_module_registers() -> None:
    """A command added to a module but not to COMMANDS (or the reverse) fails here."""
    want = {name: mod for mod in _app._COMMAND_MODULES for name in _registered(mod)}
    assert _app.COMMANDS == want


def test_a_command_imports_only_its_own_module(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights")
    code = ("import json, sys; from modelsign.cli import main; rc = main(['hash', sys.argv[1]]); "
            "print(json.dumps([rc, sorted(m for m in sys.modules if m.startswith('modelsign.'))]))")
    out = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True,
                         check=True, env={"MODELSIGN_CACHE_DIR": str(tmp_path / "cache"),
                                          "PATH": "/usr/bin:/bin"}).stdout
    rc, loaded = json.loads(out.strip().splitlines()[-1])
    assert rc == 0 and "modelsign.cli._hash" in loaded
    assert not {"modelsign.cli._verify", "modelsign.cli._sigstore", "modelsign.cli._hf",
                "modelsign.cli._lineage", "modelsign.cli._demo", "modelsign.signing",
                "modelsign.verify"} & set(loaded), loaded


def test_help_and_unknown_commands_still_see_every_command() -> None:
    full = _app.app_for(["--help"])
    names = ({c.name for c in full.registered_commands} | {g.name for g in full.registered_groups})
    assert names >= set(_app.COMMANDS)
    assert _app.app_for(["hsah"]) is full  # a typo gets the full app (and typer's suggestion)
    assert _app.app_for(["hash", "x"]) is not full


def _run_cli_and_list_modules(tmp_path: Path, argv: list[str]) -> tuple[int, set[str]]:
    """Run the CLI in a fresh interpreter; return its exit code and the modules it loaded."""
    code = ("import json, sys; from modelsign.cli import main; rc = main(sys.argv[1:]); "
            "print(json.dumps([rc, sorted(sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                         check=True, env={"MODELSIGN_CACHE_DIR": str(tmp_path / "cache"),
                                          "PATH": "/usr/bin:/bin"}).stdout
    rc, modules = json.loads(out.strip().splitlines()[-1])
    return rc, set(modules)


def _key_signed_model(tmp_path: Path) -> tuple[Path, Path, Path]:
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"weights")
    kp = make_key(tmp_path / "keys")
    return model, kp.private, kp.public


def test_sign_with_a_key_parses_without_pydantic_or_sigstore(tmp_path: Path) -> None:
    """Start-up is the whole cost of a small `sign --key`: typer 0.29 parses every option through
    pydantic TypeAdapters (~0.1 s here), hence the `typer<0.29` bound in pyproject.toml, and
    nothing on the key path needs sigstore. Whoever lifts the bound sees this fail."""
    model, key, _ = _key_signed_model(tmp_path)
    rc, modules = _run_cli_and_list_modules(
        tmp_path, ["sign", str(model), "--key", str(key), "--output", str(tmp_path / "s.sig")])
    assert rc == 0 and (tmp_path / "s.sig").is_file()
    assert not {"pydantic", "pydantic_core", "sigstore", "rich", "cryptography.x509"} & modules


def test_verify_without_claims_loads_no_statement_models(tmp_path: Path) -> None:
    """A model without claims.jsonl verifies without pydantic or the in-toto protobufs (the
    claims reader is split from the claim models: ~0.17 s of `verify` start-up), and a key
    signature without cryptography.x509 (~25 ms), which certificates and keyless need."""
    model, key, pub = _key_signed_model(tmp_path)
    assert _run_cli_and_list_modules(tmp_path, ["sign", str(model), "--key", str(key)])[0] == 0
    rc, modules = _run_cli_and_list_modules(tmp_path,
                                            ["verify", str(model), "--key", str(pub)])
    assert rc == 0
    assert not {"pydantic", "pydantic_core", "google", "in_toto_attestation", "sigstore",
                "cryptography.x509"} & modules
