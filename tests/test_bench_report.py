"""The benchmark's verdicts (bench/report.py): what `make bench` decides from its figures."""

from __future__ import annotations

from bench import report


def cell(target: str, p50_ms: float, round_: int, c: int = 16) -> dict:
    return {
        "target": target,
        "upstream": "20ms",
        "body": "one",
        "connections": c,
        "round": round_,
        "rps": 600.0,
        "p50_ms": p50_ms,
        "meter": {"other_cores": 0.0},
    }


def latency_verdict(rounds: list[tuple[float, float]]) -> dict:
    results = []
    for n, (direct, relay) in enumerate(rounds, start=1):
        results += [cell("direct", direct, n), cell("relay", relay, n)]
    [verdict] = [
        v
        for v in report.verdicts(results, litellm_skipped="not run")
        if v["target"].startswith("c=16")
    ]
    return verdict


def test_the_latency_target_is_judged_on_the_median_round():
    passed = latency_verdict([(20.0, 22.0), (21.0, 25.0), (20.5, 23.0)])  # +2, +4, +2.5
    missed = latency_verdict([(20.0, 23.5), (20.0, 22.0), (20.0, 24.0)])  # +3.5, +2, +4
    assert passed["verdict"] == "PASS" and passed["measured"].startswith("+2.50 ms")
    assert missed["verdict"] == "MISS" and missed["measured"].startswith("+3.50 ms")
    assert "median of 3 rounds" in passed["target"]


def test_each_round_of_the_relay_is_set_against_the_direct_run_of_its_round():
    # Round 2's direct run was slow; set against round 1's it would have hidden +4 ms.
    verdict = latency_verdict([(20.0, 24.0), (26.0, 24.0), (20.0, 24.0)])
    assert verdict["verdict"] == "MISS"
    assert verdict["measured"].startswith("+4.00 ms")


def test_each_round_gets_its_own_row_of_ratios():
    results = [
        cell("direct", 20.0, 1),
        cell("relay", 23.0, 1),
        cell("direct", 21.0, 2),
        cell("relay", 22.0, 2),
    ]
    rows = report.ratios(results)
    assert [(r["round"], r["relay_p50_minus_direct_ms"]) for r in rows] == [(1, 3.0), (2, 1.0)]
    assert "one #2" in report.ratios_table(rows)
