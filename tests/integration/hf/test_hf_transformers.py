"""``modelsign.transformers.from_pretrained`` on a signed copy of the real all-MiniLM-L6-v2.

Each attack gets its own copy of the model and the failure is checked to happen *before*
transformers is called: the class passed in is a spy that records whether its
``from_pretrained`` ran.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar

import pytest

from modelsign.errors import VerificationError
from modelsign.signing import KeySigner, sign_model
from modelsign.testing._pki import KeyPair, make_key
from modelsign.transformers import LoadRefusedError, find_pickles, from_pretrained

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return make_key(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def model(minilm_dir: Path, tmp_path: Path, keys: KeyPair) -> Path:
    """A fresh signed copy of all-MiniLM-L6-v2 (model.sig written beside the files)."""
    dst = tmp_path / "all-MiniLM-L6-v2"
    shutil.copytree(minilm_dir, dst)
    sign_model(dst, signer=KeySigner.from_pem_file(keys.private))
    return dst


def _resign(path: Path, keys: KeyPair, **spec: Any) -> None:
    from modelsign.hashing._spec import HashSpec

    sign_model(path, signer=KeySigner.from_pem_file(keys.private), spec=HashSpec(**spec))


class Spy:
    """Stands in for AutoModel: records whether transformers would have been reached."""

    calls: ClassVar[list[str]] = []

    @classmethod
    def from_pretrained(cls, path: str, **kwargs: Any) -> Any:
        cls.calls.append(path)
        return transformers.AutoModel.from_pretrained(path, **kwargs)


@pytest.fixture(autouse=True)
def _reset_spy() -> None:
    Spy.calls.clear()


def _embed(m: Any, tok: Any) -> Any:
    batch = tok(["modelsign verifies before loading"], return_tensors="pt")
    with torch.no_grad():
        out = m(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1)
    return (out * mask).sum(1) / mask.sum(1)


def test_a_signed_model_loads_and_embeds(model: Path, keys: KeyPair) -> None:
    m = from_pretrained(Spy, model, key=keys.public)
    tok = from_pretrained(transformers.AutoTokenizer, model, key=keys.public)
    assert Spy.calls == [str(model)]
    emb = _embed(m, tok)
    assert emb.shape == (1, 384) and bool(torch.isfinite(emb).all())
    plain = transformers.AutoModel.from_pretrained(model, local_files_only=True)
    assert torch.allclose(emb, _embed(plain, tok))


def test_one_changed_byte_of_the_weights_is_refused_before_loading(model: Path,
                                                                   keys: KeyPair) -> None:
    weights = model / "model.safetensors"
    with open(weights, "r+b") as f:
        f.seek(50_000_000)
        b = f.read(1)
        f.seek(50_000_000)
        f.write(bytes([b[0] ^ 0x01]))
    with pytest.raises(LoadRefusedError, match="changed model.safetensors") as exc:
        from_pretrained(Spy, model, key=keys.public)
    assert Spy.calls == []  # transformers never saw the directory
    assert isinstance(exc.value, VerificationError) and exc.value.exit_code == 1


def test_added_remote_code_is_refused_with_trust_remote_code(model: Path, keys: KeyPair) -> None:
    (model / "modeling_evil.py").write_text("import os\nos.system('echo pwned')\n")
    with pytest.raises(LoadRefusedError, match=r"extra modeling_evil\.py"):
        from_pretrained(Spy, model, key=keys.public, trust_remote_code=True)
    assert Spy.calls == []


def test_remote_code_the_signature_leaves_out_is_refused(model: Path, keys: KeyPair) -> None:
    """A .py file excluded by the signature's ignore_paths verifies, yet nobody signed it."""
    (model / "modeling_evil.py").write_text("raise SystemExit('pwned')\n")
    _resign(model, keys, ignore_paths=("modeling_evil.py",))
    with pytest.raises(LoadRefusedError, match=r"trust_remote_code=True refused.*modeling_evil"):
        from_pretrained(Spy, model, key=keys.public, trust_remote_code=True)
    assert Spy.calls == []
    from_pretrained(Spy, model, key=keys.public)  # without remote code: loads
    assert Spy.calls == [str(model)]


def test_signed_remote_code_may_be_trusted(model: Path, keys: KeyPair) -> None:
    (model / "helper.py").write_text("X = 1\n")
    _resign(model, keys)
    from_pretrained(Spy, model, key=keys.public, trust_remote_code=True)
    assert Spy.calls == [str(model)]


def test_a_pickle_is_refused_under_deny_even_when_signed(model: Path, keys: KeyPair) -> None:
    torch.save({"w": torch.zeros(2)}, model / "pytorch_model.bin")  # zip holding data.pkl
    torch.save({"w": torch.zeros(2)}, model / "legacy.pt", _use_new_zipfile_serialization=False)
    _resign(model, keys)
    found = dict(find_pickles(model))
    assert sorted(found) == ["legacy.pt", "pytorch_model.bin"]
    assert "data.pkl" in found["pytorch_model.bin"] and "protocol" in found["legacy.pt"]
    with pytest.raises(LoadRefusedError, match=r"pickle files refused.*pytorch_model\.bin"):
        from_pretrained(Spy, model, key=keys.public)  # pickle="deny" is the default
    assert Spy.calls == []
    with pytest.warns(UserWarning, match="pickle='warn'"):
        from_pretrained(Spy, model, key=keys.public, pickle="warn")
    assert Spy.calls == [str(model)]


def test_safetensors_is_not_a_pickle(minilm_dir: Path) -> None:
    assert find_pickles(minilm_dir) == []


def test_an_unsigned_directory_is_refused(minilm_dir: Path, tmp_path: Path,
                                          keys: KeyPair) -> None:
    dst = tmp_path / "unsigned"
    shutil.copytree(minilm_dir, dst)
    with pytest.raises(LoadRefusedError, match="signature file not found"):
        from_pretrained(Spy, dst, key=keys.public)
    assert Spy.calls == []


def test_the_wrong_key_is_refused(model: Path, tmp_path: Path) -> None:
    other = make_key(tmp_path / "other")
    with pytest.raises(LoadRefusedError, match="refusing to load"):
        from_pretrained(Spy, model, key=other.public)
    assert Spy.calls == []


def test_arguments_that_would_fetch_are_usage_errors(model: Path, keys: KeyPair) -> None:
    from modelsign.errors import InputError

    with pytest.raises(InputError, match="local_files_only=False"):
        from_pretrained(Spy, model, key=keys.public, local_files_only=False)
    with pytest.raises(InputError, match="revision= applies to Hub repos"):
        from_pretrained(Spy, model, key=keys.public, revision="main")
    with pytest.raises(InputError, match="pickle must be"):
        from_pretrained(Spy, model, key=keys.public, pickle="maybe")  # type: ignore[arg-type]
    assert Spy.calls == []
