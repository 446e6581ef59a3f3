"""record() and the transformers TrainerCallback write the claim at the end, and only then."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelsign import hash_model
from modelsign.claims import ParentVerifier, read_claims
from modelsign.errors import InputError
from modelsign.provenance import record
from modelsign.signing import KeySigner, sign_model
from modelsign.testing._pki import KeyPair, make_key
from modelsign.verify._claims import verify_claims


def _ticks(start: datetime, step: timedelta) -> Iterator[datetime]:
    t = start
    while True:
        yield t
        t += step


@pytest.fixture
def keys(tmp_path: Path) -> KeyPair:
    return make_key(tmp_path / "keys", "release")


def _base(tmp_path: Path, keys: KeyPair) -> Path:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text('{"base": true}')
    sign_model(base, signer=KeySigner.from_pem_file(keys.private))
    return base


def test_record_writes_a_claim_with_the_run_times(tmp_path: Path, keys: KeyPair) -> None:
    base = _base(tmp_path, keys)
    out = tmp_path / "out"
    ticks = _ticks(datetime(2025, 5, 1, 8, tzinfo=UTC), timedelta(hours=2))
    with record(out, signer=KeySigner.from_pem_file(keys.private), relation="finetune",
                method="sft", base_models=[base], params={"epochs": 1},
                parent_verifier=ParentVerifier(key=keys.public), import_torch=False,
                clock=lambda: next(ticks)) as rec:
        rec.params["final_step"] = 100
        out.mkdir()
        (out / "config.json").write_text('{"tuned": true}')
    assert rec.claim is not None and rec.claim.line == 1
    report = verify_claims(out, hash_model(out).root_hex, key=keys.public)
    assert report.ok, report.describe_failures()
    v = report.claims[0].derivation
    assert v is not None and v.params == {"epochs": "1", "final_step": "100"}
    assert v.started_on == datetime(2025, 5, 1, 8, tzinfo=UTC)
    assert v.finished_on == datetime(2025, 5, 1, 10, tzinfo=UTC)
    assert v.base_models[0].signed is True


def test_record_writes_nothing_when_the_block_fails(tmp_path: Path, keys: KeyPair) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")
    with pytest.raises(RuntimeError, match="OOM"), record(
            out, signer=KeySigner.from_pem_file(keys.private), relation="finetune",
            import_torch=False):
        raise RuntimeError("CUDA OOM")
    assert not read_claims(out).exists


def test_record_checks_parents_before_the_block_runs(tmp_path: Path, keys: KeyPair) -> None:
    base = _base(tmp_path, keys)
    ran = []
    with pytest.raises(InputError, match="nobody said who may sign it"), record(
            tmp_path / "out", signer=KeySigner.from_pem_file(keys.private),
            relation="finetune", base_models=[base], import_torch=False):
        ran.append(True)
    assert ran == []


# ------------------------------------------------------------------- transformers callback
def test_trainer_callback_signs_the_saved_final_model(tmp_path: Path, keys: KeyPair) -> None:
    pytest.importorskip("transformers", reason="transformers is not installed")
    torch = pytest.importorskip("torch", reason="torch is not installed")
    pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate, which is "
                        "not installed (test extras)")
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from modelsign.integrations.transformers_callback import ProvenanceCallback

    base = _base(tmp_path, keys)
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"x": 1}\n')

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=16, max_position_embeddings=16, num_labels=2)
    model = BertForSequenceClassification(cfg)
    train = [{"input_ids": torch.tensor([1, 2, 3, 4]), "labels": torch.tensor(i % 2)}
             for i in range(8)]
    out = tmp_path / "out"
    args = TrainingArguments(output_dir=str(out), max_steps=2, per_device_train_batch_size=4,
                             learning_rate=1e-3, seed=7, report_to=[], save_strategy="no",
                             use_cpu=True, disable_tqdm=True, logging_strategy="no")
    cb = ProvenanceCallback(signer=KeySigner.from_pem_file(keys.private), method="sft",
                            base_models=[base], datasets=[data], dataset_split="train",
                            parent_verifier=ParentVerifier(key=keys.public))
    Trainer(model=model, args=args, train_dataset=train, callbacks=[cb]).train()

    assert cb.claim is not None and (out / "config.json").is_file()
    report = verify_claims(out, hash_model(out).root_hex, key=keys.public)
    assert report.ok, report.describe_failures()
    v = report.claims[0].derivation
    assert v is not None
    assert v.params["learning_rate"] == "0.001" and v.params["seed"] == "7"
    assert v.params["global_step"] == "2" and v.params["max_steps"] == "2"
    assert v.datasets[0].signed is False and v.datasets[0].split == "train"
    assert v.base_models[0].signed is True
    assert {f.name for f in v.frameworks} >= {"python", "torch", "transformers"}
    # the claim covers the trained classifier the Trainer saved (transformers 5 leaves default
    # label maps out of config.json, so check the architecture instead)
    saved = json.loads((out / "config.json").read_text())
    assert saved["architectures"] == ["BertForSequenceClassification"]


def test_trainer_callback_events_without_a_trainer(tmp_path: Path, keys: KeyPair) -> None:
    """The callback driven by the events a Trainer sends, with a real model and real
    TrainerState/TrainerControl (TrainingArguments itself needs accelerate, so a plain object
    with the same attributes stands in for it)."""
    pytest.importorskip("transformers", reason="transformers is not installed")
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from types import SimpleNamespace

    from transformers import BertConfig, BertModel, TrainerControl, TrainerState

    from modelsign.integrations.transformers_callback import ProvenanceCallback

    base = _base(tmp_path, keys)
    out = tmp_path / "out"
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=16,
                                 max_position_embeddings=16))
    args = SimpleNamespace(output_dir=str(out), learning_rate=5e-5, num_train_epochs=3.0,
                           max_steps=-1, per_device_train_batch_size=8, seed=42, bf16=False,
                           lr_scheduler_type=SimpleNamespace(value="linear"))
    state, control = TrainerState(), TrainerControl()
    ticks = _ticks(datetime(2025, 6, 1, tzinfo=UTC), timedelta(minutes=30))
    cb = ProvenanceCallback(signer=KeySigner.from_pem_file(keys.private), method="sft",
                            base_models=[base], parent_verifier=ParentVerifier(key=keys.public),
                            params={"note": "unit"}, clock=lambda: next(ticks))
    with pytest.raises(InputError, match="start of training"):
        cb.attest(out)
    cb.on_train_begin(args, state, control, model=model)
    assert not out.exists()  # nothing is written before training ends
    state.global_step = 12
    cb.on_train_end(args, state, control, model=model)

    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert cb.claim is not None and cb.claim.path == out / "claims.jsonl"
    report = verify_claims(out, hash_model(out).root_hex, key=keys.public)
    assert report.ok, report.describe_failures()
    v = report.claims[0].derivation
    assert v is not None and v.method == "sft" and v.base_models[0].signed is True
    assert v.params == {"learning_rate": "5e-05", "num_train_epochs": "3.0", "max_steps": "-1",
                        "per_device_train_batch_size": "8", "seed": "42", "bf16": "false",
                        "lr_scheduler_type": "linear", "global_step": "12", "note": "unit"}
    assert v.finished_on is not None and v.started_on is not None
    assert v.finished_on - v.started_on == timedelta(minutes=30)


def test_trainer_callback_on_a_secondary_process_writes_nothing(tmp_path: Path,
                                                                 keys: KeyPair) -> None:
    pytest.importorskip("transformers", reason="transformers is not installed")
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState

    from modelsign.integrations.transformers_callback import ProvenanceCallback

    cb = ProvenanceCallback(signer=KeySigner.from_pem_file(keys.private), import_torch=False)
    args = SimpleNamespace(output_dir=str(tmp_path / "out"))
    state = TrainerState(is_world_process_zero=False)
    cb.on_train_begin(args, state, TrainerControl())
    cb.on_train_end(args, state, TrainerControl(), model=object())
    assert cb.claim is None and not (tmp_path / "out").exists()
