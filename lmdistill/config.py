"""Typed run configuration: pydantic models, YAML in and out, CLI overrides.

Every field of every run config can be set three ways, later winning:
the model defaults < a YAML file (``--config run.yaml``) < ``-o section.field=value`` on the
command line (values parsed as YAML, so ``-o train.lr=3e-5`` is a float and
``-o kd.layers='[[1,2],[2,4]]'`` a list). The resolved config is written as ``config.yaml``
beside each run's outputs, and a resume refuses to continue under a different one.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# reading and writing configs, re-exported: C.build, C.save, ... are the API
from .config_io import build, parse_override, save, set_path, to_yaml  # noqa: F401
from .names import FEATURES, LOSSES, STRATEGIES, STUDENT_KINDS
from .schedules import ScheduleError, check_range, make_schedule


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DataConfig(Strict):
    task: str = "sst2"
    data_dir: str | None = Field(None, description="default: $LMDISTILL_DATA")
    train_split: str = "train"
    eval_split: str = "dev"
    limit: int | None = Field(None, ge=1, description="use a seeded subset of this many train rows")
    eval_limit: int | None = Field(None, ge=1)
    max_length: int = Field(128, ge=4)
    unlabelled_splits: list[str] = Field(
        default_factory=list, description="distill: these splits' texts (labels dropped) are "
        "added as unlabelled rows the teacher labels, e.g. [test] (transductive: opt in)")
    # generic file tasks (task = a path): column names and options
    text_a: str | None = None
    text_b: str | None = None
    label: str = "label"
    label_names: list[str] | None = None
    regression: bool = False
    dev_path: str | None = None
    # masked-LM tasks (task = "mlm:<corpus>", see lmdistill.data.mlm)
    mlm_block_size: int = Field(128, ge=4, description="tokens per block ([CLS] ... [SEP])")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="share of words masked (80/10/10)")
    mlm_heldout: float = Field(0.05, ge=0, lt=1, description="share of blocks held out (by content hash)")
    mlm_max_blocks: int | None = Field(None, ge=1, description="use the first N blocks of the corpus")
    mlm_seed: int = Field(0, description="seed of the masks (fixed apart from train.seed, so "
                                         "runs with other seeds see the same masks)")
    mlm_static: bool = Field(False, description="one fixed masking per block (teacher outputs "
                                                "cacheable) instead of new masks every step")


class ModelConfig(Strict):
    name: str = "minilm-l6"
    trust_remote_code: bool = False
    freeze_encoder: bool = Field(False, description="train only the head (for an MLM: the "
                                                    "prediction head on a frozen encoder)")
    new_head: bool = Field(False, description="drop a saved classifier's head and start a "
                                              "fresh one (a model trained on another task)")


class TrainConfig(Strict):
    epochs: float = Field(3.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    min_steps: int | None = Field(None, ge=1, description="train at least this many optimizer "
                                  "steps: more epochs when the rows are few (max_steps wins)")
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(128, ge=1)
    lr: float = Field(5e-5, ge=0, description="0 trains nothing (a sanity run)")
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    schedule: Literal["linear", "constant", "cosine"] = "linear"
    max_grad_norm: float | None = Field(1.0, gt=0)
    grad_accum: int = Field(1, ge=1)
    seed: int = 42
    eval_every: int | None = Field(None, ge=1, description="evaluate every N steps (and at the end)")
    save_every: int | None = Field(None, ge=1, description="checkpoint every N steps (and at evals)")
    keep_checkpoints: int = Field(2, ge=1)
    eval_each_epoch: bool = Field(False, description="also evaluate at the end of every epoch")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="stop after this many evaluations without improvement")
    early_stopping_also: list[str] = Field(
        default_factory=list, description="metrics whose improvement also counts as progress "
                                          "(e.g. teacher_agreement)")
    log_every: int = Field(10, ge=1)
    pool_factor: int = Field(50, ge=1)
    num_threads: int | None = Field(None, ge=1)
    progress: bool = True
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = Field(
        "auto", description="auto: bf16 on a CUDA GPU that supports it; on a CPU with "
                            "AVX-512-BF16 or AMX-BF16, bf16 where a few timed training steps "
                            "of the run's model are >= 1.3x faster than fp32 and an fp32 "
                            "step takes >= 50 ms (logged and recorded in the result), else "
                            "fp32; fp16 needs a CUDA GPU")


class FinetuneConfig(Strict):
    kind: Literal["finetune"] = "finetune"
    output_dir: str = "runs/finetune"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()


Schedulable = float | str | dict


def checked_schedule(value, name: str, allow: tuple[str, ...] = ()):
    """``value`` unchanged if it is a valid schedule spec in ``name``'s range (or one of
    ``allow``); a ValueError otherwise (the config's one-line error names the field)."""
    if isinstance(value, str) and value in allow:
        return value
    try:
        check_range(make_schedule(value, total_steps=1), name, value)
    except ScheduleError as e:
        raise ValueError(str(e)) from None
    return value


class TeacherConfig(Strict):
    name: str | None = Field(None, description="a fine-tuned teacher (folder/alias/hub name)")
    names: list[str] = Field(default_factory=list, description="several teachers")
    strategy: Literal[STRATEGIES] = "uniform"
    fixed_weights: list[Annotated[float, Field(ge=0)]] | None = None
    sharpness: float = Field(1.0, gt=0)
    cache: bool = Field(True, description="compute teacher outputs once, store on disk")
    cache_dir: str | None = Field(None, description="default: $LMDISTILL_CACHE/teacher")
    logits_file: str | None = Field(None, description=".npy / JSONL of precomputed logits")
    batch_size: int = Field(128, ge=1)
    trust_remote_code: bool = False
    topk: int = Field(32, ge=1, description="masked-LM teachers: logits kept per cached position")

    @property
    def all_names(self) -> list[str]:
        return ([self.name] if self.name else []) + list(self.names)


class StudentConfig(Strict):
    kind: Literal[STUDENT_KINDS] = "subset"
    base: str | None = Field(None, description="model the student is built from "
                                               "(default: the first teacher)")
    layers: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, description="subset: teacher layers to keep (0-based)")
    num_layers: int = Field(3, ge=1)
    hidden: int | None = Field(None, ge=1)
    heads: int | None = Field(None, ge=1)
    intermediate: int | None = Field(None, ge=1)
    init: Literal["teacher", "random"] = "teacher"
    head_init: Literal["teacher", "random"] = Field(
        "teacher", description="a student whose base has no head for the task starts from "
                               "the teacher's head (pooler + classifier) where shapes match")
    num_unique: int = Field(1, ge=1)
    lstm_hidden: int = Field(300, ge=1)
    mlp_hidden: int = Field(400, ge=1)


class KDConfig(Strict):
    alpha: Schedulable = Field(0.5, description="weight of the soft loss; 1-alpha on gold labels")
    temperature: Schedulable = 2.0
    beta: Schedulable = Field(1.0, description="weight of the intermediate-layer terms")
    features: list[Literal[FEATURES]] = Field(default_factory=list)
    mapping: str | list[list[int]] | dict[int, int] = "uniform"
    include_embeddings: bool = True
    feature_weights: dict[Literal[FEATURES], Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict)
    losses: dict[Literal[FEATURES], str] = Field(
        default_factory=dict, description="loss per feature, e.g. {attention: mse} "
                                          "(default: hidden mse, attention kl)")
    keep_projections: bool = False
    relation_heads: int = Field(12, ge=1)
    logit_loss: bool = Field(True, description="false: only the intermediate-layer terms "
                                               "(e.g. a first stage of layer matching)")
    reference: str | None = Field(None, description="a finished no-KD run (its directory): "
                                                    "the report compares the student with it")
    augment: Literal["none", "eda", "cbert"] = Field(
        "none", description="add augment_copies augmented copies of every training row to the "
                            "transfer set (teacher-labelled, soft loss only)")
    augment_copies: int = Field(4, ge=1)
    augment_mlm: str | None = Field(None, description="kd.augment=cbert: the masked LM")

    @field_validator("alpha", "temperature", "beta")
    @classmethod
    def _schedule_in_range(cls, v, info):
        """A number or schedule spec whose two ends lie in the weight's range (α in [0, 1],
        τ > 0 or ``auto``, β >= 0): checked here, before any model or data loads."""
        return checked_schedule(v, info.field_name, allow=("auto",) if info.field_name ==
                                "temperature" else ())

    @field_validator("losses")
    @classmethod
    def _known_losses(cls, v):
        for feature, loss in v.items():
            if loss not in LOSSES[feature]:
                raise ValueError(f"{feature} takes one of {list(LOSSES[feature])}, got {loss!r}")
        return v


class DistillConfig(Strict):
    kind: Literal["distill"] = "distill"
    output_dir: str = "runs/distill"
    data: DataConfig = DataConfig()
    teacher: TeacherConfig = TeacherConfig()
    student: StudentConfig = StudentConfig()
    kd: KDConfig = KDConfig()
    train: TrainConfig = Field(
        TrainConfig(lr=1e-4, epochs=10.0, eval_each_epoch=True, early_stopping_patience=2,
                    early_stopping_also=["teacher_agreement"]),
        description="the default schedule runs until neither the dev metric nor the "
                    "agreement with the teacher improved for 2 epochs, at most 10 epochs")


ADABERT_OPS = ("conv3", "conv5", "conv7", "dilconv3", "dilconv5", "dilconv7", "maxpool3",
               "avgpool3", "identity", "zero")  # = lmdistill.models.adabert.OPS


class AdaBertSettings(Strict):
    """AdaBERT's search space, losses and schedules (``lmdistill search``)."""
    max_cells: int = Field(8, ge=1, description="K_max: most stacked cells (depth is searched)")
    nodes: int = Field(3, ge=1, description="intermediate nodes per cell")
    hidden: int = Field(128, ge=8, description="width the teacher's embeddings are projected to")
    ops: list[Literal[ADABERT_OPS]] = Field(default_factory=lambda: list(ADABERT_OPS))
    gamma: float = Field(0.8, ge=0, le=1, description="loss = (1-gamma) CE + gamma KD + beta L_E")
    beta: float = Field(4.0, ge=0, description="weight of the efficiency loss")
    temperature: float = Field(1.0, gt=0, description="KD temperature (probe targets)")
    gumbel_start: float = Field(1.0, gt=0)
    gumbel_end: float = Field(0.2, gt=0, description="annealed exponentially over the search")
    arch_lr: float = Field(3e-3, gt=0)
    arch_weight_decay: float = Field(1e-3, ge=0)
    arch_start: float = Field(0.2, ge=0, le=1, description="share of search steps before the "
                                                           "first architecture step (the "
                                                           "weights' warm-up)")
    warmup_forward: Literal["sampled", "soft"] = Field(
        "sampled", description="the weights' forward during the warm-up: sampled = one Gumbel "
                               "sample, as after it; soft = every op and depth mixed by the "
                               "architecture softmax (every op trained at every step, ~20x the "
                               "cost of a sampled step on the default supernet)")
    arch_gradient: Literal["rloo", "straight-through"] = Field(
        "rloo", description="the task loss's architecture gradient: rloo = score function "
                            "with a leave-one-out baseline over arch_samples sampled "
                            "architectures (unbiased for the gradient of the expected loss); "
                            "straight-through = the Gumbel-softmax straight-through gradient "
                            "(GDAS)")
    arch_samples: int = Field(2, ge=2, description="architectures sampled per architecture step "
                                                   "(arch_gradient=rloo)")
    heldout: float = Field(0.2, gt=0, lt=1, description="share of the training rows held out "
                                                        "for architecture steps and probe losses")
    sampled_forward: bool = Field(True, description="compute only the sampled op per edge "
                                                    "and the sampled depth (GDAS; ~10x "
                                                    "cheaper) instead of every op")
    cost: Literal["latency", "params", "flops", "size+flops"] = "latency"
    cost_length: int = Field(64, ge=1, description="sequence length the op latencies are timed at")
    probe_epochs: int = Field(100, ge=1)
    probe_lr: float = Field(1e-2, gt=0)
    keep_edges: int = Field(2, ge=1, description="incoming edges kept per node when deriving")
    freeze_embeddings_search: bool = Field(True, description="keep the teacher's word "
                                                             "embeddings fixed while searching")
    genotype: dict | None = Field(None, description="skip the search: retrain this "
                                                    "architecture (JSON of a previous search)")


class SearchConfig(Strict):
    kind: Literal["search"] = "search"
    output_dir: str = "runs/search"
    data: DataConfig = DataConfig()
    teacher: TeacherConfig = TeacherConfig()
    adabert: AdaBertSettings = AdaBertSettings()
    train: TrainConfig = Field(TrainConfig(lr=1e-3, epochs=1.0, warmup_ratio=0.05),
                               description="the search (weights' optimizer)")
    retrain: TrainConfig = Field(TrainConfig(lr=1e-3, epochs=3.0, warmup_ratio=0.05),
                                 description="training the derived student from scratch")


METAKD_METHODS = ("metakd", "single", "mixed", "multitask", "nokd")


class MetaKDSettings(Strict):
    """Meta-KD's domains, setting, losses and baselines (``lmdistill metakd``)."""
    domains: list[str] = Field(default_factory=lambda: ["amazon-books", "amazon-dvd",
                                                        "amazon-electronics",
                                                        "amazon-kitchen"],
                               description="one task per domain (same label set)")
    targets: list[str] | None = Field(None, description="domains that get a student "
                                                        "(default: all)")
    no_in_domain: bool = Field(False, description="the meta-teacher (and the multi-domain "
                                                  "baselines) never see the target domain")
    fraction: float = Field(1.0, gt=0, le=1, description="share of the target domain's "
                                                         "training rows (teachers and student)")
    lam: float = Field(0.5, ge=0, description="weight of the shuffled-domain head's CE")
    temperature: float = Field(2.0, gt=0, description="stage 2 soft-label KD temperature")
    domain_weight: float = Field(1.0, ge=0, description="stage 1 domain-representation MSE")
    prototype_model: str | None = Field(None, description="encoder of the prototype scores "
                                                          "(default: teacher base)")
    methods: list[Literal[METAKD_METHODS]] = Field(default_factory=lambda: list(METAKD_METHODS))
    stage1_epochs: float = Field(2.0, gt=0)
    stage2_epochs: float = Field(3.0, gt=0)
    stage2_alpha: float = Field(1.0, ge=0, le=1, description="stage 2 weight of the soft "
                                "loss (1 - it on gold labels); 1: soft targets only, as the "
                                "paper")
    student_weights: bool = Field(True, description="Meta-KD's per-instance weights in the "
                                  "students (false: the no-weights ablation, same teachers)")
    select_half: bool = Field(True, description="select every teacher and student (best "
                              "epoch) on a seeded half of each domain's dev rows and report "
                              "the other half; false: select and report on all dev rows")
    select_seed: int = Field(0, description="seed of the dev split (fixed across runs, so "
                             "every method and seed is reported on the same rows)")


class MetaKDConfig(Strict):
    kind: Literal["metakd"] = "metakd"
    output_dir: str = "runs/metakd"
    data: DataConfig = DataConfig(task="amazon-books")
    teacher_base: str = Field("minilm-l6", description="the model every teacher is "
                                                       "fine-tuned from")
    student: StudentConfig = StudentConfig(base="minilm-l6", num_layers=3)
    kd: KDConfig = KDConfig(features=["hidden", "attention"])
    metakd: MetaKDSettings = MetaKDSettings()
    teacher_train: TrainConfig = TrainConfig(lr=5e-5, epochs=2.0)
    train: TrainConfig = Field(TrainConfig(lr=1e-4, epochs=3.0), description="students "
                               "(the no-KD baseline uses train.epochs; the KD stages "
                               "metakd.stage1_epochs and metakd.stage2_epochs)")


WSD_SETS = ["SE2", "SE3", "SE07", "SE13", "SE15", "ALL"]


class LexicalSettings(Strict):
    """Lexical KD (``lmdistill lexical-kd``): the student's vector of every tagged token learns
    the NN sense teacher's (``kd_weight``) and/or a softmax over the token's candidate senses
    (``sense_weight``); see :mod:`lmdistill.methods.lexical.lexkd`."""
    teacher_vectors: str | None = Field(None, description="the NN sense teacher's folder "
                                        "(lmdistill wsd --sense-vectors): its encoder, corpus, "
                                        "held-out documents and sense vectors (required)")
    kd_weight: Schedulable = Field(1.0, description="weight of the teacher-vector term "
                                   "(0: no KD; the student then never sees a teacher vector)")
    kd_loss: Literal[LOSSES["hidden"]] = Field("cosine", description="the teacher-vector "
                                                "term: 1 - cos, or MSE")
    teacher_layers: list[int] | None = Field(None, description="teacher hidden states "
                                             "averaged into the target (default: the "
                                             "teacher's tuned layers)")
    student_layer: int = Field(-1, description="the student hidden state that learns it")
    sense_weight: Schedulable = Field(0.0, description="weight of the candidate-sense "
                                      "softmax term")
    sense_table: Literal["teacher", "learned"] = Field(
        "teacher", description="the sense vectors of that softmax: the teacher's SemCor means "
        "(fixed), or a table trained with the student from its own initial means (no teacher)")
    sense_target: Literal["gold", "teacher"] = Field(
        "gold", description="gold: cross-entropy with the gold sense; teacher: KL to the "
        "teacher vector's own softmax over the same candidates")
    temperature: Schedulable = Field(0.1, description="the sense softmax's logits are "
                                     "cos / temperature")
    table_lr: float = Field(1e-3, gt=0, description="learning rate of a learned table")
    eval_sets: list[str] = Field(default_factory=lambda: list(WSD_SETS),
                                 description="Raganato sets the student is scored on")
    cache_dir: str | None = Field(None, description="teacher target vectors, computed once "
                                  "(default: $LMDISTILL_CACHE/lexical)")

    @field_validator("kd_weight", "sense_weight", "temperature")
    @classmethod
    def _schedule_in_range(cls, v, info):
        return checked_schedule(v, info.field_name)

    @model_validator(mode="after")
    def _some_term(self):
        w = [make_schedule(x, total_steps=1) for x in (self.kd_weight, self.sense_weight)]
        if not any(s.start or s.end for s in w):
            raise ValueError("kd_weight and sense_weight are both 0: nothing to train")
        return self


class LexicalKDConfig(Strict):
    kind: Literal["lexical"] = "lexical"
    output_dir: str = "runs/lexical"
    data: DataConfig = Field(DataConfig(task="semcor", eval_split="heldout"),
                             description="task: the teacher's corpus (checked); limit: a "
                             "seeded subset of its training sentences; max_length: wordpieces")
    student: StudentConfig = StudentConfig(num_layers=2)
    lexical: LexicalSettings = LexicalSettings()
    train: TrainConfig = TrainConfig(lr=1e-4, epochs=1.0)


class L2ASettings(Strict):
    """L2A's generator, selector and rounds (``lmdistill l2a``)."""
    mlm: str | None = Field(None, description="masked LM of the generator (required)")
    source_task: str = Field("sst2", description="the resource-rich source domain")
    source_limit: int | None = Field(None, ge=1, description="seeded subset of the source rows")
    target_fraction: float = Field(1.0, gt=0, le=1, description="share of the target's "
                                                               "training rows available")
    reward_share: float = Field(0.3, gt=0, lt=1, description="share of the available target "
                                                             "rows held out for the reward")
    rounds: int = Field(3, ge=1)
    candidates: int = Field(64, ge=1, description="generated candidates per round")
    chain_length: int = Field(2, ge=1)
    mask_share: float = Field(0.15, gt=0, le=1)
    source_mix: float = Field(0.5, ge=0, le=1, description="share of chains started from "
                                                           "source samples")
    selector_lr: float = Field(0.1, gt=0)
    reward: Literal["influence", "metric"] = Field(
        "influence", description="influence: each candidate's estimated effect on the held-out "
                                 "target loss, known before the round acts (the selector fits "
                                 "them); metric: the round's change of the held-out metric, "
                                 "REINFORCE (the paper's)")
    selector_steps: int = Field(50, ge=1, description="reward=influence: the selector's "
                                                      "gradient steps per round")
    augmenter: Literal["l2a", "eda", "cbert", "random", "generated-all", "source",
                       "none"] = Field(
        "l2a", description="l2a: generator + selector rounds; the baselines, in the same "
                           "rounds: eda / cbert: augment_samples augmented target rows spread "
                           "over them; random: the generator's pool of each round (the same "
                           "as L2A's), augment_samples of it kept at random; generated-all: "
                           "every candidate of the pool kept; source: augment_samples "
                           "teacher-labelled source rows, no generation; none: the same "
                           "rounds without augmented rows (matched steps)")
    augment_samples: int | None = Field(None, ge=1, description="eda/cbert/random/source: "
                                        "augmented rows in all (default rounds x candidates; "
                                        "match L2A's kept_total)")
    generator_steps: int = Field(0, ge=0, description="> 0: before the rounds, the generator's "
                                 "masked LM (l2a.mlm, whole model) is trained for these steps "
                                 "on the source and available target texts (64-token blocks, "
                                 "batch 32), and its held-out masked-token accuracy reported")
    generator_lr: float = Field(1e-4, gt=0, description="the generator's MLM training lr")
    teacher_base: str = Field("minilm-l6", description="fine-tuned on source + target rows "
                                                       "when teacher.name is not given")


class L2AConfig(Strict):
    kind: Literal["l2a"] = "l2a"
    output_dir: str = "runs/l2a"
    data: DataConfig = DataConfig(task="rt")
    teacher: TeacherConfig = TeacherConfig()
    student: StudentConfig = StudentConfig(base="minilm-l6", num_layers=2)
    kd: KDConfig = KDConfig()
    l2a: L2ASettings = L2ASettings()
    teacher_train: TrainConfig = TrainConfig(lr=5e-5, epochs=2.0)
    train: TrainConfig = Field(TrainConfig(lr=1e-4, epochs=3.0, min_steps=50),
                               description="each round's student distillation (min_steps: "
                                           "a few dozen target rows are 2 steps an epoch)")
