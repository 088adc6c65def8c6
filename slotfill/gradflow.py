"""Gradient flow through time: how fast ``dL_T / dh_t`` shrinks as ``t`` moves away from ``T``.

For every utterance of at least ``min_length`` tokens, the loss at its last token,
``L_T = -log p(y_T | x_1..x_T)``, is differentiated with respect to the encoder's hidden
states ``h_T, h_{T-1}, ..., h_1`` of the top layer's forward direction. The norms
``||dL_T / dh_{T-k}||`` are averaged over the utterances for each distance
``k = 0 .. min_length - 1``, and the **decay** is the least-squares slope of
``log(mean norm)`` against ``k``: the log of the factor by which the gradient shrinks per
step (negative: vanishing, positive: exploding; ``ratio = exp(decay)``).

Bidirectional models also get the mirror image for the backward direction (the loss at the
first token against the backward states ``h_1 .. h_T``, distance ``t - 1``). For an LSTM the
same is reported for the memory cells ``c_t`` (``cell_state``), the path the LSTM was
designed to keep open. ``y_T`` is the gold tag when it is known to the model (the split
carries tag indices, or a tag set is given and the gold tag occurs in it), else the model's
own prediction. The intent head plays no part; with a CRF head, ``L_T`` is the cross-entropy of
the emission scores at the last token (the transition scores are left out).

To have every ``h_t`` as a node of the graph, the encoder is unrolled one step at a time
with the weights of its own ``torch.nn`` module (same gate equations as PyTorch); the
unrolled states are checked against the encoder's own outputs on every call.

    python -m slotfill.gradflow RUN/checkpoints/best.pt [--split dev,test] [--write] [--plot flow.png]
    python -m slotfill.gradflow multirun/atis/compare_cells/TIME --write   # every run below
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from slotfill.data.batching import EncodedSplit
from slotfill.model import Tagger
from slotfill.model.encoder import layer_weights
from slotfill.vocab import TagSet

log = logging.getLogger(__name__)

RESULT_FILE = "gradient_flow.json"
# Unrolled vs encoder states: float32 kernels (TF32 in cuDNN on recent GPUs) round differently;
# a wrong gate equation differs by orders of magnitude more than these.
_MATCH_TOLERANCE = {torch.float64: 1e-9, torch.float32: 5e-3}


def _cell_step(
    cell: str, nonlinearity: str, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, weights: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One time step of PyTorch's RNN/GRU/LSTM equations for a batch ``x`` (B, D), ``h`` (B, H)."""
    w_ih, w_hh, b_ih, b_hh = weights
    gi = F.linear(x, w_ih, b_ih)
    gh = F.linear(h, w_hh, b_hh)
    if cell == "rnn":
        pre = gi + gh
        return (torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)), None
    if cell == "gru":
        i_r, i_z, i_n = gi.chunk(3, dim=1)
        h_r, h_z, h_n = gh.chunk(3, dim=1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h, None
    i, f, g, o = (gi + gh).chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new


def unroll(
    encoder_rnn: nn.RNNBase, cell: str, nonlinearity: str, inputs: torch.Tensor, lengths: torch.Tensor,
    layer: int, reverse: bool,
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """Run one direction of one layer step by step over a padded batch ``inputs`` (B, T, D).

    The reverse direction starts at each row's own last token (positions past a row's
    length keep the zero initial state), as a packed sequence does. Returns the hidden
    states ``[h_1 .. h_T]`` (each (B, H), graph nodes) and, for an LSTM, the cell states.
    """
    batch, width, _ = inputs.shape
    hidden = encoder_rnn.hidden_size
    weights = layer_weights(encoder_rnn, layer, reverse)
    h = inputs.new_zeros(batch, hidden)
    c = inputs.new_zeros(batch, hidden) if cell == "lstm" else None
    hs: list[torch.Tensor | None] = [None] * width
    cs: list[torch.Tensor | None] | None = [None] * width if cell == "lstm" else None
    steps = range(width - 1, -1, -1) if reverse else range(width)
    lengths = lengths.to(inputs.device)
    for t in steps:
        h_new, c_new = _cell_step(cell, nonlinearity, inputs[:, t], h, c, weights)
        if reverse:  # rows not started yet keep the zero state
            live = (t < lengths).to(inputs.dtype).unsqueeze(1)
            h_new = live * h_new + (1 - live) * h
            if c_new is not None:
                c_new = live * c_new + (1 - live) * c
        h, c = h_new, c_new
        hs[t] = h
        if cs is not None:
            cs[t] = c
    return hs, cs  # type: ignore[return-value]


def _encode_unrolled(
    model: Tagger, words: torch.Tensor, lengths: torch.Tensor, chars: torch.Tensor | None = None
) -> dict[str, Any]:
    """The top layer's per-step states (graph nodes) and the encoder's output to check them."""
    enc = model.encoder
    rnn = enc.rnn
    cell, nonlinearity = enc.cell, model.hparams["nonlinearity"]
    inputs = model.words(words, chars)
    directions = 2 if rnn.bidirectional else 1
    layer_in = inputs
    with torch.no_grad():  # lower layers only feed the top one
        for layer in range(rnn.num_layers - 1):
            outs = [torch.stack(unroll(rnn, cell, nonlinearity, layer_in, lengths, layer, bool(d))[0], dim=1) for d in range(directions)]
            layer_in = torch.cat(outs, dim=2)
    top = rnn.num_layers - 1
    fwd_h, fwd_c = unroll(rnn, cell, nonlinearity, layer_in.detach(), lengths, top, False)
    bwd_h, bwd_c = (unroll(rnn, cell, nonlinearity, layer_in.detach(), lengths, top, True) if directions == 2 else (None, None))
    with torch.no_grad():
        encoded = enc(inputs, lengths)
    return {"forward": (fwd_h, fwd_c), "backward": (bwd_h, bwd_c), "encoder": encoded}


def _check_against_encoder(states: dict[str, Any], lengths: torch.Tensor) -> float:
    """Largest difference between the unrolled states and the encoder's; raises when they disagree."""
    encoded = states["encoder"]
    mask = (torch.arange(encoded.size(1), device=encoded.device) < lengths.to(encoded.device).unsqueeze(1)).unsqueeze(2)
    parts = [torch.stack(states["forward"][0], dim=1)]
    if states["backward"][0] is not None:
        parts.append(torch.stack(states["backward"][0], dim=1))
    unrolled = torch.cat(parts, dim=2).detach()
    diff = float(((unrolled - encoded).abs() * mask).max())
    tolerance = _MATCH_TOLERANCE.get(unrolled.dtype, 1e-3)
    if diff > tolerance * max(1.0, float(encoded.abs().max())):
        raise RuntimeError(f"unrolled encoder differs from the model's encoder by {diff:.3g}: gradient_flow does not match this model")
    return diff


def decay_rate(norms: Sequence[float]) -> float | None:
    """Least-squares slope of ``log(norm)`` against the distance (index); ``None`` if < 2 usable points."""
    points = [(k, math.log(v)) for k, v in enumerate(norms) if v > 0 and math.isfinite(v)]
    if len(points) < 2:
        return None
    n = len(points)
    mean_k = sum(k for k, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((k - mean_k) ** 2 for k, _ in points)
    sxy = sum((k - mean_k) * (y - mean_y) for k, y in points)
    return sxy / sxx


def _summary(per_utterance: torch.Tensor) -> dict[str, Any]:
    """``per_utterance`` (U, K) norms at distances 0..K-1 -> mean norms, decay, ratio."""
    norms = per_utterance.mean(dim=0).tolist() if per_utterance.numel() else []
    decay = decay_rate(norms)
    return {
        "norms": [float(v) for v in norms],
        "decay": decay,
        "ratio": math.exp(decay) if decay is not None else None,
    }


def _targets(split: EncodedSplit, rows: list[int], logits_last: torch.Tensor, tagset: TagSet | None, last: bool) -> tuple[torch.Tensor, int]:
    """Gold tag index at each row's last (or first) token where known, else the prediction."""
    predicted = logits_last.argmax(dim=-1)
    targets = predicted.clone()
    gold = 0
    for j, row in enumerate(rows):
        index = None
        position = int(split.lengths[row]) - 1 if last else 0
        if split.tags is not None:
            index = int(split.tags[row, position])
        elif tagset is not None:
            tags = split.examples[row].tags
            if tags is not None and tags[position] in tagset:
                index = tagset.stoi[tags[position]]
        if index is not None:
            targets[j] = index
            gold += 1
    return targets, gold


def _distance_norms(grads: Sequence[torch.Tensor], lengths: torch.Tensor, distances: int, from_end: bool) -> torch.Tensor:
    """(U, K) ``||grad||`` at distance k from each row's last token (``from_end``) or first token."""
    stacked = torch.stack([g.norm(dim=1) for g in grads], dim=1)  # (U, T)
    rows = []
    for u, n in enumerate(lengths.tolist()):
        if from_end:
            rows.append(stacked[u, n - distances : n].flip(0))
        else:
            rows.append(stacked[u, :distances])
    return torch.stack(rows).double()


def gradient_flow(
    model: Tagger,
    split: EncodedSplit,
    tagset: TagSet | None = None,
    min_length: int = 20,
    max_utterances: int = 200,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Mean ``||dL_T/dh_{T-k}||`` for k = 0 .. min_length-1 and its decay per step.

    Args:
        model: a slotfill tagger (left in the mode it was in; dropout is off while measuring).
        split: the utterances (e.g. ``EncodedSplit(dev_examples, vocab)``); those with at
            least ``min_length`` tokens are used, the first ``max_utterances`` of them in order.
        tagset: the model's tag set, to use gold last tags when ``split`` carries no tag indices.
        min_length: shortest utterance used; also the number of distances reported.
        max_utterances: at most this many utterances.
        batch_size: utterances differentiated together.

    Returns:
        Plain values (JSON-ready): ``utterances``, ``min_length``, ``gold_targets``,
        ``cell``, ``bidirectional``, ``forward`` = ``{"norms": [...], "decay": float,
        "ratio": float}``, the same under ``backward`` (bidirectional models) and
        ``cell_state`` (LSTM, forward memory cells), and ``max_unroll_error`` (largest
        difference between the unrolled and the model's encoder). ``decay`` and ``ratio`` are
        ``None`` when no utterance is long enough.
    """
    if min_length < 2:
        raise ValueError("min_length must be >= 2 (a decay needs two distances)")
    rows = [i for i in range(len(split)) if int(split.lengths[i]) >= min_length][:max_utterances]
    bidirectional = bool(model.encoder.rnn.bidirectional)
    result: dict[str, Any] = {
        "utterances": len(rows), "min_length": min_length, "gold_targets": 0,
        "cell": model.encoder.cell, "bidirectional": bidirectional,
    }
    parts: dict[str, list[torch.Tensor]] = {"forward": [], "backward": [], "cell_state": []}
    max_error = 0.0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            lengths = split.lengths[chunk]
            words = split.words[chunk, : int(lengths.max())].to(device)
            chars = split.batch(torch.tensor(chunk)).chars if split.chars is not None else None
            chars = None if chars is None else chars.to(device)
            with torch.enable_grad():
                states = _encode_unrolled(model, words, lengths, chars)
                max_error = max(max_error, _check_against_encoder(states, lengths))
                fwd_h, fwd_c = states["forward"]
                bwd_h, _ = states["backward"]
                index = torch.arange(len(chunk), device=device)
                last = (lengths - 1).to(device)

                def output_at(position: torch.Tensor) -> torch.Tensor:
                    feats = [torch.stack(fwd_h, dim=1)]
                    if bwd_h is not None:
                        feats.append(torch.stack(bwd_h, dim=1))
                    full = torch.cat(feats, dim=-1)  # (U, T, H * directions)
                    if model.attention is not None:  # its direct paths count: that is its point
                        real = torch.arange(full.size(1), device=device) < lengths.to(device).unsqueeze(1)
                        full = model.attention(full, real)
                    return model.slots(full[index, position])

                logits_last = output_at(last)
                targets, gold = _targets(split, chunk, logits_last.detach(), tagset, last=True)
                result["gold_targets"] += gold
                loss_last = F.cross_entropy(logits_last, targets, reduction="sum")
                nodes = list(fwd_h) + (list(fwd_c) if fwd_c is not None else [])
                grads = torch.autograd.grad(loss_last, nodes, allow_unused=True)
                grads = [torch.zeros_like(n) if g is None else g for n, g in zip(nodes, grads)]
                width = len(fwd_h)
                parts["forward"].append(_distance_norms(grads[:width], lengths, min_length, from_end=True))
                if fwd_c is not None:
                    parts["cell_state"].append(_distance_norms(grads[width:], lengths, min_length, from_end=True))
                if bwd_h is not None:
                    logits_first = output_at(torch.zeros_like(last))
                    targets_first, _ = _targets(split, chunk, logits_first.detach(), tagset, last=False)
                    loss_first = F.cross_entropy(logits_first, targets_first, reduction="sum")
                    grads_b = torch.autograd.grad(loss_first, list(bwd_h), allow_unused=True)
                    grads_b = [torch.zeros_like(n) if g is None else g for n, g in zip(bwd_h, grads_b)]
                    parts["backward"].append(_distance_norms(grads_b, lengths, min_length, from_end=False))
    finally:
        model.train(was_training)
    empty = torch.zeros(0, min_length, dtype=torch.float64)
    result["forward"] = _summary(torch.cat(parts["forward"]) if parts["forward"] else empty)
    if bidirectional:
        result["backward"] = _summary(torch.cat(parts["backward"]) if parts["backward"] else empty)
    if model.encoder.cell == "lstm":
        result["cell_state"] = _summary(torch.cat(parts["cell_state"]) if parts["cell_state"] else empty)
    result["max_unroll_error"] = max_error
    if not rows:
        log.warning("gradient flow: no utterance has %d or more tokens; nothing measured", min_length)
    return result


def label(result: dict[str, Any]) -> str:
    """``rnn``, ``bi-lstm``, ... for legends and tables."""
    return ("bi-" if result.get("bidirectional") else "") + str(result.get("cell", "?"))


Curves = dict[str, Any]  # label -> one gradient_flow() result, or a list of them (e.g. one per seed)


def _draw(ax: Any, curves: Curves, title: str) -> None:
    drawn = 0
    for name, value in curves.items():
        results = [value] if isinstance(value, dict) else list(value)
        series = [r["forward"]["norms"] for r in results if r.get("forward", {}).get("norms")]
        if not series:
            continue
        width = min(len(s) for s in series)
        mean = [math.exp(sum(math.log(max(s[k], 1e-300)) for s in series) / len(series)) for k in range(width)]
        decay = decay_rate(mean)
        legend = f"{name} ({decay:+.3f}/step)" if decay is not None else name
        ax.semilogy(range(width), mean, marker="o", markersize=3, label=legend)
        drawn += 1
    ax.set_xlabel("distance k from the last token (steps back in time)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if drawn:
        ax.legend(fontsize=7)


def plot_gradient_flow(curves: Curves, path: str | Path, title: str = "", init: Curves | None = None) -> Path:
    """Overlay mean ``||dL_T/dh_{T-k}||`` against k (log scale) for each labelled result.

    A label may hold several results (e.g. one per seed): their curves are averaged
    geometrically and drawn as one line, with its decay per step in the legend. With
    ``init`` (the same labels at initialisation) a second panel on the left shows those.
    """
    plt = _pyplot()
    panels = 2 if init else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.4 * panels, 4.4), sharey=True, squeeze=False)
    if init:
        _draw(axes[0][0], init, "at initialisation")
    _draw(axes[0][-1], curves, "after training" if init else "gradient flow through time (forward direction)")
    axes[0][0].set_ylabel("mean ||dL_T / dh_{T-k}||")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("plotting needs matplotlib: pip install matplotlib (or pip install -e \".[sweep]\")") from None
    return plt


# --------------------------------------------------------------------------- checkpoints / CLI


def _run_dir(ckpt: Path) -> Path:
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def find_checkpoints(paths: Sequence[str | Path]) -> list[Path]:
    """``best.pt`` files: each path is a checkpoint, a run folder, or a folder searched recursively."""
    found: list[Path] = []
    for raw in paths:
        path = Path(str(raw).removeprefix("ckpt_path="))
        if path.is_file():
            found.append(path)
        elif (path / "checkpoints" / "best.pt").is_file():
            found.append(path / "checkpoints" / "best.pt")
        elif path.is_dir():
            found.extend(sorted(path.rglob("checkpoints/best.pt")))
        else:
            raise FileNotFoundError(f"{path}: no checkpoint, run folder or multirun folder there")
    return found


def checkpoint_gradient_flow(
    ckpt: str | Path,
    splits: Sequence[str] = ("dev",),
    data_dir: str | None = None,
    min_length: int = 20,
    max_utterances: int = 200,
    init: bool = True,
) -> dict[str, Any]:
    """Gradient flow of a checkpoint's model (``final``) and, with ``init``, of the same
    architecture freshly initialised with the run's seed (``init``), on the run's own data."""
    from omegaconf import OmegaConf

    from slotfill.checkpoint import load_checkpoint
    from slotfill.data.loading import load_splits
    from slotfill.inference import SlotTagger

    state = load_checkpoint(ckpt)
    if "members" in state:
        raise ValueError(f"{ckpt}: an ensemble checkpoint; gradient flow is measured per tagger -- pass a member's checkpoint (members/<i>/checkpoints/best.pt)")
    config = state.get("config") or {}
    if "data" not in config:
        raise ValueError(f"{ckpt}: the checkpoint names no data")
    data = OmegaConf.create(config["data"])
    if data_dir is not None:
        data.dir = data_dir
    tagger = SlotTagger.load(ckpt)
    loaded = load_splits(data, list(splits))
    examples = [ex for name in splits for ex in loaded[name]]
    split = EncodedSplit(examples, tagger.vocab)
    out: dict[str, Any] = {"splits": list(splits), "checkpoint": str(ckpt)}
    if init:
        torch.manual_seed(int(config.get("seed", 0)))
        fresh = Tagger(**state["model_args"])
        out["init"] = gradient_flow(fresh, split, tagger.tagset, min_length, max_utterances)
    out["final"] = gradient_flow(tagger.model, split, tagger.tagset, min_length, max_utterances)
    return out


def _format(result: dict[str, Any]) -> str:
    lines = [f"{label(result)}: {result['utterances']} utterance(s) of >= {result['min_length']} tokens"]
    for key in ("forward", "backward", "cell_state"):
        part = result.get(key)
        if not part or part["decay"] is None:
            continue
        norms = part["norms"]
        lines.append(
            f"  {key:10s} decay {part['decay']:+.4f}/step (x{part['ratio']:.3f})  "
            f"||dL/dh|| k=0: {norms[0]:.3g}  k={len(norms) - 1}: {norms[-1]:.3g}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m slotfill.gradflow",
        description="Print the gradient flow through time of trained slotfill checkpoints.",
    )
    parser.add_argument("paths", nargs="*", help="checkpoints, run folders or multirun folders (ckpt_path=X also accepted)")
    parser.add_argument("--ckpt", action="append", default=[], help="a checkpoint (repeatable)")
    parser.add_argument("--split", default="dev", help="comma-separated splits to take utterances from (default dev)")
    parser.add_argument("--data-dir", default=None, help="read the data from here instead of the checkpoint's data.dir")
    parser.add_argument("--min-length", type=int, default=20)
    parser.add_argument("--max-utterances", type=int, default=200)
    parser.add_argument("--no-init", action="store_true", help="skip the freshly initialised model")
    parser.add_argument("--write", action="store_true", help=f"write {RESULT_FILE} into each run folder (read by slotfill.compare)")
    parser.add_argument("--plot", default=None, help="PNG overlaying the curves (one line per cell/direction)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from slotfill.errors import SlotfillError

    try:
        ckpts = find_checkpoints([*args.paths, *args.ckpt])
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not ckpts:
        print("error: no checkpoint given or found (pass RUN/checkpoints/best.pt or a multirun folder)", file=sys.stderr)
        return 1
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    curves: dict[str, list[dict[str, Any]]] = {}
    init_curves: dict[str, list[dict[str, Any]]] = {}
    for ckpt in ckpts:
        try:
            out = checkpoint_gradient_flow(ckpt, splits, args.data_dir, args.min_length, args.max_utterances, not args.no_init)
        except (SlotfillError, ValueError) as err:
            print(f"error: {ckpt}: {err}", file=sys.stderr)
            return 1
        print(f"{ckpt}  ({'+'.join(splits)})")
        for stage in ("init", "final"):
            if stage in out:
                print(f" {stage}: " + _format(out[stage]).replace("\n", "\n "))
        if args.write:
            target = _run_dir(ckpt) / RESULT_FILE
            target.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
            print(f" written to {target}")
        curves.setdefault(label(out["final"]), []).append(out["final"])
        if "init" in out:
            init_curves.setdefault(label(out["init"]), []).append(out["init"])
    if args.plot:
        print(f"plot: {plot_gradient_flow(curves, args.plot, init=init_curves or None)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
