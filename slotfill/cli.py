"""Entry points shared by ``train.py``/``evaluate.py`` and the ``slotfill-train``/``slotfill-eval`` scripts.

Errors a user can fix (:class:`~slotfill.errors.SlotfillError`) are printed as one line and
exit with status 1; ``HYDRA_FULL_ERROR=1`` shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from slotfill.config import register_configs
from slotfill.errors import SlotfillError

log = logging.getLogger("slotfill")


def conf_dir() -> str:
    """The ``conf/`` folder: beside the package in a checkout, inside it when installed."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise SystemExit("slotfill: its conf/ folder is missing; reinstall slotfill")


def checkpoint_arg(value: Any) -> str | list[str]:
    """``ckpt_path`` from the command line: one path, or a list of them (an ensemble)."""
    return [str(p) for p in value] if OmegaConf.is_list(value) else str(value)


def run_guarded(task: Callable[[], Any]) -> Any:
    """Run ``task``; a :class:`SlotfillError` becomes one line on stderr and a non-zero exit
    (1, or the error's ``exit_code``: 3 for a diverged run, 128 + signal for an interrupted one)."""
    try:
        return task()
    except (SlotfillError, MissingMandatoryValue) as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if isinstance(err, MissingMandatoryValue):
            key = err.full_key
            message = f"{key} is required: pass {key}=... on the command line"
        else:
            message = str(err)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(getattr(err, "exit_code", 1)) from None


def _output_dir() -> Path:
    return Path(HydraConfig.get().runtime.output_dir)


def _train_task(cfg: DictConfig) -> float | None:
    from slotfill.sweep import apply_auto_threads, in_multirun, run_sweep_job
    from slotfill.training import run

    output_dir = _output_dir()
    apply_auto_threads(cfg)  # multirun: threads=0 means cores / parallel jobs (slotfill.sweep)
    if in_multirun():  # a failing job is marked failed in its folder; the sweep goes on
        results = run_sweep_job(lambda: run(cfg, output_dir), cfg, output_dir)
        if results is None:
            return None
    else:
        results = run_guarded(lambda: run(cfg, output_dir))
    if "ensemble" in results:
        how = f"ensemble of {results['ensemble']['size']}; {results['train_seconds']:.0f}s of training"
    else:
        how = f"best epoch {results['best_epoch']} of {results['epochs']}; {results['train_seconds']:.0f}s"
    print(f"dev slot F1 {results['dev']['f1']:.4f}  test slot F1 {results['test']['f1']:.4f}  ({how})")
    print(f"run folder: {results.get('run_dir', output_dir)}")
    return results["dev"]["f1"]


def evaluate_checkpoint(cfg: DictConfig, output_dir: Path) -> float | None:
    """Tag text (``text=``) or score a split/file; returns the slot F1 when scoring."""
    from slotfill.config import validate_data
    from slotfill.data.loading import load_splits, read_path
    from slotfill.evaluation import score_both_decodings, unseen_gold_tags, write_predictions
    from slotfill.inference import SlotTagger
    from slotfill.metrics import format_report
    from slotfill.training import resolve_device

    device = resolve_device(cfg.device)
    ckpt = checkpoint_arg(cfg.ckpt_path)
    tagger = SlotTagger.load(ckpt, device, cfg.lstm_kernel)
    if cfg.text is not None:
        sentences = sys.stdin.read().splitlines() if cfg.text == "-" else [cfg.text]
        for result in tagger.tag(sentences, cfg.batch_size, cfg.constrained):
            print(json.dumps(result, ensure_ascii=False))
        return None

    data = cfg.data if cfg.data is not None else OmegaConf.create(tagger.config.get("data", {}))
    if not data:
        raise SlotfillError(f"{ckpt}: the checkpoint names no data; pass data=... or file=...")
    if not cfg.file and cfg.split not in ("train", "dev", "test"):
        raise SlotfillError(f"split={cfg.split!r} is unknown: use train, dev or test (or file=PATH)")
    validate_data(data, () if cfg.file else (cfg.split,))
    if cfg.file:
        name = Path(cfg.file).name
        examples = read_path(data, cfg.file)
    else:
        name = cfg.split
        examples = load_splits(data, [cfg.split])[cfg.split]
    unseen = unseen_gold_tags(examples, tagger.tagset)
    if unseen:
        log.warning("%d gold tag(s) were never seen in training and count as misses: %s", len(unseen), " ".join(unseen))
    scores, preds = score_both_decodings(
        tagger.model, examples, tagger.vocab, tagger.tagset, tagger.labels, cfg.batch_size, tagger.device,
        cfg.constrained,
    )
    gold = [list(ex.tags) for ex in examples]
    print(format_report(gold, preds.tags))
    if cfg.strict:
        print("strict IOB2:")
        print(format_report(gold, preds.tags, strict=True))
    summary = (
        f"{name}: slot F1 {scores['f1']:.4f} (P {scores['precision']:.4f} R {scores['recall']:.4f}; "
        f"strict IOB2 F1 {scores['strict_f1']:.4f})  token acc {scores['token_accuracy']:.4f}  "
        f"sentence acc {scores['sentence_accuracy']:.4f}"
    )
    if "intent_accuracy" in scores:
        summary += f"  intent acc {scores['intent_accuracy']:.4f}  frame acc {scores['frame_accuracy']:.4f}"
    print(summary)
    both = scores["by_decoding"]
    print(
        f"{name}: slot F1 by decoding: unconstrained {both['unconstrained']['f1']:.4f}, "
        f"BIO-constrained {both['constrained']['f1']:.4f}"
    )
    write_predictions(examples, preds, output_dir / "predictions" / f"{name}.conll")
    results = {name: scores, "ckpt_path": ckpt, "unseen_gold_tags": unseen}
    (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"predictions and results.json in {output_dir}")
    return scores["f1"]


def _eval_task(cfg: DictConfig) -> float | None:
    output_dir = _output_dir()
    return run_guarded(lambda: evaluate_checkpoint(cfg, output_dir))


def train_main() -> Any:
    register_configs()
    return hydra.main(version_base="1.3", config_path=conf_dir(), config_name="train")(_train_task)()


def eval_main() -> Any:
    register_configs()
    return hydra.main(version_base="1.3", config_path=conf_dir(), config_name="eval")(_eval_task)()

