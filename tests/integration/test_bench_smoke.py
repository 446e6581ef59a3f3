"""The benchmark harness at its smoke size: every row is there, measured or explicitly failed.

This does not judge speed (the benchmark is not a timed test); it checks that ``scripts/bench.py``
runs end to end, that each row carries a number or an error string, and that the ratios it reports
are the ones its own numbers give.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "scripts" / "bench.py"

EXPECTED_ROWS = {
    *(f"{row}.{cache}" for cache in ("warm", "cold") for row in (
        "openssl.dgst.model", "model_signing.api.model", "model_signing.cli.model",
        "modelsign.api.model", "modelsign.cli.model",
        "model_signing.api.single", "modelsign.api.single", "modelsign.cli.single",
        "model_signing.api.dataset", "modelsign.api.dataset")),
    "openssl.dgst.single.warm",
    "modelsign.api.model.warm.hashlib", "modelsign.api.single.warm.hashlib",
    "modelsign.api.incremental", "modelsign.cli.incremental",
    "model_signing.cli.startup", "modelsign.cli.startup",
    "openssl.dgst.dataset.warm", "model_signing.cli.dataset.warm", "modelsign.cli.dataset.warm",
    "model_signing.cli.sign.warm", "modelsign.cli.sign.warm",
    "model_signing.cli.verify.warm", "modelsign.cli.verify.warm",
    "model_signing.api.verify.warm", "modelsign.api.verify.warm",
}


def _load_bench():
    spec = importlib.util.spec_from_file_location("modelsign_bench", BENCH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--size", "smoke", "--repeat", "1", "--json", str(out),
         "--workdir", str(tmp / "work")],
        capture_output=True, text=True, timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ceiling" in proc.stdout  # the table went to stdout
    return json.loads(out.read_text())


@pytest.mark.slow
def test_smoke_run_reports_every_row(smoke: dict) -> None:
    assert smoke["schema"] == "modelsign-bench/1"
    m = smoke["machine"]
    assert m["cpu_count"] >= 1 and m["openssl"] and m["python"] and m["date"]
    assert smoke["config"]["size"] == "smoke"
    names = [r["name"] for r in smoke["rows"]]
    assert len(names) == len(set(names))
    assert set(names) == EXPECTED_ROWS

    for r in smoke["rows"]:
        if r["status"] == "ok":
            assert _is_number(r["throughput"]) and r["throughput"] > 0, r
            assert _is_number(r["median_s"]) and r["median_s"] > 0, r
            assert len(r["times_s"]) >= 1
            assert r["error"] is None
        else:
            assert r["status"] in ("error", "n/a"), r
            assert isinstance(r["error"], str) and r["error"].startswith(("error: ", "n/a: ")), r
            assert r["throughput"] is None
        # every tool is installed and every command exists: every row must be measured
        assert r["status"] == "ok", r
        if r["group"] == "verify" and r["interface"] == "api":
            assert r["import_median_s"] + r["verify_median_s"] == pytest.approx(
                r["median_s"], rel=0.5)


@pytest.mark.slow
def test_smoke_ratios_come_from_the_numbers(smoke: dict) -> None:
    ceiling = smoke["ceiling"]
    assert ceiling["status"] == "ok", ceiling
    assert _is_number(ceiling["throughput"]) and ceiling["throughput"] > 0
    assert ceiling["throughput"] == pytest.approx(ceiling["cores"] * ceiling["one_core_GBps"])

    rows = {r["name"]: r for r in smoke["rows"]}
    peers_checked = 0
    for r in rows.values():
        if r["status"] != "ok":
            assert r["pct_of_ceiling"] is None and r["ratio_vs_peer"] is None
            continue
        if r["unit"] == "GB/s":
            assert r["pct_of_ceiling"] == pytest.approx(
                100 * r["throughput"] / ceiling["throughput"])
            if r["group"] != "incremental":
                assert r["throughput"] == pytest.approx(r["bytes"] / r["median_s"] / 1e9)
        elif r["unit"] == "files/s":
            assert r["throughput"] == pytest.approx(r["files"] / r["median_s"])
        peer = rows.get(r["peer"]) if r["peer"] else None
        if peer is not None and peer["status"] == "ok":
            assert r["ratio_vs_peer"] == pytest.approx(r["throughput"] / peer["throughput"])
            peers_checked += 1
        else:
            assert r["ratio_vs_peer"] is None
        if r["group"] == "incremental":
            assert r["incremental_speedup"] == pytest.approx(
                r["full_median_s"] / r["incremental_median_s"])
    # `modelsign --version` exists from the skeleton on, so at least that ratio is computed
    assert peers_checked >= 1


def test_parse_openssl_speed() -> None:
    bench = _load_bench()
    text = ("version: 3.0.19\nThe 'numbers' are in 1000s of bytes per second processed.\n"
            "type        1048576 bytes\nsha256         1762040.08k\n")
    assert bench.parse_openssl_speed(text) == pytest.approx(1_762_040_080)
    with pytest.raises(bench.BenchError):
        bench.parse_openssl_speed("garbage")


def test_compared_rows_run_interleaved(tmp_path) -> None:
    """A modelsign row and the model_signing row it is compared with alternate repetitions, the
    first one changing each time; a failing row stops alone; rows keep their own results."""
    import argparse

    bench = _load_bench()
    calls: list[str] = []

    def runner(name: str, fail_at: int | None = None):
        def run(ctx, rep: int, reps: int):
            if rep == fail_at:
                raise bench.BenchError("boom")
            calls.append(f"{name}{rep}")
            return bench.Sample(0.1 + rep)
        return run

    def spec(name: str, peer: str | None = None, fail_at: int | None = None):
        return bench.Spec(name, "model", name.split(".")[0], "api", "-", "runs/s", None,
                          runner(name, fail_at), name, peer=peer)

    peer = spec("model_signing.x")
    ours = spec("modelsign.x", peer="model_signing.x")
    other = spec("modelsign.y", peer="model_signing.x", fail_at=1)
    alone = spec("openssl.z")
    assert [[s.name for s in g] for g in bench.groups([alone, peer, ours, other])] == [
        ["openssl.z"], ["model_signing.x", "modelsign.x", "modelsign.y"]]
    ctx = bench.Ctx(argparse.Namespace(repeat=3), {"timeout": 10}, tmp_path, 1)
    rows = bench.run_group(ctx, [peer, ours, other])
    assert calls == ["model_signing.x0", "modelsign.x0", "modelsign.y0",
                     "modelsign.x1", "model_signing.x1",  # modelsign.y failed at 1
                     "model_signing.x2", "modelsign.x2"]
    assert [r["times_s"] for r in rows[:2]] == [[0.1, 1.1, 2.1]] * 2
    assert rows[2]["status"] == "error" and "boom" in rows[2]["error"]


def test_a_row_whose_setup_fails_is_not_measured(tmp_path) -> None:
    import argparse

    bench = _load_bench()
    ran: list[int] = []

    def setup(ctx) -> None:
        raise bench.NotAvailable("n/a: no such command")

    def run(ctx, rep: int, reps: int):
        ran.append(rep)
        return bench.Sample(0.5)

    short = bench.Spec("modelsign.s", "startup", "modelsign", "cli", "-", "runs/s", None, run,
                       "s", peer="model_signing.s", reps=1)
    broken = bench.Spec("model_signing.s", "startup", "model_signing", "cli", "-", "runs/s",
                        None, run, "b", setup=setup)
    ctx = bench.Ctx(argparse.Namespace(repeat=3), {"timeout": 10}, tmp_path, 1)
    b, s = bench.run_group(ctx, [broken, short])
    assert b["status"] == "n/a" and b["times_s"] == [] and b["throughput"] is None
    assert s["status"] == "ok" and s["times_s"] == [0.5] and ran == [0]  # its own 1 repetition
    assert s["throughput"] == pytest.approx(2.0) and s["wall_s"] >= 0

