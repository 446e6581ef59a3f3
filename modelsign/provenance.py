"""Provenance for training scripts: record a derivation while it runs, sign the claim at the end.

::

    from modelsign.provenance import record
    from modelsign.signing import KeySigner

    with record("out/my-finetune", signer=KeySigner.from_pem_file("release.pem"),
                relation="finetune", method="lora", base_models=["./base"],
                datasets=["hf://datasets/acme/chat@<40-hex commit>"],
                parent_verifier=ParentVerifier(key="release.pub")) as rec:
        rec.params["lora_r"] = 16
        train_and_save("out/my-finetune")
    print(rec.claim.line)     # the claim was appended to out/my-finetune/claims.jsonl

On entry the parents are resolved (a signed local parent is verified *before* hours of training,
not after) and the environment is captured; on a successful exit the output directory is hashed,
the claim signed with the start and end times and appended. When the block raises, nothing is
written and the exception propagates.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from modelsign._frameworks import Environment, detect_environment
from modelsign.claims import (
    Claim,
    Parent,
    ParentVerifier,
    attest,
    parse_code_ref,
    resolve_parent,
)
from modelsign.errors import InputError
from modelsign.statements._models import ConfigReference, Relation
from modelsign.statements._provenance import DEFAULT_BUILDER_ID, Dependency, Framework

if TYPE_CHECKING:  # pragma: no cover
    from modelsign.hashing._spec import HashSpec
    from modelsign.signing import Signer

__all__ = ["Recording", "record", "resolve_parents", "utc_now"]

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Recording:
    """What :func:`record` captured; ``params`` may be added to inside the block.

    ``claim`` is set after a successful exit.
    """

    output_dir: Path
    started_on: datetime
    environment: Environment
    base_models: tuple[Parent, ...]
    datasets: tuple[Parent, ...]
    params: dict[str, str | int | float | bool] = field(default_factory=dict)
    finished_on: datetime | None = None
    claim: Claim | None = None


def resolve_parents(refs: Iterable[str | os.PathLike[str] | Parent], *, what: str,
                    verifier: ParentVerifier | None,
                    uri: str | None = None) -> tuple[Parent, ...]:
    """Resolve REFs now (see :func:`modelsign.claims.resolve_parent`)."""
    return tuple(r if isinstance(r, Parent) else
                 resolve_parent(r, what=what, verifier=verifier, uri=uri) for r in refs)


@contextlib.contextmanager
def record(
    output_dir: str | os.PathLike[str],
    *,
    signer: Signer,
    relation: Relation,
    base_models: Sequence[str | os.PathLike[str] | Parent] = (),
    datasets: Sequence[str | os.PathLike[str] | Parent] = (),
    dataset_split: str | None = None,
    method: str | None = None,
    params: Mapping[str, str | int | float | bool] | None = None,
    config: str | os.PathLike[str] | ConfigReference | None = None,
    code: str | Dependency | None = None,
    frameworks: Iterable[str | Framework] = (),
    builder_id: str = DEFAULT_BUILDER_ID,
    invocation_id: str | None = None,
    parent_verifier: ParentVerifier | None = None,
    spec: HashSpec | None = None,
    import_torch: bool = True,
    clock: Clock = utc_now,
) -> Iterator[Recording]:
    """Capture a derivation around a block; sign and append its claim on successful exit.

    Arguments are those of :func:`modelsign.claims.attest`; ``clock`` gives the start and end
    times (aware datetimes). Bad input and unverifiable parents raise on entry.
    """
    code_dep = parse_code_ref(code) if isinstance(code, str) else code
    if dataset_split is not None and not datasets:
        raise InputError("dataset_split needs datasets")
    bases = resolve_parents(base_models, what="base model", verifier=parent_verifier)
    data = resolve_parents(datasets, what="dataset", verifier=parent_verifier)
    env = detect_environment(overrides=frameworks, import_torch=import_torch)
    rec = Recording(Path(output_dir), clock(), env, bases, data, dict(params or {}))
    yield rec
    rec.finished_on = clock()
    rec.claim = attest(
        rec.output_dir, signer=signer, relation=relation, method=method, params=rec.params,
        config=config, base_models=rec.base_models, datasets=rec.datasets,
        dataset_split=dataset_split, code=code_dep, environment=env, builder_id=builder_id,
        started_on=rec.started_on, finished_on=rec.finished_on, invocation_id=invocation_id,
        spec=spec)
