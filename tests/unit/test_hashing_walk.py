"""The file walk: names, ignore rules, symlinks and the inputs it refuses."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from modelsign.errors import InputError, PathError, SymlinkError
from modelsign.hashing import HashSpec, hash_tree

SPEC = HashSpec(use_cache=False)


def _tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def _refused(exc: type[PathError], root: Path, spec: HashSpec, problem: str) -> PathError:
    """hash_tree must raise ``exc`` whose *problem* (not the path) contains ``problem``."""
    with pytest.raises(exc) as e:
        hash_tree(root, spec)
    assert problem in e.value.problem, e.value.problem
    return e.value


def _names(root: Path, spec: HashSpec = SPEC) -> list[str]:
    return [d[0] for d in hash_tree(root, spec).digests]


def test_default_exclusions_are_top_level_only(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {".git/HEAD": "x", ".gitignore": "x", ".gitattributes": "x",
                                  ".github/ci.yml": "x", "model.sig": "{}", "claims.jsonl": "",
                                  "sub/.gitignore": "kept", "sub/model.sig": "kept",
                                  "w.bin": "w"})
    assert _names(root) == ["sub/.gitignore", "sub/model.sig", "w.bin"]


def test_ignore_paths_match_whole_components(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {"logs/a": "x", "logs/deep/b": "x", "logs2": "x",
                                  "sub/logs": "x", "sub/tmp/c": "x", "sub/tmpx": "x", "w": "w"})
    spec = HashSpec(ignore_paths=("logs", "sub/tmp"), use_cache=False)
    assert _names(root, spec) == ["logs2", "sub/logs", "sub/tmpx", "w"]
    assert hash_tree(root, spec).files == {"logs2", "sub/logs", "sub/tmpx", "w"}


def test_files_lists_empty_files_in_both_modes(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {"empty": b"", "w": b"abc"})
    for method in ("files", "shards"):
        r = hash_tree(root, HashSpec(method=method, use_cache=False))  # type: ignore[arg-type]
        assert r.files == {"empty", "w"}
    shards = hash_tree(root, HashSpec(method="shards", use_cache=False))
    assert [d[:3] for d in shards.digests] == [("w", 0, 3)]


def test_single_file_is_a_model(tmp_path: Path) -> None:
    f = tmp_path / "model.sig"  # a single file is hashed whatever its name: no ignore applies
    f.write_bytes(b"abc")
    r = hash_tree(f, SPEC)
    assert r.name == "model.sig" and r.files == {"model.sig"}
    assert r.digests == [("model.sig", None, None, hashlib.sha256(b"abc").digest())]


def test_name_of_dot_and_trailing_slash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tree(tmp_path / "my-model", {"w": "x"})
    assert hash_tree(str(root) + "/", SPEC).name == "my-model"
    monkeypatch.chdir(root)
    assert hash_tree(".", SPEC).name == "my-model"


def test_missing_path(tmp_path: Path) -> None:
    _refused(PathError, tmp_path / "absent", SPEC, "no such file")


def test_empty_model_is_input_error(tmp_path: Path) -> None:
    (tmp_path / "e" / "sub").mkdir(parents=True)
    with pytest.raises(InputError):
        hash_tree(tmp_path / "e", SPEC)


# ------------------------------------------------------------------------------ symlinks
def test_symlink_refused_by_default_names_it(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {"real": "x"})
    (root / "sub").mkdir()
    (root / "sub" / "alias").symlink_to("../real")
    e = _refused(SymlinkError, root, SPEC, "is a symbolic link")
    assert e.path == str(root / "sub" / "alias")


def test_symlinked_root_refused_by_default(tmp_path: Path) -> None:
    real = _tree(tmp_path / "real", {"w": "x"})
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(SymlinkError):
        hash_tree(tmp_path / "link", SPEC)
    r = hash_tree(tmp_path / "link", HashSpec(allow_symlinks=True, use_cache=False))
    assert r.name == "link" and [d[0] for d in r.digests] == ["w"]


def test_allowed_symlinks_hash_the_target_under_the_link_name(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {"blobs/abc": "weights", "blobs/dir/x": "in dir"})
    (root / "model.bin").symlink_to("blobs/abc")
    (root / "linked").symlink_to("blobs/dir")
    r = hash_tree(root, HashSpec(allow_symlinks=True, use_cache=False))
    got = {d[0]: d[3] for d in r.digests}
    assert got["model.bin"] == got["blobs/abc"] == hashlib.sha256(b"weights").digest()
    assert got["linked/x"] == hashlib.sha256(b"in dir").digest()


def test_symlink_escaping_the_model_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {"w": "x"})
    _tree(tmp_path, {"m-sibling/secret": "s"})
    (root / "a").symlink_to("../m-sibling/secret")  # a prefix trap: 'm' vs 'm-sibling'
    e = _refused(SymlinkError, root, HashSpec(allow_symlinks=True, use_cache=False),
                 "outside the model directory")
    assert e.path == str(root / "a")


def test_symlink_to_absolute_path_outside_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {"w": "x"})
    (root / "passwd").symlink_to("/etc/passwd")
    _refused(SymlinkError, root, HashSpec(allow_symlinks=True, use_cache=False),
             "outside the model directory")


@pytest.mark.parametrize("link,target", [("self", "self"), ("self", "../m"), ("self", "."),
                                         ("sub/up", ".."), ("sub/deeper/up", "../..")])
def test_symlink_loops(tmp_path: Path, link: str, target: str) -> None:
    root = _tree(tmp_path / "m", {"w": "x", "sub/deeper/v": "y"})
    (root / link).symlink_to(target)
    e = _refused(SymlinkError, root, HashSpec(allow_symlinks=True, use_cache=False),
                 "symbolic link loop")
    assert e.path == str(root / link)


def test_broken_symlink(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {"w": "x"})
    (root / "dangling").symlink_to("nowhere")
    _refused(SymlinkError, root, HashSpec(allow_symlinks=True, use_cache=False),
             "cannot be followed")


def test_ignored_symlink_is_not_an_error(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {"w": "x"})
    (root / ".git").mkdir()
    (root / ".git" / "link").symlink_to("/etc/passwd")
    assert _names(root) == ["w"]


# --------------------------------------------------------------------------------- names
def test_invalid_utf8_in_a_directory_name(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {"w": "x"})
    try:
        os.mkdir(os.fsencode(root) + b"/d\xe9j\xe0")
    except OSError as e:
        pytest.skip(f"file system refuses non-UTF-8 names: {e}")
    e = _refused(PathError, root, SPEC, "not valid UTF-8")
    assert e.path == str(root) + "/d\\xe9j\\xe0"


def test_nfc_collision_in_a_subdirectory(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {"sub/\u00c5ngstr\u00f6m": "a", "sub/A\u030angstro\u0308m": "b"})
    if len(os.listdir(root / "sub")) != 2:
        pytest.skip("the file system normalizes names")
    e = _refused(PathError, root, SPEC, "after Unicode NFC normalization")
    assert e.path is not None and e.path.startswith(str(root / "sub") + "/")


def test_distinct_non_ascii_names_are_fine(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {"caf\u00e9": "a", "cafe": "b", "日本語/ファイル": "c",
                                  "e\u0301t\u00e9": "d"})  # non-NFC alone is not a collision
    assert len(_names(root)) == 4


def test_backslash_in_a_name_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {"a\\b": "x"})
    _refused(PathError, root, SPEC, "backslash")


def test_fifo_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path / "m", {"w": "x"})
    os.mkfifo(root / "p")
    _refused(PathError, root, SPEC, "a FIFO")
    assert _names(root, HashSpec(ignore_paths=("p",), use_cache=False)) == ["w"]
