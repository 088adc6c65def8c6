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

import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterable
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
from slotfill.data.batching import EncodedSplit, unk_dropout
from slotfill.data.loading import load_splits
from slotfill.errors import ConfigError, SlotfillError
from slotfill.evaluation import predict, score, unseen_gold_tags, write_predictions
from slotfill.model import Tagger, read_vectors
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
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach()) for g in grads]))
    if max_norm is not None and math.isfinite(float(norm)) and float(norm) > max_norm:
        torch._foreach_mul_(grads, max_norm / float(norm))
    return norm


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
        context_window=m.context_window,
        intent_loss_weight=m.intent_loss_weight,
    )
    if m.pretrained_vectors:
        weights, found, _ = read_vectors(m.pretrained_vectors, vocab, m.embedding_dim)
        model.words.load_vectors(weights, found)
    return model


def _intent_labels(cfg: DictConfig, train: list) -> LabelSet | None:
    has_intents = all(ex.intent is not None for ex in train)
    if cfg.model.intent == "off" or (cfg.model.intent == "auto" and not has_intents):
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
    flat["data.name"] = cfg.data.name
    flat["seed"] = cfg.seed
    return flat


def describe(model: Tagger) -> str:
    h = model.hparams
    name = {"rnn": f"Elman RNN ({h['nonlinearity']})", "gru": "GRU", "lstm": "LSTM"}[h["cell"]]
    direction = "bidirectional" if h["bidirectional"] else "unidirectional"
    params = sum(p.numel() for p in model.parameters())
    extra = f", context +-{h['context_window']}" if h["context_window"] else ""
    intent = f", intent head ({h['num_intents']} intents)" if h["num_intents"] else ""
    return (
        f"{direction} {h['num_layers']}-layer {name}, hidden {h['hidden_size']}, "
        f"embeddings {h['embedding_dim']}{extra}{intent}: {params:,} parameters"
    )


def train(cfg: DictConfig, output_dir: str | Path) -> dict[str, Any]:
    """Train, select on dev, test once; returns the ``results.json`` content."""
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
    vocab = Vocab.build((ex.tokens for ex in train_ex), normalizer, cfg.vocab.min_freq)
    tagset = TagSet.build(ex.tags for ex in train_ex)
    labels = _intent_labels(cfg, train_ex)
    for name, examples in (("dev", dev_ex), ("test", test_ex)):
        unseen = unseen_gold_tags(examples, tagset)
        if unseen:
            log.warning("%s has %d gold tag(s) never seen in training; they count as misses: %s", name, len(unseen), " ".join(unseen))
    log.info("vocabulary %d words, %d slot tags, %s", len(vocab), len(tagset), f"{len(labels)} intents" if labels else "no intents")

    model = build_model(cfg, vocab, tagset, labels).to(device)
    params = sum(p.numel() for p in model.parameters())
    log.info("model: %s", describe(model))
    log.info(
        "training: %s lr=%g batch=%d loss=%s clip_norm=%s clip_value=%s scheduler=%s device=%s seed=%d",
        cfg.optim._target_.rsplit(".", 1)[-1], t.lr, t.batch_size, t.loss_reduction,
        t.clip_norm, t.clip_value, cfg.scheduler.name, device, cfg.seed,
    )

    train_data = EncodedSplit(train_ex, vocab, tagset, labels)
    dev_data = EncodedSplit(dev_ex, vocab)
    rare = torch.tensor(vocab.rare_mask(), dtype=torch.bool)
    generator = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(len(train_data) / t.batch_size)
    optimizer = instantiate(cfg.optim)(model.parameters(), lr=t.lr)
    scheduler = _build_scheduler(cfg, optimizer, steps_per_epoch * t.max_epochs)

    writer = None
    if cfg.logger.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(output_dir / "tensorboard"))
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
    }
    show = (sys.stderr.isatty() if t.progress is None else bool(t.progress))
    best_f1, best_epoch, bad_epochs, step = -1.0, 0, 0, 0
    skipped, consecutive_skipped, clipped = 0, 0, 0
    train_tokens, train_seconds, epochs_run = 0, 0.0, 0
    history: list[dict[str, float]] = []
    stop_reason = "max_epochs"

    epoch_bar = tqdm(range(1, t.max_epochs + 1), desc="epochs", disable=not show, leave=False)
    for epoch in epoch_bar:
        model.train()
        started = time.perf_counter()
        loss_sum, loss_count, norm_sum, epoch_tokens = 0.0, 0, 0.0, 0
        batches = train_data.batches(t.batch_size, generator)
        for batch in tqdm(batches, desc=f"epoch {epoch}", disable=not show, leave=False):
            words = unk_dropout(batch.words, rare, cfg.vocab.unk_dropout, generator)
            out = model(
                words.to(device), batch.lengths,
                batch.tags.to(device), None if batch.intents is None else batch.intents.to(device),
                reduction=t.loss_reduction,
            )
            loss = out["loss"]
            optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                norm = torch.tensor(float("nan"))
            else:
                loss.backward()
                norm = clip_grad_norm(model.parameters(), t.clip_norm)
            if not torch.isfinite(norm):
                skipped += 1
                consecutive_skipped += 1
                optimizer.zero_grad(set_to_none=True)
                log.warning("epoch %d step %d: non-finite loss or gradient, step skipped (%d in a row)", epoch, step, consecutive_skipped)
                if consecutive_skipped >= t.max_skipped_steps:
                    stop_reason = "non_finite"
                    break
                continue
            consecutive_skipped = 0
            if t.clip_norm is not None and float(norm) > t.clip_norm:
                clipped += 1
            if t.clip_value is not None:
                torch.nn.utils.clip_grad_value_(model.parameters(), t.clip_value)
            optimizer.step()
            if scheduler is not None and cfg.scheduler.name == "linear":
                scheduler.step()
            step += 1
            loss_value = float(loss.detach())
            loss_sum += loss_value
            loss_count += 1
            norm_sum += float(norm)
            epoch_tokens += batch.num_tokens
            if writer is not None and step % cfg.logger.log_every_n_steps == 0:
                writer.add_scalar("train/loss", loss_value, step)
                writer.add_scalar("grad_norm", float(norm), step)
                writer.add_scalar("lr", optimizer.param_groups[0]["lr"], step)
        seconds = time.perf_counter() - started
        epochs_run = epoch
        train_seconds += seconds
        train_tokens += epoch_tokens
        if stop_reason == "non_finite":
            log.error(
                "training stopped: %d consecutive steps had a non-finite loss or gradient "
                "(lower trainer.lr or set trainer.clip_norm); keeping the best checkpoint so far",
                consecutive_skipped,
            )
            break

        dev_scores = score(dev_ex, predict(model, dev_data, vocab, tagset, labels, t.eval_batch_size, device))
        improved = dev_scores["f1"] > best_f1
        if improved:
            best_f1, best_epoch, bad_epochs = dev_scores["f1"], epoch, 0
            save_checkpoint({**base_state, "model_state": model.state_dict(), "epoch": epoch, "best_f1": best_f1}, ckpt_dir / "best.pt")
        else:
            bad_epochs += 1
        if scheduler is not None and cfg.scheduler.name == "plateau":
            scheduler.step(dev_scores["f1"])
        save_checkpoint(
            {
                **base_state, "model_state": model.state_dict(), "epoch": epoch, "step": step,
                "best_f1": best_f1, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
                "optimizer_state": optimizer.state_dict(),
                "scheduler_state": scheduler.state_dict() if scheduler is not None and cfg.scheduler.name == "plateau" else None,
                "torch_rng_state": torch.get_rng_state(), "generator_state": generator.get_state(),
            },
            ckpt_dir / "last.pt",
        )
        mean_loss = loss_sum / max(loss_count, 1)
        tokens_per_second = epoch_tokens / seconds if seconds > 0 else 0.0
        clipped_fraction = clipped / step if step else 0.0
        history.append({"epoch": epoch, "train_loss": mean_loss, "dev_f1": dev_scores["f1"], "seconds": seconds})
        log.info(
            "epoch %3d  loss %.4f  grad_norm %.2f  dev F1 %.4f (P %.4f R %.4f)%s  %.1fs  %.0f tok/s",
            epoch, mean_loss, norm_sum / max(loss_count, 1), dev_scores["f1"], dev_scores["precision"],
            dev_scores["recall"], "  *best*" if improved else "", seconds, tokens_per_second,
        )
        epoch_bar.set_postfix(dev_f1=f"{dev_scores['f1']:.4f}", best=f"{best_f1:.4f}")
        if writer is not None:
            writer.add_scalar("train/epoch_loss", mean_loss, epoch)
            writer.add_scalar("val/f1", dev_scores["f1"], epoch)
            writer.add_scalar("val/precision", dev_scores["precision"], epoch)
            writer.add_scalar("val/recall", dev_scores["recall"], epoch)
            writer.add_scalar("val/f1_best", best_f1, epoch)
            writer.add_scalar("time/epoch_seconds", seconds, epoch)
            writer.add_scalar("time/tokens_per_second", tokens_per_second, epoch)
            writer.add_scalar("train/clipped_fraction", clipped_fraction, epoch)
            writer.add_scalar("train/skipped_steps", skipped, epoch)
            writer.add_scalar("lr_epoch", optimizer.param_groups[0]["lr"], epoch)
        if epoch >= t.min_epochs and bad_epochs >= t.patience:
            stop_reason = "early_stopping"
            log.info("early stopping: no better dev F1 for %d epochs (best %.4f at epoch %d)", bad_epochs, best_f1, best_epoch)
            break
    epoch_bar.close()

    if best_epoch == 0:
        raise SlotfillError("training produced no usable model (every step was non-finite): lower trainer.lr or set trainer.clip_norm")
    best = load_checkpoint(ckpt_dir / "best.pt", map_location=device)
    model.load_state_dict(best["model_state"])
    results: dict[str, Any] = {}
    for name, examples in (("dev", dev_ex), ("test", test_ex)):
        preds = predict(model, examples, vocab, tagset, labels, t.eval_batch_size, device)
        results[name] = score(examples, preds)
        write_predictions(examples, preds, output_dir / "predictions" / f"{name}.conll")
    results.update(
        {
            "best_epoch": best_epoch,
            "epochs": epochs_run,
            "stop_reason": stop_reason,
            "train_seconds": train_seconds,
            "seconds_per_epoch": train_seconds / max(epochs_run, 1),
            "tokens_per_second": train_tokens / train_seconds if train_seconds > 0 else 0.0,
            "params": params,
            "steps": step,
            "skipped_steps": skipped,
            "clipped_fraction": clipped / step if step else 0.0,
            "history": history,
            "data": {split: len(ex) for split, ex in splits.items()},
            "device": str(device),
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
    return results
