"""The pictures render and the JSON validates: ``--format dot`` through Graphviz's ``dot -Tsvg``,
``--format mermaid`` checked for its structure and escaping, ``--format json`` against
schemas/lineage.schema.json, for a graph with a merge, a cycle and failures, and names full of
characters that would break either language.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from modelsign import hash_model
from modelsign._frameworks import Environment
from modelsign.claims import ParentVerifier, attest
from modelsign.signing import KeySigner, sign_model
from modelsign.testing._pki import make_key

from .conftest import SCHEMA, run_cli

EVIL = 'ba"se {x} |[y]| <b>&#amp; \\n'


@pytest.fixture
def graph_args(tmp_path: Path) -> list[str | Path]:
    """merged <- {ft-a, ft-b} <- EVIL, ft-b also claims to derive from merged (a cycle), and a
    dataset nobody can find."""
    key = make_key(tmp_path / "keys", "k")
    signer = KeySigner.from_pem_file(key.private)
    env = Environment((), (), ())
    dirs = {}
    for i, n in enumerate([EVIL, "ft-a", "ft-b", "merged", "lost-data"], start=1):
        p = tmp_path / n
        p.mkdir()
        (p / "w.safetensors").write_bytes(bytes([i]) * 256)
        sign_model(p, signer=signer)
        dirs[n] = p
    pv = ParentVerifier(key=key.public)
    attest(dirs["ft-a"], signer=signer, relation="finetune", base_models=[dirs[EVIL]],
           datasets=[dirs["lost-data"]], parent_verifier=pv, environment=env)
    attest(dirs["ft-b"], signer=signer, relation="finetune", base_models=[dirs[EVIL]],
           parent_verifier=pv, environment=env)
    attest(dirs["merged"], signer=signer, relation="merge",
           base_models=[dirs["ft-a"], dirs["ft-b"]], parent_verifier=pv, environment=env)
    attest(dirs["ft-b"], signer=signer, relation="other", base_models=[dirs["merged"]],
           parent_verifier=pv, environment=env)
    ups: list[str | Path] = []
    for n in (EVIL, "ft-a", "ft-b"):
        ups += ["--upstream", f"sha256:{hash_model(dirs[n]).root_hex}={dirs[n]}"]
    return ["lineage", dirs["merged"], "--key", key.public, "--parent-key", f"*={key.public}",
            *ups]


def test_json_validates_and_tells_every_state(graph_args: list[str | Path]) -> None:
    rc, out, err = run_cli(*graph_args, "--format", "json")
    assert rc == 1, err
    doc = json.loads(out)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert {n["name"]: n["state"] for n in doc["nodes"]} == {
        "merged": "verified", "ft-a": "verified", "ft-b": "claim_invalid",
        EVIL: "verified", "lost-data": "unresolved"}
    assert sum(e["cycle"] for e in doc["edges"]) == 1
    assert doc["summary"]["nodes"] == 5 and doc["summary"]["edges"] == 6
    # human text went to stderr, stdout is the one document
    assert "lineage failed" in err and out.lstrip().startswith("{")


def test_dot_renders_with_graphviz(graph_args: list[str | Path], tmp_path: Path) -> None:
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz): the DOT output "
                    "cannot be rendered here")
    rc, out, _ = run_cli(*graph_args, "--format", "dot")
    assert rc == 1
    proc = subprocess.run([dot, "-Tsvg"], input=out.encode(), capture_output=True, timeout=30,
                          check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert not proc.stderr.strip(), proc.stderr.decode()  # no warnings either
    svg = ET.fromstring(proc.stdout)
    ns = {"s": "http://www.w3.org/2000/svg"}
    texts = [t.text or "" for t in svg.iterfind(".//s:text", ns)]
    assert EVIL in texts  # the hostile name survived escaping, intact
    assert {"merge", "finetune", "dataset (finetune)", "other (cycle)"} <= set(texts)
    assert texts.count("verified") == 3 and "claim invalid" in texts
    edges = [t.text for t in svg.iterfind(".//s:g[@class='edge']/s:title", ns)]
    assert len(edges) == 6


def test_mermaid_is_well_formed(graph_args: list[str | Path]) -> None:
    rc, out, _ = run_cli(*graph_args, "--format", "mermaid")
    assert rc == 1
    lines = out.splitlines()
    assert lines[0] == "flowchart TD"
    nodes = [ln for ln in lines if re.fullmatch(r"    n\d+\[\".*\"\]", ln)]
    edges = [ln for ln in lines if re.fullmatch(r'    n\d+ (-->|-\.->)\|"[^"]*"\| n\d+', ln)]
    assert len(nodes) == 5 and len(edges) == 6
    for ln in nodes:  # inside a label no character that ends it or starts markup
        label = ln.split('["', 1)[1][:-2].replace("<br/>", "")
        assert not set(label) & set('"[]{}|<>`'), ln
    assert any("ba#34;se #123;x#125;" in ln for ln in nodes)
    assert sum(ln.startswith("    class ") for ln in lines) == 5


_MERMAID_PARSE = """
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
const req = createRequire(process.argv[2] + "/package.json");
const { JSDOM } = req("jsdom");
const dom = new JSDOM("<!DOCTYPE html><body></body>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
globalThis.DOMParser = dom.window.DOMParser;
const { default: mermaid } = await import(pathToFileURL(req.resolve("mermaid")).href);
let text = "";
for await (const chunk of process.stdin) text += chunk;
try {
  const r = await mermaid.parse(text);
  console.log(JSON.stringify(r));
} catch (e) {
  console.error("PARSE ERROR: " + e.message);
  process.exit(1);
}
"""


def test_mermaid_parses_with_the_mermaid_parser(graph_args: list[str | Path],
                                                tmp_path: Path) -> None:
    """The real parser (npm ``mermaid``, in Node with ``jsdom``). Set MODELSIGN_MERMAID_DIR to a
    directory where ``npm install mermaid jsdom`` was run."""
    import os

    node, where = shutil.which("node"), os.environ.get("MODELSIGN_MERMAID_DIR")
    if node is None or not where or not (Path(where) / "node_modules" / "mermaid").is_dir():
        pytest.skip("the mermaid parser is not available: needs node and "
                    "MODELSIGN_MERMAID_DIR=<dir with `npm install mermaid jsdom`>")
    script = tmp_path / "parse.mjs"
    script.write_text(_MERMAID_PARSE)
    rc, out, _ = run_cli(*graph_args, "--format", "mermaid")
    assert rc == 1
    proc = subprocess.run([node, str(script), where], input=out.encode(), capture_output=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["diagramType"].startswith("flowchart")
    # and the parser does reject a broken label, so the check means something
    bad = subprocess.run([node, str(script), where], input=b'flowchart TD\n    n0["a"b"]\n',
                         capture_output=True, timeout=60, check=False)
    assert bad.returncode == 1 and b"PARSE ERROR" in bad.stderr
