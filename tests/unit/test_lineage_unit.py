"""Unit tests of lineage's values and rules: patterns, rule choice, budgets, the graph's token,
the CLI's option parsing, and the walker against a small in-memory Hub (a :class:`HubClient`
written here, the injectable interface the walker takes; nothing of modelsign is patched)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from modelsign._frameworks import Environment
from modelsign.claims import attest
from modelsign.errors import InputError, InternalError
from modelsign.lineage import (
    Budget,
    HubClient,
    HubComparison,
    HubFiles,
    HubRef,
    LineageGraph,
    ParentRule,
    RemoteBudgetExceeded,
    RemoteMeter,
    SignerRule,
    parse_hub_uri,
    rule_for,
    verify_lineage,
)
from modelsign.manifest import Manifest
from modelsign.signing import KeySigner, sign_model
from modelsign.testing._pki import KeyPair, make_key
from modelsign.verify import Identity, Trust, VerificationResult

HEX = "ab" * 32
ISS = "https://issuer.example"


def _rule(name: str) -> SignerRule:
    return SignerRule(identities=(Identity(identity=f"{name}@x.test", issuer=ISS),))


# ------------------------------------------------------------------------------ rules
def test_patterns_are_validated() -> None:
    with pytest.raises(InputError):
        ParentRule("", _rule("a"))
    with pytest.raises(InputError):
        ParentRule("sha256:abc", _rule("a"))
    with pytest.raises(InputError):
        SignerRule()
    with pytest.raises(InputError):
        SignerRule(identities=("me@x",))  # type: ignore[arg-type]


def test_digest_patterns_win_then_the_first_matching_glob() -> None:
    rules = [ParentRule("*", _rule("any")), ParentRule("hf://meta/*", _rule("meta")),
             ParentRule(f"sha256:{HEX}", _rule("pinned")), ParentRule("*", _rule("any2"))]
    signer, pattern = rule_for(rules, digest=HEX, uri="hf://meta/x", name=None)
    assert pattern == f"sha256:{HEX}" and [i.identity for i in signer.identities] == [  # type: ignore[union-attr]
        "pinned@x.test"]
    # globs in order: "*" comes first here, and every rule given with "*" applies
    signer, pattern = rule_for(rules, digest="cd" * 32, uri="hf://meta/x", name=None)
    assert pattern == "*"
    assert [i.identity for i in signer.identities] == ["any@x.test", "any2@x.test"]  # type: ignore[union-attr]
    specific_first = rules[1:2] + rules[:1]
    assert rule_for(specific_first, digest=None, uri="hf://meta/x", name=None)[1] == "hf://meta/*"
    assert rule_for(specific_first, digest=None, uri="hf://other/x", name=None)[1] == "*"
    # without a URI the glob is matched against the recorded name
    assert rule_for([ParentRule("base-*", _rule("n"))], digest=None, uri=None,
                    name="base-7b")[1] == "base-*"
    assert rule_for([ParentRule("hf://a/*", _rule("n"))], digest=HEX, uri=None,
                    name=None) == (None, None)


def test_globs_are_case_sensitive_and_whole() -> None:
    r = ParentRule("hf://Meta/*", _rule("m"))
    assert not r.matches(digest=None, uri="hf://meta/x", name=None)
    assert not ParentRule("hf://meta/x", _rule("m")).matches(digest=None, uri="hf://meta/xy",
                                                            name=None)


def test_hub_uris_must_be_pinned() -> None:
    c = "f" * 40
    assert parse_hub_uri("hf://acme/base", c) == HubRef("acme/base", "model", c)
    assert parse_hub_uri("hf://datasets/acme/chat", c) == HubRef("acme/chat", "dataset", c)
    assert str(parse_hub_uri("hf://datasets/acme/chat", c)) == f"hf://datasets/acme/chat@{c}"
    for uri, commit in (("hf://acme/base", None), ("hf://acme/base", "main"),
                        ("https://x/acme/base", c), ("hf://acme/../x", c), ("hf://acme", c)):
        assert parse_hub_uri(uri, commit) is None


# ------------------------------------------------------------------------------ budget
def test_the_meter_charges_bytes_and_time_against_the_budget() -> None:
    now = [0.0]
    meter = RemoteMeter(Budget(max_seconds=10, max_bytes=100), clock=lambda: now[0])
    meter.charge(60, "a")
    with pytest.raises(RemoteBudgetExceeded) as e:
        meter.charge(41, "b")
    assert e.value.exit_code == 1 and "byte budget" in str(e.value)
    assert meter.bytes == 60  # a refused charge is not counted
    now[0] = 10.5
    with pytest.raises(RemoteBudgetExceeded, match="time budget"):
        meter.check_time("c")
    for bad in ({"max_seconds": 0}, {"max_bytes": 0}, {"max_bytes": True}):
        with pytest.raises(InputError):
            Budget(**bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ graph
def test_only_lineage_builds_graphs(tmp_path: Path) -> None:
    with pytest.raises(InternalError):
        LineageGraph("x", None, (), (), 16)  # type: ignore[arg-type]


def test_bad_arguments_are_input_errors(tmp_path: Path) -> None:
    key = make_key(tmp_path, "k")
    m = tmp_path / "m"
    m.mkdir()
    (m / "f").write_text("x")
    for kwargs in ({"max_depth": -1}, {"max_depth": True}, {"parents": ["*=a"]},
                   {"upstream": {"nothex": m}}, {"upstream": {HEX: tmp_path / "missing"}},
                   {"hub": object()}, {"fetch_files": True}, {"store": tmp_path / "none"}):
        with pytest.raises(InputError):
            verify_lineage(m, key=key.public, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InputError):  # who may sign the subject must be said
        verify_lineage(m)
    with pytest.raises(InputError):
        verify_lineage(tmp_path / "missing", key=key.public)


# ------------------------------------------------------------------------------ the CLI parsing
def test_parent_options_parse_into_rules(tmp_path: Path) -> None:
    from modelsign.cli._lineage import parse_parent_rules, parse_upstream

    key = make_key(tmp_path, "k")
    rules = parse_parent_rules(
        identity=["hf://meta/*=ml@meta.example@https://accounts.google.com"],
        identity_regex=[r"*=^https://github\.com/acme/@https://token.actions.example"],
        key=[f"sha256:{HEX}={key.public}"])
    assert [r.pattern for r in rules] == ["hf://meta/*", "*", f"sha256:{HEX}"]
    assert rules[0].signer.identities[0] == Identity(identity="ml@meta.example",
                                                     issuer="https://accounts.google.com")
    assert rules[1].signer.identities[0].identity_regex == r"^https://github\.com/acme/"
    assert rules[2].signer.keys == (key.public,)
    for bad in ({"identity": ["no-equals"]}, {"identity": ["*=id-without-issuer"]},
                {"identity": ["*=id@not-a-url"]}, {"key": ["*=/missing.pem"]},
                {"key": ["=x"]}):
        with pytest.raises(InputError):
            parse_parent_rules(**bad)  # type: ignore[arg-type]
    assert parse_upstream([f"sha256:{HEX}=a=b"]) == [(f"sha256:{HEX}", Path("a=b"))]
    with pytest.raises(InputError):
        parse_upstream(["sha256:x"])


# ------------------------------------------------------------------------------ a Hub in memory
class MemoryHub:
    """A :class:`HubClient` over directories: ``repos[(repo_id, commit)] = directory``. The
    per-file metadata it reports is ``described`` when set (a lying Hub), else the truth."""

    def __init__(self, repos: dict[tuple[str, str], Path]) -> None:
        self.repos = repos
        self.fetched: list[str] = []
        self.lie: dict[str, str] = {}

    def fetch(self, ref: HubRef, *, meter: RemoteMeter) -> HubFiles:
        d = self.repos.get((ref.repo_id, ref.commit))
        if d is None:
            raise InputError("repository not found on the Hub", path=str(ref))
        sig, claims = d / "model.sig", d / "claims.jsonl"
        for p in (sig, claims):
            if p.exists():
                meter.charge(p.stat().st_size, f"downloading {p.name}")
                self.fetched.append(p.name)
        return HubFiles(ref, sig if sig.exists() else None, claims if claims.exists() else None,
                        d)

    def compare(self, files: HubFiles, manifest: Manifest) -> HubComparison:
        import hashlib

        d: Path = files.handle  # type: ignore[assignment]
        problems = []
        for r in manifest.resources:
            actual = self.lie.get(r.path) or hashlib.sha256((d / r.path).read_bytes()).hexdigest()
            if actual != r.hex:
                problems.append(f"changed {r.path} (signed {r.hex}, Hub sha256 {actual})")
        return HubComparison(len(manifest.resources) - len(problems), (), tuple(problems))

    def download_and_verify(self, files: HubFiles, *, identities: Sequence[object] = (),
                            key: Path | None = None, cert_chain: Sequence[Path] = (),
                            trust: Trust | None = None,
                            meter: RemoteMeter) -> VerificationResult:
        from modelsign.verify import verify_model

        return verify_model(files.handle, key=key)  # type: ignore[arg-type]


def test_the_memory_hub_is_a_hub_client() -> None:
    assert isinstance(MemoryHub({}), HubClient)


@pytest.fixture
def hub_family(tmp_path: Path) -> tuple[KeyPair, Path, Path, MemoryHub]:
    key = make_key(tmp_path / "keys", "k")
    signer = KeySigner.from_pem_file(key.private)
    base = tmp_path / "hub" / "base"
    base.mkdir(parents=True)
    (base / "model.safetensors").write_bytes(b"weights" * 100)
    sign_model(base, signer=signer)
    commit = "c" * 40
    ft = tmp_path / "ft"
    ft.mkdir()
    (ft / "model.safetensors").write_bytes(b"ft" * 100)
    sign_model(ft, signer=signer)
    attest(ft, signer=signer, relation="finetune", base_models=[f"hf://acme/base@{commit}"],
           environment=Environment((), (), ()))
    return key, base, ft, MemoryHub({("acme/base", commit): base})


def _lineage(key: KeyPair, ft: Path, hub: MemoryHub, **kw: object):  # type: ignore[no-untyped-def]
    return verify_lineage(ft, key=key.public, hub=hub,
                          parents=[ParentRule("hf://acme/*", SignerRule(keys=(key.public,)))],
                          **kw)  # type: ignore[arg-type]


def test_hub_parent_verified_from_signature_and_metadata(hub_family) -> None:  # type: ignore[no-untyped-def]
    key, _, ft, hub = hub_family
    g = _lineage(key, ft, hub)
    assert g.ok, g.describe_failures()
    (node,) = g.nodes
    assert (node.source, node.bytes_check, node.git_commit) == ("hub", "hub_metadata", "c" * 40)
    assert hub.fetched == ["model.sig"]
    assert any("bytes not downloaded" in n for n in node.notes)
    doc = g.to_json()
    assert doc["nodes"][1]["digest"]["sha256"] == node.digest


def test_hub_metadata_that_differs_is_a_digest_mismatch(hub_family) -> None:  # type: ignore[no-untyped-def]
    key, _, ft, hub = hub_family
    hub.lie["model.safetensors"] = "0" * 64
    (node,) = _lineage(key, ft, hub).nodes
    assert node.state == "digest_mismatch" and "Hub sha256 " + "0" * 64 in (node.reason or "")


def test_fetch_files_rehashes(hub_family) -> None:  # type: ignore[no-untyped-def]
    key, base, ft, hub = hub_family
    (node,) = _lineage(key, ft, hub, fetch_files=True).nodes
    assert (node.state, node.bytes_check) == ("verified", "rehashed")
    (base / "model.safetensors").write_bytes(b"evil" * 175)
    hub.lie["model.safetensors"] = next(iter(  # the Hub describes the signed bytes
        r.hex for r in node.result.manifest.resources))  # type: ignore[union-attr]
    (node,) = _lineage(key, ft, hub, fetch_files=True).nodes
    assert node.state == "digest_mismatch"


def test_the_time_budget_applies_to_the_whole_walk(hub_family) -> None:  # type: ignore[no-untyped-def]
    key, _, ft, hub = hub_family
    ticks = iter([0.0])  # the walk starts at 0; every later reading says 100 s have passed
    (node,) = _lineage(key, ft, hub, budget=Budget(max_seconds=10),
                       clock=lambda: next(ticks, 100.0)).nodes
    assert node.state == "unresolved" and "time budget" in (node.reason or "")
    assert hub.fetched == []


def test_an_unsigned_hub_repo(hub_family) -> None:  # type: ignore[no-untyped-def]
    key, base, ft, hub = hub_family
    (base / "model.sig").unlink()
    (node,) = _lineage(key, ft, hub).nodes
    assert node.state == "unsigned" and "no model.sig" in (node.reason or "")


def test_nodes_carry_what_a_policy_reads(hub_family) -> None:  # type: ignore[no-untyped-def]
    """Per node: digest, role, uri, relation, state, depth, child, signer (a verified Signer or
    None) and reason; per edge: child, parent, role and relation."""
    from modelsign.lineage import NODE_STATES
    from modelsign.verify import Signer

    key, _, ft, hub = hub_family
    g = _lineage(key, ft, hub)
    (n,) = g.nodes
    assert (n.state, n.role, n.relation, n.child, n.depth, n.uri, n.reason) == (
        "verified", "base_model", "finetune", g.root.key, 1, "hf://acme/base", None)
    assert isinstance(n.signer, Signer) and n.signer.kind == "key"
    assert [(e.child, e.parent, e.role, e.relation) for e in g.edges] == [
        (g.root.key, n.key, "base_model", "finetune")]
    assert NODE_STATES == ("verified", "identity_not_allowed", "unsigned", "digest_mismatch",
                           "unresolved", "claim_invalid")
    assert dataclasses.is_dataclass(g) and json.dumps(g.to_json())
    with pytest.raises(dataclasses.FrozenInstanceError):
        n.state = "verified"  # type: ignore[misc]


def test_each_node_is_verified_once(hub_family, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A merge of two fine-tunes of one Hub base: the base is fetched and verified once, and
    has two edges."""
    key, _, ft, hub = hub_family
    signer = KeySigner.from_pem_file(key.private)
    ft_b = tmp_path / "ft-b"
    ft_b.mkdir()
    (ft_b / "model.safetensors").write_bytes(b"ftb" * 100)
    sign_model(ft_b, signer=signer)
    attest(ft_b, signer=signer, relation="finetune", base_models=["hf://acme/base@" + "c" * 40],
           environment=Environment((), (), ()))
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "model.safetensors").write_bytes(b"m" * 100)
    sign_model(merged, signer=signer)
    from modelsign.claims import ParentVerifier

    attest(merged, signer=signer, relation="merge", base_models=[ft, ft_b],
           parent_verifier=ParentVerifier(key=key.public), environment=Environment((), (), ()))
    from modelsign import hash_model

    g = verify_lineage(merged, key=key.public, hub=hub,
                       upstream={hash_model(p).root_hex: p for p in (ft, ft_b)},
                       parents=[ParentRule("*", SignerRule(keys=(key.public,)))])
    assert g.ok, g.describe_failures()
    assert hub.fetched == ["model.sig"]  # once, for two children
    base = g.node("hf://acme/base@" + "c" * 40)
    assert len(g.children(base.key)) == 2 and base.depth == 2 and base.min_depth == 2
    assert [e.relation for e in g.parents(g.root.key)] == ["merge", "merge"]
