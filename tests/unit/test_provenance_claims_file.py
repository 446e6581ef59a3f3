"""claims.jsonl handling: append-only, line numbers, caps, interrupted appends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelsign.claims import (
    ClaimLine,
    append_claim,
    claims_path,
    parse_code_ref,
    read_claims,
    resolve_parent,
)
from modelsign.errors import InputError, PathError


def _line(i: int) -> bytes:
    return b'{"mediaType":"x","n":%d}' % i


def test_appends_number_lines_and_never_rewrite_earlier_ones(tmp_path: Path) -> None:
    f = tmp_path / "claims.jsonl"
    assert append_claim(f, _line(1)) == 1
    first = f.read_bytes()
    assert append_claim(f, _line(2) + b"\n") == 2  # a bundle's own final newline is fine
    assert f.read_bytes().startswith(first)
    got = read_claims(f)
    assert got.exists and got.problems == ()
    assert got.lines == (ClaimLine(1, _line(1)), ClaimLine(2, _line(2)))
    assert oct(f.stat().st_mode & 0o777) == oct(0o644)


def test_directory_means_its_claims_file(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "w.bin").write_bytes(b"x")
    assert claims_path(tmp_path / "m") == tmp_path / "m" / "claims.jsonl"
    assert claims_path(tmp_path / "w.bin") == tmp_path / "w.bin.claims.jsonl"
    append_claim(tmp_path / "m", _line(1))
    assert read_claims(tmp_path / "m").lines[0].number == 1


def test_missing_file_reads_as_empty(tmp_path: Path) -> None:
    got = read_claims(tmp_path / "claims.jsonl")
    assert not got.exists and got.lines == ()


def test_truncated_last_line_is_reported_and_the_next_append_starts_a_new_line(
        tmp_path: Path) -> None:
    f = tmp_path / "claims.jsonl"
    append_claim(f, _line(1))
    with open(f, "ab") as fh:
        fh.write(_line(2)[:9])  # an append killed half-way
    got = read_claims(f)
    assert got.lines[-1] == ClaimLine(2, _line(2)[:9], complete=False)
    assert append_claim(f, _line(3)) == 3
    lines = read_claims(f).lines
    assert [(x.number, x.complete) for x in lines] == [(1, True), (2, True), (3, True)]
    assert lines[1].raw == _line(2)[:9] and lines[2].raw == _line(3)


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    f = tmp_path / "claims.jsonl"
    f.write_bytes(_line(1) + b"\n\n  \n" + _line(4) + b"\n")
    assert [x.number for x in read_claims(f).lines] == [1, 4]


def test_over_long_line_is_reported_with_its_number(tmp_path: Path) -> None:
    f = tmp_path / "claims.jsonl"
    f.write_bytes(_line(1) + b"\n" + b"x" * 5000 + b"\n" + _line(3) + b"\n")
    got = read_claims(f, max_line_bytes=1000)
    assert [x.number for x in got.lines] == [1, 2, 3]
    assert got.lines[1].problem and "longer than 1000" in got.lines[1].problem
    assert got.lines[2].raw == _line(3)


def test_line_and_file_caps(tmp_path: Path) -> None:
    f = tmp_path / "claims.jsonl"
    f.write_bytes(b"".join(_line(i) + b"\n" for i in range(10)))
    got = read_claims(f, max_lines=4)
    assert len(got.lines) == 4 and "more than 4 lines" in got.problems[0]
    got = read_claims(f, max_file_bytes=60)
    assert got.problems and "larger than 60 bytes" in got.problems[0]


@pytest.mark.parametrize("bad, words", [
    (b"", "empty"),
    (b'{"a":\n1}', "single line"),
    (b"not json", "not valid JSON"),
    (b"[1,2]", "JSON object"),
])
def test_append_refuses_what_is_not_one_json_object_line(tmp_path: Path, bad: bytes,
                                                         words: str) -> None:
    with pytest.raises((InputError,), match=words):
        append_claim(tmp_path / "claims.jsonl", bad)
    assert not (tmp_path / "claims.jsonl").exists()


def test_append_refuses_to_write_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.jsonl"
    target.write_bytes(b"")
    os.symlink(target, tmp_path / "claims.jsonl")
    with pytest.raises(PathError, match="symbolic link"):
        append_claim(tmp_path / "claims.jsonl", _line(1))
    assert target.read_bytes() == b""


def test_reading_a_symlinked_claims_file_works(tmp_path: Path) -> None:
    """Hugging Face cache snapshots are symlinks into blobs; reading through them is fine."""
    target = tmp_path / "blob"
    target.write_bytes(_line(1) + b"\n")
    os.symlink(target, tmp_path / "claims.jsonl")
    assert read_claims(tmp_path / "claims.jsonl").lines == (ClaimLine(1, _line(1)),)


def test_parent_refs() -> None:
    hexd = "ab" * 32
    p = resolve_parent(f"sha256:{hexd}")
    assert (p.kind, p.root_digest, p.uri, p.signed) == ("digest", hexd, None, False)
    p = resolve_parent(f"sha256:{hexd}=https://models.example/base")
    assert p.uri == "https://models.example/base"
    p = resolve_parent("hf://acme/llama-7b@" + "1" * 40)
    assert (p.kind, p.uri, p.git_commit, p.root_digest) == ("hub", "hf://acme/llama-7b", "1" * 40,
                                                            None)
    assert resolve_parent("hf://gpt2@" + "3" * 40).uri == "hf://gpt2"  # legacy, no org
    d = resolve_parent("hf://datasets/acme/chat@" + "2" * 40, what="dataset").dependency(
        "dataset", split="train")
    assert d.uri == "hf://datasets/acme/chat" and d.digest == {"gitCommit": "2" * 40}
    assert d.split == "train" and d.signed is False


@pytest.mark.parametrize("ref, words", [
    ("hf://acme/llama-7b", "pinned Hub revision"),
    ("hf://acme/llama-7b@main", "pinned Hub revision"),
    ("hf://acme/x/y@" + "1" * 40, "pinned Hub revision"),
    ("hf://../etc@" + "1" * 40, "pinned Hub revision"),
    ("sha256:ABC", "neither a local path"),
    ("./does/not/exist", "neither a local path"),
])
def test_bad_parent_refs(ref: str, words: str) -> None:
    with pytest.raises(InputError, match=words):
        resolve_parent(ref)


def test_unsigned_local_parent_is_hashed_and_marked_unsigned(tmp_path: Path) -> None:
    from modelsign import hash_model

    d = tmp_path / "data"
    d.mkdir()
    (d / "train.jsonl").write_text('{"text": "hi"}\n')
    p = resolve_parent(d, what="dataset")
    assert p.signed is False and p.root_digest == hash_model(d).root_hex and p.name == "data"


def test_signed_local_parent_needs_someone_to_say_who_may_sign_it(tmp_path: Path) -> None:
    d = tmp_path / "base"
    d.mkdir()
    (d / "w.bin").write_bytes(b"w")
    (d / "model.sig").write_bytes(b"{}")
    with pytest.raises(InputError, match="nobody said who may sign it"):
        resolve_parent(d)


def test_code_refs() -> None:
    dep = parse_code_ref("https://github.com/acme/train@" + "c" * 40)
    assert dep.uri == "https://github.com/acme/train" and dep.git_commit == "c" * 40
    dep = parse_code_ref("git+ssh://git@github.com/acme/train@" + "d" * 40)
    assert dep.uri == "git+ssh://git@github.com/acme/train"
    with pytest.raises(InputError, match="URI@COMMIT"):
        parse_code_ref("https://github.com/acme/train@main")
