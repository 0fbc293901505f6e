"""The figures table, the ratios that matter, and PASS/MISS against the targets."""

from __future__ import annotations

import statistics
from collections.abc import Iterable

RELAY_CPU_BUDGET_MS = 2.0
MEMORY_BUDGET_MB = 400.0
# Two closed-loop runs of the same thing differ by a few per cent on this
# shared machine; "no lower than" allows that much and says so.
NOISE = 0.03


def _find(
    results: list[dict], *, target: str, upstream: str, body: str, c: int, round_: int = 1
) -> dict | None:
    for result in results:
        if (
            result["target"],
            result["upstream"],
            result["body"],
            result["connections"],
            result.get("round", 1),
        ) == (target, upstream, body, c, round_):
            return result
    return None


def body_label(result: dict) -> str:
    """The body's name, and the round when a cell is measured in several."""
    n = result.get("round", 1)
    return result["body"] if n == 1 else f"{result['body']} #{n}"


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def table(results: list[dict]) -> str:
    header = (
        f"{'target':<14} {'upstream':>8} {'body':<15} {'c':>5} {'rps':>8} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'errors':>6} {'CPU s/1k':>9} {'pg/redis':>8} {'RSS MB':>7} "
        f"{'PSS MB':>7} {'other':>6} {'scripts':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        if r.get("skipped"):
            lines.append(
                f"{r['target']:<14} {r['upstream']:>8} {body_label(r):<15} "
                f"{r['connections']:>5}  skipped: {r['skipped']}"
            )
            continue
        lines.append(
            f"{r['target']:<14} {r['upstream']:>8} {body_label(r):<15} {r['connections']:>5} "
            f"{r['rps']:>8.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.1f} {r['error_count']:>6} "
            f"{_fmt(r.get('cpu_ms_per_request'), '.2f'):>9} {_fmt(r.get('cpu_ms_deps'), '.2f'):>8} "
            f"{_fmt(r.get('peak_rss_mb'), '.0f'):>7} {_fmt(r.get('peak_pss_mb'), '.0f'):>7} "
            f"{r['meter']['other_cores']:>6.2f} "
            f"{_fmt(r.get('redis_scripts_per_request'), '.2f'):>7}"
        )
    return "\n".join(lines)


def ratios(results: list[dict]) -> list[dict]:
    """Per upstream, body and concurrency: the relay against LiteLLM and direct."""
    rows = []
    for relay in results:
        if relay["target"] != "relay" or relay.get("skipped"):
            continue
        key = {k: relay[k] for k in ("upstream", "body")} | {
            "c": relay["connections"],
            "round": relay.get("round", 1),
        }
        cell = {
            "upstream": relay["upstream"],
            "body": relay["body"],
            "c": relay["connections"],
            "round_": relay.get("round", 1),
        }
        direct = _find(results, target="direct", **cell)
        peer = _find(results, target="litellm", **cell)
        rows.append(
            {
                **key,
                "relay_over_litellm": _ratio(relay, peer),
                "relay_over_direct": _ratio(relay, direct),
                "relay_p50_minus_direct_ms": (
                    round(relay["p50_ms"] - direct["p50_ms"], 2) if _usable(direct) else None
                ),
            }
        )
    return rows


def _usable(result: dict | None) -> bool:
    return bool(result) and not result.get("skipped") and result["rps"] > 0


def _ratio(relay: dict, other: dict | None) -> float | None:
    return round(relay["rps"] / other["rps"], 2) if _usable(other) else None


def ratios_table(rows: Iterable[dict]) -> str:
    header = (
        f"{'upstream':>8} {'body':<15} {'c':>5} {'relay/litellm':>14} "
        f"{'relay/direct':>13} {'p50 relay-direct ms':>20}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['upstream']:>8} {body_label(row):<15} {row['c']:>5} "
            f"{_fmt(row['relay_over_litellm'], '.2f'):>14} "
            f"{_fmt(row['relay_over_direct'], '.2f'):>13} "
            f"{_fmt(row['relay_p50_minus_direct_ms'], '+.2f'):>20}"
        )
    return "\n".join(lines)


def verdicts(results: list[dict], litellm_skipped: str | None) -> list[dict]:
    """Each target of the issue, what was measured, and PASS / MISS (or n/a
    when what it compares against was not run)."""
    out: list[dict] = []

    def add(name: str, ok: bool | None, measured: str) -> None:
        out.append(
            {
                "target": name,
                "measured": measured,
                "verdict": "n/a" if ok is None else ("PASS" if ok else "MISS"),
            }
        )

    def get(target: str, upstream: str, body: str, c: int) -> dict | None:
        found = _find(results, target=target, upstream=upstream, body=body, c=c)
        return found if _usable(found) else None

    def versus_peer(name: str, relay: dict | None, body: str, c: int, factor: float) -> None:
        if relay is None:
            return
        peer = _find(results, target="litellm", upstream="20ms", body=body, c=c)
        if peer is None or peer.get("skipped"):
            reason = litellm_skipped or (peer or {}).get("skipped") or "no result"
            add(name, None, f"LiteLLM not measured ({reason})")
        elif peer["rps"] == 0:
            add(
                name,
                relay["rps"] > 0,
                f"{relay['rps']:.0f} rps vs LiteLLM 0 ({peer['requests']} requests completed "
                f"in {peer['duration_s']:.0f} s, {peer['error_count']} errors)",
            )
        else:
            add(
                name,
                relay["rps"] >= factor * peer["rps"],
                f"{relay['rps']:.0f} vs {peer['rps']:.1f} rps = {relay['rps'] / peer['rps']:.1f}x",
            )

    relay, direct = get("relay", "20ms", "one", 64), get("direct", "20ms", "one", 64)
    versus_peer("c=64, 20 ms, one string: relay >= 5x LiteLLM", relay, "one", 64, 5)
    if relay and direct:
        add(
            "c=64, 20 ms, one string: relay >= 40% of direct",
            relay["rps"] >= 0.4 * direct["rps"],
            f"{relay['rps']:.0f} vs {direct['rps']:.0f} rps = "
            f"{100 * relay['rps'] / direct['rps']:.0f}%",
        )

    # Judged on the median over the cell's rounds (bench/cells.py: LATENCY_CELL),
    # each round's relay against the direct run just before it.
    pairs = []
    for n in range(1, 1 + max((r.get("round", 1) for r in results), default=1)):
        relay16, direct16 = (
            _find(results, target=t, upstream="20ms", body="one", c=16, round_=n)
            for t in ("relay", "direct")
        )
        if _usable(relay16) and _usable(direct16):
            pairs.append((relay16["p50_ms"], direct16["p50_ms"]))
    if pairs:
        extras = sorted(relay - direct for relay, direct in pairs)
        median = statistics.median(extras)
        rounds = ", ".join(f"{relay:.2f} - {direct:.2f}" for relay, direct in pairs)
        add(
            "c=16, 20 ms, one string: relay p50 <= direct p50 + 3 ms "
            f"(median of {len(pairs)} round{'s' if len(pairs) > 1 else ''})",
            median <= 3.0,
            f"{median:+.2f} ms ({rounds})",
        )

    versus_peer(
        "c=64, 20 ms, 16-string batch: relay >= 10x LiteLLM",
        get("relay", "20ms", "batch16", 64),
        "batch16",
        64,
        10,
    )

    many = _find(results, target="relay", upstream="200ms", body="one", c=1000)
    fewer = get("relay", "200ms", "one", 256)
    if many and not many.get("skipped") and fewer:
        add(
            "c=1000, 200 ms: no errors, no timeouts",
            many["error_count"] == 0,
            f"{many['error_count']} errors ({many['errors']}) in {many['requests']} requests",
        )
        floor = fewer["rps"] * (1 - NOISE)
        add(
            f"c=1000, 200 ms: rps no lower than at c=256 (within {NOISE:.0%} noise)",
            many["rps"] >= floor,
            f"{many['rps']:.0f} at c=1000 vs {fewer['rps']:.0f} at c=256 "
            f"({100 * (many['rps'] / fewer['rps'] - 1):+.1f}%)",
        )

    for body in ("one", "batch16", "batch16-base64"):
        cell = get("relay", "20ms", body, 64)
        if cell and cell.get("cpu_ms_per_request") is not None:
            add(
                f"relay CPU per request <= {RELAY_CPU_BUDGET_MS:g} ms (c=64, 20 ms, {body})",
                cell["cpu_ms_per_request"] <= RELAY_CPU_BUDGET_MS,
                f"{cell['cpu_ms_per_request']:.2f} ms (web {cell['cpu_ms_web']:.2f} + "
                f"worker {cell['cpu_ms_worker']:.2f})",
            )
    relay_runs = [
        r
        for r in results
        if r["target"] == "relay" and not r.get("skipped") and r.get("peak_rss_mb")
    ]
    if relay_runs:
        # Checked on PSS: the memory web + worker take, each page they share
        # (the workers' preloaded application, a library) counted once, as
        # "resident memory" of the two together means. The RSS sum counts a
        # shared page once per process that maps it, ~115 MB three times over
        # with preload; it is shown beside it (bench/targets.py, Meter).
        worst = max(relay_runs, key=lambda r: r["peak_pss_mb"])
        worst_rss = max(relay_runs, key=lambda r: r["peak_rss_mb"])
        light = [r for r in relay_runs if r["body"] == "one" and r["connections"] <= 64]
        add(
            f"web + worker resident memory < {MEMORY_BUDGET_MB:g} MB "
            "(PSS, peak over every relay run)",
            worst["peak_pss_mb"] < MEMORY_BUDGET_MB,
            f"{worst['peak_pss_mb']:.0f} MB PSS ({_cell(worst)}); RSS summed, shared pages "
            f"once per process: {worst_rss['peak_rss_mb']:.0f} MB ({_cell(worst_rss)})"
            + (
                f"; one string up to c=64 (the first runs): "
                f"{max(r['peak_pss_mb'] for r in light):.0f} MB PSS, "
                f"{max(r['peak_rss_mb'] for r in light):.0f} MB RSS"
                if light
                else ""
            ),
        )
    return out


def _cell(result: dict) -> str:
    return f"{result['upstream']}, {result['body']}, c={result['connections']}"


def verdicts_table(rows: Iterable[dict]) -> str:
    return "\n".join(f"  {row['verdict']:<5} {row['target']}: {row['measured']}" for row in rows)
