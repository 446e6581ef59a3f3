"""Layering: ``modelsign.lineage`` never imports ``modelsign.integrations`` (or ``modelsign.cli``).

DESIGN.md's dependency direction is ``cli -> integrations -> policy -> lineage -> verify ...``: the
Hub adapter of lineage (``HuggingFaceHub``) is built on :mod:`modelsign._hub`, the Hub layer below
both, never on :mod:`modelsign.integrations.huggingface`.

Checked twice: statically (every import statement of the lineage package and of ``modelsign._hub``,
lazy ones inside functions included), and at run time in a fresh interpreter that resolves a Hub
parent through the loopback Hub, downloading and re-hashing it (``fetch_files``), then looks at
``sys.modules``.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import modelsign
from modelsign._frameworks import Environment
from modelsign.claims import attest
from modelsign.signing import KeySigner, sign_model
from modelsign.testing._hub import LoopbackHub
from modelsign.testing._pki import make_key

PACKAGE = Path(modelsign.__file__).resolve().parent
ABOVE = ("modelsign.integrations", "modelsign.cli")
TOKEN = "hf_loopback_dummy_token"


def _lower_layer_files() -> list[Path]:
    files = sorted((PACKAGE / "lineage").glob("*.py"))
    assert (PACKAGE / "lineage" / "_hf.py") in files  # the Hub adapter is among them
    return [*files, PACKAGE / "_hub.py"]


def _package_of(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])


def _imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``source`` (a module of ``package``), lazy ones
    inside functions included: ``import a.b``, ``from a.b import c`` (also as ``a.b.c``, for
    ``from modelsign import integrations``), relative ones resolved, ``import_module("a.b")``."""
    tree = ast.parse(source)
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            out.append((node.lineno, module))
            out += [(node.lineno, f"{module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if name in ("import_module", "__import__") and node.args \
                    and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                out.append((node.lineno, node.args[0].value))
    return out


def _is_above(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in ABOVE)


def test_the_lineage_package_imports_nothing_above_it() -> None:
    bad = [f"{p.relative_to(PACKAGE.parent)}:{line}: imports {module}"
           for p in _lower_layer_files()
           for line, module in _imported_modules(p.read_text(encoding="utf-8"), _package_of(p))
           if _is_above(module)]
    assert bad == [], "lineage must not import the layers above it (DESIGN.md):\n" + "\n".join(bad)


def test_the_import_scan_sees_lazy_and_relative_imports() -> None:
    """The static check would pass vacuously if the scan missed the forms it must catch."""
    source = ("def f():\n    from modelsign.integrations.huggingface import preflight\n"
              "from .. import integrations\n"
              "from ..cli import _app\n"
              "import modelsign.cli._hf\n"
              "importlib.import_module('modelsign.integrations.transformers')\n")
    above = [m for _, m in _imported_modules(source, "modelsign.lineage") if _is_above(m)]
    assert set(above) >= {"modelsign.integrations.huggingface", "modelsign.integrations",
                          "modelsign.cli", "modelsign.cli._app", "modelsign.cli._hf",
                          "modelsign.integrations.transformers"}
    assert not [m for _, m in _imported_modules("from modelsign.verify import x\n"
                                                "from . import _model\n", "modelsign.lineage")
                if _is_above(m)]


_CHILD = r"""
import json, sys
from pathlib import Path
from modelsign.lineage import HuggingFaceHub, ParentRule, SignerRule, verify_lineage

ft, pub, url, token, cache = sys.argv[1:]
hub = HuggingFaceHub(endpoint=url, token=token, cache_dir=cache)
graph = verify_lineage(ft, key=pub, hub=hub, fetch_files=True,
                       parents=[ParentRule("hf://acme/*", SignerRule(keys=(Path(pub),)))])
print(json.dumps({
    "failures": graph.describe_failures(),
    "nodes": [[n.source, n.bytes_check] for n in graph.nodes],
    "modules": sorted(sys.modules),
}))
"""


def _signed(directory: Path, signer: KeySigner, files: dict[str, bytes]) -> Path:
    directory.mkdir()
    for name, data in files.items():
        (directory / name).write_bytes(data)
    sign_model(directory, signer=signer)
    return directory


def test_resolving_a_hub_parent_never_imports_the_integrations(tmp_path: Path) -> None:
    hf = pytest.importorskip("huggingface_hub")
    key = make_key(tmp_path / "keys", "k")
    signer = KeySigner.from_pem_file(key.private)
    base = _signed(tmp_path / "base", signer, {"config.json": b'{"layers": 2}',
                                               "model.safetensors": os.urandom(4096)})
    ft = _signed(tmp_path / "ft", signer, {"model.safetensors": b"ft" * 1000})
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_OFFLINE": "0"}
    env.pop("HF_ENDPOINT", None)
    with LoopbackHub() as hub:
        # published with the plain client, so this process needs no modelsign.integrations either
        api = hf.HfApi(endpoint=hub.url, token=TOKEN)
        api.create_repo("acme/base")
        commit = api.upload_folder(repo_id="acme/base", folder_path=base).oid
        attest(ft, signer=signer, relation="finetune", base_models=[f"hf://acme/base@{commit}"],
               environment=Environment((), (), ()))
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(ft), str(key.public), hub.url, TOKEN,
             str(tmp_path / "hf-cache")],
            capture_output=True, text=True, env=env, timeout=120, check=False)
        assert "model.safetensors" in hub.downloads("acme/base")  # fetch_files went to the Hub
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["failures"] == []
    assert report["nodes"] == [["hub", "rehashed"]]  # the whole Hub path ran: fetch, compare,
    # download and verify
    above = [m for m in report["modules"] if _is_above(m)]
    assert above == [], f"resolving a Hub parent imported {above}"
    assert "modelsign._hub" in report["modules"]
