"""Policy rules, table-driven: one conforming model, one policy, and for each rule a model that
breaks only that rule.

Everything a policy judges is real and verified: models signed keylessly against the loopback
Sigstore (the real sigstore-python client and verifier), a GitHub-workflow identity for the model,
derivation claims made with ``modelsign.claims.attest`` and verified by ``verify_claims``, the
lineage walked by ``modelsign.lineage.verify_lineage`` over real ancestors (some unsigned, one
signed by the wrong person, one three generations up), a key-signed variant with
``modelsign.signing.KeySigner``. Nothing is mocked.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from modelsign import hash_model
from modelsign._frameworks import Environment
from modelsign.claims import Parent, attest
from modelsign.lineage import LineageGraph, verify_lineage
from modelsign.policy import Facts, Policy, PolicyReport, build_facts, evaluate, load_policy
from modelsign.policy._run import lineage_options
from modelsign.signing import KeylessSigner, KeySigner, load_trust_config, sign_model
from modelsign.statements._provenance import Framework
from modelsign.testing import GITHUB_ACTIONS_ISSUER, GitHubWorkflow, LoopbackSigstore
from modelsign.testing._pki import KeyPair, make_key
from modelsign.verify import Identity, Trust, VerificationResult, verify_model
from modelsign.verify._claims import ClaimsReport, verify_claims

REPO = Path(__file__).resolve().parents[2]
PUBLISHER = "publisher@acme.test"
TRAINER = "trainer@acme.test"
INTERN = "intern@acme.test"
MALLORY = "mallory@evil.test"
WORKFLOW = GitHubWorkflow(repository="acme/model")
BASE_COMMIT = "1" * 40
EVIL_SET_COMMIT = "2" * 40


# ----------------------------------------------------------------------------------- the world
def _safetensors(path: Path, seed: int) -> None:
    header = json.dumps({"w": {"dtype": "U8", "shape": [64], "data_offsets": [0, 64]}}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes([seed]) * 64)


def _model(path: Path, seed: int, *, pickled: bool = False) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"seed": seed}))
    _safetensors(path / "model.safetensors", seed)
    if pickled:
        (path / "optimizer.pt").write_bytes(pickle.dumps({"step": 1}, protocol=4))
    return path


def _copy(src: Path, dst: Path, *, with_claims: bool = True) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
        "model.sig", *(() if with_claims else ("claims.jsonl",))))
    return dst


ENV_OK = Environment(frameworks=(Framework("python", "3.11.7", "generic"),
                                 Framework("torch", "2.6.0"),
                                 Framework("transformers", "4.51.3")))
ENV_OLD_TORCH = Environment(frameworks=(Framework("python", "3.11.7", "generic"),
                                        Framework("torch", "2.5.1"),
                                        Framework("transformers", "4.51.3")))


@dataclass
class World:
    s: LoopbackSigstore
    trust: Trust
    tmp: Path
    release: KeyPair
    base_root: str
    data_root: str
    evil_root: str
    policy: Policy
    upstream: dict[str, Path]                # root digest -> directory, for the lineage walk
    results: dict[str, VerificationResult]
    claims: dict[str, ClaimsReport]
    graphs: dict[str, LineageGraph]

    def keyless(self, identity: str) -> KeylessSigner:
        return KeylessSigner(trust_config=load_trust_config(path=self.s.write_trust_config(
            self.tmp / "tc.json")), identity_token=self.s.mint_token(identity))

    def github(self) -> KeylessSigner:
        return KeylessSigner(trust_config=load_trust_config(path=self.tmp / "tc.json"),
                             identity_token=self.s.mint_github_token(WORKFLOW))

    def identities(self) -> list[Identity]:
        """What `verify --policy` would pass the verifier: every keyless rule of the policy,
        plus (for the variants) mallory, whom the verifier accepts and the policy does not."""
        return [Identity(issuer=GITHUB_ACTIONS_ISSUER, identity_regex=r"^https://github\.com/acme/"),
                Identity(issuer=self.s.url, identity=INTERN),
                Identity(issuer=self.s.url, identity=TRAINER),
                Identity(issuer=self.s.url, identity=MALLORY)]


def _policy_text(w: World) -> str:
    return f"""\
apiVersion: modelsign/v1
kind: ModelPolicy
metadata: {{name: test-registry}}
signers:
  - {{issuer: "{GITHUB_ACTIONS_ISSUER}", identityRegex: "^https://github\\\\.com/acme/"}}
  - {{issuer: "{w.s.url}", identity: {INTERN}}}
  - {{publicKey: release.pub}}
requireClaims:
  - predicateType: https://slsa.dev/provenance/v1
    signers: [{{issuer: "{w.s.url}", identity: {TRAINER}}}]
    conditions:
      - "predicate.buildDefinition.externalParameters.relation in ['finetune', 'adapter']"
datasets:
  allow: ["sha256:{w.data_root}", "hf://datasets/acme/*"]
  deny: ["hf://datasets/acme/evil-*"]
  requireSigned: true
lineage:
  maxDepth: 2
  requireSignedParents: true
  allowedRelations: [finetune, adapter, quantized]
  parents:
    - match: "hf://acme/*"
      signers: [{{issuer: "{w.s.url}", identity: {PUBLISHER}}}]
  conditions:
    - "lineage.nodes.exists(n, n.role == 'base_model' && n.uri.startsWith('hf://acme/'))"
frameworks: {{torch: ">=2.6", transformers: ">=4.50"}}
maxAge: 30d
serialization: {{pickle: deny}}
conditions:
  - expr: "signature.subject.name.startsWith('acme-')"
    message: "model names must start with acme-"
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("policy-world")
    with LoopbackSigstore() as s:
        tc = s.write_trust_config(tmp / "tc.json")
        trust = Trust.from_trust_config(tc)
        release = make_key(tmp / "keys", "release")
        w = World(s, trust, tmp, release, "", "", "", None, {}, {}, {}, {})  # type: ignore[arg-type]
        publisher = w.keyless(PUBLISHER)
        trainer = w.keyless(TRAINER)

        def signed(name: str, seed: int, signer: KeylessSigner | None = publisher) -> Path:
            d = _model(tmp / name, seed)
            if signer is not None:
                sign_model(d, signer=signer)
            w.upstream[hash_model(d).root_hex] = d
            return d

        def hub(d: Path, uri: str, commit: str) -> Parent:
            return Parent("hub", uri.removeprefix("hf://").split("@")[0], f"{uri}@{commit}",
                          hash_model(d).root_hex, commit, True)

        def derive(d: Path, parent: Parent, relation: str = "finetune") -> None:
            attest(d, signer=publisher, relation=relation,  # type: ignore[arg-type]
                   base_models=[parent], environment=ENV_OK, import_torch=False)

        # Ancestors. The conforming base and datasets:
        base = signed("base", 1)
        data = signed("data", 2)
        evil = signed("evil-set", 3)
        unsigned_set = signed("unsigned-set", 4, signer=None)
        w.base_root, w.data_root, w.evil_root = (hash_model(d).root_hex for d in (base, data, evil))
        # ... three generations: base-deep <- gp <- ggp
        ggp = signed("ggp", 20)
        gp = signed("gp", 21)
        derive(gp, hub(ggp, "hf://upstream/ggp", "9" * 40))
        base_deep = signed("base-deep", 22)
        derive(base_deep, hub(gp, "hf://upstream/gp", "a" * 40))
        # ... a base derived from an unsigned model, one merged, one signed by the intern
        gp_unsigned = signed("gp-unsigned", 23, signer=None)
        base_us = signed("base-us", 24)
        derive(base_us, hub(gp_unsigned, "hf://upstream/gp-unsigned", "b" * 40))
        gp_leaf = signed("gp-leaf", 25)
        base_m = signed("base-m", 26)
        derive(base_m, hub(gp_leaf, "hf://upstream/gp-leaf", "c" * 40), relation="merge")
        base_intern = signed("base-intern", 27, signer=w.keyless(INTERN))

        base_parent = hub(base, "hf://acme/base", BASE_COMMIT)
        data_parent = Parent("local", "data", None, w.data_root, None, True)
        evil_parent = hub(evil, "hf://datasets/acme/evil-set", EVIL_SET_COMMIT)

        def claim(target: Path, *, signer: KeylessSigner = trainer, relation: str = "finetune",
                  parent: Parent = base_parent, datasets: tuple[Parent, ...] = (data_parent,),
                  env: Environment = ENV_OK) -> None:
            attest(target, signer=signer, relation=relation,  # type: ignore[arg-type]
                   base_models=[parent], datasets=list(datasets), environment=env,
                   import_torch=False)

        # The conforming model: files, a GitHub-workflow signature, one derivation claim.
        ft = _model(tmp / "acme-ft", 7)
        sign_model(ft, signer=w.github())
        claim(ft)

        # Variants of the same bytes (same root digest): another signature or other claims.
        variants: dict[str, Path] = {}

        def variant(name: str, *, sig: KeylessSigner | KeySigner | None = None,
                    claims: Callable[[Path], None] | None = None,
                    dirname: str | None = None) -> None:
            d = _copy(ft, tmp / (dirname or f"acme-{name}"), with_claims=claims is None)
            sign_model(d, signer=sig or w.github())
            if claims is not None:
                claims(d)
            variants[name] = d

        variant("signers", sig=w.keyless(MALLORY))
        variant("claim-signer", claims=lambda d: claim(d, signer=w.keyless(INTERN)))
        variant("claim-condition", claims=lambda d: claim(d, relation="quantized"))
        variant("dataset-not-allowed", claims=lambda d: claim(
            d, datasets=(data_parent, Parent("digest", None, None, w.evil_root, None, False))))
        variant("dataset-denied", claims=lambda d: claim(d, datasets=(data_parent,
                                                                      evil_parent)))
        variant("dataset-unsigned", claims=lambda d: claim(d, datasets=(
            data_parent, hub(unsigned_set, "hf://datasets/acme/unsigned-set", "d" * 40))))
        variant("deep", claims=lambda d: claim(d, parent=hub(base_deep, "hf://acme/base-deep",
                                                               "4" * 40)))
        variant("unsigned-gp", claims=lambda d: claim(d, parent=hub(base_us, "hf://acme/base-us",
                                                                      "5" * 40)))
        variant("merge-gp", claims=lambda d: claim(d, parent=hub(base_m, "hf://acme/base-m",
                                                                   "6" * 40)))
        variant("intern-base", claims=lambda d: claim(d, parent=hub(
            base_intern, "hf://acme/base-intern", "7" * 40)))
        variant("elsewhere", claims=lambda d: claim(d, parent=hub(base, "hf://elsewhere/base",
                                                                    BASE_COMMIT)))
        variant("old-torch", claims=lambda d: claim(d, env=ENV_OLD_TORCH))
        variant("key-signed", sig=KeySigner.from_pem_file(release.private))
        variant("renamed", dirname="other-ft")
        pickled = _model(tmp / "acme-pickled", 7, pickled=True)
        sign_model(pickled, signer=w.github())
        claim(pickled)
        variants["pickled"] = pickled
        variants["conforming"] = ft

        shutil.copy(release.public, tmp / "release.pub")
        (tmp / "policy.yaml").write_text(_policy_text(w))
        w.policy = load_policy(tmp / "policy.yaml")

        for name, d in variants.items():
            key = name == "key-signed"
            result = verify_model(d, key=release.public, trust=trust) if key else \
                verify_model(d, identities=w.identities(), trust=trust)
            report = verify_claims(d, result.root_digest, identities=w.identities(),
                                   trust=trust)
            assert report.ok, report.describe_failures()
            w.results[name], w.claims[name] = result, report
            w.graphs[name] = _walk(w, result)
        yield w


def _walk(w: World, result: VerificationResult) -> LineageGraph:
    """The lineage as `verify --policy --lineage` walks it (every policy signer accepted; the
    policy's lineage rules judge who signed what)."""
    return verify_lineage(result, trust=w.trust, upstream=w.upstream,
                          **lineage_options(w.policy))


def _facts(w: World, name: str) -> Facts:
    return build_facts(w.results[name], claims=w.claims[name], lineage=w.graphs[name])


def _report(w: World, facts: Facts, **kw: object) -> PolicyReport:
    clock = kw.pop("clock", lambda: datetime.now(UTC))
    return evaluate(w.policy, facts, clock=clock, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- tests
ALL_RULES = [
    "signers", "requireClaims[0]", "datasets.allow", "datasets.deny", "datasets.requireSigned",
    "lineage.maxDepth", "lineage.requireSignedParents", "lineage.allowedRelations",
    "lineage.parents[0]", "lineage.conditions[0]", "frameworks.torch", "frameworks.transformers",
    "maxAge", "serialization.pickle", "conditions[0]",
]


def test_the_conforming_model_passes_every_rule(world: World) -> None:
    report = _report(world, _facts(world, "conforming"))
    assert [r.rule for r in report.rules] == ALL_RULES
    assert report.verdict == "pass", report.to_text()
    assert all(r.status == "pass" for r in report.rules), report.to_text()
    # every rule points at its line in the policy file
    assert all(r.line is not None for r in report.rules)
    assert report.rule("signers").reason.startswith(
        f"model.sig signed by {WORKFLOW.identity} (issuer {GITHUB_ACTIONS_ISSUER})")
    assert "transparency-log time" in report.rule("maxAge").reason


# rule -> (how the facts are broken, words the reason must contain)
BROKEN: dict[str, tuple[Callable[[World], Facts], list[str]]] = {
    "signers": (lambda w: _facts(w, "signers"), [
        f"model.sig signed by {MALLORY} (issuer", "but the policy allows only:",
        "an identity matching ^https://github\\.com/acme/", f"{INTERN} (issuer",
        "the key release.pub (sha256:"]),
    "requireClaims[0]": (lambda w: _facts(w, "claim-signer"), [
        "needs one verified claim of https://slsa.dev/provenance/v1 that satisfies it, found 0",
        f"claims.jsonl line 1 signed by {INTERN} (issuer",
        f"but the policy allows only: {TRAINER} (issuer"]),
    "datasets.allow": (lambda w: _facts(w, "dataset-not-allowed"), [
        "the provenance names dataset(s) the policy does not allow", "sha256:"]),
    "datasets.deny": (lambda w: _facts(w, "dataset-denied"), [
        "denied dataset(s): hf://datasets/acme/evil-set@" + EVIL_SET_COMMIT]),
    "datasets.requireSigned": (lambda w: _facts(w, "dataset-unsigned"), [
        "every dataset must be signed and verified: hf://datasets/acme/unsigned-set@",
        ": unsigned"]),
    "lineage.maxDepth": (lambda w: _facts(w, "deep"), [
        "the lineage is 3 generation(s) deep", "the policy allows at most 2"]),
    "lineage.requireSignedParents": (lambda w: _facts(w, "unsigned-gp"), [
        "every ancestor must verify on its own signature: hf://upstream/gp-unsigned@",
        ": unsigned"]),
    "lineage.allowedRelations": (lambda w: _facts(w, "merge-gp"), [
        "hf://acme/base-m@6666666666666666666666666666666666666666 sha256:",
        " is a merge of hf://upstream/gp-leaf@",
        "the policy allows only finetune, adapter, quantized"]),
    "lineage.parents[0]": (lambda w: _facts(w, "intern-base"), [
        "ancestors matching hf://acme/*", f"signed by {INTERN}",
        f"but the policy allows only: {PUBLISHER}"]),
    "lineage.conditions[0]": (lambda w: _facts(w, "elsewhere"), [
        "condition `lineage.nodes.exists(n, n.role == 'base_model' && "
        "n.uri.startsWith('hf://acme/'))` is false"]),
    "frameworks.torch": (lambda w: _facts(w, "old-torch"), [
        "trained with torch 2.5.1 (claims.jsonl line 1), but the policy requires torch>=2.6"]),
    "maxAge": (lambda w: _facts(w, "key-signed"), [
        "model.sig has no trusted signing time (signed with key material"]),
    "serialization.pickle": (lambda w: _facts(w, "pickled"), [
        "1 pickle-based file(s)", "optimizer.pt (a pickle)", "the policy denies pickle"]),
    "conditions[0]": (lambda w: _facts(w, "renamed"), ["model names must start with acme-"]),
}


@pytest.mark.parametrize("rule", list(BROKEN))
def test_each_rule_fails_alone_with_its_reason(world: World, rule: str) -> None:
    make, words = BROKEN[rule]
    report = _report(world, make(world))
    failed = [r.rule for r in report.rules if r.status == "fail"]
    assert failed == [rule], report.to_text()
    assert report.verdict == "fail"
    reason = report.rule(rule).reason
    for w in words:
        assert w in reason, (w, reason)


def test_a_claim_condition_over_the_provenance_predicate(world: World) -> None:
    report = _report(world, _facts(world, "claim-condition"))
    assert [r.rule for r in report.failures] == ["requireClaims[0]"], report.to_text()
    assert ("claims.jsonl line 1: condition `predicate.buildDefinition.externalParameters."
            "relation in ['finetune', 'adapter']` is false") in report.rule(
        "requireClaims[0]").reason


def test_max_age_counts_from_the_log_time(world: World) -> None:
    facts = _facts(world, "conforming")
    later = facts.signature.time + timedelta(days=31)  # type: ignore[operator]
    report = _report(world, facts, clock=lambda: later)
    assert [r.rule for r in report.failures] == ["maxAge"]
    reason = report.rule("maxAge").reason
    assert "model.sig was signed 31 days ago (transparency-log time" in reason
    assert "the policy allows at most 30d" in reason


def test_the_report_validates_and_is_byte_stable(world: World) -> None:
    schema = json.loads((REPO / "schemas" / "policy-report.schema.json").read_text())
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    for name in ("conforming", "pickled"):
        one = _report(world, _facts(world, name), clock=lambda: at)
        two = _report(world, _facts(world, name), clock=lambda: at)
        jsonschema.Draft202012Validator(schema).validate(one.to_json())
        assert one.to_json_bytes() == two.to_json_bytes()
        doc = json.loads(one.to_json_bytes())
        assert doc["evaluatedAt"] == "2030-01-02T03:04:05Z"
        assert doc["policy"]["sha256"] == world.policy.sha256
        assert list(doc) == sorted(doc)


def test_each_derivation_step_counts_once(world: World) -> None:
    # the model's own step (from its claim), then base-deep <- gp <- ggp: three in all
    report = _report(world, _facts(world, "deep"))
    assert report.rule("lineage.allowedRelations").reason.startswith(
        "3 derivation step(s), all of finetune, adapter, quantized")
    graph = world.graphs["deep"]
    assert [n.depth for n in graph.nodes if n.role == "base_model"] == [1, 2, 3]


# ------------------------------------------------------------- unverified data decides nothing
def _flip_signature_byte(line: bytes) -> bytes:
    """Break the DSSE signature of a claim line, leaving its (satisfying) payload intact."""
    import base64

    obj = json.loads(line)
    sig = bytearray(base64.b64decode(obj["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[len(sig) // 2] ^= 0x01
    obj["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    return json.dumps(obj, separators=(",", ":")).encode()


def test_a_claim_with_a_bad_signature_satisfies_nothing(world: World, tmp_path: Path) -> None:
    """The conforming claim, signature broken: its predicate would pass every condition, yet the
    rules that need it fail, and say that a claim did not verify."""
    good = world.results["conforming"]
    d = tmp_path / "acme-ft"
    shutil.copytree(Path(good.path), d)
    line = (d / "claims.jsonl").read_bytes().splitlines()[0]
    (d / "claims.jsonl").write_bytes(_flip_signature_byte(line) + b"\n")
    result = verify_model(d, identities=world.identities(), trust=world.trust)
    claims = verify_claims(d, result.root_digest, identities=world.identities(),
                           trust=world.trust)
    assert not claims.ok and claims.claims[0].status == "failed"
    report = _report(world, build_facts(result, claims=claims, lineage=_walk(world, result)))
    failed = {r.rule: r.reason for r in report.failures}
    # nothing that needs the claim passes: not the claim rule, not the datasets or frameworks it
    # names, not the lineage it would draw (the walker does not follow it either)
    assert set(failed) == {"requireClaims[0]", "datasets.allow", "datasets.deny",
                           "datasets.requireSigned", "lineage.maxDepth",
                           "lineage.requireSignedParents", "lineage.allowedRelations",
                           "lineage.parents[0]", "lineage.conditions[0]", "frameworks.torch",
                           "frameworks.transformers"}, report.to_text()
    assert failed["lineage.maxDepth"] == ("the lineage is unknown: no verified provenance claim "
                                          "names this model's parents")
    assert failed["requireClaims[0]"].startswith(
        "needs one verified claim of https://slsa.dev/provenance/v1, found none; 1 claim(s) did "
        "not verify and were not considered: line 1: ")
    assert "no verified provenance claim" in failed["datasets.allow"]


def test_a_verified_claim_about_another_model_satisfies_nothing(world: World,
                                                                tmp_path: Path) -> None:
    """A claim whose signature verifies, copied beside another model: verify_claims fails the
    line (yet keeps the verified statement on it); build_facts must not use it."""
    pickled = world.results["pickled"]
    d = tmp_path / "acme-ft"
    shutil.copytree(Path(world.results["conforming"].path), d)
    shutil.copy(Path(pickled.path) / "claims.jsonl", d / "claims.jsonl")
    result = verify_model(d, identities=world.identities(), trust=world.trust)
    claims = verify_claims(d, result.root_digest, identities=world.identities(),
                           trust=world.trust)
    line = claims.claims[0]
    assert line.status == "failed" and line.verified is not None  # the trap
    facts = build_facts(result, claims=claims, lineage=_walk(world, result))
    assert facts.claims == () and len(facts.rejected_claims) == 1
    report = _report(world, facts)
    assert "requireClaims[0]" in {r.rule for r in report.failures}
    assert "is about another artifact" in report.rule("requireClaims[0]").reason

    # bare statements are checked the same way
    facts = build_facts(result, claims=[line.verified])  # type: ignore[list-item]
    assert facts.claims == ()
    assert "not this model's root digest" in facts.rejected_claims[0].reason


def test_facts_come_only_from_the_verifier(world: World) -> None:
    from modelsign.errors import InternalError
    from modelsign.policy._facts import Facts as FactsType

    good = world.results["conforming"]
    with pytest.raises(InternalError, match="VerificationResult"):
        build_facts(good.statement)  # type: ignore[arg-type]
    with pytest.raises(InternalError, match="not a verified statement"):
        build_facts(good, claims=[{"predicateType": "x"}])  # type: ignore[list-item]
    with pytest.raises(InternalError, match=r"only be built by modelsign\.policy\.build_facts"):
        FactsType("x", "0" * 64, "t", None, (), (), None, ())  # type: ignore[arg-type]
    with pytest.raises(InternalError, match="not a LineageGraph"):
        build_facts(good, claims=world.claims["conforming"],
                    lineage=world.graphs["conforming"].to_json())  # type: ignore[arg-type]
    with pytest.raises(InternalError, match="about another artifact"):
        build_facts(world.results["pickled"], claims=world.claims["pickled"],
                    lineage=world.graphs["conforming"])
    with pytest.raises(InternalError, match="Policy"):
        evaluate({"signers": []}, _facts(world, "conforming"))  # type: ignore[arg-type]


def test_without_lineage_the_lineage_rules_fail_and_say_why(world: World) -> None:
    result = world.results["conforming"]
    report = _report(world, build_facts(result, claims=world.claims["conforming"]))
    failed = {r.rule: r.reason for r in report.failures}
    # datasets.allow/deny too: the model's own datasets pass, but what its ancestors were
    # trained on is unknown without the walk (tests/integration/test_policy_lineage_rules.py)
    assert set(failed) == {"datasets.allow", "datasets.deny", "datasets.requireSigned",
                           "lineage.maxDepth", "lineage.requireSignedParents",
                           "lineage.allowedRelations", "lineage.parents[0]",
                           "lineage.conditions[0]"}, report.to_text()
    assert "lineage not resolved" in failed["datasets.requireSigned"]
    assert failed["datasets.deny"].startswith("none of the 1 dataset(s) is denied, but only "
                                              "this model's own claims were judged")
    assert failed["lineage.maxDepth"] == ("the lineage is unknown: the provenance names parents, "
                                          "but the lineage was not resolved (run with --lineage)")


# --------------------------------------------------------------------- CEL over real facts
def _with_conditions(w: World, claim_conditions: list[str], conditions: list[str]) -> Policy:
    from modelsign.policy import parse_policy

    text = f"""\
apiVersion: modelsign/v1
kind: ModelPolicy
signers: [{{issuer: "{GITHUB_ACTIONS_ISSUER}", identityRegex: "^https://github\\\\.com/acme/"}}]
requireClaims:
  - predicateType: https://slsa.dev/provenance/v1
    signers: [{{issuer: "{w.s.url}", identity: {TRAINER}}}]
    conditions: {json.dumps(claim_conditions)}
conditions: {json.dumps(conditions)}
"""
    return parse_policy(text, source="cel.yaml", base_dir=w.tmp)


def test_cel_missing_fields_and_runaway_conditions_fail_cleanly(world: World) -> None:
    import time

    policy = _with_conditions(
        world,
        ["predicate.buildDefinition.externalParameters.nope == 'x'"],
        ["claims.all(c, has(c.predicate.buildDefinition.externalParameters.relation))",
         "signature.extensions['1.3.6.1.4.1.57264.1.12'] == 'https://github.com/acme/model'",
         # 30^4 = 810,000 inner evaluations: far past the step budget
         "claims.map(a, [" + ",".join(["1"] * 30) + "].map(b, [" + ",".join(["1"] * 30)
         + "].map(c, [" + ",".join(["1"] * 30) + "].map(d, [" + ",".join(["1"] * 30)
         + "].map(e, a.line + b + c + d + e))))).size() > 0",
         "frameworks.torch.exists(v, v.startsWith('2.6'))"])
    t = time.monotonic()
    report = evaluate(policy, _facts(world, "conforming"))
    elapsed = time.monotonic() - t
    assert elapsed < 5, elapsed
    by = {r.rule: r for r in report.rules}
    assert by["requireClaims[0]"].status == "fail"
    assert ("condition `predicate.buildDefinition.externalParameters.nope == 'x'` could not be "
            "evaluated: no such field 'nope'") in by["requireClaims[0]"].reason
    assert by["conditions[0]"].status == "pass"
    # the verifier reports the certificate's extensions: the real source repository URI
    assert by["conditions[1]"].status == "pass", by["conditions[1]"].reason
    assert by["conditions[2]"].status == "fail"
    assert "could not be evaluated: stopped after" in by["conditions[2]"].reason
    assert by["conditions[3]"].status == "pass", by["conditions[3]"].reason


# ------------------------------------------------------------- verify_with_policy (the hook)
def test_verify_with_policy_end_to_end(world: World, tmp_path: Path) -> None:
    """The call `modelsign verify PATH --policy FILE` makes: trust material from the policy,
    model.sig and every claims line verified, facts built, policy evaluated."""
    from modelsign.errors import IdentityError
    from modelsign.policy import verify_with_policy

    def run(name: str) -> PolicyReport:
        d = Path(world.results[name].path)
        return verify_with_policy(d, world.policy, trust=world.trust, lineage=True,
                                  upstream=world.upstream).report  # type: ignore[arg-type]

    assert run("conforming").passed
    key = run("key-signed")  # model.sig by the policy's key: picked by its hint
    assert [r.rule for r in key.failures] == ["maxAge"]
    with pytest.raises(IdentityError, match=MALLORY):  # the verifier refuses mallory outright
        run("signers")

    # claims signed with different kinds of material in one file: each line verified by its own
    d = _copy(Path(world.results["conforming"].path), tmp_path / "acme-mixed")
    sign_model(d, signer=world.github())
    attest(d, signer=KeySigner.from_pem_file(world.release.private), relation="finetune",
           environment=ENV_OK, import_torch=False)
    stranger = make_key(tmp_path / "keys", "stranger")
    attest(d, signer=KeySigner.from_pem_file(stranger.private), relation="finetune",
           environment=ENV_OK, import_torch=False)
    outcome = verify_with_policy(d, world.policy, trust=world.trust,
                                 lineage=world.graphs["conforming"])
    lines = {c.line: c for c in outcome.claims.claims}
    assert lines[1].ok and lines[2].ok and not lines[3].ok
    assert lines[3].reason is not None and "different key" in lines[3].reason
    assert [c.line for c in outcome.facts.claims] == [1, 2]
    assert outcome.report.passed, outcome.report.to_text()  # the trainer's claim satisfies it

    # a key the policy does not name
    rogue = _copy(Path(world.results["conforming"].path), tmp_path / "acme-rogue")
    sign_model(rogue, signer=KeySigner.from_pem_file(stranger.private))
    with pytest.raises(IdentityError, match="signed with a key the policy does not name"):
        verify_with_policy(rogue, world.policy, trust=world.trust)


# ------------------------------------------------------------ certificate-extension pins
def _pinned(w: World, **pins: str) -> Policy:
    from modelsign.policy import parse_policy

    extra = "".join(f", {k}: \"{v}\"" for k, v in pins.items())
    return parse_policy(HEAD_KEYLESS.format(issuer=GITHUB_ACTIONS_ISSUER, extra=extra),
                        base_dir=w.tmp)


HEAD_KEYLESS = """\
apiVersion: modelsign/v1
kind: ModelPolicy
signers: [{{issuer: "{issuer}", identityRegex: "^https://github\\\\.com/acme/"{extra}}}]
"""
SOURCE_REPOSITORY = "1.3.6.1.4.1.57264.1.12"


def test_extension_pins(world: World) -> None:
    import dataclasses

    facts = _facts(world, "conforming")
    pinned = _pinned(world, sourceRepository=WORKFLOW.source_repository_uri,
                     runnerEnvironment="github-hosted")
    # Today the verifier does not report certificate extensions: a pinned rule cannot pass.
    if not facts.signature.extensions:
        r = evaluate(pinned, facts).rule("signers")
        assert r.status == "fail"
        assert ("(certificate runnerEnvironment is no such extension, the policy pins "
                "'github-hosted')") in r.reason
    # What the matching does once it does (stand-in extensions on the verified signer).
    signer = dataclasses.replace(facts.signature, extensions={
        SOURCE_REPOSITORY: WORKFLOW.source_repository_uri,
        "1.3.6.1.4.1.57264.1.11": "github-hosted"})
    ok = dataclasses.replace(facts, signature=signer)
    assert evaluate(pinned, ok).passed
    wrong = _pinned(world, sourceRepository="https://github.com/acme/other")
    r = evaluate(wrong, ok).rule("signers")
    assert r.status == "fail" and (
        f"(certificate sourceRepository is '{WORKFLOW.source_repository_uri}', the policy pins "
        "'https://github.com/acme/other')") in r.reason
    # and CEL sees them too
    from modelsign.policy import parse_policy

    cel = parse_policy(HEAD_KEYLESS.format(issuer=GITHUB_ACTIONS_ISSUER, extra="") + (
        f"conditions: [\"signature.extensions['{SOURCE_REPOSITORY}'].endsWith('/acme/model')\"]\n"
    ), base_dir=world.tmp)
    assert evaluate(cel, ok).passed


def test_certificate_chain_signers_and_certificate_time(world: World, tmp_path: Path) -> None:
    from modelsign.policy import parse_policy
    from modelsign.signing import CertificateSigner
    from modelsign.testing._pki import make_cert_chain

    pki = make_cert_chain(tmp_path / "pki")
    other = make_cert_chain(tmp_path / "other-pki")
    d = _copy(Path(world.results["conforming"].path), tmp_path / "acme-cert")
    sign_model(d, signer=CertificateSigner.from_pem_files(pki.key, pki.leaf, [pki.chain]))
    result = verify_model(d, cert_chain=[pki.root])
    facts = build_facts(result)
    text = ("apiVersion: modelsign/v1\nkind: ModelPolicy\n"
            "signers: [{{certificateChain: {root}}}]\nmaxAge: 2d\n")
    report = evaluate(parse_policy(text.format(root=pki.root)), facts)
    assert report.passed, report.to_text()
    assert "(certificate time " in report.rule("maxAge").reason
    # a CA with another name
    stranger = tmp_path / "stranger-ca.pem"
    stranger.write_bytes(_self_signed("stranger root CA"))
    refused = evaluate(parse_policy(text.format(root=stranger)), facts).rule("signers")
    assert refused.status == "fail"
    assert refused.reason == (
        "model.sig signed by certificate 'CN=modelsign test signer,O=modelsign test PKI' "
        "(chained to 'CN=modelsign test root CA,O=modelsign test PKI'), but the policy allows "
        f"only: a certificate chaining to {stranger} (CN=stranger root CA)")
    # another CA with the *same* name: only the anchor's fingerprint tells them apart
    same_name = evaluate(parse_policy(text.format(root=other.root)), facts).rule("signers")
    assert same_name.status == "fail"


def _self_signed(cn: str) -> bytes:
    from datetime import UTC

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def test_warnings_do_not_fail_and_are_in_the_report(world: World) -> None:
    from modelsign.policy import parse_policy

    policy = parse_policy(HEAD_KEYLESS.format(issuer=GITHUB_ACTIONS_ISSUER, extra="") + (
        "serialization: {pickle: warn}\nframeworks: {torch: '>=2.6', jax: '>=0.4'}\n"),
        source="warn.yaml")
    report = evaluate(policy, _facts(world, "pickled"))
    assert report.verdict == "pass" and report.summary == {"pass": 2, "fail": 0, "warn": 2}
    assert [r.rule for r in report.warnings] == ["frameworks.jax", "serialization.pickle"]
    assert report.rule("frameworks.jax").reason == (
        "the provenance does not record jax, so >=0.4 was not checked")
    schema = json.loads((REPO / "schemas" / "policy-report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(report.to_json())
    assert "WARN  serialization.pickle: 1 pickle-based file(s)" in report.to_text()


def test_uninspected_files_cannot_pass_a_pickle_rule(world: World) -> None:
    result = world.results["conforming"]
    facts = build_facts(result, claims=world.claims["conforming"],
                        lineage=world.graphs["conforming"], sniff_files=False)
    assert {f.format for f in facts.files} == {"unknown"}
    report = _report(world, facts)
    assert [r.rule for r in report.failures] == ["serialization.pickle"]
    assert "were not inspected" in report.rule("serialization.pickle").reason
