"""A ``transformers.TrainerCallback`` that signs a derivation claim when training ends.

::

    from modelsign.integrations.transformers_callback import ProvenanceCallback

    cb = ProvenanceCallback(signer=KeySigner.from_pem_file("release.pem"), relation="finetune",
                            base_models=["./base"], datasets=["./chat-data"],
                            parent_verifier=ParentVerifier(key="release.pub"))
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[cb])
    trainer.train()
    print(cb.claim.path, cb.claim.line)

On ``on_train_begin`` the parents are resolved (a signed local parent is verified before any
training step) and the environment and start time captured. On ``on_train_end``, on the main
process only, the final model is saved to the output directory (``save_model=True``, the default:
``model.save_pretrained`` and the processing class, if any) and *then* the directory is hashed and
the claim signed and appended, so the claim's subject is the saved final model. With
``save_model=False`` the callback attests whatever is in the output directory at that moment (use
it when you save yourself from a callback that runs earlier, e.g. under DeepSpeed/FSDP where the
trainer must gather weights: or call :meth:`ProvenanceCallback.attest` after
``trainer.save_model()``).

The claim's subject is the root digest of the *whole* target directory (hashed like
:func:`modelsign.claims.attest`: with the serialization of its ``model.sig`` if it has one, else
with ``spec``). Checkpoint folders the trainer left there (``checkpoint-500/``) are part of it:
give ``output_dir=`` a folder of its own for the final model (``out/final``), or pass the same
``spec`` (ignore paths) you will sign with, so the claim and the signature name the same bytes.

Recorded parameters: a fixed set of ``TrainingArguments`` (learning rate, epochs, batch sizes,
seed, ...), the steps run, and any ``params`` given. transformers is imported only when this
module is; it is not a dependency of modelsign.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from modelsign._frameworks import Environment, detect_environment
from modelsign.claims import Claim, Parent, ParentVerifier, attest, parse_code_ref
from modelsign.errors import InputError
from modelsign.provenance import resolve_parents, utc_now
from modelsign.statements._models import Relation
from modelsign.statements._provenance import DEFAULT_BUILDER_ID, Dependency, Framework

if TYPE_CHECKING:  # pragma: no cover
    from modelsign.hashing._spec import HashSpec
    from modelsign.signing import Signer

__all__ = ["TRAINING_ARGUMENTS_RECORDED", "ProvenanceCallback"]

#: ``TrainingArguments`` fields recorded as params (when set).
TRAINING_ARGUMENTS_RECORDED: tuple[str, ...] = (
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "weight_decay", "warmup_steps", "warmup_ratio",
    "lr_scheduler_type", "optim", "seed", "bf16", "fp16", "max_grad_norm",
)


def _arg_value(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    # enums (lr_scheduler_type, optim) and the like: their value, else their text
    inner = getattr(value, "value", value)
    return inner if isinstance(inner, (str, int, float, bool)) else str(inner)


class ProvenanceCallback(TrainerCallback):
    """Signs and appends a derivation claim for the trainer's final model (see module doc)."""

    def __init__(
        self,
        *,
        signer: Signer,
        relation: Relation = "finetune",
        base_models: Sequence[str | os.PathLike[str] | Parent] = (),
        datasets: Sequence[str | os.PathLike[str] | Parent] = (),
        dataset_split: str | None = None,
        method: str | None = None,
        params: Mapping[str, str | int | float | bool] | None = None,
        code: str | Dependency | None = None,
        frameworks: Iterable[str | Framework] = (),
        builder_id: str = DEFAULT_BUILDER_ID,
        invocation_id: str | None = None,
        parent_verifier: ParentVerifier | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        save_model: bool = True,
        spec: HashSpec | None = None,
        record_training_arguments: bool = True,
        import_torch: bool = True,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if dataset_split is not None and not datasets:
            raise InputError("dataset_split needs datasets")
        self.signer = signer
        self.relation = relation
        self._base_refs = tuple(base_models)
        self._data_refs = tuple(datasets)
        self.dataset_split = dataset_split
        self.method = method
        self.params = dict(params or {})
        self.code = parse_code_ref(code) if isinstance(code, str) else code
        self.frameworks = tuple(frameworks)
        self.builder_id = builder_id
        self.invocation_id = invocation_id
        self.parent_verifier = parent_verifier
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.save_model = save_model
        self.spec = spec
        self.record_training_arguments = record_training_arguments
        self.import_torch = import_torch
        self.clock = clock
        self.started_on: datetime | None = None
        self.environment: Environment | None = None
        self.base_models: tuple[Parent, ...] = ()
        self.datasets: tuple[Parent, ...] = ()
        #: The claim written at the end of training (main process only).
        self.claim: Claim | None = None

    # ----------------------------------------------------------------- trainer events
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started_on = self.clock()
        self.base_models = resolve_parents(self._base_refs, what="base model",
                                           verifier=self.parent_verifier)
        self.datasets = resolve_parents(self._data_refs, what="dataset",
                                        verifier=self.parent_verifier)
        self.environment = detect_environment(overrides=self.frameworks,
                                              import_torch=self.import_torch)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not getattr(state, "is_world_process_zero", True):
            return
        target = self.output_dir or Path(args.output_dir)
        if self.save_model:
            model = kwargs.get("model")
            if model is None:
                raise InputError("the trainer did not pass the model to on_train_end",
                                 hint="use save_model=False and call attest() after saving")
            model.save_pretrained(target)
            processor = kwargs.get("processing_class") or kwargs.get("tokenizer")
            if processor is not None and hasattr(processor, "save_pretrained"):
                processor.save_pretrained(target)
        self.attest(target, args=args, state=state)

    # ----------------------------------------------------------------- the claim
    def training_params(self, args: Any, state: Any) -> dict[str, str | int | float | bool]:
        out: dict[str, str | int | float | bool] = {}
        if self.record_training_arguments and args is not None:
            for name in TRAINING_ARGUMENTS_RECORDED:
                value = _arg_value(getattr(args, name, None))
                if value is not None:
                    out[name] = value
        if state is not None and getattr(state, "global_step", None) is not None:
            out["global_step"] = int(state.global_step)
        out.update(self.params)
        return out

    def attest(self, path: str | os.PathLike[str], *, args: Any = None,
               state: Any = None) -> Claim:
        """Sign and append the claim for ``path`` now (called by ``on_train_end``)."""
        if self.started_on is None or self.environment is None:
            raise InputError("the callback has not seen the start of training",
                             hint="pass it to Trainer(callbacks=[...]) before trainer.train()")
        self.claim = attest(
            path, signer=self.signer, relation=self.relation, method=self.method,
            params=self.training_params(args, state), base_models=self.base_models,
            datasets=self.datasets, dataset_split=self.dataset_split, code=self.code,
            environment=self.environment, builder_id=self.builder_id,
            started_on=self.started_on, finished_on=self.clock(),
            invocation_id=self.invocation_id, spec=self.spec)
        return self.claim
