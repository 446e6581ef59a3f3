"""Shared pieces of the attack suite: real keys, real signatures, crafted statements.

Every attack here is honest: malicious bundles are made by *signing* crafted statements with a
real :class:`~modelsign.signing.KeySigner` (the signature is valid; only the content is
malicious), tampered models are real directories, and verification is the real
``modelsign.verify``. Nothing of modelsign's own is mocked.

``rejected(exc_type, fragment)`` is how every test states its verdict: the exact exception class
(not a parent class) and a distinctive piece of its message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from modelsign.hashing import HashSpec
from modelsign.signing import KeySigner, sign_model
from modelsign.signing._api import SignResult
from modelsign.statements import OMS_PREDICATE_TYPE, Statement, canonical_bytes
from modelsign.testing._pki import KeyPair, make_key

IN_TOTO = "https://in-toto.io/Statement/v1"
DEFAULT_SERIALIZATION: dict[str, Any] = {
    "method": "files", "hash_type": "sha256", "allow_symlinks": False,
    "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore", "claims.jsonl",
                     "model.sig"],
}


@contextmanager
def rejected(exc_type: type[BaseException], fragment: str) -> Iterator[pytest.ExceptionInfo[Any]]:
    """Expect exactly ``exc_type`` (not a subclass, not a parent), ``fragment`` in its message."""
    with pytest.raises(BaseException) as info:
        yield info
    assert type(info.value) is exc_type, (
        f"expected {exc_type.__name__}, got {type(info.value).__name__}: {info.value}")
    assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


def outcome(fn: Callable[[], Any]) -> BaseException | None:
    """What ``fn()`` raised (``None`` if nothing), detached from its traceback: for attacks whose
    failure mode is a ``RecursionError``, thousands of frames pytest would format for minutes."""
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - returned to the test, which judges it
        return e.with_traceback(None)
    return None


def assert_rejected(err: BaseException | None, exc_type: type[BaseException],
                    fragment: str) -> None:
    """:func:`rejected` for an exception obtained with :func:`outcome`."""
    assert err is not None, f"expected {exc_type.__name__}, nothing was raised"
    assert type(err) is exc_type, (
        f"expected {exc_type.__name__}, got {type(err).__name__}: {str(err)[:300]}")
    assert fragment in str(err), f"{fragment!r} not in {str(err)!r}"


@dataclass(frozen=True)
class Party:
    """Someone with a key: the publisher, or a stranger."""

    keys: KeyPair
    signer: KeySigner

    @property
    def public(self) -> Path:
        return self.keys.public

    @property
    def private(self) -> Path:
        return self.keys.private


def _party(directory: Path, name: str) -> Party:
    keys = make_key(directory, name)
    return Party(keys, KeySigner.from_pem_file(keys.private))


@pytest.fixture(scope="session")
def publisher(tmp_path_factory: pytest.TempPathFactory) -> Party:
    return _party(tmp_path_factory.mktemp("publisher"), "publisher")


@pytest.fixture(scope="session")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Party:
    return _party(tmp_path_factory.mktemp("stranger"), "stranger")


# ------------------------------------------------------------------------------ models on disk
def safetensors_bytes(seed: int, n: int = 256) -> bytes:
    """A small but real safetensors file (header + data), distinct per seed."""
    header = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + bytes((seed + i) % 256 for i in range(n))


def make_model(path: Path, files: Mapping[str, bytes] | None = None, *, seed: int = 1) -> Path:
    """A model directory; by default config.json, model.safetensors and tokenizer/vocab.txt."""
    files = files if files is not None else {
        "config.json": json.dumps({"seed": seed, "layers": 2}).encode(),
        "model.safetensors": safetensors_bytes(seed),
        "tokenizer/vocab.txt": b"hello\nworld\n",
    }
    path.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        p = path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return path


def sign(model: Path, party: Party, spec: HashSpec | None = None, **kw: Any) -> SignResult:
    return sign_model(model, signer=party.signer, spec=spec or HashSpec(use_cache=False), **kw)


@pytest.fixture
def model(tmp_path: Path, publisher: Party) -> Path:
    """A model signed by the publisher (files mode, sha256)."""
    m = make_model(tmp_path / "model")
    sign(m, publisher)
    return m


# ------------------------------------------------------------------------- crafted statements
def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def root_of(digests_hex: Sequence[str]) -> str:
    h = hashlib.sha256()
    for d in digests_hex:
        h.update(bytes.fromhex(d))
    return h.hexdigest()


def oms_statement_obj(resources: Sequence[Mapping[str, Any]], *, name: str = "model",
                      serialization: Mapping[str, Any] | None = None,
                      subject_digest: str | None = None) -> dict[str, Any]:
    """An OMS v1.0 statement as a JSON object; the subject digest is the true root digest of
    ``resources`` unless given (so the statement is self-consistent by default)."""
    root = subject_digest or root_of([r["digest"] for r in resources
                                      if isinstance(r, Mapping) and "digest" in r])
    return {
        "_type": IN_TOTO,
        "subject": [{"name": name, "digest": {"sha256": root}}],
        "predicateType": OMS_PREDICATE_TYPE,
        "predicate": {"serialization": dict(serialization or DEFAULT_SERIALIZATION),
                      "resources": list(resources)},
    }


def resource(name: str, data: bytes) -> dict[str, str]:
    return {"name": name, "algorithm": "sha256", "digest": sha256_hex(data)}


def signed_raw(raw: bytes, party: Party) -> bytes:
    """A real KeySigner bundle over exactly ``raw`` (whatever it holds)."""
    return party.signer.sign(Statement(raw, (), "crafted", None)).raw


def signed_obj(obj: Any, party: Party) -> bytes:
    return signed_raw(canonical_bytes(obj), party)


def write_sig(model: Path, bundle: bytes) -> Path:
    p = model / "model.sig"
    p.write_bytes(bundle)
    return p


def bundle_json(bundle: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(bundle)
    return obj


def dump(obj: Any) -> bytes:
    return canonical_bytes(obj) + b"\n"


def payload_of(bundle: bytes) -> bytes:
    return base64.b64decode(bundle_json(bundle)["dsseEnvelope"]["payload"])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def public_pem(party: Party) -> bytes:
    return party.signer.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def first_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)[:300]


Verify = Callable[..., Any]
