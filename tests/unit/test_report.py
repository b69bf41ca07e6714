"""Run reports: Pareto front, HTML (self-contained) and Markdown outputs, degraded inputs."""

from __future__ import annotations

import base64
import json
import logging
import math
import re
from pathlib import Path

import pytest

from lmdistill.errors import DataError
from lmdistill.report import auto_report, pareto_front, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMG_RE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')

CONFIG = """kind: distill
output_dir: {out}
data:
  task: sst2
teacher:
  name: runs/teacher-sst2/model
  names: []
student:
  kind: subset
  layers: 3
"""


def make_run(root: Path, name: str = "student-sst2", evals: bool = True, summary: bool = True,
             acc_shift: float = 0.0, nan_loss: bool = False) -> Path:
    run = root / name
    (run / "model").mkdir(parents=True)
    (run / "config.yaml").write_text(CONFIG.format(out=run))
    lines = []
    for i in range(20):
        step = 1 if i == 0 else 10 * i
        hard, soft = 0.7 * math.exp(-i / 8), 2.0 * math.exp(-i / 6)
        loss = float("nan") if (nan_loss and i == 5) else 0.5 * hard + 0.5 * soft
        lines.append({"type": "train", "step": step, "epoch": round(step / 200, 4), "loss": loss,
                      "hard": hard, "soft": soft, "grad_norm": 1.0, "lr": 5e-5,
                      "ex_per_s": 120.0})
    if evals:
        for k, step in enumerate((60, 120, 190)):
            lines.append({"type": "eval", "step": step, "epoch": round(step / 200, 4),
                          "accuracy": 0.80 + 0.03 * k + acc_shift, "f1": 0.79 + 0.03 * k})
    lines.sort(key=lambda r: r["step"])
    # NaN is written the way json.dumps writes it (NaN), as the trainer's logger would
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if summary:
        (run / "metrics.json").write_text(json.dumps({
            "task": "sst2", "split": "dev", "student_kind": "subset", "best_step": 190,
            "accuracy": 0.8612 + acc_shift, "f1": 0.85, "student_params": 22_713_216,
            "train_examples_per_s": 123.45}))
    return run


def make_bench(path: Path) -> Path:
    def row(label, p50, acc, params):
        return {"label": label, "model": f"runs/{label}/model", "params": params,
                "params_no_emb": params // 2, "size_mb": params * 4 / 2**20,
                "batch1": {"p50_ms": p50 / 10, "p90_ms": p50 / 9, "throughput": 1.0,
                           "speedup": 1.0},
                "batch32": {"p50_ms": p50, "p90_ms": p50 * 1.1, "throughput": 32e3 / p50,
                            "speedup": round(100.0 / p50, 2)},
                "compression": 1.0, "accuracy": acc}
    path.write_text(json.dumps({"task": "sst2", "threads": 2, "batch_sizes": [1, 32], "models": [
        row("teacher", 100.0, 0.92, 22_000_000),
        row("student-l6", 40.0, 0.90, 15_000_000),
        row("student-l4", 30.0, 0.85, 11_000_000),
        row("student-bad", 50.0, 0.84, 15_000_000),  # slower and worse than student-l6
    ]}))
    return path


def images(html_text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in IMG_RE.findall(html_text)]


# ------------------------------------------------------------------ pareto_front
def test_pareto_front_basic():
    pts = [("a", 10.0, 0.80), ("b", 20.0, 0.90), ("c", 15.0, 0.70), ("d", 5.0, 0.60),
           ("e", 30.0, 0.85)]
    # c: a is faster and more accurate; e: b is faster and more accurate
    assert pareto_front(pts) == ["d", "a", "b"]
    assert pareto_front([]) == []
    assert pareto_front([("only", 3.0, 0.5)]) == ["only"]


def test_pareto_front_ties_and_bad_values():
    # same latency: the more accurate one dominates; same accuracy: the faster one dominates
    assert pareto_front([("x", 10.0, 0.8), ("y", 10.0, 0.9)]) == ["y"]
    assert pareto_front([("x", 10.0, 0.9), ("y", 12.0, 0.9)]) == ["x"]
    # identical points do not dominate each other: both stay, in input order
    assert pareto_front([("p", 10.0, 0.9), ("q", 10.0, 0.9), ("r", 20.0, 0.5)]) == ["p", "q"]
    # missing / non-finite values are ignored rather than winning or crashing
    assert pareto_front([("n", float("nan"), 0.99), ("m", 5.0, None), ("ok", 8.0, 0.7)]) == ["ok"]


# ------------------------------------------------------------------ write_report
def test_single_run_with_bench(tmp_path):
    run = make_run(tmp_path)
    bench = make_bench(tmp_path / "bench_result.json")
    res = write_report([run], bench_json=bench)

    assert res["html"] == run / "report.html" and res["markdown"] == run / "report.md"
    assert res["figures"] == ["loss_student-sst2.png", "dev_metrics.png", "pareto.png"]
    text = res["html"].read_text()
    imgs = images(text)
    assert len(imgs) == 3 == text.count("<img ")
    assert all(b.startswith(PNG_MAGIC) for b in imgs)
    for name in res["figures"]:  # the Markdown's figures are written next to it
        assert (run / name).read_bytes() == imgs[res["figures"].index(name)]
    # self-contained: no external resource, no script
    assert "<script" not in text and "<link" not in text and "http" not in text.lower()
    assert "student-sst2" in text and "0.8612" in text and "190" in text
    assert "22.7M" in text and "123.5" in text and "student subset" in text
    front = re.search(r'<ul class="front">(.*?)</ul>', text).group(1)
    assert [li.split(" (")[0] for li in re.findall(r"<li>(.*?)</li>", front)] == [
        "student-l4", "student-l6", "teacher"]
    assert "student-bad" not in front


def test_markdown_tables(tmp_path):
    run = make_run(tmp_path)
    res = write_report([run], out_dir=tmp_path / "out", bench_json=make_bench(tmp_path / "b.json"))
    md = res["markdown"].read_text()
    assert res["markdown"] == tmp_path / "out" / "report.md"
    assert "| run | kind | task | model | accuracy | f1 | best step | params | train ex/s |" in md
    assert "| student-sst2 | distill | sst2 | student subset ← runs/teacher-sst2/model " \
           "| 0.8612 | 0.8500 | 190 | 22.7M | 123.5 |" in md
    assert "| model | params | params w/o emb | size MB | p50 ms @1 | speedup @1 |" in md
    assert re.search(r"\| student-l6 \|.*\| 40\.0 \|.*\| 0\.9000 \| ★ \|", md)
    assert re.search(r"\| student-bad \|.*\| 0\.8400 \|  \|", md)
    front = re.findall(r"^- (\S+) \(", md, flags=re.M)
    assert front == ["student-l4", "student-l6", "teacher"]
    for name in res["figures"]:
        assert f"]({name})" in md and (tmp_path / "out" / name).exists()


def test_two_runs_overlay_default_out_dir(tmp_path, monkeypatch):
    a = make_run(tmp_path / "a", "run-a")
    b = make_run(tmp_path / "b", "run-b", acc_shift=0.02)
    monkeypatch.chdir(tmp_path)
    res = write_report([a, b])
    assert res["html"] == tmp_path / "report" / "report.html"
    assert res["figures"] == ["loss_run-a.png", "loss_run-b.png", "dev_metrics.png"]
    text = res["html"].read_text()
    assert len(images(text)) == 3
    assert "run-a" in text and "run-b" in text and "2 runs" in text
    assert "0.8812" in text  # run-b's final accuracy
    md = res["markdown"].read_text()
    assert md.count("| run-a |") == 1 and md.count("| run-b |") == 1


def test_same_folder_names_are_disambiguated(tmp_path):
    a = make_run(tmp_path / "x", "run")
    b = make_run(tmp_path / "y", "run")
    res = write_report([a, b], out_dir=tmp_path / "rep")
    assert res["figures"] == ["loss_x_run.png", "loss_y_run.png", "dev_metrics.png"]
    md = res["markdown"].read_text()
    assert "| x/run |" in md and "| y/run |" in md


def test_run_without_evals_or_summary(tmp_path):
    run = make_run(tmp_path, "unfinished", evals=False, summary=False, nan_loss=True)
    res = write_report([run])
    assert res["figures"] == ["loss_unfinished.png"]
    text = res["html"].read_text()
    assert len(images(text)) == 1 and images(text)[0].startswith(PNG_MAGIC)
    assert "no evaluation records" in text and "no metrics.json" in text
    assert "| unfinished | distill | sst2 |" in res["markdown"].read_text()
    assert "nan" not in res["markdown"].read_text().lower()


def test_empty_run_dir_and_bad_lines(tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"type": "train", "step": 1, "loss": 0.5}\nnot json\n')
    res = write_report([run])
    assert res["figures"] == ["loss_empty.png"]
    assert "1 unreadable line(s)" in res["html"].read_text()


def test_bench_json_found_in_run_dir_and_accuracy_from_run(tmp_path):
    run = make_run(tmp_path)
    bench = json.loads(make_bench(tmp_path / "b.json").read_text())
    del bench["models"][1]["accuracy"]
    bench["models"][1]["model"] = str(run / "model")  # benchmarked from this run
    (run / "bench.json").write_text(json.dumps(bench))
    res = write_report([run])
    assert "pareto.png" in res["figures"]
    md = res["markdown"].read_text()
    assert "0.8612 (from run)" in md
    assert re.findall(r"^- (\S+) \(", md, flags=re.M) == ["student-l4", "student-l6", "teacher"]


def test_bench_without_accuracy_has_no_scatter(tmp_path):
    run = make_run(tmp_path)
    bench = json.loads(make_bench(tmp_path / "b.json").read_text())
    for m in bench["models"]:
        del m["accuracy"]
    (tmp_path / "b.json").write_text(json.dumps(bench))
    res = write_report([run], bench_json=tmp_path / "b.json")
    assert "pareto.png" not in res["figures"]
    assert "no accuracy for: teacher, student-l6" in res["markdown"].read_text()


def test_html_is_escaped(tmp_path):
    run = make_run(tmp_path, "r<b>&x")
    res = write_report([run], title="A <i>title</i>")
    text = res["html"].read_text()
    assert "r&lt;b&gt;&amp;x" in text and "<b>" not in text
    assert "A &lt;i&gt;title&lt;/i&gt;" in text and "<i>" not in text


def test_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        write_report([tmp_path / "nope"])
    run = make_run(tmp_path)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        write_report([run], bench_json=tmp_path / "bad.json")


def test_auto_report(tmp_path, caplog):
    run = make_run(tmp_path)
    assert auto_report(run) == run / "report.html"
    assert (run / "report.md").exists()
    with caplog.at_level(logging.WARNING, logger="lmdistill.report"):
        assert auto_report(tmp_path / "missing") is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()


def _diag_run(summary, evals=()):
    from lmdistill.report.load import Run

    return Run(path=Path("."), name="r", config={"kind": "distill", "kd": {"temperature": 2}},
               evals=[{"type": "eval", "step": i, **e} for i, e in enumerate(evals)],
               summary=summary)


def test_distillation_verdict_and_table():
    """The diagnosis sets the student against its no-KD reference and its teacher."""
    from lmdistill.report import diagnosis as D

    evals = [{"accuracy": 0.70, "teacher_agreement": 0.8, "kl_to_teacher": 0.30},
             {"accuracy": 0.81, "teacher_agreement": 0.9, "kl_to_teacher": 0.12}]
    run = _diag_run({"accuracy": 0.81, "teacher_agreement": 0.9, "teacher_dev": {
        "accuracy": 0.90}, "nokd_reference": {"value": 0.80},
        "teacher_calibration": {"ece": 0.05}}, evals)
    v = D.verdict(run)
    assert v.startswith("KD helped: accuracy 0.8100 vs 0.8000 without KD (+0.0100)")
    assert "90.0% retained" in v
    head, rows = D.rows([run])
    row = dict(zip(head, rows[0]))
    assert row["Δ vs no-KD"] == "+0.0100" and row["KL to teacher (first → last eval)"] == \
        "0.3000 → 0.1200" and row["τ"] == "2"
    clamped = _diag_run({"accuracy": 0.8, "kd_temperature": 0.5,
                         "teacher_calibration": {"tau_fit": 0.4512}}, evals)
    assert dict(zip(head, D.rows([clamped])[1][0]))["τ"] == "0.5 (fit 0.451, clamped)"
    fitted = _diag_run({"accuracy": 0.8, "kd_temperature": 1.7,
                        "teacher_calibration": {"tau_fit": 1.7}}, evals)
    assert dict(zip(head, D.rows([fitted])[1][0]))["τ"] == "1.7"
    worse = _diag_run({"accuracy": 0.79, "teacher_dev": {"accuracy": 0.805},
                       "nokd_reference": {"value": 0.80}}, evals)
    v = D.verdict(worse)
    assert "did not help" in v and "(-0.0100)" in v and "less than 2 points" in v
    assert "no no-KD reference" in D.verdict(_diag_run({"accuracy": 0.8, "teacher_dev": {}},
                                                       evals))


def test_verdict_names_a_teacher_that_memorised_its_training_rows():
    """5 points or more between the teacher's training-row and dev metric: the verdict says its
    soft targets on them lean towards the gold labels; under that gap it says nothing of the kind."""
    from lmdistill.report import diagnosis as D

    evals = [{"f1": 0.78, "teacher_agreement": 0.8, "kl_to_teacher": 0.2}]
    fits = _diag_run({"f1": 0.78, "teacher_dev": {"f1": 0.856}, "teacher_train": {"f1": 0.99},
                      "nokd_reference": {"value": 0.777}}, evals)
    v = D.verdict(fits)
    assert "fits its training rows far better than new text (f1 0.9900 there vs 0.8560 on " \
        "dev)" in v and "--unlabelled FILE" in v
    head, rows = D.rows([fits])
    assert dict(zip(head, rows[0]))["teacher on train"] == "0.9900"
    close = _diag_run({"f1": 0.78, "teacher_dev": {"f1": 0.856}, "teacher_train": {"f1": 0.90},
                       "nokd_reference": {"value": 0.777}}, evals)
    assert "training rows" not in D.verdict(close)
    head, rows = D.rows([_diag_run({"f1": 0.78, "teacher_dev": {"f1": 0.856}}, evals)])
    assert dict(zip(head, rows[0]))["teacher on train"] == "–"
