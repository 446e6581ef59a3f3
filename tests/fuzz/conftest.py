"""Property tests (hypothesis) for every parser of outside input.

The property is the same everywhere: any input either parses or raises a
:class:`modelsign.errors.ModelsignError` subclass -- never another exception -- and every example
finishes within its deadline (no unbounded time; memory is bounded by the same caps the parsers
enforce, and an example that allocated without bound would blow the deadline first).

Budgets are fixed per test with :func:`budget`. The profile comes from ``MODELSIGN_FUZZ``:

* ``ci`` (default): derandomized (the same examples on every run, so CI is deterministic), no
  example database, the per-test ``max_examples`` as written; the whole folder runs in well
  under 30 s.
* ``deep``: random, with a database, 25x the examples and a looser deadline, for a developer
  hunting (``MODELSIGN_FUZZ=deep pytest tests/fuzz``); a failure prints the reproducing blob.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

_PROFILE = os.environ.get("MODELSIGN_FUZZ", "ci")
if _PROFILE not in ("ci", "deep"):
    raise RuntimeError(f"MODELSIGN_FUZZ must be 'ci' or 'deep', not {_PROFILE!r}")

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def budget(max_examples: int, deadline_ms: int) -> Any:
    """The settings of one fuzz target: ``max_examples`` examples, each within ``deadline_ms``."""
    if _PROFILE == "ci":
        return settings(max_examples=max_examples, deadline=timedelta(milliseconds=deadline_ms),
                        derandomize=True, database=None, print_blob=True,
                        suppress_health_check=_SUPPRESS)
    return settings(max_examples=max_examples * 25,
                    deadline=timedelta(milliseconds=deadline_ms * 4), derandomize=False,
                    print_blob=True, suppress_health_check=_SUPPRESS)


# ------------------------------------------------------------------ real documents to mutate

@dataclass(frozen=True)
class World:
    """One real model, signed with a real key, with one real derivation claim."""

    model: Path
    public_key: Path
    root: str
    bundle: bytes  # model.sig
    statement: dict[str, Any]  # its payload, parsed
    claim: bytes  # one claims.jsonl line (no newline)
    claim_payload: bytes  # its signed statement bytes
    provenance: dict[str, Any]  # the claim's payload, parsed


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from modelsign._frameworks import Environment
    from modelsign.claims import attest
    from modelsign.hashing import HashSpec
    from modelsign.signing import KeySigner, sign_model
    from modelsign.statements._provenance import Framework
    from modelsign.testing._pki import make_key

    tmp = tmp_path_factory.mktemp("fuzz-world")
    keys = make_key(tmp, "fuzz")
    signer = KeySigner.from_pem_file(keys.private)
    model = tmp / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_bytes(b'{"a": 1}')
    (model / "weights.bin").write_bytes(bytes(range(256)) * 4)
    (model / "sub" / "vocab.txt").write_bytes(b"x\n")
    result = sign_model(model, signer=signer, spec=HashSpec(use_cache=False))
    claim = attest(model, signer=signer, relation="finetune", method="lora",
                   params={"lr": "1e-4"}, base_models=["sha256:" + "ab" * 32 + "=hf://acme/b"],
                   datasets=["hf://datasets/acme/d@" + "1" * 40],
                   environment=Environment(frameworks=(Framework("torch", "2.6.0"),)),
                   use_cache=False)
    bundle = (model / "model.sig").read_bytes()

    def payload(raw: bytes) -> dict[str, Any]:
        obj: dict[str, Any] = json.loads(base64.b64decode(json.loads(raw)["dsseEnvelope"]
                                                          ["payload"]))
        return obj

    line = claim.bundle.raw.rstrip(b"\n")
    return World(model, keys.public, result.root_digest, bundle, payload(bundle), line,
                 claim.statement.raw, payload(line))
