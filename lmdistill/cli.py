"""``lmdistill`` command line: a thin layer that builds a config and calls ``lmdistill.api``.

Every config field is reachable with ``-o section.field=value`` (repeatable); the common ones
also have their own flags. Errors from bad input print as one line (exit code 2).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Optional

import typer

from . import config as C
from .errors import LmdistillError
from .names import FEATURES, STRATEGIES, STUDENT_KINDS

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Distill large pretrained language models into small, fast ones.")

OVERRIDE = typer.Option(None, "-o", "--set", help="override a config field: section.field=value")
CONFIG = typer.Option(None, "--config", "-c", help="YAML config file")


def _flags(**kw) -> dict:
    return {k: v for k, v in kw.items() if v is not None}


def _run_flags(task, output_dir, data_dir, limit, eval_limit, epochs, max_steps, batch_size,
               lr, seed) -> dict:
    """The flags every training command shares, as config overrides."""
    return {"data.task": task, "output_dir": output_dir, "data.data_dir": data_dir,
            "data.limit": limit, "data.eval_limit": eval_limit, "train.epochs": epochs,
            "train.max_steps": max_steps, "train.batch_size": batch_size, "train.lr": lr,
            "train.seed": seed}


@app.command()
def finetune(
    task: Optional[str] = typer.Option(None, help="task name or data file"),
    model: Optional[str] = typer.Option(None, help="alias, local folder or hub name"),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", "--out"),
    data_dir: Optional[str] = typer.Option(None, envvar="LMDISTILL_DATA"),
    limit: Optional[int] = typer.Option(None, help="seeded subset of the train split"),
    eval_limit: Optional[int] = typer.Option(None),
    epochs: Optional[float] = typer.Option(None),
    max_steps: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    resume: bool = typer.Option(False, help="continue from the last good checkpoint"),
    config: Optional[str] = CONFIG,
    override: Optional[list[str]] = OVERRIDE,
):
    """Fine-tune a model (e.g. a teacher) on a task."""
    from . import api

    flags = _flags(**{"model.name": model}, **_run_flags(
        task, output_dir, data_dir, limit, eval_limit, epochs, max_steps, batch_size, lr, seed))
    cfg = C.build(C.FinetuneConfig, config, {**flags, **dict(map(C.parse_override,
                                                                  override or []))})
    result = api.finetune(cfg, resume=resume)
    _print_result(result)


@app.command()
def distill(
    task: Optional[str] = typer.Option(None, help="task name or data file"),
    teacher: Optional[list[str]] = typer.Option(None, help="fine-tuned teacher(s); repeat for several"),
    strategy: Optional[str] = typer.Option(None, help="multi-teacher weighting: "
                                           + ", ".join(STRATEGIES)),
    student: Optional[str] = typer.Option(None, help=" | ".join(STUDENT_KINDS)),
    student_layers: Optional[int] = typer.Option(None, "--layers", help="student depth"),
    features: Optional[str] = typer.Option(None, help="intermediate KD: comma list of "
                                           + ",".join(FEATURES)),
    unlabelled: Optional[str] = typer.Option(None, help="extra text the teacher labels (soft "
                                             "loss only): one a line, or `augment` JSONL"),
    unlabelled_split: Optional[list[str]] = typer.Option(
        None, help="also the texts of this split of the task, labels dropped (e.g. test; "
                   "transductive, so only when you allow it)"),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", "--out"),
    data_dir: Optional[str] = typer.Option(None, envvar="LMDISTILL_DATA"),
    limit: Optional[int] = typer.Option(None),
    eval_limit: Optional[int] = typer.Option(None),
    epochs: Optional[float] = typer.Option(None),
    max_steps: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    resume: bool = typer.Option(False),
    config: Optional[str] = CONFIG,
    override: Optional[list[str]] = OVERRIDE,
):
    """Distil teacher(s) into a student (logit, intermediate-layer, multi-teacher KD)."""
    t = list(teacher or [])
    flags = _flags(**{"teacher.name": t[0] if t else None, "teacher.names": t[1:] or None,
                      "teacher.strategy": strategy, "student.kind": student,
                      "student.num_layers": student_layers,
                      "kd.features": features.split(",") if features else None,
                      "data.unlabelled_splits": unlabelled_split or None},
                   **_run_flags(task, output_dir, data_dir, limit, eval_limit, epochs,
                                max_steps, batch_size, lr, seed))
    cfg = C.build(C.DistillConfig, config, {**flags, **dict(map(C.parse_override,
                                                                 override or []))})
    extra = None
    if unlabelled:
        from .augment.run import read_texts

        extra = read_texts(unlabelled)
    from . import api

    _print_result(api.distill(cfg, resume=resume, extra_texts=extra))


@app.command()
def search(
    task: Optional[str] = typer.Option(None, help="task name or data file"),
    teacher: Optional[str] = typer.Option(None, help="fine-tuned teacher (its layers are probed)"),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", "--out"),
    data_dir: Optional[str] = typer.Option(None, envvar="LMDISTILL_DATA"),
    limit: Optional[int] = typer.Option(None),
    eval_limit: Optional[int] = typer.Option(None),
    epochs: Optional[float] = typer.Option(None, help="search epochs"),
    max_steps: Optional[int] = typer.Option(None, help="search steps"),
    batch_size: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None, help="search: the weights' learning rate"),
    seed: Optional[int] = typer.Option(None),
    retrain_epochs: Optional[float] = typer.Option(None, help="training the derived student"),
    cost: Optional[str] = typer.Option(None, help="efficiency cost: latency (measured here), "
                                       "params or flops"),
    architecture: Optional[str] = typer.Option(None, help="skip the search: retrain this "
                                               "architecture.json"),
    resume: bool = typer.Option(False),
    config: Optional[str] = CONFIG,
    override: Optional[list[str]] = OVERRIDE,
):
    """AdaBERT: search a task-adapted CNN student by differentiable architecture search, then
    train the found architecture from scratch with KD from the teacher's layer probes."""
    from .methods.adabert.run import search as run

    geno = json.loads(open(architecture).read()) if architecture else None
    flags = _flags(**{"teacher.name": teacher, "retrain.epochs": retrain_epochs,
                      "adabert.cost": cost, "adabert.genotype": geno,
                      "retrain.batch_size": batch_size, "retrain.seed": seed},
                   **_run_flags(task, output_dir, data_dir, limit, eval_limit, epochs,
                                max_steps, batch_size, lr, seed))
    cfg = C.build(C.SearchConfig, config, {**flags, **dict(map(C.parse_override,
                                                                override or []))})
    _print_result(run(cfg, resume=resume))


@app.command()
def metakd(
    domains: Optional[str] = typer.Option(None, help="comma list of domain tasks (default: "
                                          "the four Amazon domains)"),
    targets: Optional[str] = typer.Option(None, help="domains that get a student (default all)"),
    fraction: Optional[float] = typer.Option(None, help="share of the target's training rows"),
    no_in_domain: Optional[bool] = typer.Option(None, "--no-in-domain/--in-domain",
                                                help="teachers never see the target domain"),
    methods: Optional[str] = typer.Option(None, help="comma list of metakd, single, mixed, "
                                          "multitask, nokd"),
    teacher_base: Optional[str] = typer.Option(None, help="model every teacher starts from"),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", "--out"),
    data_dir: Optional[str] = typer.Option(None, envvar="LMDISTILL_DATA"),
    epochs: Optional[float] = typer.Option(None, help="students' stage-2 epochs"),
    seed: Optional[int] = typer.Option(None),
    resume: bool = typer.Option(False),
    config: Optional[str] = CONFIG,
    override: Optional[list[str]] = OVERRIDE,
):
    """Meta-KD: a meta-teacher across domains, meta-distilled into per-domain students, with
    the single-domain, mixed, multi-task and no-KD baselines in the same run."""
    from . import api

    split = (lambda v: v.split(",") if v else None)
    flags = _flags(**{"metakd.domains": split(domains), "metakd.targets": split(targets),
                      "metakd.fraction": fraction, "metakd.no_in_domain": no_in_domain,
                      "metakd.methods": split(methods), "teacher_base": teacher_base,
                      "output_dir": output_dir, "data.data_dir": data_dir,
                      "train.epochs": epochs, "train.seed": seed, "teacher_train.seed": seed})
    cfg = C.build(C.MetaKDConfig, config, {**flags, **dict(map(C.parse_override,
                                                                override or []))})
    _print_result(api.metakd(cfg, resume=resume))


@app.command()
def wsd(
    model: Optional[str] = typer.Argument(None, help="gloss classifier (finetune/distill "
                                          "--task gloss); none: the MFS baseline only"),
    sets: str = typer.Option("SE2,SE3,SE07,SE13,SE15,ALL", help="Raganato sets (or semcor)"),
    data_dir: Optional[str] = typer.Option(None, envvar="LMDISTILL_DATA"),
    batch_size: int = typer.Option(128),
    max_length: int = typer.Option(128),
    output: Optional[str] = typer.Option(None, help="also write the scores to this JSON file"),
    prior_weights: Optional[str] = typer.Option(
        None, help="also score model + w * log sense prior for these w (comma list), w "
                   "chosen on --tune-on"),
    tune_on: str = typer.Option("SE07", help="the dev set the prior weight is chosen on"),
    sense_vectors: Optional[str] = typer.Option(
        None, help="score the nearest-neighbour (LMMS) sense teacher in this folder instead; "
                   "an empty one is built from SemCor with --encoder and tuned on held-out "
                   "SemCor documents"),
    encoder: str = typer.Option("minilm-l6", help="the encoder of a new --sense-vectors"),
):
    """Word-sense disambiguation F1 (official scorer) of a gloss classifier (or a
    nearest-neighbour sense teacher) on the Raganato evaluation sets, next to the
    most-frequent-sense baseline."""
    from . import api

    ws = tuple(float(x) for x in prior_weights.split(",")) if prior_weights else ()
    res = api.evaluate_wsd(model, [x.strip() for x in sets.split(",") if x.strip()], data_dir,
                           batch_size, max_length, progress=True, prior_weights=ws,
                           tune_on=tune_on, sense_vectors=sense_vectors, encoder=encoder)
    if output:
        from pathlib import Path

        Path(output).write_text(json.dumps(res, indent=2))
    _print_result(res)


@app.command("lexical-kd")
def lexical_kd(
    teacher_vectors: Optional[str] = typer.Option(None, help="the NN sense teacher's folder "
                                                  "(lmdistill wsd --sense-vectors DIR)"),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", "--out"),
    data_dir: Optional[str] = typer.Option(None, envvar="LMDISTILL_DATA"),
    limit: Optional[int] = typer.Option(None, help="seeded subset of the training sentences"),
    epochs: Optional[float] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    resume: bool = typer.Option(False),
    config: Optional[str] = CONFIG,
    override: Optional[list[str]] = OVERRIDE,
):
    """Lexical KD: a small student learns the NN sense teacher's token vectors on its corpus
    (and/or a softmax over candidate senses), then is scored as an NN sense encoder on the
    Raganato sets (-o lexical.kd_weight=0 -o lexical.sense_weight=1
    -o lexical.sense_table=learned: the student trained on the senses directly, no teacher)."""
    from . import api

    flags = _flags(**{"lexical.teacher_vectors": teacher_vectors, "output_dir": output_dir,
                      "data.data_dir": data_dir, "data.limit": limit, "train.epochs": epochs,
                      "train.seed": seed})
    cfg = C.build(C.LexicalKDConfig, config, {**flags, **dict(map(C.parse_override,
                                                                   override or []))})
    _print_result(api.lexical_kd(cfg, resume=resume))


@app.command()
def augment(
    method: str = typer.Option("eda", help="eda | cbert"),
    mlm: Optional[str] = typer.Option(None, help="cbert: the masked LM that proposes words"),
    output: str = typer.Option(..., "--output", "--out", help="JSONL file to write"),
    task: Optional[str] = typer.Option(None, help="augment this task's rows"),
    input_file: Optional[str] = typer.Option(None, "--input", help="or these texts (one a line)"),
    split: str = typer.Option("train"),
    data_dir: Optional[str] = typer.Option(None, envvar="LMDISTILL_DATA"),
    limit: Optional[int] = typer.Option(None),
    n_aug: int = typer.Option(4, help="augmented copies per input"),
    seed: int = typer.Option(0),
):
    """Augmented copies of a task's rows or a text file (EDA: WordNet synonyms with the
    tagged part of speech, insertion, swap, deletion; CBERT: words re-sampled by a masked LM
    in context), as JSONL for distillation."""
    from . import api

    _print_result(api.augment(method, output, task, input_file, data_dir, split, limit, n_aug,
                              seed, mlm))


@app.command()
def l2a(
    task: Optional[str] = typer.Option(None, help="the data-scarce target task"),
    source: Optional[str] = typer.Option(None, help="the resource-rich source task"),
    mlm: Optional[str] = typer.Option(None, help="masked LM of the generator"),
    teacher: Optional[str] = typer.Option(None, help="a fine-tuned teacher (default: one is "
                                          "fine-tuned on source + target rows)"),
    target_fraction: Optional[float] = typer.Option(None, help="share of the target rows"),
    rounds: Optional[int] = typer.Option(None),
    candidates: Optional[int] = typer.Option(None, help="generated candidates per round"),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", "--out"),
    data_dir: Optional[str] = typer.Option(None, envvar="LMDISTILL_DATA"),
    seed: Optional[int] = typer.Option(None),
    resume: bool = typer.Option(False),
    config: Optional[str] = CONFIG,
    override: Optional[list[str]] = OVERRIDE,
):
    """L2A: a generator (masked-LM chains from source and target samples) and a REINFORCE
    selector that keeps the candidates that improve the student, in rounds of distillation."""
    from . import api

    flags = _flags(**{"data.task": task, "l2a.source_task": source, "l2a.mlm": mlm,
                      "teacher.name": teacher, "l2a.target_fraction": target_fraction,
                      "l2a.rounds": rounds, "l2a.candidates": candidates,
                      "output_dir": output_dir, "data.data_dir": data_dir,
                      "train.seed": seed})
    cfg = C.build(C.L2AConfig, config, {**flags, **dict(map(C.parse_override,
                                                             override or []))})
    _print_result(api.l2a(cfg, resume=resume))


@app.command("make-student")
def make_student(
    base: str = typer.Option(..., help="teacher / model the student is built from"),
    task: str = typer.Option(..., help="task (fixes the label head)"),
    output_dir: str = typer.Option(..., "--output-dir", "--out"),
    data_dir: Optional[str] = typer.Option(None, envvar="LMDISTILL_DATA"),
    override: Optional[list[str]] = OVERRIDE,
):
    """Build a student (-o kind=subset -o num_layers=3 ...) and save it as an HF folder."""
    from .methods.kd.run import make_student as run

    cfg = C.build(C.StudentConfig, overrides=dict(map(C.parse_override, override or [])))
    _print_result(run(cfg, base, task, output_dir, data_dir))


@app.command()
def evaluate(
    model: str = typer.Argument(..., help="saved model folder, alias or hub name"),
    task: Optional[str] = typer.Option(None, help="task name (without one: predictions and "
                                       "speed on --texts or built-in sentences)"),
    split: str = typer.Option("dev"),
    data_dir: Optional[str] = typer.Option(None, envvar="LMDISTILL_DATA"),
    limit: Optional[int] = typer.Option(None),
    batch_size: int = typer.Option(128),
    max_length: int = typer.Option(128),
    texts: Optional[str] = typer.Option(None, help="predict these texts (one a line), no "
                                        "metrics"),
    output: Optional[str] = typer.Option(None, help="also write the metrics to this JSON file"),
):
    """Evaluate a saved model on a task split (or predict texts without labels)."""
    from . import api

    result = api.evaluate(model, task, split, data_dir, limit, batch_size, max_length,
                          texts_file=texts)
    if output:
        api.write_json(__import__("pathlib").Path(output), result)
    _print_result(result)


@app.command()
def quantize(
    model: str = typer.Argument(..., help="saved model folder"),
    output_dir: str = typer.Option(..., "--output-dir", "--out"),
    method: str = typer.Option("auto", help="auto (time every backend here, keep the fastest "
                               "within --tolerance) | torch-dynamic-int8 | onnx-int8 | "
                               "torchao-int8 | bf16"),
    task: Optional[str] = typer.Option(None, help="check accuracy on this task (and time on "
                                       "its sentences)"),
    split: str = typer.Option("dev"),
    data_dir: Optional[str] = typer.Option(None, envvar="LMDISTILL_DATA"),
    tolerance: float = typer.Option(1.0, help="most points of the task metric INT8 may lose"),
    force: bool = typer.Option(False, help="write the fastest INT8 even if it is slower than "
                               "FP32 here (with a warning)"),
    texts: Optional[str] = typer.Option(None, help="time on these sentences (one a line)"),
    limit: Optional[int] = typer.Option(None, help="evaluate on this many rows of the split"),
    batch_size: int = typer.Option(32, help="batch size the choice is made at"),
    min_agreement: Optional[float] = typer.Option(
        None, help="least fraction of the timing sentences on which a backend must predict "
        "FP32's label, checked with or without --task (default: compress.quantize."
        "MIN_AGREEMENT, 0.95)"),
):
    """INT8 quantization chosen for this machine: the fastest backend that agrees with FP32."""
    from .compress.quantize import quantize as run

    info = run(model, output_dir, method, task, split, data_dir, tolerance, force, texts,
               batch_size=batch_size, eval_limit=limit,
               **({} if min_agreement is None else {"min_agreement": min_agreement}))
    info.pop("machine", None)
    _print_result(info)


@app.command()
def export(
    model: str = typer.Argument(..., help="saved model folder"),
    output_dir: str = typer.Option(..., "--output-dir", "--out"),
    onnx: bool = typer.Option(True, "--onnx", help="export to ONNX (the only format so far)"),
    int8: bool = typer.Option(False, "--int8", help="ONNX Runtime dynamic INT8 (per-channel)"),
    atol: float = typer.Option(1e-4, help="fail if ONNX and PyTorch differ by more"),
):
    """Export a saved model to ONNX with a parity check against PyTorch."""
    from .compress.onnx import export_onnx

    info = export_onnx(model, output_dir, int8=int8, atol=atol)
    typer.echo(f"max |onnx - torch| = {info['max_abs_diff']:.2e}", err=True)
    _print_result(info)


@app.command()
def bench(
    models: list[str] = typer.Argument(..., help="label=model or model; the first is the "
                                       "reference (teacher)"),
    task: Optional[str] = typer.Option("sst2", help="time on this task's sentences"),
    split: str = typer.Option("dev"),
    batch_size: list[int] = typer.Option([1, 32], "--batch-size"),
    threads: Optional[int] = typer.Option(None),
    repeats: int = typer.Option(5),
    data_dir: Optional[str] = typer.Option(None, envvar="LMDISTILL_DATA"),
    texts: Optional[str] = typer.Option(None, help="time on these sentences (one a line, a tab "
                                        "between a pair's two); default: the task's, or "
                                        "built-in ones without a data directory"),
    device: str = typer.Option("cpu", help="cpu | cuda | auto (FP32 PyTorch models; INT8 and "
                               "ONNX always run on the CPU)"),
    output: Optional[str] = typer.Option(None, help="write the JSON result here"),
):
    """Measure models side by side on the same real inputs (latency, throughput, size)."""
    from pathlib import Path

    from . import api
    from .bench import bench as run, table

    pairs = dict(m.split("=", 1) if "=" in m else (Path(m).name or m, m) for m in models)
    result = run(pairs, task, split, tuple(batch_size), data_dir, threads, max(repeats, 5),
                 texts_file=texts, device=device, progress=True)
    if output:
        api.write_json(Path(output), result)
    typer.echo(table(result))


@app.command()
def report(
    run_dirs: list[str] = typer.Argument(..., help="run directories (finetune/distill outputs)"),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", "--out"),
    bench_json: Optional[str] = typer.Option(None, "--bench", help="a `lmdistill bench --output` "
                                             "JSON (with accuracy) for the accuracy/latency chart"),
    title: Optional[str] = typer.Option(None),
):
    """Write report.html (self-contained, plots embedded) and report.md for runs."""
    from .report.build import write_report

    res = write_report(run_dirs, output_dir, bench_json=bench_json, title=title)
    typer.echo(f"{res['html']}\n{res['markdown']}")


@app.command()
def demo(
    data_dir: Optional[str] = typer.Option(None, envvar="LMDISTILL_DATA"),
    output_dir: str = typer.Option("runs/demo", "--output-dir", "--out"),
    train_limit: int = typer.Option(4000, help="SST-2 training examples for the teacher"),
    resume: bool = typer.Option(False),
):
    """The main job end to end on real data and real weights (see lmdistill.demo)."""
    from . import demo as demo_mod

    demo_mod.run(data_dir=data_dir, out=output_dir, train_limit=train_limit, resume=resume)


def _print_result(result: dict) -> None:
    if os.environ.get("LOCAL_RANK", "0") == "0":
        typer.echo(json.dumps(result, indent=2))


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, standalone_mode=False)
    except LmdistillError as e:
        typer.secho(f"error: {e}", err=True, fg="red")
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted; resume with --resume", err=True)
        sys.exit(130)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
