"""The teacher's calibration, for KD's diagnosis and ``kd.temperature=auto``: reliability
bins, expected calibration error (ECE) and temperature scaling (Guo et al. 2017)."""

from __future__ import annotations

import sys

import torch

from ...errors import ConfigError


def confidence_bins(logits: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> list[dict]:
    """Equal-width bins of the top probability: each non-empty bin's edges, mean confidence,
    accuracy and row count (the points of a reliability diagram; ECE is their weighted gap)."""
    p = logits.float().softmax(-1)
    conf, pred = p.max(-1)
    correct = (pred == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            out.append({"lo": round(float(lo), 3), "hi": round(float(hi), 3),
                        "confidence": float(conf[m].mean()), "accuracy": float(correct[m].mean()),
                        "rows": int(m.sum())})
    return out


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, bins: int = 15
                               ) -> float:
    """ECE: |accuracy − confidence| averaged over equal-width confidence bins, weighted by
    their share of the rows."""
    n = len(labels)
    return sum(b["rows"] / n * abs(b["accuracy"] - b["confidence"])
               for b in confidence_bins(logits, labels, bins))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, lo: float = 0.25,
                    hi: float = 20.0, iters: int = 60) -> float:
    """Temperature scaling (Guo et al. 2017): the τ in [lo, hi] minimising the NLL of
    softmax(logits / τ) on labelled rows. The NLL is convex in 1/τ, so a golden-section
    search over 1/τ finds it."""
    z = logits.float()
    y = labels.long()
    if z.ndim != 2 or y.shape != z.shape[:1] or len(y) == 0:
        raise ConfigError("fit_temperature needs logits [N, C] and N class labels")

    def nll(a: float) -> float:
        return float(torch.nn.functional.cross_entropy(z * a, y))

    a, b = 1.0 / hi, 1.0 / lo
    g = (5 ** 0.5 - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(d)
    return 1.0 / ((a + b) / 2)


def reliability(logits: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> list[dict]:
    """The reliability table shown in the report: 10 confidence bins."""
    return confidence_bins(logits, labels, bins)


def calibration(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """The teacher's calibration on labelled rows: ECE, NLL, mean top probability and the
    reliability table."""
    return {"ece": expected_calibration_error(logits, labels),
            "nll": float(torch.nn.functional.cross_entropy(logits, labels)),
            "mean_top_prob": float(logits.softmax(-1).max(-1).values.mean()),
            "reliability": reliability(logits, labels), "rows": len(labels)}


#: kd.temperature=auto keeps τ in this range. Below 0.5 the soft targets are close to the
#: teacher's argmax (measured on the lr-1e-4 CLINC150 teacher of benchmarks/kd_clinc.py, on val:
#: mean top probability 0.91 and NLL 0.257 at τ 0.5, against 0.925 and 0.253 at its unclamped
#: fit 0.45), above 10 close to uniform.
TAU_RANGE = (0.5, 10.0)


def auto_temperature(task, dev, logits, log=None) -> tuple[float, dict]:
    """``kd.temperature=auto``: temperature scaling of the (first) teacher on the labelled
    eval rows — the τ whose softmax(logits/τ) has the lowest NLL there, clamped to
    ``TAU_RANGE`` (the unclamped one is ``tau_fit``) — and the teacher's calibration after it
    (NLL, ECE), for the result and ``log`` (default: a line on stderr)."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if task.is_regression:
        raise ConfigError("kd.temperature=auto is for classification (regression KD has no τ)")
    if any(y is None for y in dev.labels):
        raise ConfigError("kd.temperature=auto needs labelled eval rows")
    if logits is None:
        raise ConfigError("kd.temperature=auto needs a teacher that can be run on the eval "
                          "rows (an HF teacher or a callable, not only a logits file)")
    y = torch.tensor(dev.labels)
    best = fit_temperature(logits, y)
    tau = min(TAU_RANGE[1], max(TAU_RANGE[0], best))
    fitted = logits / tau
    fit = {"tau_fit": best, "nll_tau_fit": float(torch.nn.functional.cross_entropy(
               logits / best, y)),
           "nll_fit": float(torch.nn.functional.cross_entropy(fitted, y)),
           "ece_fit": expected_calibration_error(fitted, y),
           "mean_top_prob_fit": float(fitted.softmax(-1).max(-1).values.mean()),
           "reliability_fit": reliability(fitted, y)}
    c = calibration(logits, y)
    clamped = "" if tau == best else (
        f"; the NLL is lowest at {best:.3f}, outside [{TAU_RANGE[0]:g}, {TAU_RANGE[1]:g}] "
        f"(NLL {fit['nll_tau_fit']:.3f} there)")
    log(f"kd.temperature=auto: tau = {tau:.3f} (teacher NLL {c['nll']:.3f} -> "
          f"{fit['nll_fit']:.3f}, ECE {c['ece']:.3f} -> {fit['ece_fit']:.3f} on {len(y)} eval "
          f"rows{clamped})")
    return tau, fit
