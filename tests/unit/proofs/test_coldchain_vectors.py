"""The shared cold-chain vectors (tests/vectors/coldchain/): what the JS port runs too."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest

from proofs import coldchain as cc
from proofs.errors import FormatError

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "coldchain"
FILES = sorted(VECTORS.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _run(inp: dict[str, Any]) -> cc.Verdict:
    series = {
        sid: cc.Series(
            tuple(t for t, _ in s["samples"]), tuple(v for _, v in s["samples"]), s["interval_ms"]
        )
        for sid, s in inp["sensors"].items()
    }
    profile = cc.Profile.from_dict(inp["profile"])
    return cc.verdict(series, profile, inp["custody_start_ms"], inp["custody_end_ms"])


def _same(got: Any, want: Any, tolerance: float, where: str) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        for key, value in want.items():
            _same(got[key], value, tolerance, f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, tolerance, f"{where}[{i}]")
    elif isinstance(want, float):
        assert isinstance(got, float) and math.isclose(got, want, abs_tol=tolerance), (
            f"{where}: {got} != {want}"
        )
    else:  # times, durations, counts, flags, strings: exactly
        assert type(got) is type(want) and got == want, f"{where}: {got!r} != {want!r}"


def test_the_vectors_are_there() -> None:
    kinds = [_load(f)["kind"] for f in FILES]
    assert kinds.count("verdict") >= 8 and kinds.count("mkt") >= 4 and kinds.count("error") >= 5


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_vector(path: Path) -> None:
    vector = _load(path)
    assert vector["rules"] == cc.RULES_VERSION
    inp, want = vector["input"], vector["expected"]
    if vector["kind"] == "mkt":
        got = cc.mean_kinetic_temperature([tuple(s) for s in inp["samples"]], inp["interval_ms"])
        assert math.isclose(got, want["mkt_c"], abs_tol=vector["tolerance"])
    elif vector["kind"] == "error":
        with pytest.raises(FormatError) as e:
            _run(inp)
        assert e.value.code == want["error"]
    else:
        d = _run(inp).to_dict()
        assert d["status"] == want["status"]
        assert d["profile"]["digest"] == want["profile_digest"]
        assert [[r["code"], r["status"], r["sensor"]] for r in d["reasons"]] == want["reasons"]
        by_id = {s["sensor"]: s for s in d["sensors"]}
        assert set(by_id) == set(want["sensors"])
        for sid, figures in want["sensors"].items():
            _same(by_id[sid], figures, vector["tolerance"], sid)


def test_the_checked_in_vectors_are_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("coldchain_vectors", VECTORS / "generate.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    written = generator.vectors()
    assert sorted(written) == [f.stem for f in FILES]
    for name, vector in written.items():
        assert (VECTORS / f"{name}.json").read_text(encoding="utf-8") == generator.render(vector)
