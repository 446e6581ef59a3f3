"""Attacks on loading: code that would run when transformers loads a (verified) directory.

``modelsign.transformers.from_pretrained`` verifies, then checks what the verified files would
make transformers *do*, then loads with ``local_files_only=True``. The class passed in stands for
``AutoModel``: it records whether transformers would have been called at all. Pickle payloads
write a marker file when unpickled, so "refused" also means "never ran".
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import pytest

from modelsign.hashing import HashSpec
from modelsign.transformers import LoadRefusedError, from_pretrained

from .conftest import Party, make_model, rejected, sign


class Loader:
    """Stands for ``transformers.AutoModel``: records every call it gets."""

    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    @classmethod
    def from_pretrained(cls, path: str, **kwargs: Any) -> str:
        cls.calls.append((path, kwargs))
        return "loaded"


@pytest.fixture(autouse=True)
def _fresh_loader() -> None:
    Loader.calls = []


class _Payload:
    """Unpickling this runs ``os.system`` (the classic pickle RCE)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps({"state_dict": _Payload(marker)}, protocol=4)


def test_loader_sanity(model: Path, publisher: Party) -> None:
    """The honest model loads, and only from the verified directory, offline."""
    assert from_pretrained(Loader, model, key=publisher.public) == "loaded"
    assert Loader.calls == [(str(model), {"local_files_only": True})]


def test_pickle_payload_in_bin(tmp_path: Path, publisher: Party) -> None:
    """A correctly signed ``pytorch_model.bin`` that is a malicious pickle: the signature is
    genuine (the publisher, or their build, was compromised), so only the pickle rule can stop
    it. Default ``pickle='deny'``."""
    marker = tmp_path / "pwned"
    m = make_model(tmp_path / "m")
    (m / "pytorch_model.bin").write_bytes(_evil_pickle(marker))
    sign(m, publisher)
    with rejected(LoadRefusedError, "pickle files refused (pickle='deny'): unpickling runs "
                                    "arbitrary code: pytorch_model.bin (a pickle (protocol 4))"):
        from_pretrained(Loader, m, key=publisher.public)
    assert Loader.calls == [] and not marker.exists()


def test_pickle_payload_protocol_0_in_bin(tmp_path: Path, publisher: Party) -> None:
    marker = tmp_path / "pwned"
    m = make_model(tmp_path / "m")
    payload = pickle.dumps({"state_dict": _Payload(marker)}, protocol=0)
    assert payload[:1] != b"\x80"
    (m / "pytorch_model.bin").write_bytes(payload)
    sign(m, publisher)
    with rejected(LoadRefusedError, "pickle files refused (pickle='deny')"):
        from_pretrained(Loader, m, key=publisher.public)
    assert Loader.calls == [] and not marker.exists()


def test_pickle_payload_disguised_as_safetensors(tmp_path: Path, publisher: Party) -> None:
    """A ``torch.save`` zip (holding ``data.pkl``) renamed ``model.safetensors``: detected by
    content, not by name."""
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", _evil_pickle(marker))
    m = make_model(tmp_path / "m")
    (m / "model.safetensors").write_bytes(buf.getvalue())
    sign(m, publisher)
    with rejected(LoadRefusedError, "model.safetensors (a zip archive holding archive/data.pkl "
                                    "(torch.save format))"):
        from_pretrained(Loader, m, key=publisher.public)
    assert Loader.calls == [] and not marker.exists()


def test_pickle_payload_added_unsigned(model: Path, publisher: Party, tmp_path: Path) -> None:
    """The attacker adds ``pytorch_model.bin`` beside the signed safetensors (transformers may
    prefer it): verification already fails, before any pickle rule."""
    (model / "pytorch_model.bin").write_bytes(_evil_pickle(tmp_path / "pwned"))
    with rejected(LoadRefusedError, "refusing to load: ") as info:
        from_pretrained(Loader, model, key=publisher.public, pickle="allow")
    assert "extra pytorch_model.bin" in str(info.value)
    assert Loader.calls == []


def test_py_file_added_for_trust_remote_code(model: Path, publisher: Party) -> None:
    """``modeling_evil.py`` dropped into a signed model, loaded with ``trust_remote_code``."""
    (model / "modeling_evil.py").write_text("import os; os.system('id')\n")
    with rejected(LoadRefusedError, "refusing to load: ") as info:
        from_pretrained(Loader, model, key=publisher.public, trust_remote_code=True)
    assert "extra modeling_evil.py" in str(info.value)
    assert Loader.calls == []


def test_py_file_in_an_ignored_path_for_trust_remote_code(tmp_path: Path,
                                                          publisher: Party) -> None:
    """The publisher signed with ``--ignore-path scratch``; the attacker puts code there. The
    signature verifies (the path is ignored), yet nobody signed that code."""
    m = make_model(tmp_path / "m")
    sign(m, publisher, HashSpec(ignore_paths=("scratch",), use_cache=False))
    (m / "scratch").mkdir()
    (m / "scratch" / "modeling_evil.py").write_text("import os; os.system('id')\n")
    with rejected(LoadRefusedError, "trust_remote_code=True refused: Python files that the "
                                    "signature does not list would be run: "
                                    "scratch/modeling_evil.py"):
        from_pretrained(Loader, m, key=publisher.public, trust_remote_code=True)
    assert Loader.calls == []


def test_auto_map_pointing_at_another_repo(tmp_path: Path, publisher: Party) -> None:
    """A signed ``config.json`` whose ``auto_map`` loads code from another Hub repo (which
    transformers would take from its cache, unverified)."""
    m = make_model(tmp_path / "m", {
        "config.json": json.dumps({"auto_map": {
            "AutoModel": "attacker/helpers--modeling_x.Model"}}).encode(),
        "model.safetensors": b"\0" * 64,
    })
    sign(m, publisher)
    with rejected(LoadRefusedError, "auto_map loads code from another repo"):
        from_pretrained(Loader, m, key=publisher.public, trust_remote_code=True)
    assert Loader.calls == []


def test_peft_adapter_pulls_an_unverified_base(tmp_path: Path, publisher: Party) -> None:
    """A signed adapter directory: transformers would fetch (or take from cache) its base model
    without verifying it."""
    m = make_model(tmp_path / "m", {
        "adapter_config.json": json.dumps({"base_model_name_or_path": "attacker/base"}).encode(),
        "adapter_model.safetensors": b"\0" * 64,
    })
    sign(m, publisher)
    with rejected(LoadRefusedError, "a PEFT adapter: transformers would load its base model "
                                    "unverified"):
        from_pretrained(Loader, m, key=publisher.public)
    assert Loader.calls == []


def test_loader_options_that_would_fetch(model: Path, publisher: Party) -> None:
    """A caller (or a config-driven wrapper) passes options that make transformers download
    beside the verified directory."""
    from modelsign.errors import InputError

    with rejected(InputError, "local_files_only=False cannot be combined with verification"):
        from_pretrained(Loader, model, key=publisher.public, local_files_only=False)
    with rejected(InputError, "force_download= makes transformers fetch"):
        from_pretrained(Loader, model, key=publisher.public, force_download=True)
    assert Loader.calls == []
