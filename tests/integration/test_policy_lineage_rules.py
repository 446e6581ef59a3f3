"""Policy rules over the whole verified lineage, not only the model's own claims.

Two findings of a review, each shown on real, key-signed models and a real lineage walk:

* ``datasets.allow`` / ``deny`` / ``requireSigned`` judge every dataset node of the verified
  lineage (a quantized copy of a fine-tune trained on a denied dataset is caught), and say so
  when the lineage was not walked (then they fail: the ancestors' datasets are unknown).
* ``lineage.parents[].match`` selects ancestors as ``modelsign lineage --parent-*`` does: a
  ``sha256:<root digest>``, or a glob over the recorded URI, else the recorded name (local and
  store ancestors have no URI); digest patterns first, then the first matching glob. A rule that
  selects no ancestor is a ``warn``, not a silent pass.

The chain::

    base (publisher) <-finetune- ft (trainer, trained on evil-set) <-quantized- q (trainer)
    base (publisher) <-finetune- ftc (trainer, trained on data)    <-quantized- qc (trainer)
    base (publisher) <-finetune- ftu (trainer, trained on unsigned-set) <-quantized- qu (trainer)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modelsign import hash_model
from modelsign.claims import Parent, attest
from modelsign.errors import PolicyFileError
from modelsign.lineage import LineageGraph, verify_lineage
from modelsign.policy import Policy, PolicyReport, build_facts, evaluate, parse_policy
from modelsign.policy._run import lineage_options, verify_with_policy
from modelsign.signing import KeySigner, sign_model
from modelsign.testing._pki import KeyPair, make_key
from modelsign.verify import verify_model
from modelsign.verify._claims import verify_claims

EVIL_URI = "hf://datasets/acme/evil-set"
EVIL_COMMIT = "2" * 40


def _artifact(path: Path, seed: int) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"seed": seed}))
    (path / "weights.safetensors").write_bytes(bytes([seed]) * 256)
    return path


@dataclass
class Chain:
    tmp: Path
    publisher: KeyPair
    trainer: KeyPair
    roots: dict[str, str] = field(default_factory=dict)
    dirs: dict[str, Path] = field(default_factory=dict)

    def local(self, name: str) -> Parent:
        return Parent("local", name, None, self.roots[name], None, True)

    def policy(self, body: str) -> Policy:
        text = ("apiVersion: modelsign/v1\nkind: ModelPolicy\n"
                f"signers:\n  - publicKey: {self.trainer.public}\n"
                f"  - publicKey: {self.publisher.public}\n" + body)
        return parse_policy(text, source="p.yaml", base_dir=self.tmp)

    def graph(self, name: str, policy: Policy) -> LineageGraph:
        result = verify_model(self.dirs[name], key=self.trainer.public)
        return verify_lineage(result, upstream={f"sha256:{r}": self.dirs[n]
                                                for n, r in self.roots.items()},
                              **lineage_options(policy))

    def report(self, name: str, policy: Policy, *, walk: bool = True) -> PolicyReport:
        result = verify_model(self.dirs[name], key=self.trainer.public)
        claims = verify_claims(self.dirs[name], result.root_digest, key=self.trainer.public)
        assert claims.ok, claims.describe_failures()
        graph = self.graph(name, policy) if walk else None
        return evaluate(policy, build_facts(result, claims=claims, lineage=graph))


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    tmp = tmp_path_factory.mktemp("policy-lineage")
    c = Chain(tmp, make_key(tmp / "keys", "publisher"), make_key(tmp / "keys", "trainer"))
    pub = KeySigner.from_pem_file(c.publisher.private)
    trn = KeySigner.from_pem_file(c.trainer.private)

    def make(name: str, seed: int, signer: KeySigner | None) -> Path:
        d = _artifact(tmp / name, seed)
        if signer is not None:
            sign_model(d, signer=signer)
        c.dirs[name], c.roots[name] = d, hash_model(d).root_hex
        return d

    make("base", 1, pub)
    make("data", 2, pub)
    make("evil-set", 3, pub)
    make("unsigned-set", 4, None)
    evil = Parent("hub", "datasets/acme/evil-set", f"{EVIL_URI}@{EVIL_COMMIT}",
                  c.roots["evil-set"], EVIL_COMMIT, True)
    for ft, q, dataset, seed in (("ft", "q", evil, 10), ("ftc", "qc", c.local("data"), 20),
                                 ("ftu", "qu", c.local("unsigned-set"), 30)):
        d = make(ft, seed, trn)
        attest(d, signer=trn, relation="finetune", base_models=[c.local("base")],
               datasets=[dataset], import_torch=False)
        d = make(q, seed + 1, trn)
        attest(d, signer=trn, relation="quantized", base_models=[c.local(ft)],
               import_torch=False)
    yield c


DENY_GLOB = "datasets:\n  deny: ['hf://datasets/acme/evil-*']\n"


# ------------------------------------------------------------------------------ datasets
@pytest.mark.parametrize("deny", ["'hf://datasets/acme/evil-*'", "sha256:{evil}"])
def test_a_denied_dataset_of_an_ancestor_fails_deny(chain: Chain, deny: str) -> None:
    policy = chain.policy("datasets:\n  deny: [" + deny.format(evil=chain.roots["evil-set"])
                          + "]\n")
    rule = chain.report("q", policy).rule("datasets.deny")
    assert rule.status == "fail", rule.reason
    # the reason names the dataset and the ancestor that was trained on it
    assert f"{EVIL_URI}@{EVIL_COMMIT}" in rule.reason
    assert f"used by ft sha256:{chain.roots['ft'][:12]}" in rule.reason
    # the fine-tune itself still fails on its own claim
    assert chain.report("ft", policy).rule("datasets.deny").status == "fail"
    # and the clean chain passes
    clean = chain.report("qc", policy).rule("datasets.deny")
    assert clean.status == "pass" and "1 dataset" in clean.reason, clean.reason


def test_allow_judges_the_ancestors_datasets(chain: Chain) -> None:
    policy = chain.policy(f"datasets:\n  allow: ['sha256:{chain.roots['data']}']\n")
    bad = chain.report("q", policy).rule("datasets.allow")
    assert bad.status == "fail"
    assert "does not allow" in bad.reason and EVIL_URI in bad.reason
    assert f"ft sha256:{chain.roots['ft'][:12]}" in bad.reason
    assert chain.report("qc", policy).rule("datasets.allow").status == "pass"


def test_require_signed_judges_the_ancestors_datasets(chain: Chain) -> None:
    policy = chain.policy("datasets:\n  requireSigned: true\n")
    bad = chain.report("qu", policy).rule("datasets.requireSigned")
    assert bad.status == "fail", bad.reason
    assert "unsigned-set" in bad.reason and "unsigned" in bad.reason
    assert f"ftu sha256:{chain.roots['ftu'][:12]}" in bad.reason
    ok = chain.report("qc", policy).rule("datasets.requireSigned")
    assert ok.status == "pass", ok.reason


def test_without_the_walk_the_datasets_rules_say_what_was_not_judged(chain: Chain) -> None:
    policy = chain.policy(DENY_GLOB)
    rule = chain.report("q", policy, walk=False).rule("datasets.deny")
    # a registry gates on the exit code: an unjudged ancestry is not a pass
    assert rule.status == "fail"
    assert "only this model's own claims were judged" in rule.reason
    assert "--lineage" in rule.reason


def test_verify_with_policy_catches_the_laundered_dataset(chain: Chain) -> None:
    policy = chain.policy(DENY_GLOB)
    outcome = verify_with_policy(chain.dirs["q"], policy, lineage=True,
                                 upstream={f"sha256:{r}": chain.dirs[n]
                                           for n, r in chain.roots.items()})
    assert not outcome.report.passed
    assert outcome.report.rule("datasets.deny").status == "fail"


# ------------------------------------------------------------------------------- parents
def _parents(chain: Chain, *rules: tuple[str, KeyPair]) -> Policy:
    body = "lineage:\n  parents:\n"
    for match, key in rules:
        body += f"    - match: {json.dumps(match)}\n      signers: [{{publicKey: {key.public}}}]\n"
    return chain.policy(body)


def test_parents_select_local_ancestors_by_digest(chain: Chain) -> None:
    base = f"sha256:{chain.roots['base']}"
    ok = chain.report("qc", _parents(chain, (base, chain.publisher))).rule("lineage.parents[0]")
    assert ok.status == "pass" and ok.reason.startswith(f"1 ancestor(s) matching {base}"), \
        ok.reason
    bad = chain.report("qc", _parents(chain, (base, chain.trainer))).rule("lineage.parents[0]")
    assert bad.status == "fail", bad.reason
    assert f"base sha256:{chain.roots['base'][:12]} signed by the key" in bad.reason


def test_parents_select_local_ancestors_by_name(chain: Chain) -> None:
    bad = chain.report("qc", _parents(chain, ("ftc", chain.publisher))).rule("lineage.parents[0]")
    assert bad.status == "fail", bad.reason
    assert f"ftc sha256:{chain.roots['ftc'][:12]} signed by the key" in bad.reason
    ok = chain.report("qc", _parents(chain, ("ft*", chain.trainer))).rule("lineage.parents[0]")
    assert ok.status == "pass", ok.reason


def test_digest_first_then_the_first_matching_glob(chain: Chain) -> None:
    # as `modelsign lineage --parent-*`: base is judged by its digest rule only, not by the
    # catch-all after it, which judges the rest (ftc)
    policy = _parents(chain, ("*", chain.trainer),
                      (f"sha256:{chain.roots['base']}", chain.publisher))
    report = chain.report("qc", policy)
    assert report.rule("lineage.parents[0]").status == "pass"
    assert report.rule("lineage.parents[0]").reason.startswith("1 ancestor(s) matching *")
    assert report.rule("lineage.parents[1]").status == "pass"


def test_a_parents_rule_that_selects_nothing_warns(chain: Chain) -> None:
    report = chain.report("qc", _parents(chain, ("hf://meta-llama/*", chain.publisher)))
    rule = report.rule("lineage.parents[0]")
    assert rule.status == "warn", rule.reason
    assert "no ancestor matches hf://meta-llama/*" in rule.reason
    assert "sha256:" in rule.reason  # says how to select local ancestors
    assert report.passed  # a warning does not fail the verdict


@pytest.mark.parametrize("match", ["sha256:abc", "sha256:" + "A" * 64, "x" * 1025])
def test_a_bad_parent_pattern_is_refused_at_load(chain: Chain, match: str) -> None:
    with pytest.raises(PolicyFileError, match="match"):
        chain.policy(f"lineage:\n  parents:\n    - match: '{match}'\n"
                     f"      signers: [{{publicKey: {chain.publisher.public}}}]\n")
