"""What every BENCHMARKS.md section shares: the results folder, the machine lines."""

from __future__ import annotations

import json
from pathlib import Path


HERE = Path(__file__).parent


RESULTS = HERE / "results"


OUT = HERE.parent / "BENCHMARKS.md"


def load() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}


def machine_line(r: dict) -> str:
    """The machine a result came from: CPU model + ISA + threads (+ GPU) where the result
    recorded them (since issue 7), else the cores and threads it did record."""
    m = r.get("machine", {})
    if m.get("cpu"):
        from lmdistill.hardware import machine_line as line

        return f"{line(m)}, Python {m.get('python')}"
    return (f"{m.get('cpu_count')} CPU cores, torch {m.get('torch')} "
            f"({m.get('torch_threads')} threads), Python {m.get('python')}; CPU model and ISA "
            "not recorded (measured before issue 7)")


def machines_line(rows: list[dict]) -> str:
    """``Machine: …`` for a section's rows, or ``Machines: … (N rows); …`` when they came from
    several (the CPUs differ between this project's machines, e.g. with and without AMX)."""
    counts: dict[str, int] = {}
    for r in rows:
        line = machine_line(r)
        counts[line] = counts.get(line, 0) + 1
    if len(counts) == 1:
        return f"Machine: {next(iter(counts))}."
    return "Machines: " + "; ".join(f"{m} ({n} rows)" for m, n in counts.items()) + "."


def device_of(r: dict) -> str:
    g = r.get("machine", {}).get("gpu")
    return f"GPU {g['name']}" if g and r.get("device", "cpu").startswith("cuda") else "CPU"
