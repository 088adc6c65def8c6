"""The trainer: the only library module that reads the Hydra config.

``train(cfg, output_dir)`` builds everything from the config, trains with early stopping on
dev slot F1, scores test once at the best-dev checkpoint, and writes the run folder:

    output_dir/
      config.yaml              resolved config
      results.json             dev/test metrics and run statistics
      checkpoints/best.pt      best dev slot F1 (what evaluate.py loads)
      checkpoints/last.pt      end of the latest epoch, with optimizer state
      predictions/{dev,test}.conll   token gold predicted
      tensorboard/             events (train/loss, val/f1, lr, grad_norm, ...)
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

import slotfill
from slotfill.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from slotfill.config import validate_train
from slotfill.data.batching import EncodedSplit, SlotSwap, slot_unk_dropout, unk_dropout
from slotfill.data.loading import load_splits
from slotfill.errors import ConfigError, SlotfillError
from slotfill.evaluation import predict, score, score_both_decodings, unseen_gold_tags, write_predictions
from slotfill.gradflow import gradient_flow
from slotfill.machine import describe_environment, environment
from slotfill.model import Tagger, lstm_kernel, read_vectors
from slotfill.model.encoder import use_kernel
from slotfill.vocab import LabelSet, Normalizer, TagSet, Vocab

log = logging.getLogger(__name__)


def clip_grad_norm(parameters: Iterable[torch.Tensor], max_norm: float | None) -> torch.Tensor:
    """Clip by global L2 norm and return the norm before clipping.

    ``||g||`` is taken over all gradients together; when it exceeds ``max_norm`` every
    gradient is multiplied by exactly ``max_norm / ||g||`` (no epsilon), otherwise left as is.
    ``max_norm=None`` only measures.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm([g.detach() for g in grads])))
    total = float(norm)
    if max_norm is not None and math.isfinite(total) and total > max_norm:
        torch._foreach_mul_(grads, max_norm / total)
    return norm


class WeightAverage:
    """An exponential moving average of a model's parameters (Polyak averaging).

    After optimizer step ``n`` every averaged parameter moves toward the live one:
    ``avg <- avg + (1 - d) (param - avg)`` with ``d = min(decay, (1 + n) / (10 + n))``, so
    the first steps, whose weights are far from the end point, fade out quickly. The
    average is a full copy of the model (eval mode, no gradients) that dev scoring, the
    best checkpoint and the final test use; training itself only ever updates the live model.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self._average = list(self.model.parameters())
        self._live = list(model.parameters())

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold in the live weights after optimizer step ``step`` (1, 2, ...)."""
        decay = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self._average, self._live, 1.0 - decay)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available: use device=cpu or device=auto")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_writable(output_dir: Path) -> None:
    """Fail now, not after training, when the run folder cannot be written."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".write-test"
        with probe.open("wb") as handle:
            handle.write(b"\0" * 65536)
            handle.flush()
            os.fsync(handle.fileno())
        probe.unlink()
    except OSError as err:
        raise SlotfillError(f"{output_dir}: cannot write the run folder ({err.strerror}) -- choose another hydra.run.dir or free space") from None


def build_model(cfg: DictConfig, vocab: Vocab, tagset: TagSet, labels: LabelSet | None) -> Tagger:
    m = cfg.model
    if m.intent_slot_bias and labels is None:
        raise ConfigError(
            f"model.intent_slot_bias=true needs an intent head, and this run has none (model.intent={m.intent}"
            f"{'' if m.intent == 'off' else ', and the training data has no intents'}) -- set model.intent_slot_bias=false"
        )
    model = Tagger(
        vocab_size=len(vocab),
        num_tags=len(tagset),
        num_intents=len(labels) if labels is not None else 0,
        embedding_dim=m.embedding_dim,
        hidden_size=m.hidden_size,
        cell=m.cell,
        nonlinearity=m.nonlinearity,
        bidirectional=m.bidirectional,
        num_layers=m.num_layers,
        dropout=m.dropout,
        embedding_dropout=m.embedding_dropout,
        output_dropout=m.output_dropout,
        locked_dropout=m.locked_dropout,
        context_window=m.context_window,
        intent_loss_weight=m.intent_loss_weight,
        head=m.head,
        constrained_decoding=m.constrained_decoding,
        num_chars=len(vocab.chars) if m.char_filters else 0,
        char_dim=m.char_dim,
        char_filters=m.char_filters,
        char_kernel=m.char_kernel,
        attention=m.attention,
        lm_loss_weight=m.lm_loss_weight,
        lm_vocab=m.lm_vocab,
        lm_hidden=m.lm_hidden,
        lm_cutoffs=list(m.lm_cutoffs),
        intent_slot_bias=m.intent_slot_bias,
    )
    model.set_tag_constraints(tagset.itos)
    if m.pretrained_vectors:
        weights, found, _ = read_vectors(m.pretrained_vectors, vocab, m.embedding_dim)
        model.words.load_vectors(weights, found)
    return model


def intent_labels(mode: str, train: list) -> LabelSet | None:
    """The intent labels of a joint intent head under ``model.intent`` = ``mode`` (auto/on/off), or ``None``."""
    has_intents = all(ex.intent is not None for ex in train)
    if mode == "off" or (mode == "auto" and not has_intents):
        return None
    if not has_intents:
        raise ConfigError("model.intent=on but the training data has no intents (no label file): use model.intent=auto or off")
    return LabelSet.build(ex.intent for ex in train)


def _build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer, steps: int):
    s = cfg.scheduler
    if s.name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=s.factor, patience=s.patience, min_lr=s.min_lr
        )
    if s.name == "linear":
        warmup = s.warmup_steps
        decay = max(1, steps - warmup)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return max(s.end_factor, 1.0 - (1.0 - s.end_factor) * (step - warmup) / decay)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return None


def _flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for section in ("model", "trainer", "vocab", "optim", "scheduler"):
        for key, value in OmegaConf.to_container(cfg[section], resolve=True).items():
            if isinstance(value, (int, float, str, bool)):
                flat[f"{section}.{key}"] = value
            elif isinstance(value, list) and all(isinstance(v, (int, float, str, bool)) for v in value):
                flat[f"{section}.{key}"] = str(value)  # e.g. model.lm_cutoffs, optim.betas
    flat["data.name"] = cfg.data.name
    flat["seed"] = cfg.seed
    return flat


def describe(model: Tagger) -> str:
    h = model.hparams
    name = {"rnn": f"Elman RNN ({h['nonlinearity']})", "gru": "GRU", "lstm": "LSTM"}[h["cell"]]
    direction = "bidirectional" if h["bidirectional"] else "unidirectional"
    params = sum(p.numel() for p in model.parameters())
    extra = f", context +-{h['context_window']}" if h["context_window"] else ""
    extra += ", self-attention" if h["attention"] else ""
    extra += ", locked (variational) dropout" if h["locked_dropout"] else ""
    extra += f", language-model loss x{h['lm_loss_weight']:g}" if h["lm_loss_weight"] else ""
    cutoffs = model.lm.cutoffs if model.lm is not None else []  # as built: those past the vocabulary are dropped
    extra += f" (adaptive softmax, clusters from words {', '.join(map(str, cutoffs))})" if cutoffs else ""
    extra += ", intent-conditioned slot bias" if h["intent_slot_bias"] else ""
    intent = f", intent head ({h['num_intents']} intents)" if h["num_intents"] else ""
    return (
        f"{direction} {h['num_layers']}-layer {name}, hidden {h['hidden_size']}, "
        f"embeddings {h['embedding_dim']}{extra}{intent}: {params:,} parameters"
    )


class TrainingDiverged(SlotfillError):
    """Too many consecutive non-finite steps; the best model so far was still scored."""

    exit_code = 3


class TrainingInterrupted(SlotfillError):
    """A stop signal arrived; the state was saved and the run can be resumed."""

    def __init__(self, signum: int, output_dir: Path):
        self.signum = signum
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name}: state saved in {output_dir / 'checkpoints' / 'last.pt'}; "
            f"resume with: python train.py resume={output_dir}"
        )


class _StopSignals:
    """Turns SIGINT/SIGTERM/SIGUSR1 into a flag that the loop checks after each step.

    The handler only records the signal: the step in flight finishes, the loop saves a
    checkpoint and then calls :meth:`deliver`, which hands the signal to whatever handler
    was installed before (submitit's requeue handler on Slurm) or raises
    :class:`TrainingInterrupted`. Outside the main thread no handler can be installed and
    signals keep their usual effect.
    """

    NAMES = ("SIGINT", "SIGTERM", "SIGUSR1")

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for name in self.NAMES:
                signum = getattr(signal, name, None)
                if signum is not None:
                    self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        # Only record: logging here could re-enter a write the signal interrupted (and an
        # ensemble's parent sends the signal again until the member stops).
        if self.received is None:
            self.received = signum

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def __exit__(self, *exc: Any) -> None:
        self.restore()

    def deliver(self, output_dir: Path) -> None:
        signum = self.received
        assert signum is not None
        log.warning("received %s: the step in flight finished and the state is saved", signal.Signals(signum).name)
        handler = self.previous.get(signum)
        self.restore()
        if callable(handler) and handler is not signal.default_int_handler:
            handler(signum, None)  # e.g. submitit: requeue the job, which resumes with resume=auto
        raise TrainingInterrupted(signum, output_dir)


@dataclass
class LoopState:
    """Everything besides model/optimizer/RNG state that an exact resume needs."""

    epoch: int = 1  # the epoch in progress (1-based)
    batch_in_epoch: int = 0  # batches of that epoch already done (skipped ones included)
    step: int = 0  # optimizer steps taken
    best_f1: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    skipped: int = 0
    consecutive_skipped: int = 0
    clipped: int = 0
    train_tokens: int = 0
    train_seconds: float = 0.0
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
    epoch_norm_sum: float = 0.0
    epoch_tokens: int = 0
    epoch_seconds: float = 0.0
    stop_reason: str = ""
    finished: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    gradient_flow_init: dict[str, Any] | None = None

    def start_epoch(self) -> None:
        self.batch_in_epoch = 0
        self.epoch_loss_sum = self.epoch_norm_sum = self.epoch_seconds = 0.0
        self.epoch_loss_count = self.epoch_tokens = 0


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "batches": generator.get_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["batches"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def find_resume_checkpoint(resume: str, output_dir: Path) -> Path | None:
    """The ``last.pt`` that ``resume=`` names (``auto``: this run's own, if any)."""
    if resume == "auto":
        candidate = output_dir / "checkpoints" / "last.pt"
        return candidate if candidate.is_file() else None
    path = Path(resume)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "last.pt", path / "last.pt"):
            if candidate.is_file():
                return candidate
        raise SlotfillError(f"{path}: no checkpoints/last.pt to resume from -- pass resume=<run dir> of an interrupted run")
    if not path.is_file():
        raise SlotfillError(f"resume={resume}: no such run folder or checkpoint")
    return path


def load_resume_state(path: Path) -> dict[str, Any]:
    state = load_checkpoint(path)
    if "loop_state" not in state:
        raise SlotfillError(f"{path}: holds weights only, no training state -- resume from <run dir>/checkpoints/last.pt")
    return state


def with_schema_defaults(saved: DictConfig) -> DictConfig:
    """A config saved by an earlier slotfill, completed with the options added since, at their
    schema defaults (which is what that run trained with)."""
    from slotfill import config as schema

    # Every group with a structured schema (optim is a free-form partial, so it has none).
    groups = {"data": schema.DataConfig, "model": schema.ModelConfig, "scheduler": schema.SchedulerConfig,
              "logger": schema.LoggerConfig, "vocab": schema.VocabConfig, "trainer": schema.TrainerConfig}
    base = OmegaConf.create({name: OmegaConf.to_container(OmegaConf.structured(node)) for name, node in groups.items()})
    return OmegaConf.merge(base, saved)


def run(cfg: DictConfig, output_dir: str | Path) -> dict[str, Any]:
    """Train as ``cfg`` says, or continue the run that ``cfg.resume`` names.

    A resumed run takes its config from the checkpoint (the command line's other values are
    not used) and writes into its original run folder.
    """
    output_dir = Path(output_dir)
    resume = cfg.get("resume")
    named = Path(resume) if resume and resume != "auto" else None
    if cfg.trainer.ensemble > 1 or (named is not None and (named / "members").is_dir()):
        from slotfill.ensemble import train_ensemble

        if named is not None:  # the ensemble's folder: finished members stay, the others resume
            output_dir = named
            if not (output_dir / "config.yaml").is_file():
                raise SlotfillError(f"resume={resume}: not an ensemble run folder (no config.yaml) -- pass the folder of an interrupted ensemble run")
            cfg = with_schema_defaults(OmegaConf.load(output_dir / "config.yaml"))
            log.info("resuming the ensemble in %s with its saved config", output_dir)
        validate_train(cfg)
        return train_ensemble(cfg, output_dir)
    if not resume:
        return train(cfg, output_dir)
    path = find_resume_checkpoint(str(resume), output_dir)
    if path is None:  # resume=auto and nothing to resume: a fresh run
        return train(cfg, output_dir)
    state = load_resume_state(path)
    if state["loop_state"]["finished"]:
        raise SlotfillError(f"{path}: that run has finished; nothing to resume (its results are in {path.parent.parent / 'results.json'})")
    saved = with_schema_defaults(OmegaConf.create(state["config"]))
    saved.resume = str(resume)
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    log.info("resuming %s from %s with the run's saved config", run_dir, path)
    return train(saved, run_dir, resume_state=state)


def train(
    cfg: DictConfig,
    output_dir: str | Path,
    resume_state: dict[str, Any] | None = None,
    epoch_callback: Callable[[Tagger, int], None] | None = None,
) -> dict[str, Any]:
    """Train, select on dev, test once; returns the ``results.json`` content.

    Args:
        cfg: the composed train config.
        output_dir: the run folder.
        resume_state: a ``last.pt`` checkpoint (see :func:`load_resume_state`) to continue
            exactly where it stopped; ``cfg`` must then be that run's config.
        epoch_callback: called as ``epoch_callback(model, epoch)`` at the end of every
            epoch, after its dev evaluation and ``history`` entry and outside the timed part
            (it does not count in ``seconds``). It sees the model dev scored (the weight
            average with ``trainer.ema_decay``, else the live model) and must leave its
            weights, mode and the RNG state as it found them (e.g. ``slotfill.bench``
            scores test after every epoch with :func:`slotfill.evaluation.predict`).
    """
    validate_train(cfg)
    output_dir = Path(output_dir)
    check_writable(output_dir)
    t = cfg.trainer
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")

    splits = load_splits(cfg.data)
    train_ex, dev_ex, test_ex = splits["train"], splits["dev"], splits["test"]
    normalizer = Normalizer(lowercase=cfg.vocab.lowercase, digits=cfg.vocab.digits)
    vocab = Vocab.build((ex.tokens for ex in train_ex), normalizer, cfg.vocab.min_freq, chars=cfg.model.char_filters > 0)
    tagset = TagSet.build(ex.tags for ex in train_ex)
    labels = intent_labels(cfg.model.intent, train_ex)
    if resume_state is not None:
        if resume_state["vocab"]["itos"] != vocab.itos or resume_state["vocab"].get("chars") != vocab.chars or resume_state["tags"] != tagset.itos:
            raise SlotfillError("the training data changed since the run was interrupted (vocabulary or tags differ); cannot resume exactly -- start a new run")
    for name, examples in (("dev", dev_ex), ("test", test_ex)):
        unseen = unseen_gold_tags(examples, tagset)
        if unseen:
            log.warning("%s has %d gold tag(s) never seen in training; they count as misses: %s", name, len(unseen), " ".join(unseen))
    log.info("vocabulary %d words, %d slot tags, %s", len(vocab), len(tagset), f"{len(labels)} intents" if labels else "no intents")

    model = build_model(cfg, vocab, tagset, labels).to(device)
    if resume_state is None:
        kernel = lstm_kernel.resolve(cfg.lstm_kernel, cfg.model.cell, device, cfg.threads, cfg.model.bidirectional)
    else:  # the interrupted run's kernel, to continue exactly (PyTorch's, with a warning, where it cannot build)
        recorded = resume_state.get("lstm_kernel", "torch")
        kernel = lstm_kernel.for_checkpoint(recorded, None, cfg.model.cell, device, cfg.model.bidirectional)
        if kernel != recorded:
            log.warning("the interrupted run trained with slotfill's LSTM kernel and continues with PyTorch's: "
                        "the rest of its trajectory will differ in rounding from an uninterrupted run")
    use_kernel(model, kernel)
    params = sum(p.numel() for p in model.parameters())
    log.info("model: %s%s", describe(model), f"; LSTM kernel: {kernel}" if cfg.model.cell == "lstm" else "")
    env = environment()
    log.info("machine: %s", describe_environment(env))
    log.info(
        "training: %s lr=%g batch=%d loss=%s clip_norm=%s clip_value=%s scheduler=%s ema_decay=%s "
        "unk_dropout=%g slot_unk_dropout=%g slot_swap=%g device=%s seed=%d",
        cfg.optim._target_.rsplit(".", 1)[-1], t.lr, t.batch_size, t.loss_reduction, t.clip_norm, t.clip_value,
        cfg.scheduler.name, t.ema_decay, cfg.vocab.unk_dropout, cfg.vocab.slot_unk_dropout, cfg.vocab.slot_swap,
        device, cfg.seed,
    )

    train_data = EncodedSplit(train_ex, vocab, tagset, labels)
    soft = None
    if t.distill_from:
        from slotfill import distill

        soft = distill.soft_targets(
            t.distill_from, cfg.data, train_ex, tagset, labels, t.distill_weight, t.eval_batch_size, t.distill_temperature
        )
        log.info("%s", distill.describe(soft, t.distill_from))
    swap = SlotSwap(train_data) if cfg.vocab.slot_swap > 0 else None
    dev_data = EncodedSplit(dev_ex, vocab)
    rare = torch.tensor(vocab.rare_mask(), dtype=torch.bool)
    generator = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(len(train_data) / t.batch_size)
    optimizer = instantiate(cfg.optim)(model.parameters(), lr=t.lr)
    scheduler = _build_scheduler(cfg, optimizer, steps_per_epoch * t.max_epochs)

    average = WeightAverage(model, t.ema_decay) if t.ema_decay else None
    scored = model if average is None else average.model  # the weights dev, best.pt and test see
    state = LoopState()
    epoch_generator_state = generator.get_state()
    if resume_state is not None:
        model.load_state_dict(resume_state["model_state"])
        if average is not None:
            average.model.load_state_dict(resume_state["average_state"])
        optimizer.load_state_dict(resume_state["optimizer_state"])
        if scheduler is not None and resume_state.get("scheduler_state") is not None:
            scheduler.load_state_dict(resume_state["scheduler_state"])
        state = LoopState(**resume_state["loop_state"])
        _set_rng_state(resume_state["rng_state"], generator)
        epoch_generator_state = resume_state["epoch_generator_state"]
        log.info("resumed at epoch %d, batch %d (step %d; best dev F1 %.4f at epoch %d)",
                 state.epoch, state.batch_in_epoch, state.step, state.best_f1, state.best_epoch)

    writer = None
    if cfg.logger.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events logged after the checkpoint a resumed run starts from
        writer = SummaryWriter(log_dir=str(output_dir / "tensorboard"), purge_step=state.step if resume_state else None)
        if resume_state is None:
            writer.add_text("config", "```\n" + OmegaConf.to_yaml(cfg, resolve=True) + "\n```")
            writer.add_text("model", describe(model))

    ckpt_dir = output_dir / "checkpoints"
    base_state = {
        "format_version": FORMAT_VERSION,
        "slotfill_version": slotfill.__version__,
        "model_args": dict(model.hparams),
        "vocab": vocab.to_state(),
        "tags": tagset.to_state(),
        "intents": labels.to_state() if labels else None,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "lstm_kernel": kernel,
    }

    def save_last() -> None:
        save_checkpoint(
            {
                **base_state,
                "model_state": model.state_dict(),
                "average_state": None if average is None else average.model.state_dict(),
                "epoch": state.epoch,
                "best_f1": state.best_f1,
                "optimizer_state": optimizer.state_dict(),
                "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
                "loop_state": asdict(state),
                "rng_state": _rng_state(generator),
                "epoch_generator_state": epoch_generator_state,
            },
            ckpt_dir / "last.pt",
        )

    def measure_gradient_flow(when: str) -> dict[str, Any] | None:
        if not cfg.logger.gradient_flow:
            return None
        flow = gradient_flow(model, dev_data, tagset, min_length=cfg.logger.gradient_flow_min_length)
        decay = flow["forward"]["decay"]
        if decay is not None:
            log.info("gradient flow (%s, %d dev utterances of >= %d tokens): ||dL_T/dh_t|| changes by x%.3f per step back",
                     when, flow["utterances"], flow["min_length"], math.exp(decay))
            if writer is not None:
                writer.add_scalar(f"gradient_flow/{when}_decay", decay, state.step)
                for k, norm in enumerate(flow["forward"]["norms"]):
                    writer.add_scalar(f"gradient_flow/{when}_norm_by_distance", norm, k)
        return flow

    if resume_state is None:
        state.gradient_flow_init = measure_gradient_flow("init")

    show = sys.stderr.isatty() if t.progress is None else bool(t.progress)
    every = t.checkpoint_every_n_steps
    with _StopSignals() as stop:
        epoch_bar = tqdm(range(state.epoch, t.max_epochs + 1), desc="epochs", disable=not show, leave=False)
        for epoch in epoch_bar:
            if state.finished:
                break
            state.epoch = epoch
            model.train()
            started = time.perf_counter()  # building the epoch's batches counts as training time
            if state.batch_in_epoch == 0:
                state.start_epoch()
                epoch_generator_state = generator.get_state()
                batches = train_data.batches(t.batch_size, generator)
            else:  # resumed mid-epoch: rebuild this epoch's batches, then continue the RNG stream
                current = generator.get_state()
                generator.set_state(epoch_generator_state)
                batches = train_data.batches(t.batch_size, generator)
                generator.set_state(current)
            bar = tqdm(batches, desc=f"epoch {epoch}", disable=not show, leave=False, initial=state.batch_in_epoch)
            for index, batch in enumerate(bar):
                if index < state.batch_in_epoch:
                    continue
                read, chars = batch.words, batch.chars
                if swap is not None:
                    read, chars = swap(batch, cfg.vocab.slot_swap, generator)
                words = unk_dropout(read, rare, cfg.vocab.unk_dropout, generator)
                words = slot_unk_dropout(words, batch.tags, cfg.vocab.slot_unk_dropout, generator)
                out = model(
                    words.to(device), batch.lengths,
                    batch.tags.to(device), None if batch.intents is None else batch.intents.to(device),
                    reduction=t.loss_reduction, chars=None if chars is None else chars.to(device),
                    lm_words=None if model.lm is None else read.to(device),
                    soft=None if soft is None else soft.batch(batch.index, batch.words.size(1), device),
                )
                loss = out["loss"]
                optimizer.zero_grad(set_to_none=True)
                if torch.isfinite(loss):
                    loss.backward()
                    norm = clip_grad_norm(model.parameters(), t.clip_norm)
                else:
                    norm = torch.tensor(float("nan"))
                state.batch_in_epoch = index + 1
                stepped = False
                norm_value = float(norm)  # one host sync per step, reused below
                if not math.isfinite(norm_value):
                    state.skipped += 1
                    state.consecutive_skipped += 1
                    optimizer.zero_grad(set_to_none=True)
                    log.warning("epoch %d step %d: non-finite loss or gradient, step skipped (%d in a row)",
                                epoch, state.step, state.consecutive_skipped)
                    if state.consecutive_skipped >= t.max_skipped_steps:
                        state.stop_reason = "non_finite"
                        break
                else:
                    state.consecutive_skipped = 0
                    if t.clip_norm is not None and norm_value > t.clip_norm:
                        state.clipped += 1
                    if t.clip_value is not None:
                        torch.nn.utils.clip_grad_value_(model.parameters(), t.clip_value)
                    optimizer.step()
                    if scheduler is not None and cfg.scheduler.name == "linear":
                        scheduler.step()
                    state.step += 1
                    if average is not None:
                        average.update(state.step)
                    stepped = True
                    loss_value = float(loss.detach())
                    state.epoch_loss_sum += loss_value
                    state.epoch_loss_count += 1
                    state.epoch_norm_sum += norm_value
                    state.epoch_tokens += batch.num_tokens
                    if writer is not None and state.step % cfg.logger.log_every_n_steps == 0:
                        writer.add_scalar("train/loss", loss_value, state.step)
                        writer.add_scalar("grad_norm", norm_value, state.step)
                        writer.add_scalar("lr", optimizer.param_groups[0]["lr"], state.step)
                        writer.add_scalar("train/skipped_steps", state.skipped, state.step)
                periodic = every and stepped and state.step % every == 0 and index + 1 < len(batches)
                if stop.received is not None or periodic:
                    state.epoch_seconds += time.perf_counter() - started
                    started = time.perf_counter()
                    save_last()
                    if stop.received is not None:
                        if writer is not None:
                            writer.close()
                        stop.deliver(output_dir)
            bar.close()
            seconds = state.epoch_seconds + time.perf_counter() - started
            state.train_seconds += seconds
            state.train_tokens += state.epoch_tokens
            if state.stop_reason == "non_finite":
                log.error(
                    "training stopped: %d consecutive steps had a non-finite loss or gradient "
                    "(lower trainer.lr or set trainer.clip_norm); keeping the best checkpoint so far",
                    state.consecutive_skipped,
                )
                break

            dev_scores = score(dev_ex, predict(scored, dev_data, vocab, tagset, labels, t.eval_batch_size, device))
            finite = all(torch.isfinite(p).all() for p in scored.parameters())
            improved = finite and dev_scores["f1"] > state.best_f1
            if improved:
                state.best_f1, state.best_epoch, state.bad_epochs = dev_scores["f1"], epoch, 0
                save_checkpoint(
                    {**base_state, "model_state": scored.state_dict(), "epoch": epoch, "best_f1": state.best_f1},
                    ckpt_dir / "best.pt",
                )
            else:
                state.bad_epochs += 1
            if scheduler is not None and cfg.scheduler.name == "plateau":
                scheduler.step(dev_scores["f1"])
            mean_loss = state.epoch_loss_sum / max(state.epoch_loss_count, 1)
            tokens_per_second = state.epoch_tokens / seconds if seconds > 0 else 0.0
            clipped_fraction = state.clipped / state.step if state.step else 0.0
            state.history.append({"epoch": epoch, "train_loss": mean_loss, "dev_f1": dev_scores["f1"], "seconds": seconds})
            if epoch_callback is not None:
                epoch_callback(scored, epoch)
            log.info(
                "epoch %3d  loss %.4f  grad_norm %.2f  dev F1 %.4f (P %.4f R %.4f)%s  %.1fs  %.0f tok/s",
                epoch, mean_loss, state.epoch_norm_sum / max(state.epoch_loss_count, 1), dev_scores["f1"],
                dev_scores["precision"], dev_scores["recall"], "  *best*" if improved else "", seconds, tokens_per_second,
            )
            epoch_bar.set_postfix(dev_f1=f"{dev_scores['f1']:.4f}", best=f"{state.best_f1:.4f}")
            if writer is not None:
                writer.add_scalar("train/epoch_loss", mean_loss, epoch)
                writer.add_scalar("val/f1", dev_scores["f1"], epoch)
                writer.add_scalar("val/precision", dev_scores["precision"], epoch)
                writer.add_scalar("val/recall", dev_scores["recall"], epoch)
                writer.add_scalar("val/f1_best", state.best_f1, epoch)
                writer.add_scalar("time/epoch_seconds", seconds, epoch)
                writer.add_scalar("time/tokens_per_second", tokens_per_second, epoch)
                writer.add_scalar("train/clipped_fraction", clipped_fraction, epoch)
                writer.add_scalar("lr_epoch", optimizer.param_groups[0]["lr"], epoch)
            stop_now = epoch >= t.min_epochs and state.bad_epochs >= t.patience
            if stop_now:
                state.stop_reason = "early_stopping"
                log.info("early stopping: no better dev F1 for %d epochs (best %.4f at epoch %d)",
                         state.bad_epochs, state.best_f1, state.best_epoch)
            state.start_epoch()
            state.epoch = epoch + 1
            if stop_now or epoch == t.max_epochs:
                state.finished = True
            save_last()
            if stop.received is not None:
                if writer is not None:
                    writer.close()
                stop.deliver(output_dir)
            if stop_now:
                break
        epoch_bar.close()
    state.stop_reason = state.stop_reason or "max_epochs"
    epochs_run = len(state.history)

    if state.best_epoch == 0:
        raise SlotfillError("training produced no usable model (every step was non-finite): lower trainer.lr or set trainer.clip_norm")
    best = load_checkpoint(ckpt_dir / "best.pt", map_location=device)
    model.load_state_dict(best["model_state"])
    flow_final = measure_gradient_flow("final")
    results: dict[str, Any] = {"status": "stopped_non_finite" if state.stop_reason == "non_finite" else "finished"}
    for name, examples in (("dev", dev_ex), ("test", test_ex)):
        results[name], preds = score_both_decodings(model, examples, vocab, tagset, labels, t.eval_batch_size, device)
        write_predictions(examples, preds, output_dir / "predictions" / f"{name}.conll")
    results.update(
        {
            "best_epoch": state.best_epoch,
            "epochs": epochs_run,
            "stop_reason": state.stop_reason,
            "train_seconds": state.train_seconds,
            "seconds_per_epoch": state.train_seconds / max(epochs_run, 1),
            "tokens_per_second": state.train_tokens / state.train_seconds if state.train_seconds > 0 else 0.0,
            "params": params,
            "steps": state.step,
            "skipped_steps": state.skipped,
            "clipped_fraction": state.clipped / state.step if state.step else 0.0,
            "gradient_flow": (
                {"split": "dev", "init": state.gradient_flow_init, "final": flow_final}
                if cfg.logger.gradient_flow else None
            ),
            "resumed": resume_state is not None,
            "run_dir": str(output_dir),
            "history": state.history,
            "data": {split: len(ex) for split, ex in splits.items()},
            "device": str(device),
            "lstm_kernel": kernel,
            "environment": env,
            "slotfill_version": slotfill.__version__,
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
    )
    if writer is not None:
        writer.add_hparams(
            _flat_hparams(cfg),
            {"hparam/dev_f1": results["dev"]["f1"], "hparam/test_f1": results["test"]["f1"]},
            run_name=".",
        )
        writer.close()
    (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if state.stop_reason == "non_finite":
        raise TrainingDiverged(
            f"training stopped after {t.max_skipped_steps} consecutive non-finite steps; the best checkpoint "
            f"(epoch {state.best_epoch}, dev F1 {state.best_f1:.4f}) was scored into {output_dir / 'results.json'} "
            "-- lower trainer.lr or set trainer.clip_norm"
        )
    return results
