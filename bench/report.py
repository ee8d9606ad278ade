"""Render the collected samples as markdown: medians, the targets' ratios, raw samples."""

from __future__ import annotations

import statistics
from typing import Any, Mapping

PEER_TITLES = {
    "nsnet": "nsnet",
    "shell": "shell (one `ip` per step)",
    "batch": "`ip -batch`",
    "cni": "CNI bridge + host-local",
}

# case -> (row title, what each peer runs)
CASES = [
    ("build", "build from nothing", {"nsnet": "`apply`", "shell": "script", "batch": "batches", "cni": "netns + loopback ADD + bridge ADD per ns"}),
    ("noop", "no-op (nothing to change)", {"nsnet": "`plan`", "shell": "n/a", "batch": "n/a", "cni": "loopback + bridge CHECK per ns"}),
    ("add", "add one namespace", {"nsnet": "`plan` + `apply`", "shell": "8 commands", "batch": "2 `ip -batch`", "cni": "netns + 2 ADD"}),
    ("remove", "remove that namespace", {"nsnet": "`plan` + `apply`", "shell": "`ip netns del`", "batch": "`ip -batch`", "cni": "2 DEL + netns del"}),
    ("remove_settle", "…then until its host veth end is gone (not in the row above)", {}),
    ("teardown", "tear down", {"nsnet": "`destroy`", "shell": "script", "batch": "`ip -batch`", "cni": "2 DEL + netns del per ns, `ip link del` bridge"}),
    ("settle", "…then until nothing of the lab is left (not in the row above)", {}),
]

Samples = Mapping[tuple[Any, str, str], list[float]]


def median(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 0.1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}x"


def verdict(ok: bool | None) -> str:
    return "" if ok is None else (" **met**" if ok else " **missed**")


def targets_table(sizes: list[int], samples: Samples, rss: Mapping[int, list[float]], validate: list[float]) -> list[str]:
    def m(n: int, peer: str, case: str) -> float | None:
        return median(samples.get((n, peer, case)))

    rows = ["| target | " + " | ".join(f"N = {n}" for n in sizes) + " |", "|---|" + "---|" * len(sizes)]

    def row(title: str, cell) -> None:
        rows.append(f"| {title} | " + " | ".join(cell(n) for n in sizes) + " |")

    def ratio_cell(a: float | None, b: float | None, limit: float, strict: bool = False) -> str:
        if a is None or not b:
            return "–"
        r = a / b
        return f"{r:.2f}x ({seconds(a)} / {seconds(b)}){verdict(r < limit if strict else r <= limit)}"

    def abs_cell(v: float | None, limit: float) -> str:
        return "–" if v is None else f"{seconds(v)}{verdict(v < limit)}"

    row("`nsnet apply` from nothing / `ip -batch` build (<= 0.7x)",
        lambda n: ratio_cell(m(n, "nsnet", "build"), m(n, "batch", "build"), 0.7))
    row("`nsnet plan`, no changes, wall clock with process start (< 1.0 s)",
        lambda n: abs_cell(m(n, "nsnet", "noop"), 1.0))
    row("`nsnet plan` / raw read floor (<= 3x)",
        lambda n: ratio_cell(m(n, "nsnet", "noop"), m(n, "nsnet", "floor"), 3.0))
    row("one namespace added: `nsnet plan` + `nsnet apply` (< 0.5 s)",
        lambda n: abs_cell(m(n, "nsnet", "add"), 0.5))
    row("…the same while `nsnet agent` runs (< 0.5 s)",
        lambda n: abs_cell(m(n, "nsnet", "agent_add"), 0.5))
    row("one namespace added with one command, `nsnet apply --target` (< 0.5 s)",
        lambda n: abs_cell(m(n, "nsnet", "target_add"), 0.5))
    def gone(n: int, peer: str) -> float | None:
        """Teardown until nothing of the lab is left: nsnet destroy returns only then (it verifies),
        `ip -batch` returns while the kernel is still removing the namespaces' veths."""
        pairs = zip(samples.get((n, peer, "teardown")) or [], samples.get((n, peer, "settle")) or [])
        return median([t + s for t, s in pairs])

    row("`nsnet destroy` / `ip -batch` teardown, each until nothing of the lab is left (<= 1.5x)",
        lambda n: ratio_cell(gone(n, "nsnet"), gone(n, "batch"), 1.5))
    row("peak RSS of `nsnet plan` (< 150 MB)",
        lambda n: "–" if not rss.get(n) else f"{max(rss[n]):.0f} MB{verdict(max(rss[n]) < 150)}")
    v = median(validate)
    rows.append(f"| `nsnet validate` of a small file (< 0.15 s) | {abs_cell(v, 0.15)} (same for every N) |" + " |" * (len(sizes) - 1))
    return rows


def detail_table(n: int, samples: Samples, peers: list[str]) -> list[str]:
    def m(case: str) -> float | None:
        return median(samples.get((n, "nsnet", case)))

    rows = ["| case | " + " | ".join(PEER_TITLES[p] for p in peers) + " |", "|---|" + "---|" * len(peers)]
    for case, title, how in CASES:
        cells = []
        for p in peers:
            v = median(samples.get((n, p, case)))
            what = how.get(p, "")
            if v is None and what == "n/a":
                cells.append("n/a")
            else:
                cells.append(seconds(v) + (f" ({what})" if what and v is not None else ""))
        rows.append(f"| {title} | " + " | ".join(cells) + " |")
    floor, inproc = m("floor"), m("floor_inproc")
    blank = " |" * (len(peers) - 1)
    rows.append(f"| raw read floor (process / in-process) | {seconds(floor)} / {seconds(inproc)} |{blank}")
    rows.append(f"| `nsnet validate` of this lab's file (start, imports, load) | {seconds(m('validate_lab'))} |{blank}")
    parts = [(c, m(c)) for c in ("add_plan", "add_apply", "remove_plan", "remove_apply")]
    if any(v is not None for _, v in parts):
        rows.append("| nsnet add: plan / apply; remove: plan / apply | " + " / ".join(seconds(v) for _, v in parts) + f" |{blank}")
    target = [m(c) for c in ("target_add", "target_remove_plan", "target_remove_apply")]
    if target[0] is not None:
        rows.append("| nsnet add with one command, `apply --target` (no agent); then remove it: plan / apply | "
                    f"{seconds(target[0])}; {seconds(target[1])} / {seconds(target[2])} |{blank}")
    add = m("add")
    if add is not None and inproc is not None:
        rows.append(f"| nsnet add if reading the kernel cost nothing (plan + apply − 2 × in-process floor) | "
                    f"{seconds(add - 2 * inproc)} |{blank}")
    agent = [m(c) for c in ("agent_noop", "agent_add", "agent_remove")]
    if any(v is not None for v in agent):
        rows.append("| with `nsnet agent` running: no-op `plan`; add one (`plan` + `apply`); remove it | "
                    + " / ".join(map(seconds, agent)) + f" |{blank}")
        parts = [m(c) for c in ("agent_add_plan", "agent_add_apply", "agent_remove_plan", "agent_remove_apply")]
        rows.append("| …with the agent, add: plan / apply; remove: plan / apply | " + " / ".join(map(seconds, parts)) + f" |{blank}")
    if "batch" in peers:
        b = median(samples.get((n, "batch", "build")))
        ratios = " | ".join(ratio(median(samples.get((n, p, "build"))), b) for p in peers)
        rows.append(f"| build time / `ip -batch` build | {ratios} |")
    return rows


def raw_samples(samples: Samples) -> list[str]:
    lines = []
    for (n, peer, case), values in sorted(samples.items(), key=lambda kv: (str(kv[0][0]), kv[0][1], kv[0][2])):
        if case == "foreign_ns":
            lines.append(f"- N={n} namespaces of other tools seen by the read floor: " + ", ".join(f"{v:.0f}" for v in values))
        else:
            lines.append(f"- N={n} {peer} {case}: " + ", ".join(f"{v:.4f}" for v in values))
    return lines


# sections: ring.py writes its own part of results.md between markers; run.py rewrites the rest and keeps it


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


def put_section(text: str, name: str, body: str) -> str:
    """TEXT with section NAME replaced by BODY, or BODY appended as that section."""
    begin, end = _markers(name)
    block = f"{begin}\n{body.strip()}\n{end}\n"
    start = text.find(begin)
    stop = text.find(end, start)
    if start >= 0 and stop >= 0:
        return text[:start] + block + text[stop + len(end):].lstrip("\n")
    return (text.rstrip("\n") + "\n\n" if text.strip() else "") + block


def carry_sections(old: str, new: str, names: tuple[str, ...] = ("ring",)) -> str:
    """NEW with the sections of OLD it does not have (so a run.py run keeps ring.py's results)."""
    for name in names:
        begin, end = _markers(name)
        start, stop = old.find(begin), old.find(end)
        if start >= 0 and stop > start and begin not in new:
            new = put_section(new, name, old[start + len(begin):stop])
    return new
