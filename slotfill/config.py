"""Typed schemas for the Hydra configs in ``conf/``.

Each YAML option starts with ``defaults: [base_<x>, _self_]`` so a misspelt key or a value
of the wrong type fails when the config is composed, not an hour into training. Values that
a schema cannot express (allowed strings, ranges) are checked by :func:`validate_train`,
which the entry point calls before any data is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from slotfill.errors import ConfigError

DATA_FORMATS = ("jointbert", "conll", "iob")
DOWNLOADABLE = ("atis", "snips")
SCHEDULES = ("none", "plateau", "linear")


@dataclass
class DataConfig:
    """Where the data is and how to read it.

    ``format=jointbert`` reads ``dir/{train,dev,test}/{seq.in,seq.out,label}``; ``conll`` and
    ``iob`` read the files ``train``, ``dev``, ``test``. ``download`` names a benchmark that
    is fetched into ``dir`` when ``dir`` does not exist. ``cv_folds=k`` (k >= 2) cuts train
    into k fixed folds and holds out fold ``cv_fold`` as the dev split (the dataset's own dev
    split is then not read): ``data.cv_fold=0,1,...,k-1`` in a sweep is k-fold
    cross-validation (:func:`slotfill.data.loading.fold_indices`).
    """

    name: str = "custom"
    format: str = "jointbert"
    dir: Optional[str] = None
    train: Optional[str] = None
    dev: Optional[str] = None
    test: Optional[str] = None
    token_column: int = 0
    tag_column: int = -1
    delimiter: Optional[str] = None
    bio_repair: bool = True
    download: Optional[str] = None
    cv_folds: int = 0  # k >= 2: k-fold cross-validation over train; fold cv_fold is the dev split
    cv_fold: int = 0
    cv_seed: int = 0  # the shuffle that assigns utterances to folds (not the training seed)


@dataclass
class VocabConfig:
    lowercase: bool = True
    digits: str = "off"  # off | zero | token
    min_freq: int = 1
    unk_dropout: float = 0.5  # probability of replacing a training singleton by <unk>
    slot_unk_dropout: float = 0.0  # probability of replacing a word inside a gold slot by <unk>
    slot_swap: float = 0.0  # probability of swapping a gold slot's words for another value of its type


@dataclass
class ModelConfig:
    cell: str = "lstm"
    nonlinearity: str = "tanh"
    bidirectional: bool = True
    num_layers: int = 1
    hidden_size: int = 200
    embedding_dim: int = 100
    dropout: float = 0.5
    embedding_dropout: Optional[float] = None
    output_dropout: Optional[float] = None
    locked_dropout: bool = False  # one dropout mask per utterance, shared by its time steps
    context_window: int = 0
    pretrained_vectors: Optional[str] = None
    intent: str = "auto"  # auto (when the training data has intents) | on | off
    intent_loss_weight: float = 1.0
    head: str = "softmax"  # softmax | crf
    constrained_decoding: bool = False  # decode only BIO-valid tag sequences
    char_filters: int = 0  # character CNN features per word (0: none)
    char_dim: int = 30  # character embedding size
    char_kernel: int = 3  # characters per convolution window (odd)
    attention: bool = False  # self-attention over the encoder states; heads read [state ; context]
    lm_loss_weight: float = 0.0  # > 0: auxiliary next/previous-word loss on the first layer (training only)
    lm_vocab: int = 5000  # words that loss predicts, most frequent first (rarer ones: <unk>)
    lm_hidden: int = 50  # its tanh layer
    lm_cutoffs: list[int] = field(default_factory=list)  # adaptive softmax clusters from these words on ([]: full)
    intent_slot_bias: bool = False  # slot scores += softmax(intent scores) @ a learned (intents x tags) matrix


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    fused: Optional[bool] = None  # one fused kernel per step (CPU and CUDA); None: PyTorch's choice


@dataclass
class AdamWConfig(AdamConfig):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = 0.01


@dataclass
class SGDConfig:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False


@dataclass
class SchedulerConfig:
    name: str = "none"  # none | plateau | linear
    factor: float = 0.5  # plateau: lr *= factor
    patience: int = 2  # plateau: epochs without dev F1 gain before reducing
    min_lr: float = 0.0
    end_factor: float = 0.0  # linear: final lr / initial lr
    warmup_steps: int = 0  # linear: steps of linear warm-up before the decay


@dataclass
class LoggerConfig:
    tensorboard: bool = True
    log_every_n_steps: int = 50
    gradient_flow: bool = True  # measure dL_T/dh_t decay on dev at init and at the end
    gradient_flow_min_length: int = 20  # utterances at least this long are measured


@dataclass
class TrainerConfig:
    max_epochs: int = 50
    min_epochs: int = 1
    batch_size: int = 32
    eval_batch_size: int = 256
    lr: float = 1e-3
    clip_norm: Optional[float] = 5.0
    clip_value: Optional[float] = None
    patience: int = 8
    loss_reduction: str = "sum"
    max_skipped_steps: int = 10
    checkpoint_every_n_steps: int = 0  # also write last.pt every n steps (0: only at epoch ends)
    ema_decay: Optional[float] = None  # evaluate and keep an exponential moving average of the weights
    ensemble: int = 1  # > 1: train this many taggers (seeds seed*k .. seed*k+k-1) and decode their mean scores
    ensemble_jobs: int = 1  # ensemble members trained at once, each in its own process
    progress: Optional[bool] = None  # None: bars only when stderr is a terminal
    distill_from: list[str] = field(default_factory=list)  # teachers: checkpoints or run folders (slotfill.distill)
    distill_weight: float = 0.5  # each utterance's loss: (1 - w) gold + w teacher
    distill_temperature: float = 1.0  # the teacher's scores are divided by this before normalising


@dataclass
class TrainConfig:
    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    optim: Any = MISSING
    scheduler: SchedulerConfig = MISSING
    logger: LoggerConfig = MISSING
    vocab: VocabConfig = field(default_factory=VocabConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # torch intra-op threads; 0 leaves PyTorch's default (multirun: auto, see slotfill.sweep)
    lstm_kernel: str = "auto"  # auto | slotfill | torch (slotfill.model.lstm_kernel)
    resume: Optional[str] = None  # run folder or last.pt to continue; "auto": this run's own last.pt


@dataclass
class EvalConfig:
    ckpt_path: Any = MISSING  # a checkpoint or run folder, or a list of them: decoded as one ensemble
    data: Optional[DataConfig] = None  # None: the data the checkpoint was trained on
    split: str = "test"
    file: Optional[str] = None  # score this file (or JointBERT split folder) instead of a split
    text: Optional[str] = None  # tag this sentence ("-" reads sentences from stdin)
    batch_size: int = 256
    device: str = "auto"
    strict: bool = False  # also print the strict IOB2 report
    constrained: Optional[bool] = None  # BIO-constrained decoding; None: as the model was trained
    lstm_kernel: Optional[str] = None  # auto | slotfill | torch; None: the one the checkpoint was trained with


@dataclass
class ExportConfig:
    ckpt_path: Any = MISSING  # a checkpoint or run folder, or a list of them: exported as one ensemble
    format: str = "onnx"  # onnx | torchscript
    out_dir: Optional[str] = None  # None: <checkpoint dir>/export-<format>/


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="base_train", node=TrainConfig)
    cs.store(name="base_eval", node=EvalConfig)
    cs.store(name="base_export", node=ExportConfig)
    cs.store(group="data", name="base_data", node=DataConfig)
    cs.store(group="model", name="base_model", node=ModelConfig)
    cs.store(group="optim", name="base_adam", node=AdamConfig)
    cs.store(group="optim", name="base_adamw", node=AdamWConfig)
    cs.store(group="optim", name="base_sgd", node=SGDConfig)
    cs.store(group="scheduler", name="base_scheduler", node=SchedulerConfig)
    cs.store(group="logger", name="base_logger", node=LoggerConfig)


register_configs()


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _probability(value: float | None, key: str) -> None:
    if value is not None:
        _check(0.0 <= value < 1.0, f"{key}={value} is outside [0, 1): use a probability such as 0.3")


def validate_data(data: DictConfig | DataConfig, splits: tuple[str, ...] = ("train", "dev", "test")) -> None:
    """Check a data config's values (not the files) for reading ``splits``."""

    def unset(key: str) -> bool:
        return (isinstance(data, DictConfig) and OmegaConf.is_missing(data, key)) or not data[key]

    _check(data.format in DATA_FORMATS, f"data.format={data.format!r} is unknown: use one of {', '.join(DATA_FORMATS)}")
    from slotfill.data.loading import cv_folds, source_splits

    folds = cv_folds(data)
    if folds:
        _check(folds >= 2, f"data.cv_folds={folds} must be >= 2 (or 0 for the dataset's own dev split)")
        _check(0 <= data.cv_fold < folds, f"data.cv_fold={data.cv_fold} must be in [0, {folds - 1}] (0 to data.cv_folds - 1)")
    splits = source_splits(data, splits)  # with folds, dev comes from train: its own file is not read
    if data.format == "jointbert":
        _check(not splits or not unset("dir"), "data.dir is not set: point it at a folder with train/, dev/, test/ (e.g. data.dir=path/to/atis)")
    else:
        for split in splits:
            _check(not unset(split), f"data.{split} is not set: data.format={data.format} reads one file per split (data.{split}=PATH)")
    if data.download is not None:
        _check(data.download in DOWNLOADABLE, f"data.download={data.download!r} is unknown: use one of {', '.join(DOWNLOADABLE)} or null")


def validate_train(cfg: DictConfig) -> None:
    """Fail fast, before any data is read, on values the schemas cannot rule out."""
    from slotfill.model import CELLS, HEADS, LOSS_REDUCTIONS, NONLINEARITIES
    from slotfill.model.lstm_kernel import KERNELS
    from slotfill.vocab import DIGIT_MODES

    m, t, v = cfg.model, cfg.trainer, cfg.vocab
    validate_data(cfg.data)
    _check(m.cell in CELLS, f"model.cell={m.cell!r} is unknown: use one of {', '.join(CELLS)}")
    _check(m.nonlinearity in NONLINEARITIES, f"model.nonlinearity={m.nonlinearity!r} is unknown: use tanh or relu")
    _check(m.head in HEADS, f"model.head={m.head!r} is unknown: use softmax or crf")
    _check(m.intent in ("auto", "on", "off"), f"model.intent={m.intent!r} is unknown: use auto, on or off")
    for key in ("num_layers", "hidden_size", "embedding_dim"):
        _check(m[key] >= 1, f"model.{key}={m[key]} must be a positive integer")
    _check(m.context_window >= 0, f"model.context_window={m.context_window} must be >= 0")
    _check(m.char_filters >= 0, f"model.char_filters={m.char_filters} must be >= 0 (0 turns character features off)")
    if m.char_filters:
        _check(m.char_dim >= 1, f"model.char_dim={m.char_dim} must be a positive integer")
        _check(m.char_kernel >= 1 and m.char_kernel % 2 == 1, f"model.char_kernel={m.char_kernel} must be odd and positive")
    for key in ("dropout", "embedding_dropout", "output_dropout"):
        _probability(m[key], f"model.{key}")
    _check(m.lm_loss_weight >= 0 and math.isfinite(m.lm_loss_weight), f"model.lm_loss_weight={m.lm_loss_weight} must be >= 0 (0 turns the language-model loss off)")
    if m.lm_loss_weight:
        _check(m.lm_vocab >= 2, f"model.lm_vocab={m.lm_vocab} must be >= 2")
        _check(m.lm_hidden >= 1, f"model.lm_hidden={m.lm_hidden} must be a positive integer")
        cutoffs = list(m.lm_cutoffs)
        _check(
            all(c >= 1 for c in cutoffs) and cutoffs == sorted(set(cutoffs)) and all(c < m.lm_vocab for c in cutoffs),
            f"model.lm_cutoffs={cutoffs} must be increasing positive integers below model.lm_vocab={m.lm_vocab}, "
            "e.g. [200,1000] (or [] for a full softmax)",
        )
    if m.pretrained_vectors:
        _check(Path(m.pretrained_vectors).is_file(), f"model.pretrained_vectors={m.pretrained_vectors} does not exist")
    _check(v.digits in DIGIT_MODES, f"vocab.digits={v.digits!r} is unknown: use one of {', '.join(DIGIT_MODES)}")
    _check(v.min_freq >= 1, f"vocab.min_freq={v.min_freq} must be >= 1")
    _probability(v.unk_dropout, "vocab.unk_dropout")
    _probability(v.slot_unk_dropout, "vocab.slot_unk_dropout")
    _probability(v.slot_swap, "vocab.slot_swap")
    _check(t.max_epochs >= 1, f"trainer.max_epochs={t.max_epochs} must be >= 1")
    _check(1 <= t.min_epochs <= t.max_epochs, f"trainer.min_epochs={t.min_epochs} must be in [1, trainer.max_epochs]")
    _check(t.batch_size >= 1 and t.eval_batch_size >= 1, "trainer.batch_size and trainer.eval_batch_size must be >= 1")
    _check(t.lr > 0 and math.isfinite(t.lr), f"trainer.lr={t.lr} must be a positive number")
    _check(t.clip_norm is None or t.clip_norm > 0, f"trainer.clip_norm={t.clip_norm} must be > 0, or null to turn clipping off")
    _check(t.clip_value is None or t.clip_value > 0, f"trainer.clip_value={t.clip_value} must be > 0, or null")
    _check(t.ema_decay is None or 0 < t.ema_decay < 1, f"trainer.ema_decay={t.ema_decay} must be in (0, 1), or null for no averaging")
    _check(t.ensemble >= 1, f"trainer.ensemble={t.ensemble} must be >= 1 (1: a single tagger)")
    _check(t.ensemble_jobs >= 1, f"trainer.ensemble_jobs={t.ensemble_jobs} must be >= 1")
    _check(t.patience >= 1, f"trainer.patience={t.patience} must be >= 1")
    _check(0.0 <= t.distill_weight <= 1.0, f"trainer.distill_weight={t.distill_weight} must be in [0, 1] (the teacher's share of the loss)")
    _check(t.distill_temperature > 0 and math.isfinite(t.distill_temperature), f"trainer.distill_temperature={t.distill_temperature} must be a positive number (1: the teacher's own distribution)")
    if t.distill_from:
        from slotfill.distill import teacher_file

        for path in t.distill_from:
            teacher_file(path)
    _check(t.max_skipped_steps >= 1, f"trainer.max_skipped_steps={t.max_skipped_steps} must be >= 1")
    _check(t.checkpoint_every_n_steps >= 0, f"trainer.checkpoint_every_n_steps={t.checkpoint_every_n_steps} must be >= 0")
    _check(t.loss_reduction in LOSS_REDUCTIONS, f"trainer.loss_reduction={t.loss_reduction!r} is unknown: use sum or mean")
    _check(cfg.scheduler.name in SCHEDULES, f"scheduler.name={cfg.scheduler.name!r} is unknown: use one of {', '.join(SCHEDULES)}")
    _check(cfg.device in ("auto", "cpu", "cuda") or str(cfg.device).startswith("cuda:"), f"device={cfg.device!r} is unknown: use auto, cpu or cuda")
    _check(cfg.logger.gradient_flow_min_length >= 2, f"logger.gradient_flow_min_length={cfg.logger.gradient_flow_min_length} must be >= 2")
    _check(cfg.threads >= 0, f"threads={cfg.threads} must be >= 0")
    _check(cfg.lstm_kernel in KERNELS, f"lstm_kernel={cfg.lstm_kernel!r} is unknown: use one of {', '.join(KERNELS)}")
