"""Attacks on lineage: the chain from a model back to its foundation model.

A poisoned parent model or dataset, a parent swapped for another, a graph that loops or explodes,
a merge with one forged parent. ``verify_lineage`` never raises for a lineage failure: each node
gets a state and a reason, and the graph fails. The verdicts asserted are the node's state and
its distinctive reason; the CLI maps a failed graph to exit code 1.

Derivation claims are made with ``modelsign.claims.attest`` and a real key; parents are named
by root digest (``sha256:<hex>``) and resolved through ``upstream`` directories.
"""

from __future__ import annotations

import time
from pathlib import Path

from modelsign import hash_model
from modelsign._frameworks import Environment
from modelsign.claims import Parent, ParentVerifier, attest
from modelsign.errors import InputError, SignatureError
from modelsign.hashing import HashSpec
from modelsign.lineage import ParentRule, SignerRule, verify_lineage
from modelsign.verify import IntegrityFailure

from .conftest import Party, make_model, rejected, safetensors_bytes, sign

NO_ENV = Environment(frameworks=())


def _signed(path: Path, party: Party, seed: int) -> tuple[Path, str]:
    m = make_model(path, seed=seed)
    return m, sign(m, party).root_digest


def _derive(child: Path, party: Party, *parents: str, relation: str = "finetune") -> None:
    attest(child, signer=party.signer, relation=relation,  # type: ignore[arg-type]
           base_models=[f"sha256:{p}" for p in parents], environment=NO_ENV, use_cache=False)


def _rule(*parties: Party) -> list[ParentRule]:
    return [ParentRule("*", SignerRule(keys=tuple(p.public for p in parties)))]


def test_lineage_parent_swapped(tmp_path: Path, publisher: Party) -> None:
    """The fine-tune names base A; the resolver is handed base B (also genuinely signed by the
    same publisher) under A's digest."""
    _, a_root = _signed(tmp_path / "base-a", publisher, 1)
    b, _ = _signed(tmp_path / "base-b", publisher, 2)
    child, _ = _signed(tmp_path / "ft", publisher, 3)
    _derive(child, publisher, a_root)
    graph = verify_lineage(child, key=publisher.public, parents=_rule(publisher),
                           upstream={a_root: b})
    assert not graph.ok
    node = graph.by_digest(a_root)
    assert node.state == "digest_mismatch"
    assert f"the child recorded sha256:{a_root}, but its signature is for" in (node.reason or "")


def test_lineage_poisoned_parent_bytes(tmp_path: Path, publisher: Party) -> None:
    """The base model's weights are poisoned after the fine-tune was attested; the base keeps
    its genuine signature."""
    base, base_root = _signed(tmp_path / "base", publisher, 1)
    child, _ = _signed(tmp_path / "ft", publisher, 2)
    _derive(child, publisher, base_root)
    (base / "model.safetensors").write_bytes(safetensors_bytes(seed=99))
    graph = verify_lineage(child, key=publisher.public, parents=_rule(publisher),
                           upstream={base_root: base})
    node = graph.by_digest(base_root)
    assert node.state == "digest_mismatch"
    assert "the files differ from its own signature" in (node.reason or "")
    assert "changed model.safetensors" in (node.reason or "")


def test_lineage_cycle(tmp_path: Path, publisher: Party) -> None:
    """Two models whose (signed) claims name each other as parent. Content addressing makes a
    true cycle impossible, so one claim lies; the walk must terminate and say so."""
    a, a_root = _signed(tmp_path / "a", publisher, 1)
    b, b_root = _signed(tmp_path / "b", publisher, 2)
    _derive(a, publisher, b_root)
    _derive(b, publisher, a_root)  # claims.jsonl is not part of the root digest
    t = time.monotonic()
    graph = verify_lineage(a, key=publisher.public, parents=_rule(publisher),
                           upstream={a_root: a, b_root: b})
    assert time.monotonic() - t < 10
    assert not graph.ok
    states = {n.state for n in graph.failures}
    assert states == {"claim_invalid"}
    assert any((n.reason or "").startswith("cycle: its claim") for n in graph.failures)
    assert any(e.cycle for e in graph.edges)


def test_lineage_depth_bomb(tmp_path: Path, publisher: Party) -> None:
    """A chain deeper than the limit: the walk stops at the limit and says so, instead of
    resolving (and fetching) generation after generation."""
    prev_root: str | None = None
    models: dict[str, Path] = {}
    for i in range(7):
        m, root = _signed(tmp_path / f"g{i}", publisher, i + 1)
        models[root] = m
        if prev_root is not None:
            _derive(m, publisher, prev_root)
        prev_root = root
    assert prev_root is not None
    leaf = models[prev_root]
    graph = verify_lineage(leaf, key=publisher.public, parents=_rule(publisher),
                           upstream=models, max_depth=3)
    assert not graph.ok
    beyond = [n for n in graph.failures if n.state == "unresolved"]
    assert len(beyond) == 1
    assert "beyond the depth limit: 4 generations above the subject, the limit is 3" in (
        beyond[0].reason or "")
    assert len(graph.nodes) == 4  # generations 1..3 verified, the 4th named and not resolved


def test_lineage_diamond_explosion(tmp_path: Path, publisher: Party) -> None:
    """A lattice where every model has two parents that share their own two parents: 2**n
    paths to the top. Each artifact must be verified once (memoized), so the work is linear."""
    levels = 10
    models: dict[str, Path] = {}
    above: list[str] = []
    for level in range(levels):
        row = []
        for side in range(2):
            m, root = _signed(tmp_path / f"l{level}-{side}", publisher, 2 * level + side + 1)
            models[root] = m
            if above:
                _derive(m, publisher, *above, relation="merge")
            row.append(root)
        above = row
    t = time.monotonic()
    graph = verify_lineage(models[above[0]], key=publisher.public, parents=_rule(publisher),
                           upstream=models)
    assert time.monotonic() - t < 20
    assert graph.ok, [(n.state, n.reason) for n in graph.failures]
    assert len(graph.nodes) == 2 * (levels - 1)  # each ancestor once, not 2**levels paths
    assert graph.depth == levels - 1


def test_lineage_merged_parents_with_one_forged(tmp_path: Path, publisher: Party,
                                               stranger: Party) -> None:
    """A merge of two parents; the second one's weights were replaced and re-signed by the
    attacker's own key. The genuine parent cannot vouch for the forged one."""
    _, good_root = _signed(tmp_path / "good", publisher, 1)
    forged, forged_root = _signed(tmp_path / "forged", stranger, 2)
    child, _ = _signed(tmp_path / "merged", publisher, 3)
    _derive(child, publisher, good_root, forged_root, relation="merge")
    graph = verify_lineage(child, key=publisher.public, parents=_rule(publisher),
                           upstream={good_root: tmp_path / "good", forged_root: forged})
    assert graph.by_digest(good_root).state == "verified"
    bad = graph.by_digest(forged_root)
    assert bad.state == "identity_not_allowed"
    assert "which is not an allowed key" in (bad.reason or "")
    assert [n.digest for n in graph.failures] == [forged_root]


def test_lineage_child_cannot_vouch_for_an_unsigned_parent(tmp_path: Path,
                                                           publisher: Party) -> None:
    """The fine-tune's (genuine) claim says its base was signed; the base has no signature.
    A child never vouches for its parent."""
    base = make_model(tmp_path / "base", seed=1)
    base_root = hash_model(base, HashSpec(use_cache=False)).root_hex
    child, _ = _signed(tmp_path / "ft", publisher, 2)
    attest(child, signer=publisher.signer, relation="finetune", environment=NO_ENV,
           use_cache=False,
           base_models=[Parent("digest", "base", "hf://acme/base", base_root, None, True)])
    graph = verify_lineage(child, key=publisher.public, parents=_rule(publisher),
                           upstream={base_root: base})
    node = graph.by_digest(base_root)
    assert node.state == "unsigned"
    assert "nobody vouches for this artifact" in (node.reason or "")


# ------------------------------------------------------------- refused already at attest time
def test_attest_refuses_a_swapped_parent(tmp_path: Path, publisher: Party) -> None:
    """The parent directory the trainer points at was tampered with: ``attest`` verifies it and
    refuses to record its digest."""
    base, _ = _signed(tmp_path / "base", publisher, 1)
    (base / "model.safetensors").write_bytes(safetensors_bytes(seed=77))
    child, _ = _signed(tmp_path / "ft", publisher, 2)
    with rejected(IntegrityFailure, "changed model.safetensors"):
        attest(child, signer=publisher.signer, relation="finetune", environment=NO_ENV,
               base_models=[base], parent_verifier=ParentVerifier(key=publisher.public),
               use_cache=False)
    assert not (child / "claims.jsonl").exists()


def test_attest_refuses_a_merge_with_one_forged_parent(tmp_path: Path, publisher: Party,
                                                      stranger: Party) -> None:
    good, _ = _signed(tmp_path / "good", publisher, 1)
    forged, _ = _signed(tmp_path / "forged", stranger, 2)
    child, _ = _signed(tmp_path / "merged", publisher, 3)
    with rejected(SignatureError, "signed with a different key"):
        attest(child, signer=publisher.signer, relation="merge", environment=NO_ENV,
               base_models=[good, forged], parent_verifier=ParentVerifier(key=publisher.public),
               use_cache=False)
    assert not (child / "claims.jsonl").exists()


def test_attest_refuses_an_artifact_as_its_own_parent(tmp_path: Path, publisher: Party) -> None:
    """The smallest cycle: a model naming itself as its base."""
    m, root = _signed(tmp_path / "m", publisher, 1)
    with rejected(InputError, "a parent has the same root digest as the artifact itself"):
        attest(m, signer=publisher.signer, relation="finetune", environment=NO_ENV,
               base_models=[f"sha256:{root}"], use_cache=False)
