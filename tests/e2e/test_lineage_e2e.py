"""Lineage end to end, keyless: a family of models built with ``modelsign sign`` and ``modelsign
attest`` against the loopback Sigstore (the real sigstore-python client and verifier), then
checked with ``modelsign lineage``.

The family::

    chat-data (dataset) --+
    base --finetune--> ft-a --adapter--> adapter --quantized--> q4      four generations
      \\--finetune--> ft-b                                               |
    ft-a + ft-b --merge--> merged                                        a merge of two fine-tunes

``base`` and ``chat-data`` are published by META; everything else is signed by TRAINER. Nothing
of ours is mocked; every signature is real.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from modelsign import hash_model
from modelsign.lineage import ParentRule, SignerRule, verify_lineage
from modelsign.testing import LoopbackSigstore
from modelsign.verify import Identity, Trust

from .conftest import SCHEMA, model_dir, ok, run_cli

META = "base@meta.test"
TRAINER = "trainer@acme.test"
MALLORY = "mallory@evil.test"


@dataclass(frozen=True)
class Family:
    sigstore: LoopbackSigstore
    trust_config: Path
    dirs: dict[str, Path]
    roots: dict[str, str]

    def token(self, who: str) -> str:
        return self.sigstore.mint_token(who)

    def sign(self, name: str, who: str) -> None:
        ok("sign", self.dirs[name], "--trust-config", self.trust_config,
           "--identity-token", self.token(who))

    def rules(self) -> list[str]:
        """Who may sign the ancestors: META for base and chat-data (by digest), TRAINER else."""
        url = self.sigstore.url
        return ["--parent-identity", f"sha256:{self.roots['base']}={META}@{url}",
                "--parent-identity", f"sha256:{self.roots['chat-data']}={META}@{url}",
                "--parent-identity", f"*={TRAINER}@{url}"]

    def subject(self) -> list[str]:
        return ["--identity", TRAINER, "--issuer", self.sigstore.url,
                "--trust-config", str(self.trust_config)]

    def upstream(self, *names: str) -> list[str]:
        out: list[str] = []
        for n in names:
            out += ["--upstream", f"sha256:{self.roots[n]}={self.dirs[n]}"]
        return out


@pytest.fixture(scope="module")
def family(loopback_sigstore: LoopbackSigstore, sigstore_trust_config: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Family:
    top = tmp_path_factory.mktemp("family")
    dirs = {n: model_dir(top / n, i, 2048) for i, n in
            enumerate(["base", "ft-a", "ft-b", "merged", "adapter", "q4"], start=1)}
    data = top / "chat-data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"text": "hello"}\n')
    dirs["chat-data"] = data
    fam = Family(loopback_sigstore, sigstore_trust_config, dirs, {})
    fam.sign("base", META)
    fam.sign("chat-data", META)
    url = loopback_sigstore.url

    def attest(child: str, relation: str, *parents: str, dataset: str | None = None,
               parent_who: str = TRAINER) -> None:
        args: list[str | Path] = ["attest", dirs[child], "--relation", relation,
                                  "--trust-config", sigstore_trust_config,
                                  "--identity-token", fam.token(TRAINER), "--no-hardware",
                                  "--parent-identity", parent_who, "--parent-issuer", url,
                                  "--parent-trust-config", sigstore_trust_config]
        for p in parents:
            args += ["--base-model", dirs[p]]
        if dataset:
            args += ["--dataset", dirs[dataset]]
        ok(*args)
        fam.sign(child, TRAINER)

    attest("ft-a", "finetune", "base", dataset="chat-data", parent_who=META)
    attest("ft-b", "finetune", "base", parent_who=META)
    attest("merged", "merge", "ft-a", "ft-b")
    attest("adapter", "adapter", "ft-a")
    attest("q4", "quantized", "adapter")
    fam.roots.update({n: hash_model(p).root_hex for n, p in dirs.items()})
    return fam


def test_four_generations_every_node_verified(family: Family) -> None:
    out = ok("lineage", family.dirs["q4"], *family.subject(), *family.rules(),
             *family.upstream("adapter", "ft-a", "base", "chat-data"))
    lines = out.splitlines()
    # the tree: each generation under its child, with the relation that links them
    expect = ["q4 sha256:" + family.roots["q4"][:12],
              "quantized ← adapter sha256:" + family.roots["adapter"][:12],
              "adapter ← ft-a sha256:" + family.roots["ft-a"][:12],
              "finetune ← base sha256:" + family.roots["base"][:12],
              "dataset (finetune) ← chat-data sha256:" + family.roots["chat-data"][:12]]
    found = [next((i for i, ln in enumerate(lines) if e in ln), None) for e in expect]
    assert None not in found, out
    assert found == sorted(found), out  # in generation order, down the tree
    for i in found:
        assert "✔ verified" in lines[i], lines[i]  # type: ignore[index]
    assert "✘" not in out and "?" not in out.split("lineage verified")[0]
    assert f"signed by {META}" in lines[found[3]]  # type: ignore[index]
    assert f"signed by {TRAINER}" in lines[found[1]]  # type: ignore[index]
    assert "lineage verified: 5 node(s), depth 3" in out


def test_four_generations_as_json_and_api(family: Family) -> None:
    rc, out, err = run_cli("lineage", family.dirs["q4"], *family.subject(), *family.rules(),
                           *family.upstream("adapter", "ft-a", "base", "chat-data"),
                           "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert doc["verdict"] == "verified" and doc["depth"] == 3
    by_name = {n["name"]: n for n in doc["nodes"]}
    assert {n: (v["state"], v["depth"], v["bytes"]) for n, v in by_name.items()} == {
        "q4": ("verified", 0, "rehashed"), "adapter": ("verified", 1, "rehashed"),
        "ft-a": ("verified", 2, "rehashed"), "base": ("verified", 3, "rehashed"),
        "chat-data": ("verified", 3, "rehashed")}
    assert by_name["base"]["signer"]["identity"] == META
    assert by_name["base"]["signer"]["log_index"] is not None
    assert sorted((e["relation"], e["role"]) for e in doc["edges"]) == [
        ("adapter", "base_model"), ("finetune", "base_model"), ("finetune", "dataset"),
        ("quantized", "base_model")]

    # the same through the API, with a policy-shaped view of every node
    url = family.sigstore.url
    graph = verify_lineage(
        family.dirs["q4"], identities=[Identity(identity=TRAINER, issuer=url)],
        trust=Trust.from_trust_config(family.trust_config),
        parents=[ParentRule(f"sha256:{family.roots['base']}",
                            SignerRule(identities=(Identity(identity=META, issuer=url),))),
                 ParentRule(f"sha256:{family.roots['chat-data']}",
                            SignerRule(identities=(Identity(identity=META, issuer=url),))),
                 ParentRule("*", SignerRule(identities=(Identity(identity=TRAINER,
                                                                 issuer=url),)))],
        upstream={family.roots[n]: family.dirs[n] for n in ("adapter", "ft-a", "base",
                                                             "chat-data")})
    assert graph.ok and graph.depth == 3
    base = graph.by_digest(family.roots["base"])
    assert (base.role, base.relation, base.child) == ("base_model", "finetune",
                                                      f"sha256:{family.roots['ft-a']}")
    assert base.signer is not None and base.signer.identity == META


def test_a_merge_of_two_finetunes_is_a_dag(family: Family) -> None:
    rc, out, err = run_cli("lineage", family.dirs["merged"], *family.subject(), *family.rules(),
                           *family.upstream("ft-a", "ft-b", "base", "chat-data"),
                           "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    keys = {n["name"]: n["key"] for n in doc["nodes"]}
    assert sorted(keys) == ["base", "chat-data", "ft-a", "ft-b", "merged"]  # base once
    assert all(n["state"] == "verified" for n in doc["nodes"])
    edges = {(e["child"], e["parent"]): e["relation"] for e in doc["edges"]}
    assert edges == {
        (keys["merged"], keys["ft-a"]): "merge", (keys["merged"], keys["ft-b"]): "merge",
        (keys["ft-a"], keys["base"]): "finetune", (keys["ft-b"], keys["base"]): "finetune",
        (keys["ft-a"], keys["chat-data"]): "finetune"}
    # the tree shows the shared base once in full, and says so the second time
    tree = ok("lineage", family.dirs["merged"], *family.subject(), *family.rules(),
              *family.upstream("ft-a", "ft-b", "base", "chat-data"))
    assert tree.count("merge ← ft-") == 2 and tree.count("finetune ← base") == 2
    assert "✘" not in tree


def test_a_parent_re_signed_by_another_identity_is_named(family: Family,
                                                         tmp_path: Path) -> None:
    """Same bytes, same root digest, but base's model.sig is now Mallory's: base alone fails."""
    base = tmp_path / "base"
    shutil.copytree(family.dirs["base"], base)
    ok("sign", base, "--trust-config", family.trust_config,
       "--identity-token", family.token(MALLORY))
    assert hash_model(base).root_hex == family.roots["base"]
    rc, out, err = run_cli("lineage", family.dirs["q4"], *family.subject(), *family.rules(),
                           "--upstream", f"sha256:{family.roots['base']}={base}",
                           *family.upstream("adapter", "ft-a", "chat-data"), "--format", "json")
    assert rc == 1, err
    doc = json.loads(out)
    states = {n["name"]: n["state"] for n in doc["nodes"]}
    assert states == {"q4": "verified", "adapter": "verified", "ft-a": "verified",
                      "base": "identity_not_allowed", "chat-data": "verified"}
    node = next(n for n in doc["nodes"] if n["name"] == "base")
    assert MALLORY in node["reason"] and META in node["reason"]
    assert node["signer"] is None  # a signer nobody allowed is not reported as one
    assert "identity not allowed" in err
