"""Reading run directories and bench JSON for the report: :class:`Run`, :func:`load_run`,
:func:`load_bench`, the accuracy-vs-latency points and their Pareto front."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from .common import (KNOWN_METRICS, LOWER_IS_BETTER, NON_LOSS_KEYS, NON_LOSS_PREFIXES,
                     NON_METRIC_KEYS)


# ------------------------------------------------------------------ loading
def _num(v: Any) -> float | None:
    """A finite float, or None (bools, strings, NaN and inf are not numbers here)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


@dataclass
class Run:
    path: Path
    name: str
    config: dict = field(default_factory=dict)
    train: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str | None:
        return self.config.get("kind")

    @property
    def task(self) -> str | None:
        return self.summary.get("task") or (self.config.get("data") or {}).get("task")

    @property
    def model(self) -> str | None:
        """What was trained: the fine-tuned model, or ``student.kind ← teacher(s)``."""
        cfg = self.config
        if cfg.get("kind") == "distill" or "student" in cfg:
            teacher = cfg.get("teacher") or {}
            names = teacher.get("names") or ([teacher["name"]] if teacher.get("name") else [])
            student = (cfg.get("student") or {}).get("kind") or self.summary.get("student_kind")
            parts = [f"student {student}" if student else "student"]
            if names:
                parts.append("← " + ", ".join(map(str, names)))
            return " ".join(parts)
        return (cfg.get("model") or {}).get("name") or self.summary.get("model")

    def loss_terms(self) -> list[str]:
        terms: list[str] = []
        for r in self.train:
            for k, v in r.items():
                if (k not in NON_LOSS_KEYS and not k.startswith(NON_LOSS_PREFIXES)
                        and k not in terms and _num(v) is not None):
                    terms.append(k)
        return terms

    def metric_names(self) -> list[str]:
        names: list[str] = []
        for r in self.evals:
            for k, v in r.items():
                if k not in NON_METRIC_KEYS and k not in names and _num(v) is not None:
                    names.append(k)
        return names

    def final_metrics(self) -> dict[str, float]:
        """Metrics of the best model: from ``metrics.json``, else the best eval record."""
        names = self.metric_names()
        if self.summary:
            keys = names + [k for k in KNOWN_METRICS if k not in names]
            out = {k: _num(self.summary.get(k)) for k in keys}
            out = {k: v for k, v in out.items() if v is not None}
            if out:
                return out
        best = self.best_eval()
        if best is None:
            return {}
        return {k: v for k in names if (v := _num(best.get(k))) is not None}

    def best_eval(self) -> dict | None:
        names = self.metric_names()
        if not names:
            return None
        primary = names[0]
        recs = [r for r in self.evals if _num(r.get(primary)) is not None]
        sign = -1 if primary in LOWER_IS_BETTER else 1
        return max(recs, key=lambda r: sign * r[primary]) if recs else None

    @property
    def best_step(self) -> int | None:
        if self.summary.get("best_step") is not None:
            return self.summary["best_step"]
        best = self.best_eval()
        return best.get("step") if best else None

    @property
    def params(self) -> int | None:
        for k in ("student_params", "params", "model_params"):
            if _num(self.summary.get(k)) is not None:
                return int(self.summary[k])
        return None

    @property
    def throughput(self) -> float | None:
        v = _num(self.summary.get("train_examples_per_s"))
        if v is None:  # fall back to the mean of the logged rates
            rates = [x for r in self.train if (x := _num(r.get("ex_per_s"))) is not None]
            v = sum(rates) / len(rates) if rates else None
        return v


def load_run(run_dir: str | Path, name: str | None = None) -> Run:
    """Read a run directory; missing or unreadable files become notes, not errors."""
    path = Path(run_dir)
    if not path.is_dir():
        raise DataError(f"run directory '{run_dir}' does not exist")
    run = Run(path=path, name=name or path.resolve().name)
    cfg = path / "config.yaml"
    if cfg.exists():
        try:
            import yaml

            loaded = yaml.safe_load(cfg.read_text())
            run.config = loaded if isinstance(loaded, dict) else {}
        except Exception as e:  # noqa: BLE001 - a report never fails on a bad file
            run.notes.append(f"config.yaml unreadable: {e}")
    else:
        run.notes.append("no config.yaml")
    log_path = path / "metrics.jsonl"
    if log_path.exists():
        bad = 0
        for line in log_path.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if not isinstance(rec, dict) or _num(rec.get("step")) is None:
                bad += 1
            elif rec.get("type") == "train":
                run.train.append(rec)
            elif rec.get("type") == "eval":
                run.evals.append(rec)
        if bad:
            run.notes.append(f"{bad} unreadable line(s) in metrics.jsonl skipped")
        run.train.sort(key=lambda r: r["step"])
        run.evals.sort(key=lambda r: r["step"])
    else:
        run.notes.append("no metrics.jsonl")
    if not run.train:
        run.notes.append("no training records")
    if not run.evals:
        run.notes.append("no evaluation records")
    summ = path / "metrics.json"
    if summ.exists():
        try:
            loaded = json.loads(summ.read_text())
            run.summary = loaded if isinstance(loaded, dict) else {}
        except ValueError as e:
            run.notes.append(f"metrics.json unreadable: {e}")
    else:
        run.notes.append("no metrics.json (run unfinished?)")
    return run


def _names(paths: list[Path]) -> list[str]:
    """Run names: the folder name, with parents added until names are unique."""
    parts = [p.resolve().parts for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


# ------------------------------------------------------------------ bench / Pareto
def pareto_front(points: list[tuple[str, float, float]]) -> list[str]:
    """Labels of the points ``(label, latency, accuracy)`` no other point dominates.

    ``a`` dominates ``b`` when it is at least as fast and at least as accurate, and strictly
    better in one of the two. Identical points do not dominate each other (both stay). Points
    with a missing or non-finite value are ignored. Returned in order of increasing latency
    (then decreasing accuracy, then input order).
    """
    pts = [(i, lab, float(lat), float(acc)) for i, (lab, lat, acc) in enumerate(points)
           if _num(lat) is not None and _num(acc) is not None]
    front = []
    for i, lab, lat, acc in pts:
        dominated = any(
            lat2 <= lat and acc2 >= acc and (lat2 < lat or acc2 > acc)
            for j, _, lat2, acc2 in pts if j != i)
        if not dominated:
            front.append((lat, -acc, i, lab))
    return [lab for *_, lab in sorted(front)]


@dataclass
class BenchPoint:
    label: str
    latency: float | None  # p50 ms at the largest batch size
    accuracy: float | None
    accuracy_source: str | None
    row: dict


def _batch_sizes(bench: dict) -> list[int]:
    bss = bench.get("batch_sizes")
    if not bss:
        bss = sorted({int(m.group(1)) for r in bench.get("models", []) for k in r
                      if (m := re.fullmatch(r"batch(\d+)", k))})
    return [int(b) for b in bss]


def bench_points(bench: dict, runs: list[Run] = ()) -> tuple[int | None, list[BenchPoint]]:
    """``(largest batch size, points)`` of a bench result. A model without ``accuracy`` takes
    the accuracy of the run whose ``model/`` folder (or run folder) it was benchmarked from."""
    bss = _batch_sizes(bench)
    bs = max(bss) if bss else None
    by_model: dict[Path, Run] = {}
    for run in runs:
        for p in (run.path, run.path / "model"):
            by_model[p.resolve()] = run
    pts = []
    for r in bench.get("models", []):
        if not isinstance(r, dict):
            continue
        lat = _num((r.get(f"batch{bs}") or {}).get("p50_ms")) if bs else None
        acc, src = _num(r.get("accuracy")), "bench"
        if acc is None:
            src = None
            ref = r.get("model")
            if isinstance(ref, str):
                try:
                    run = by_model.get(Path(ref).resolve())
                except OSError:
                    run = None
                if run is not None and _num(run.summary.get("accuracy")) is not None:
                    acc, src = float(run.summary["accuracy"]), f"run {run.name}"
        if lat is not None and lat <= 0:
            lat = None
        pts.append(BenchPoint(str(r.get("label", r.get("model", "?"))), lat, acc, src, r))
    return bs, pts


def load_bench(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"bench JSON '{path}' does not exist")
    try:
        data = json.loads(p.read_text())
    except ValueError as e:
        raise DataError(f"bench JSON '{path}' is not valid JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise DataError(f"bench JSON '{path}' has no 'models' list (expected the output of "
                        "lmdistill.bench.bench)")
    return data
