"""Every way a lineage breaks is caught, and named at the node where it breaks.

Models are signed and attested with modelsign's API (key signing: real ECDSA signatures, nothing
mocked); ``modelsign lineage --format json`` checks them, and each test asserts the state of every
node, so a break reported at the wrong node fails the test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from modelsign import hash_model
from modelsign._frameworks import Environment
from modelsign.claims import ParentVerifier, append_claim, attest
from modelsign.errors import InputError
from modelsign.signing import KeySigner, sign_model
from modelsign.statements._provenance import Dependency, provenance_statement
from modelsign.testing._pki import make_key

from .conftest import SCHEMA, run_cli

ENV = Environment((), (), ())  # no framework detection: faster, and not what is tested here


class Lab:
    """Models in a temporary directory, signed and attested with the release key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.release = make_key(root / "keys", "release")
        self.other = make_key(root / "keys", "other")
        self.signer = KeySigner.from_pem_file(self.release.private)
        self.dirs: dict[str, Path] = {}

    def model(self, name: str, *, sign: bool = True, seed: int | None = None) -> Path:
        p = self.root / name
        p.mkdir(parents=True)
        (p / "config.json").write_text(json.dumps({"name": name, "seed": seed}))
        (p / "model.safetensors").write_bytes(name.encode() * 512)
        self.dirs[name] = p
        if sign:
            sign_model(p, signer=self.signer)
        return p

    def attest(self, child: str, relation: str, *parents: str, datasets: tuple[str, ...] = (),
               signer: KeySigner | None = None) -> None:
        attest(self.dirs[child], signer=signer or self.signer, relation=relation,  # type: ignore[arg-type]
               base_models=[self.dirs[p] for p in parents],
               datasets=[self.dirs[d] for d in datasets],
               parent_verifier=ParentVerifier(key=self.release.public), environment=ENV)

    def digest(self, name: str) -> str:
        return hash_model(self.dirs[name]).root_hex

    def chain(self, *names_and_relations: str) -> None:
        """``chain("base", "finetune", "ft", "adapter", "ad")``: each model attested on the one
        before it."""
        names = names_and_relations[::2]
        for n in names:
            self.model(n)
        for i in range(1, len(names)):
            self.attest(names[i], names_and_relations[2 * i - 1], names[i - 1])

    def lineage(self, subject: str, *extra: str | Path, upstream: tuple[str, ...] | None = None,
                expect: int | None = None) -> dict:  # type: ignore[type-arg]
        ups: list[str | Path] = []
        names = upstream if upstream is not None else tuple(n for n in self.dirs if n != subject)
        for n in names:
            ups += ["--upstream", f"sha256:{self.digest(n)}={self.dirs[n]}"]
        rc, out, err = run_cli("lineage", self.dirs[subject], "--key", self.release.public,
                               "--parent-key", f"*={self.release.public}", *ups, *extra,
                               "--format", "json")
        doc = json.loads(out)
        jsonschema.Draft202012Validator(SCHEMA).validate(doc)
        if expect is not None:
            assert rc == expect, (rc, err)
        return doc


def states(doc: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {n["name"]: n["state"] for n in doc["nodes"]}


def node(doc: dict, name: str) -> dict:  # type: ignore[type-arg]
    return next(n for n in doc["nodes"] if n["name"] == name)


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path)


def test_the_unbroken_chain_verifies(lab: Lab) -> None:
    lab.chain("base", "finetune", "ft", "adapter", "ad")
    doc = lab.lineage("ad", expect=0)
    assert states(doc) == {"ad": "verified", "ft": "verified", "base": "verified"}


def test_a_base_file_changed_after_the_child_was_attested(lab: Lab) -> None:
    lab.chain("base", "finetune", "ft", "adapter", "ad")
    recorded = lab.digest("base")
    ups = tuple(["--upstream", f"sha256:{recorded}={lab.dirs['base']}",
                 "--upstream", f"sha256:{lab.digest('ft')}={lab.dirs['ft']}"])
    (lab.dirs["base"] / "model.safetensors").write_bytes(b"poisoned weights")

    doc = lab.lineage("ad", *ups, upstream=(), expect=1)
    assert states(doc) == {"ad": "verified", "ft": "verified", "base": "digest_mismatch"}
    reason = node(doc, "base")["reason"]
    assert "changed model.safetensors" in reason and "changed after it was signed" in reason

    # re-signed after the change: its own signature holds, but it is not what ft recorded
    sign_model(lab.dirs["base"], signer=lab.signer)
    doc = lab.lineage("ad", *ups, upstream=(), expect=1)
    assert states(doc) == {"ad": "verified", "ft": "verified", "base": "digest_mismatch"}
    reason = node(doc, "base")["reason"]
    assert f"the child recorded sha256:{recorded}" in reason
    assert f"sha256:{lab.digest('base')}" in reason
    assert node(doc, "base")["signer"]["kind"] == "key"  # its signature did verify


def test_a_parent_re_signed_by_another_key(lab: Lab) -> None:
    lab.chain("base", "finetune", "ft", "adapter", "ad")
    sign_model(lab.dirs["ft"], signer=KeySigner.from_pem_file(lab.other.private))
    doc = lab.lineage("ad", expect=1)
    assert states(doc) == {"ad": "verified", "ft": "identity_not_allowed"}
    assert "not an allowed key" in node(doc, "ft")["reason"]
    # ft's own parents are not walked: nothing it says is trusted
    assert [e["relation"] for e in doc["edges"]] == ["adapter"]


def test_a_missing_parent_is_unresolved(lab: Lab) -> None:
    lab.chain("base", "finetune", "ft", "adapter", "ad")
    doc = lab.lineage("ad", upstream=("ft",), expect=1)
    assert states(doc) == {"ad": "verified", "ft": "verified", "base": "unresolved"}
    assert f"--upstream sha256:{lab.digest('base')}=DIR" in node(doc, "base")["reason"]


def test_a_parent_without_a_signature_is_unsigned(lab: Lab) -> None:
    lab.model("base", sign=False)  # attest hashes it and records it as unsigned
    lab.model("ft")
    lab.attest("ft", "finetune", "base")
    doc = lab.lineage("ft", expect=1)
    assert states(doc) == {"ft": "verified", "base": "unsigned"}
    assert "no model.sig" in node(doc, "base")["reason"]
    assert node(doc, "base")["digest"]["sha256"] == lab.digest("base")


def test_a_signature_that_does_not_verify_is_unsigned(lab: Lab) -> None:
    lab.chain("base", "finetune", "ft")
    sig = lab.dirs["base"] / "model.sig"
    bundle = json.loads(sig.read_text())
    s = bundle["dsseEnvelope"]["signatures"][0]["sig"]
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = ("A" if s[0] != "A" else "B") + s[1:]
    sig.write_text(json.dumps(bundle))
    doc = lab.lineage("ft", expect=1)
    assert states(doc) == {"ft": "verified", "base": "unsigned"}
    assert "does not verify" in node(doc, "base")["reason"]


def test_a_cycle_crafted_by_hand(lab: Lab) -> None:
    """claims.jsonl is outside the root digest, so two signed models can each claim to derive
    from the other: a lie no content-addressed history can tell. The claim closing it fails."""
    lab.model("a")
    lab.model("b")
    lab.attest("a", "finetune", "b")
    lab.attest("b", "finetune", "a")
    doc = lab.lineage("a", expect=1)
    assert states(doc) == {"a": "verified", "b": "claim_invalid"}
    reason = node(doc, "b")["reason"]
    assert reason.startswith("cycle:") and "line 1" in reason
    cycle = [(e["child"], e["parent"]) for e in doc["edges"] if e["cycle"]]
    assert cycle == [(f"sha256:{lab.digest('b')}", f"sha256:{lab.digest('a')}")]


def test_a_claim_naming_its_own_subject_as_parent(lab: Lab) -> None:
    """attest refuses it, so the statement is crafted and signed directly."""
    lab.model("self")
    root = lab.digest("self")
    st = provenance_statement("self", root, relation="finetune", dependencies=[
        Dependency("base_model", name="self", digest={"sha256": root})])
    append_claim(lab.dirs["self"], lab.signer.sign(st).raw)
    doc = lab.lineage("self", expect=1)
    assert states(doc) == {"self": "claim_invalid"}
    assert [e["cycle"] for e in doc["edges"]] == [True]


def test_a_chain_deeper_than_the_limit(lab: Lab) -> None:
    lab.chain("g0", "pretrain", "g1", "finetune", "g2", "finetune", "g3", "adapter", "g4")
    doc = lab.lineage("g4", "--max-depth", "2", expect=1)
    # two generations walked and verified; the third named, not resolved; g0 never reached
    assert states(doc) == {"g4": "verified", "g3": "verified", "g2": "verified",
                           "g1": "unresolved"}
    assert "beyond the depth limit" in node(doc, "g1")["reason"]
    assert node(doc, "g1")["depth"] == 3 and doc["maxDepth"] == 2
    assert lab.lineage("g4", expect=0)["depth"] == 4  # the default limit (16) walks it all


def test_a_claim_signed_by_a_key_nobody_allowed(lab: Lab) -> None:
    lab.chain("base", "finetune", "ft", "adapter", "ad")
    st_signer = KeySigner.from_pem_file(lab.other.private)
    lab.attest("ft", "finetune", "base", signer=st_signer)  # a second, foreign line
    doc = lab.lineage("ad", expect=1)
    assert states(doc) == {"ad": "verified", "ft": "claim_invalid", "base": "verified"}
    assert "claims.jsonl:2" in node(doc, "ft")["reason"]
    assert node(doc, "ft")["claims"] == {"total": 2, "verified": 1,
                                         "failures": node(doc, "ft")["claims"]["failures"]}


def test_no_rule_for_a_parent_is_not_a_pass(lab: Lab) -> None:
    """A child never vouches for its parent: without a rule for it, a signed parent fails."""
    lab.chain("base", "finetune", "ft")
    rc, out, err = run_cli("lineage", lab.dirs["ft"], "--key", lab.release.public,
                           "--upstream", f"sha256:{lab.digest('base')}={lab.dirs['base']}",
                           "--format", "json")
    assert rc == 1, err
    assert states(json.loads(out)) == {"ft": "verified", "base": "identity_not_allowed"}
    assert "no --parent-identity/--parent-key rule covers" in node(json.loads(out),
                                                                   "base")["reason"]


def test_a_digest_rule_wins_over_a_glob(lab: Lab) -> None:
    lab.chain("base", "finetune", "ft")
    sign_model(lab.dirs["base"], signer=KeySigner.from_pem_file(lab.other.private))
    doc = lab.lineage("ft", "--parent-key", f"sha256:{lab.digest('base')}={lab.other.public}",
                      expect=0)
    assert node(doc, "base")["rule"] == f"sha256:{lab.digest('base')}"


def test_a_hub_parent_is_not_fetched_unless_asked(lab: Lab) -> None:
    lab.model("ft")
    attest(lab.dirs["ft"], signer=lab.signer, relation="finetune",
           base_models=["hf://acme/base-7b@" + "a" * 40], environment=ENV)
    doc = lab.lineage("ft", expect=1)
    assert states(doc) == {"ft": "verified", "acme/base-7b": "unresolved"}
    hub = next(n for n in doc["nodes"] if n["role"] != "subject")
    assert hub["key"] == "hf://acme/base-7b@" + "a" * 40 and "--hub" in hub["reason"]


def test_bad_input_exits_2(lab: Lab) -> None:
    lab.chain("base", "finetune", "ft")
    for bad in (["--upstream", "nonsense"], ["--upstream", f"sha256:{'0' * 64}=/nope"],
                ["--parent-identity", "*=no-issuer"], ["--parent-key", "*=/no/such.pem"],
                ["--parent-identity", "sha256:12=a@https://x"], ["--fetch-files"]):
        rc, out, err = run_cli("lineage", lab.dirs["ft"], "--key", lab.release.public, *bad)
        assert rc == 2, (bad, err)
        assert "Traceback" not in err
    rc, out, err = run_cli("lineage", lab.dirs["ft"], "--format", "json")  # no rule for ft itself
    assert rc == 2
    doc = json.loads(out)
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert doc["verdict"] == "error" and doc["error"]["exit_code"] == 2


def test_unsigned_subject_and_a_tampered_subject(lab: Lab) -> None:
    lab.chain("base", "finetune", "ft")
    (lab.dirs["ft"] / "config.json").write_text("{}")
    doc = lab.lineage("ft", expect=1)
    assert node(doc, "ft")["state"] == "digest_mismatch"
    assert [n["role"] for n in doc["nodes"]] == ["subject"]  # nothing it says is followed
    shutil.rmtree(lab.dirs["ft"])
    lab.model("ft", sign=False)
    doc = lab.lineage("ft", expect=1)
    assert node(doc, "ft")["state"] == "unsigned"


def test_an_already_verified_subject_is_not_verified_again(lab: Lab) -> None:
    """``verify --lineage`` passes its VerificationResult: the walk starts from it."""
    from modelsign.lineage import ParentRule, SignerRule, verify_lineage
    from modelsign.verify import verify_model

    lab.chain("base", "finetune", "ft")
    result = verify_model(lab.dirs["ft"], key=lab.release.public)
    graph = verify_lineage(result, key=lab.release.public,
                           parents=[ParentRule("*", SignerRule(keys=(lab.release.public,)))],
                           upstream={lab.digest("base"): lab.dirs["base"]})
    assert graph.ok and graph.root.result is result
    assert [n.name for n in graph.nodes] == ["base"]
    with pytest.raises(InputError):  # who signs its claims must still be said
        verify_lineage(result)
