"""``modelsign hash``: output formats, the OMS schema, and every bad input as a one-line exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from modelsign.cli import main
from modelsign.hashing import DEFAULT_SHARD_SIZE, HashSpec
from modelsign.manifest import hash_model

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _model(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"hidden_size": 8}')
    (root / "sub" / "weights.bin").write_bytes(os.urandom(5000))
    (root / "empty").write_bytes(b"")
    (root / "ünï code.txt").write_text("x")
    return root


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["hash", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _bad(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run, expect exit 2 and exactly one line of error, no traceback; return that line."""
    code, out, err = _run(capsys, *args)
    assert code == 2, (code, out, err)
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("modelsign: error: "), err
    assert "Traceback" not in err
    return err


# ----------------------------------------------------------------------------- good input
def test_text_prints_the_root_digest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m")
    code, out, err = _run(capsys, str(model))
    assert code == 0 and err == ""
    assert out == f"sha256:{hash_model(model, HashSpec(use_cache=False)).root_hex}\n"


@pytest.mark.parametrize("method", ["files", "shards"])
def test_json_is_canonical_and_byte_identical(tmp_path: Path, method: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m")
    args = [str(model), "--format", "json", "--method", method]
    if method == "shards":
        args += ["--shard-size", "1024"]
    runs = [_run(capsys, *args, *extra) for extra in ([], ["--no-cache"], [])]
    assert all(code == 0 for code, _, _ in runs)
    assert runs[0][1] == runs[1][1] == runs[2][1]  # byte-identical, from cache or not
    doc = json.loads(runs[0][1])
    # RFC 8785: sorted keys, no whitespace; integers stay integers
    assert runs[0][1] == json.dumps(doc, sort_keys=True, separators=(",", ":"),
                                    ensure_ascii=False) + "\n"
    ser = doc["serialization"]
    assert ser["method"] == method and ser["hash_type"] == "sha256"
    if method == "shards":
        assert ser["shard_size"] == 1024 and isinstance(ser["shard_size"], int)
        assert '"shard_size":1024}' in runs[0][1]
    else:
        assert "shard_size" not in ser
    assert ser["ignore_paths"] == sorted(ser["ignore_paths"])
    assert {"model.sig", "claims.jsonl", ".git"} <= set(ser["ignore_paths"])


def test_subprocess_output_identical_across_processes(tmp_path: Path) -> None:
    """Fresh interpreters (different hash seeds, set orders) still print the same bytes."""
    model = _model(tmp_path / "m")
    outs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        p = subprocess.run([sys.executable, "-m", "modelsign", "hash", str(model), "--format",
                            "json", "--ignore-path", "b", "--ignore-path", "a"],
                           capture_output=True, env=env, check=True)
        outs.append(p.stdout)
    assert outs[0] == outs[1]


@pytest.mark.parametrize("method", ["files", "shards"])
def test_json_validates_against_the_oms_schema(tmp_path: Path, method: str, oms_schemas: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import jsonschema
    from referencing import Registry, Resource

    schemas = {p.name: json.loads(p.read_text()) for p in oms_schemas.glob("*.json")}
    registry: Registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas.values() if "$id" in s)
    schema = schemas["predicate.schema.json"]
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    model = _model(tmp_path / "m")
    for alg in ("sha256", "blake2b", "blake3"):
        args = [str(model), "--format", "json", "--method", method, "--algorithm", alg]
        code, out, _ = _run(capsys, *args)
        assert code == 0
        doc = json.loads(out)
        validator.validate(doc)
        assert all(r["algorithm"] == alg for r in doc["resources"])
    # the schema really checks: the peer's shard algorithm name, or a fractional size, fail
    if method == "shards":
        doc["resources"][0]["algorithm"] = "blake3-sharded-1000000000"
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(doc)
        doc["resources"][0]["algorithm"] = "blake3"
        doc["serialization"]["shard_size"] = 1.5
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(doc)


def test_options_reach_the_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m")
    (model / "logs").mkdir()
    (model / "logs" / "x").write_text("noise")
    code, out, _ = _run(capsys, str(model), "--format", "json", "--ignore-path", "./logs/",
                        "--algorithm", "blake2b", "--method", "shards")
    doc = json.loads(out)
    assert code == 0
    assert "logs" in doc["serialization"]["ignore_paths"]
    assert doc["serialization"]["shard_size"] == DEFAULT_SHARD_SIZE
    assert not any(r["name"].startswith("logs/") for r in doc["resources"])
    assert all(len(r["digest"]) == 128 for r in doc["resources"])


def test_single_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"weights")
    code, out, _ = _run(capsys, str(f), "--format", "json")
    assert code == 0
    assert [r["name"] for r in json.loads(out)["resources"]] == ["model.safetensors"]


def test_quiet_when_piped(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    p = subprocess.run([sys.executable, "-m", "modelsign", "hash", str(model)],
                       capture_output=True, check=True)
    assert p.stderr == b""
    assert p.stdout.startswith(b"sha256:")


# ------------------------------------------------------------------------------ bad input
def test_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _bad(capsys, str(tmp_path / "nope"))
    assert str(tmp_path / "nope") in err and "no such file" in err


def test_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    err = _bad(capsys, str(tmp_path / "empty"))
    assert str(tmp_path / "empty") in err and "contains no file to hash" in err


def test_everything_ignored_is_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m"
    (model / ".git").mkdir(parents=True)
    (model / ".git" / "HEAD").write_text("x")
    (model / "model.sig").write_text("{}")
    _bad(capsys, str(model))


def test_only_empty_files_in_shards_mode(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "zero").write_bytes(b"")
    assert _run(capsys, str(model))[0] == 0  # files mode lists it
    err = _bad(capsys, str(model), "--method", "shards")
    assert "no non-empty file" in err


def test_symlink_refused_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m")
    (model / "link.json").symlink_to("config.json")
    err = _bad(capsys, str(model))
    assert str(model / "link.json") in err and "is a symbolic link" in err
    assert _run(capsys, str(model), "--allow-symlinks")[0] == 0


def test_escaping_symlink_refused_even_when_allowed(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m")
    (tmp_path / "secret").write_text("outside")
    (model / "leak").symlink_to(tmp_path / "secret")
    err = _bad(capsys, str(model), "--allow-symlinks")
    assert str(model / "leak") in err and "outside the model directory" in err


def test_symlink_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m")
    (model / "sub" / "up").symlink_to("..")
    err = _bad(capsys, str(model), "--allow-symlinks")
    assert str(model / "sub" / "up") in err and "symbolic link loop" in err


def test_invalid_utf8_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m")
    try:
        fd = os.open(os.fsencode(model) + b"/bad\xffname", os.O_CREAT | os.O_WRONLY, 0o644)
    except OSError as e:  # some file systems refuse such names themselves
        pytest.skip(f"the file system refuses non-UTF-8 names: {e}")
    os.close(fd)
    err = _bad(capsys, str(model))
    assert "bad\\xffname" in err and "not valid UTF-8" in err


def test_normalization_collision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m")
    nfc, nfd = "caf\u00e9.txt", "cafe\u0301.txt"
    (model / nfc).write_text("one")
    try:
        (model / nfd).write_text("two")
    except OSError as e:
        pytest.skip(f"the file system normalizes names itself: {e}")
    if len(os.listdir(model)) != 6:
        pytest.skip("the file system normalizes names itself")
    err = _bad(capsys, str(model))
    assert "after Unicode NFC normalization" in err and str(model) in err


def test_fifo_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m")
    os.mkfifo(model / "pipe")
    err = _bad(capsys, str(model))
    assert str(model / "pipe") in err and "is a FIFO" in err


def test_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m")
    secret = model / "sub" / "weights.bin"
    secret.chmod(0)
    try:
        if not IS_ROOT:
            err = _bad(capsys, str(model), "--no-cache")
        else:
            # root reads anything: drop the capabilities that let it (CAP_DAC_*), keep uid 0
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root without setpriv: cannot make a file unreadable")
            p = subprocess.run(
                [setpriv, "--bounding-set=-dac_override,-dac_read_search", sys.executable,
                 "-m", "modelsign", "hash", str(model), "--no-cache"],
                capture_output=True, text=True)
            if p.returncode != 2 and "Operation not permitted" in p.stderr:
                pytest.skip(f"cannot drop capabilities here: {p.stderr.strip()}")
            assert p.returncode == 2, p.stderr
            assert p.stdout == "" and p.stderr.count("\n") == 1
            err = p.stderr
    finally:
        secret.chmod(0o644)
    assert str(secret) in err and "permission denied" in err


def test_file_changing_while_hashed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A writer appends to a big file the whole time: the change is caught, never hashed half-old.

    The writer is another process appending in a tight loop, started (and seen writing) before
    the command and stopped after it, so every stat the engine takes differs from the one before.
    """
    model = _model(tmp_path / "m")
    growing = model / "growing.bin"
    with open(growing, "wb") as f:
        f.truncate(80 << 20)  # sparse: cheap to create, > 2 scheduler steps to hash
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import os, sys\n"
         "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)\n"
         "while True: os.write(fd, b'x')\n", str(growing)])
    try:
        deadline = time.monotonic() + 10
        while growing.stat().st_size == 80 << 20:
            assert time.monotonic() < deadline, "writer did not start"
            time.sleep(0.01)
        err = _bad(capsys, str(model), "--no-cache")
    finally:
        writer.kill()
        writer.wait()
    assert str(growing) in err and "while it was being hashed" in err


def test_file_replaced_between_listing_and_reading(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Same as above with many small files being rewritten (atomically renamed) in a loop."""
    model = tmp_path / "m"
    model.mkdir()
    for i in range(200):
        (model / f"f{i:03d}").write_bytes(b"%d" % i)
    stop = threading.Event()

    def churn() -> None:
        n = 0
        while not stop.is_set():
            tmp = tmp_path / "tmp"
            tmp.write_bytes(b"new %d" % n)
            os.replace(tmp, model / f"f{n % 200:03d}")
            n += 1

    t = threading.Thread(target=churn)
    t.start()
    try:
        codes = set()
        for _ in range(20):
            code, _, err = _run(capsys, str(model), "--no-cache")
            codes.add(code)
            if code == 2:
                assert err.count("\n") == 1 and "Traceback" not in err
                assert "while it was being hashed" in err or "disappeared" in err
                break
    finally:
        stop.set()
        t.join()
    assert 2 in codes


def test_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m")
    assert "--shard-size only applies" in _bad(capsys, str(model), "--shard-size", "10")
    assert "--ignore-path" in _bad(capsys, str(model), "--ignore-path", "/etc")
    assert "--ignore-path" in _bad(capsys, str(model), "--ignore-path", "../x")
    assert "UTF-8" in _bad(capsys, str(model), "--ignore-path", "bad\udcff")  # argv bytes 0xff
    code, _, _ = _run(capsys, str(model), "--method", "tensors")
    assert code == 2
    code, _, _ = _run(capsys, str(model), "--method", "shards", "--shard-size", "0")
    assert code == 2
    code, _, _ = _run(capsys, str(model), "--algorithm", "md5")
    assert code == 2


def test_hash_does_not_import_signing_stacks(tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    code = ("import sys; from modelsign.cli import main; main(['hash', sys.argv[1]]); "
            "bad = [m for m in ('sigstore', 'rich', 'cryptography', 'huggingface_hub', 'blake3') "
            "if m in sys.modules]; print('BAD', bad)")
    p = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True,
                       check=True)
    assert p.stdout.strip().endswith("BAD []"), p.stdout
