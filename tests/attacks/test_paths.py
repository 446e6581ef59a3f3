"""Attacks on names and the file walk.

Two kinds. Signed statements whose resource names would make a verifier (or anything that trusts
the manifest) read or write outside the artifact: a careless or malicious publisher signs them
with a real key, so the signature verifies and only the names are evil. And trees on disk that
try to smuggle bytes in through links, look-alike names or special files.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Any

from modelsign.errors import PathError, SignatureFormatError, SymlinkError
from modelsign.hashing import HashSpec
from modelsign.verify import IntegrityFailure, verify_model

from .conftest import (
    DEFAULT_SERIALIZATION,
    Party,
    make_model,
    oms_statement_obj,
    rejected,
    resource,
    sign,
    signed_obj,
    write_sig,
)


def _signed_with_names(model: Path, party: Party, *names: str,
                       serialization: dict[str, Any] | None = None) -> None:
    resources = sorted((resource(n, b"payload") for n in names), key=lambda r: r["name"])
    write_sig(model, signed_obj(oms_statement_obj(resources, serialization=serialization),
                                party))


def _name_refused(tmp_path: Path, publisher: Party, name: str, message: str,
                  serialization: dict[str, Any] | None = None) -> None:
    """A fresh model whose validly signed statement names ``name``: verify refuses it with a
    SignatureFormatError saying ``message``."""
    m = make_model(tmp_path / "m")
    _signed_with_names(m, publisher, name, serialization=serialization)
    with rejected(SignatureFormatError, message):
        verify_model(m, key=publisher.public)


def test_resource_named_dotdot(tmp_path: Path, publisher: Party) -> None:
    _name_refused(tmp_path, publisher, "../../x",
                  "resource name '../../x' contains an empty, '.' or '..'")


def test_absolute_path(tmp_path: Path, publisher: Party) -> None:
    _name_refused(tmp_path, publisher, "/etc/passwd",
                  "resource name '/etc/passwd' is an absolute path")


def test_backslash_path(tmp_path: Path, publisher: Party) -> None:
    _name_refused(tmp_path, publisher, "sub\\..\\..\\x", "contains a backslash")


def test_nul_in_name(tmp_path: Path, publisher: Party) -> None:
    _name_refused(tmp_path, publisher, "model.safetensors\0../../etc/passwd",
                  "contains a NUL character")


def test_shard_path_traversal(tmp_path: Path, publisher: Party) -> None:
    """Shard names are ``path:start:end``; the path part gets the same checks."""
    ser = {"method": "shards", "hash_type": "sha256", "allow_symlinks": False,
           "shard_size": 100, "ignore_paths": ["model.sig"]}
    _name_refused(tmp_path, publisher, "../outside.bin:0:100",
                  "shard path '../outside.bin' contains an empty, '.' or '..' path component",
                  serialization=ser)


def test_ignore_path_escaping_the_artifact(tmp_path: Path, publisher: Party) -> None:
    """A signed ``ignore_paths`` entry that names the parent directory."""
    ser = dict(DEFAULT_SERIALIZATION, ignore_paths=["../"])
    _name_refused(tmp_path, publisher, "config.json",
                  "ignore path '..' contains an empty, '.' or '..'", serialization=ser)


def test_unicode_normalization_twin(model: Path, publisher: Party) -> None:
    """``café.json`` in NFC is signed; a decomposed twin (NFD) with other content is added. On
    macOS (and for many tools) the two names are the same file."""
    nfc = unicodedata.normalize("NFC", "caf\u00e9.json")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    (model / nfc).write_bytes(b'{"good": true}')
    sign(model, publisher)
    (model / nfd).write_bytes(b'{"evil": true}')
    with rejected(PathError, "after Unicode NFC normalization"):
        verify_model(model, key=publisher.public)


def test_case_only_twin(model: Path, publisher: Party) -> None:
    """``CONFIG.JSON`` beside the signed ``config.json``: one file on a case-insensitive file
    system. A case-sensitive verifier sees an unsigned extra file and refuses it."""
    (model / "CONFIG.JSON").write_bytes(b'{"evil": true}')
    with rejected(IntegrityFailure, "extra CONFIG.JSON (on disk "):
        verify_model(model, key=publisher.public)


def test_case_only_twin_is_not_tolerated_as_unsigned(model: Path, publisher: Party) -> None:
    (model / "CONFIG.JSON").write_bytes(b'{"evil": true}')
    with rejected(PathError, "case"):
        verify_model(model, key=publisher.public, ignore_unsigned_files=True)


def test_symlink_to_outside_refused_by_default(model: Path, publisher: Party,
                                               tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"ssh key")
    (model / "leak.txt").symlink_to(secret)
    with rejected(SymlinkError, "is a symbolic link; symlinks are refused by default"):
        verify_model(model, key=publisher.public)


def test_symlink_to_outside_refused_even_when_symlinks_are_allowed(tmp_path: Path,
                                                                   publisher: Party) -> None:
    """The publisher signed with ``allow_symlinks``; an attacker adds a link leaving the model."""
    m = make_model(tmp_path / "m")
    sign(m, publisher, HashSpec(allow_symlinks=True, use_cache=False))
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"ssh key")
    (m / "leak.txt").symlink_to(secret)
    with rejected(SymlinkError, "symbolic link points outside the model directory"):
        verify_model(m, key=publisher.public)


def test_symlink_loop_directory(tmp_path: Path, publisher: Party) -> None:
    """A directory link to its own ancestor would make a naive walk recurse for ever."""
    m = make_model(tmp_path / "m")
    sign(m, publisher, HashSpec(allow_symlinks=True, use_cache=False))
    (m / "tokenizer" / "again").symlink_to(m, target_is_directory=True)
    with rejected(SymlinkError, "symbolic link loop: points to a directory that contains it"):
        verify_model(m, key=publisher.public)


def test_symlink_loop_self(tmp_path: Path, publisher: Party) -> None:
    m = make_model(tmp_path / "m")
    sign(m, publisher, HashSpec(allow_symlinks=True, use_cache=False))
    (m / "a").symlink_to(m / "b")
    (m / "b").symlink_to(m / "a")
    with rejected(SymlinkError, "symbolic link loop"):
        verify_model(m, key=publisher.public)


def test_fifo_planted_in_the_model(model: Path, publisher: Party) -> None:
    """A FIFO would block a hasher that opens it for ever."""
    os.mkfifo(model / "weights.bin")
    with rejected(PathError, "is a FIFO, neither a regular file nor a directory"):
        verify_model(model, key=publisher.public)


def _blocks(fn: object, fifo: Path, seconds: float = 1.5) -> tuple[bool, BaseException | None]:
    """Run ``fn`` in a thread; (whether it was still blocked after ``seconds``, what it raised).
    A blocked ``open`` of the FIFO is released by opening the FIFO for writing."""
    import threading

    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            fn()  # type: ignore[operator]
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            outcome.append(e)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    blocked = t.is_alive()
    if blocked:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(10)
    return blocked, (outcome[0] if outcome else None)


def test_model_sig_is_a_fifo(model: Path, publisher: Party) -> None:
    (model / "model.sig").unlink()
    os.mkfifo(model / "model.sig")
    blocked, raised = _blocks(lambda: verify_model(model, key=publisher.public),
                              model / "model.sig")
    assert not blocked, "verify_model blocked on a FIFO named model.sig"
    assert type(raised) is PathError and "not a regular file" in str(raised)


def test_claims_jsonl_is_a_fifo(model: Path, publisher: Party) -> None:
    from modelsign.verify._claims import verify_claims

    os.mkfifo(model / "claims.jsonl")
    root = verify_model(model, key=publisher.public).root_digest
    blocked, raised = _blocks(lambda: verify_claims(model, root, key=publisher.public),
                              model / "claims.jsonl")
    assert not blocked, "verify_claims blocked on a FIFO named claims.jsonl"
    assert type(raised) is PathError and "not a regular file" in str(raised)
