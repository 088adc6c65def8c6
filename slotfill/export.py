"""Export a trained checkpoint for serving without slotfill: ONNX or TorchScript.

    python -m slotfill.export ckpt_path=RUN/checkpoints/best.pt format=onnx|torchscript [out_dir=DIR]
    python -m slotfill.export 'ckpt_path=[RUN0,RUN1,...]' out_dir=DIR ...   # several runs as one ensemble

(also the ``slotfill-export`` command). The export folder (default
``<checkpoint dir>/export-<format>/``) holds:

=================  =============================================================================
``model.onnx``     the network for one sentence (``format=onnx``), or ``model.pt`` (TorchScript)
``vocab.json``     word list, normaliser settings, characters: how to turn tokens into ids
``tags.json``      tag and intent names and what decoding needs (CRF scores, BIO masks)
``predict.py``     a standalone runner: numpy + onnxruntime (or torch); it never imports slotfill
``export.json``    metadata: format, versions, source checkpoint, inputs and outputs
``README.md``      how to run it
=================  =============================================================================

The network takes ``words`` (1, T) int64 word ids and, for a model with character features,
``chars`` (1, T, C) int64 character ids (C: the sentence's longest word, at most
:data:`~slotfill.data.batching.WORD_CHARS`); it returns ``slot_scores`` (1, T, num_tags) and,
with an intent head, ``intent_scores`` (1, num_intents). T and C are dynamic. An ensemble (a
``trainer.ensemble`` run, or a list of checkpoints or run folders, ``ckpt_path=[...]``, as
:meth:`SlotTagger.load` takes it) exports as one network that returns its members' mean
scores, as :class:`~slotfill.model.Ensemble` averages them, with the members' mean CRF scores
in ``tags.json``. Decoding
(argmax, or Viterbi for a CRF head and for BIO-constrained decoding) runs in ``predict.py``
in numpy, step for step as :meth:`slotfill.model.Tagger.predict` does it.

ONNX uses PyTorch's TorchScript-based exporter (``torch.onnx.export(dynamo=False)``): it
traces the same code path that TorchScript does. The ``torch.export``-based exporter stops
at the encoder's data-dependent ``bool((lengths != width).any())``. ONNX needs the ``onnx``
and ``onnxruntime`` packages (``pip install -e ".[export]"``).

Every export is checked before it is written to ``out_dir``: the exported network is run on
random sentences of several lengths (and word widths) and must give the checkpoint's scores.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

import slotfill
from slotfill.errors import SlotfillError
from slotfill.model import Tagger
from slotfill.model.ensemble import Ensemble

FORMATS = ("onnx", "torchscript")
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
EXPORT_FILES = ("vocab.json", "tags.json", "predict.py", "export.json", "README.md", *MODEL_FILES.values())
ONNX_OPSET = 17
ONNX_PACKAGES = ("onnx", "onnxruntime")
RUNTIME_REQUIREMENTS = {"onnx": ["numpy", "onnxruntime"], "torchscript": ["numpy", "torch"]}
VERIFY_LENGTHS = (1, 2, 5, 13, 31)
VERIFY_TOLERANCE = 1e-4


def first_tagger(model: nn.Module) -> Tagger:
    """The model itself, or an ensemble's first member: what the inputs' and outputs' shapes come from."""
    return model.members[0] if isinstance(model, Ensemble) else model


class ExportableTagger(nn.Module):
    """One sentence through a :class:`~slotfill.model.Tagger`'s own submodules, for tracing.

    ``forward(words (1, T), chars (1, T, C) | None)`` returns ``(slot_scores (1, T, num_tags),)``
    or ``(slot_scores, intent_scores (1, num_intents))``. Every row has its full length, so
    the encoder takes its flip path (no gather) and the intent head pools over all tokens. An
    :class:`~slotfill.model.Ensemble` runs each member so and returns their mean scores
    (:meth:`~slotfill.model.Ensemble.mean_scores`), which is what its ``forward`` returns.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, words: torch.Tensor, chars: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        lengths = torch.ones_like(words).sum(dim=1)  # (1,) = T
        mask = torch.ones_like(words, dtype=torch.bool)
        ensemble = isinstance(self.model, Ensemble)
        outs = []
        for tagger in self.model.members if ensemble else [self.model]:
            slots, intents = tagger.score(tagger.encode(words, lengths, mask, chars), mask)
            outs.append({"logits": slots} if intents is None else {"logits": slots, "intent_logits": intents})
        out = self.model.mean_scores(outs) if ensemble else outs[0]
        return tuple(out[key] for key in ("logits", "intent_logits") if key in out)


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file that :func:`slotfill.checkpoint.load_checkpoint` reads for ``path``."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "best.pt", path / "best.pt"):
            if candidate.is_file():
                return candidate
    return path


def default_out_dir(ckpt_file: Path, fmt: str) -> Path:
    return ckpt_file.parent / f"export-{fmt}"


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise SlotfillError(f"format={fmt!r} is unknown: use one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
        if missing:
            raise SlotfillError(
                f"format=onnx needs the package(s) {', '.join(missing)}: pip install -e \".[export]\" "
                f"(or pip install {' '.join(ONNX_PACKAGES)}), or use format=torchscript"
            )


def check_out_dir(out_dir: Path) -> None:
    """Refuse a folder that holds anything but a previous export (never overwrite other files)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SlotfillError(f"out_dir={out_dir} is a file -- pass a folder (it is created if missing)")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "export.json").is_file():
        raise SlotfillError(
            f"out_dir={out_dir} exists and is not a slotfill export folder -- pass a new or empty folder"
        )


def vocab_json(tagger: Any) -> dict[str, Any]:
    """Everything the runner needs to turn tokens into the network's inputs."""
    from slotfill.data.batching import WORD_CHARS
    from slotfill.vocab import NUM

    vocab = tagger.vocab
    uses_chars = first_tagger(tagger.model).words.chars is not None
    return {
        "words": vocab.itos,
        "pad_index": vocab.pad_index,
        "unk_index": vocab.unk_index,
        "normalizer": {**vocab.normalizer.to_state(), "num_token": NUM},
        "chars": vocab.chars if uses_chars else None,
        "word_chars": WORD_CHARS if uses_chars else None,
    }


def tags_json(tagger: Any) -> dict[str, Any]:
    """Tag and intent names, and what decoding needs (as :meth:`Tagger.predict` decodes).

    An ensemble's CRF scores are its members' means, as :meth:`Ensemble.predict` decodes.
    """
    model = tagger.model
    scores = model.averaged_crf() if isinstance(model, Ensemble) else model.crf
    crf = None
    if scores is not None:
        crf = {
            "start": scores.start.detach().cpu().tolist(),
            "end": scores.end.detach().cpu().tolist(),
            "transitions": scores.transitions.detach().cpu().tolist(),
        }
    first = first_tagger(model)
    return {
        "tags": tagger.tagset.itos,
        "intents": tagger.labels.itos if model.intents is not None and tagger.labels is not None else None,
        "head": "crf" if crf is not None else "softmax",
        "constrained_decoding": bool(model.constrained_decoding),
        "crf": crf,
        "allowed_start": first.allowed_start.cpu().tolist(),
        "allowed_transitions": first.allowed_transitions.cpu().tolist(),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _example_inputs(model: nn.Module, length: int, width: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random word ids (never padding) and, for a character model, character ids."""
    model = first_tagger(model)
    vocab_size = model.words.embedding.num_embeddings
    words = torch.randint(1, max(vocab_size, 2), (1, length), generator=generator)
    if model.words.chars is None:
        return (words,)
    num_chars = model.words.chars.embedding.num_embeddings
    chars = torch.randint(1, max(num_chars, 2), (1, length, width), generator=generator)
    # words of 1..width characters, padding after them; at least one word fills the width
    counts = torch.randint(1, width + 1, (1, length, 1), generator=generator)
    counts[0, 0, 0] = width
    chars = chars.masked_fill(torch.arange(width) >= counts, 0)
    return words, chars


def _export_torchscript(wrapper: ExportableTagger, example: tuple[torch.Tensor, ...], path: Path) -> None:
    with warnings.catch_warnings():
        # TracerWarnings (the full-length branch is the one we want) and torch.jit's
        # deprecation notice (torch.export cannot export the encoder yet, see the module doc)
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, example, check_trace=False)
        torch.jit.save(traced, str(path))


def _export_onnx(wrapper: ExportableTagger, example: tuple[torch.Tensor, ...], path: Path) -> None:
    has_chars = len(example) == 2
    inputs = ["words", "chars"] if has_chars else ["words"]
    outputs = ["slot_scores"] if wrapper.model.intents is None else ["slot_scores", "intent_scores"]
    dynamic = {"words": {1: "T"}, "slot_scores": {1: "T"}}
    if has_chars:
        dynamic["chars"] = {1: "T", 2: "C"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice and TracerWarnings
        torch.onnx.export(
            wrapper, example, str(path), dynamo=False, input_names=inputs, output_names=outputs,
            dynamic_axes=dynamic, opset_version=ONNX_OPSET,
        )
    import onnx

    onnx.checker.check_model(str(path))


def _load_exported(fmt: str, path: Path):
    """A callable running the exported file on numpy-convertible tensors -> list of arrays."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return lambda *xs: session.run(None, {n: x.numpy() for n, x in zip(names, xs)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu")

    def run(*xs: torch.Tensor) -> list:
        with torch.jit.optimized_execution(False):
            return [o.numpy() for o in module(*xs)]

    return run


@torch.no_grad()
def verify(model: nn.Module, fmt: str, path: Path) -> float:
    """Run the exported file on random sentences of several lengths against the checkpoint.

    Returns the largest score difference; raises :class:`SlotfillError` above tolerance.
    """
    run = _load_exported(fmt, path)
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for i, length in enumerate(VERIFY_LENGTHS):
        example = _example_inputs(model, length, width=1 + (3 * i) % 9, generator=generator)
        chars = example[1] if len(example) == 2 else None
        ref = model(example[0], torch.tensor([length]), chars=chars)
        expected = [ref["logits"]] + ([ref["intent_logits"]] if "intent_logits" in ref else [])
        got = run(*example)
        if len(got) != len(expected):
            raise SlotfillError(f"{path}: the exported model returns {len(got)} outputs, expected {len(expected)}")
        for out, want in zip(got, expected):
            want = want.numpy()
            if out.shape != want.shape:
                raise SlotfillError(
                    f"{path}: the exported model gives shape {tuple(out.shape)} for a {length}-word sentence, "
                    f"expected {tuple(want.shape)} (did a dimension get fixed at export?)"
                )
            diff = float(abs(out - want).max())
            scale = 1.0 + float(abs(want).max())
            worst = max(worst, diff)
            if not diff <= VERIFY_TOLERANCE * scale:
                raise SlotfillError(
                    f"{path}: the exported model's scores differ from the checkpoint's by {diff:.3g} on a "
                    f"{length}-word sentence -- the export is wrong; please report it"
                )
    return worst


def export_checkpoint(
    ckpt_path: str | Path | Sequence[str | Path], fmt: str = "onnx", out_dir: str | Path | None = None
) -> Path:
    """Export ``ckpt_path`` as ``fmt`` into ``out_dir``; returns the folder.

    A list of checkpoints or run folders exports as one ensemble of all their taggers; with
    more than one, ``out_dir`` is required (no one run folder is theirs).

    The files are written to a temporary folder beside ``out_dir``, checked (:func:`verify`),
    and only then moved into ``out_dir``, replacing a previous export's files.
    """
    from slotfill.inference import SlotTagger

    check_format(fmt)
    listed = not isinstance(ckpt_path, (str, Path))
    files = [resolve_checkpoint(p) for p in ckpt_path] if listed else [resolve_checkpoint(ckpt_path)]
    if len(files) > 1 and out_dir is None:
        raise SlotfillError(
            f"ckpt_path names {len(files)} checkpoints, so there is no one run folder to export into -- pass out_dir=DIR"
        )
    tagger = SlotTagger.load(files if listed else files[0], "cpu")  # CheckpointError: one line
    model = tagger.model.eval()
    out = Path(out_dir) if out_dir is not None else default_out_dir(files[0], fmt)
    check_out_dir(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as err:
        raise SlotfillError(f"out_dir={out}: cannot write there ({err.strerror}) -- pass another out_dir") from None
    try:
        example = _example_inputs(model, length=3, width=5, generator=torch.Generator().manual_seed(0))
        wrapper = ExportableTagger(model).eval()
        model_path = staging / MODEL_FILES[fmt]
        if fmt == "onnx":
            _export_onnx(wrapper, example, model_path)
        else:
            _export_torchscript(wrapper, example, model_path)
        max_diff = verify(model, fmt, model_path)

        vocab, tags = vocab_json(tagger), tags_json(tagger)
        meta = _metadata(tagger, fmt, files, max_diff)
        _write_json(staging / "vocab.json", vocab)
        _write_json(staging / "tags.json", tags)
        _write_json(staging / "export.json", meta, indent=2)
        (staging / "predict.py").write_text(RUNNER_SOURCE, encoding="utf-8")
        (staging / "README.md").write_text(_readme(meta), encoding="utf-8")

        out.mkdir(parents=True, exist_ok=True)
        for name in EXPORT_FILES:
            if (staging / name).exists():
                os.replace(staging / name, out / name)
            elif (out / name).is_file():  # the other format's model from an earlier export
                (out / name).unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _write_json(path: Path, value: Any, indent: int | None = None) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=indent) + "\n", encoding="utf-8")


def _metadata(tagger: Any, fmt: str, ckpt_files: list[Path], max_diff: float) -> dict[str, Any]:
    model, first = tagger.model, first_tagger(tagger.model)
    ensemble = isinstance(model, Ensemble)
    num_tags = len(tagger.tagset)
    inputs = [{"name": "words", "dtype": "int64", "shape": [1, "T"], "what": "word ids (vocab.json words)"}]
    if first.words.chars is not None:
        inputs.append({
            "name": "chars", "dtype": "int64", "shape": [1, "T", "C"],
            "what": "character ids of each normalised word (vocab.json chars), its first word_chars "
                    "characters, 0 after its end; C = the longest word's count",
        })
    slot_what, intent_what = "slot scores (logits)", "intent scores (logits)"
    if ensemble:
        mean = "the mean of the members' " + ("CRF scores" if first.crf is not None else "log-probabilities")
        slot_what = f"slot scores: {mean}"
        intent_what = "intent scores: the mean of the members' log-probabilities"
    outputs = [{"name": "slot_scores", "dtype": "float32", "shape": [1, "T", num_tags], "what": slot_what}]
    if model.intents is not None:
        outputs.append({
            "name": "intent_scores", "dtype": "float32", "shape": [1, model.intents.linear.out_features],
            "what": intent_what,
        })
    if first.crf is not None:
        decoding = "Viterbi over slot_scores with the CRF scores in tags.json"
    elif model.constrained_decoding:
        decoding = "Viterbi over log_softmax(slot_scores) under the BIO masks in tags.json"
    else:
        decoding = "argmax of slot_scores per token"
    if model.constrained_decoding and first.crf is not None:
        decoding += ", under the BIO masks"
    exporter = (
        f"torch.onnx.export (TorchScript-based, dynamo=False), opset {ONNX_OPSET}" if fmt == "onnx"
        else "torch.jit.trace"
    )
    return {
        "format": fmt,
        "model_file": MODEL_FILES[fmt],
        "runner": "predict.py",
        "requires": RUNTIME_REQUIREMENTS[fmt],
        "slotfill_version": slotfill.__version__,
        "torch_version": torch.__version__,
        "exporter": exporter,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        # one checkpoint: its path and hash; several (a list): a list of each
        "source_checkpoint": one_or_list([str(f.resolve()) for f in ckpt_files]),
        "source_sha256": one_or_list([_sha256(f) for f in ckpt_files]),
        "inputs": inputs,
        "outputs": outputs,
        "decoding": decoding,
        "members": len(model.members) if ensemble else 1,
        "verified_max_score_difference": max_diff,
        # an ensemble's members may differ in everything but their outputs (hidden size, cell, ...)
        "model_args": [dict(m.hparams) for m in model.members] if ensemble else dict(model.hparams),
        "data": (tagger.config.get("data") or {}).get("name"),
    }


def one_or_list(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


def _readme(meta: dict[str, Any]) -> str:
    model_file = meta["model_file"]
    sources = meta["source_checkpoint"]
    sources = ", ".join(f"`{s}`" for s in sources) if isinstance(sources, list) else f"`{sources}`"
    requires = " ".join(meta["requires"])
    shape = lambda dims: "(" + ", ".join(str(d) for d in dims) + ")"  # noqa: E731
    inputs = "\n".join(f"- `{i['name']}` {i['dtype']} {shape(i['shape'])}: {i['what']}" for i in meta["inputs"])
    outputs = "\n".join(f"- `{o['name']}` {o['dtype']} {shape(o['shape'])}: {o['what']}" for o in meta["outputs"])
    return f"""# slotfill export ({meta['format']})

Exported by slotfill {meta['slotfill_version']} (torch {meta['torch_version']}, {meta['exporter']})
from {sources}.

Runs without slotfill; needs `{requires}`:

```bash
pip install {requires}
python predict.py "show flights from boston to denver"
python predict.py < sentences.txt        # one sentence per line
python predict.py --constrained ...      # or --unconstrained: override BIO-constrained decoding
```

Each sentence gives one JSON line: `text`, `tokens` (split on whitespace), `tags`, `slots`
(`type`, `text`, `start`, `end` token offsets, end exclusive) and `intent` when the model has
an intent head. From Python, with this folder on `sys.path`:
`from predict import ExportedTagger; ExportedTagger().tag(["fares to dallas"])`.

`{model_file}` reads one sentence (batch 1, no padding):

{inputs}

and returns

{outputs}

Decoding: {meta['decoding']} (done in `predict.py`). `vocab.json` holds the word list, the
normaliser (lowercase; digits `off`, `zero` or `token`) and the character list; `tags.json` the
tag and intent names, the CRF scores and the BIO masks; `export.json` this information as JSON.
"""


RUNNER_SOURCE = r'''#!/usr/bin/env python3
"""Tag sentences with an exported slotfill model, without slotfill.

    python predict.py "show flights from boston to denver" ["another sentence" ...]
    python predict.py < sentences.txt        # one sentence per line
    python predict.py --constrained ...      # or --unconstrained: override BIO-constrained decoding

Prints one JSON object per sentence (text, tokens, tags, slots, intent), as slotfill's
``evaluate.py text=...`` does. Needs numpy and onnxruntime (ONNX) or torch (TorchScript).
Encoding and decoding follow slotfill's own code step for step, in float32: the normaliser,
the unknown word and character ids, and argmax or Viterbi (CRF scores and/or BIO masks).

From Python, with this folder on sys.path:
    from predict import ExportedTagger
    ExportedTagger().tag(["fares to dallas"])
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
_ZERO_DIGITS = str.maketrans("123456789", "000000000")


class Normalizer:
    """Token -> vocabulary form: lowercase, then digits off | zero (each digit -> 0) | token."""

    def __init__(self, lowercase: bool, digits: str, num_token: str):
        if digits not in ("off", "zero", "token"):
            raise ValueError(f"unknown digits mode {digits!r}")
        self.lowercase, self.digits, self.num_token = lowercase, digits, num_token

    def __call__(self, token: str) -> str:
        if self.lowercase:
            token = token.lower()
        if self.digits == "zero":
            token = token.translate(_ZERO_DIGITS)
        elif self.digits == "token" and token.isascii() and token.isdigit():
            token = self.num_token
        return token


def log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def viterbi(emissions: np.ndarray, transitions: np.ndarray, start: np.ndarray, end: np.ndarray) -> list[int]:
    """Best tag path of one sentence: emissions (T, C), transitions (C, C) from i to j."""
    score = start + emissions[0]
    backpointers = []
    for t in range(1, emissions.shape[0]):
        candidates = score[:, None] + transitions  # (C_prev, C)
        index = candidates.argmax(axis=0)
        best = np.take_along_axis(candidates, index[None, :], axis=0)[0]
        score = best + emissions[t]
        backpointers.append(index)
    score = score + end
    tag = int(score.argmax())
    path = [tag]
    for index in reversed(backpointers):
        tag = int(index[tag])
        path.append(tag)
    return path[::-1]


def spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """Chunks (type, start, end exclusive) as conlleval reads them."""
    chunks, open_type, start = [], None, 0
    for i, tag in enumerate(tags):
        prefix, kind = ("O", None) if tag == "O" else (tag[0], tag[2:])
        if open_type is not None and (prefix != "I" or kind != open_type):
            chunks.append((open_type, start, i))
            open_type = None
        if prefix != "O" and open_type is None:
            open_type, start = kind, i
    if open_type is not None:
        chunks.append((open_type, start, len(tags)))
    return chunks


class ExportedTagger:
    """The exported network with its vocabulary and decoder."""

    def __init__(self, folder: str | Path = HERE, threads: int = 1):
        folder = Path(folder)
        read = lambda name: json.loads((folder / name).read_text(encoding="utf-8"))  # noqa: E731
        self.meta, vocab, labels = read("export.json"), read("vocab.json"), read("tags.json")
        self.stoi = {word: i for i, word in enumerate(vocab["words"])}
        self.unk = vocab["unk_index"]
        self.normalize = Normalizer(**vocab["normalizer"])
        self.char_stoi = None if vocab["chars"] is None else {c: i for i, c in enumerate(vocab["chars"])}
        self.word_chars = vocab["word_chars"]
        self.tags = labels["tags"]
        self.intents = labels["intents"]
        self.constrained = labels["constrained_decoding"]
        self.allowed_start = np.array(labels["allowed_start"], dtype=bool)
        self.allowed_transitions = np.array(labels["allowed_transitions"], dtype=bool)
        crf = labels["crf"]
        self.crf = None if crf is None else tuple(
            np.array(crf[key], dtype=np.float32) for key in ("start", "end", "transitions")
        )
        model_path = str(folder / self.meta["model_file"])
        if self.meta["format"] == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
            session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
            names = [i.name for i in session.get_inputs()]
            self._run = lambda *xs: session.run(None, dict(zip(names, xs)))
        elif self.meta["format"] == "torchscript":
            import torch

            if threads:
                torch.set_num_threads(threads)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's notice
                module = torch.jit.load(model_path, map_location="cpu").eval()

            def run(*xs):
                # The profiling executor re-optimises for every new sentence length, which
                # makes each call ~100x slower; the plain interpreter runs the same graph.
                with torch.jit.optimized_execution(False), torch.inference_mode():
                    return [o.numpy() for o in module(*(torch.from_numpy(x) for x in xs))]

            self._run = run
        else:
            raise ValueError(f"unknown export format {self.meta['format']!r}")

    def encode(self, tokens: list[str]) -> list[np.ndarray]:
        """The network's inputs for one sentence: words (1, T) and, if read, chars (1, T, C)."""
        norm = [self.normalize(tok) for tok in tokens]
        inputs = [np.array([[self.stoi.get(w, self.unk) for w in norm]], dtype=np.int64)]
        if self.char_stoi is not None:
            ids = [[self.char_stoi.get(c, self.unk) for c in w[: self.word_chars]] for w in norm]
            chars = np.zeros((1, len(ids), max(max(len(i) for i in ids), 1)), dtype=np.int64)
            for j, row in enumerate(ids):
                chars[0, j, : len(row)] = row
            inputs.append(chars)
        return inputs

    def decode(self, scores: np.ndarray, constrained: bool) -> list[int]:
        """Tag ids from slot scores (T, C), as slotfill's Tagger.predict decodes."""
        neg_inf = np.float32(-np.inf)
        if self.crf is not None:
            start, end, transitions = self.crf
            if constrained:
                start = np.where(self.allowed_start, start, neg_inf).astype(np.float32)
                transitions = np.where(self.allowed_transitions, transitions, neg_inf).astype(np.float32)
            return viterbi(scores, transitions, start, end)
        if constrained:
            zero = np.float32(0.0)
            start = np.where(self.allowed_start, zero, neg_inf).astype(np.float32)
            transitions = np.where(self.allowed_transitions, zero, neg_inf).astype(np.float32)
            return viterbi(log_softmax(scores), transitions, start, np.zeros_like(start))
        return [int(i) for i in scores.argmax(axis=-1)]

    def tag(self, sentences, constrained: bool | None = None) -> list[dict]:
        """Sentences as strings (split on whitespace) or token lists -> one dict each."""
        constrained = self.constrained if constrained is None else constrained
        results = []
        for sentence in sentences:
            tokens = sentence.split() if isinstance(sentence, str) else list(sentence)
            result = {"text": " ".join(tokens), "tokens": tokens, "tags": [], "slots": []}
            if self.intents is not None:
                result["intent"] = None
            if tokens:
                outputs = self._run(*self.encode(tokens))
                tags = [self.tags[i] for i in self.decode(outputs[0][0].astype(np.float32), constrained)]
                result["tags"] = tags
                result["slots"] = [
                    {"type": kind, "text": " ".join(tokens[start:end]), "start": start, "end": end}
                    for kind, start, end in spans(tags)
                ]
                if self.intents is not None:
                    result["intent"] = self.intents[int(outputs[1][0].argmax())]
            results.append(result)
        return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Tag sentences with an exported slotfill model.")
    parser.add_argument("sentences", nargs="*", help="sentences to tag (default: one per line on stdin)")
    decoding = parser.add_mutually_exclusive_group()
    decoding.add_argument("--constrained", dest="constrained", action="store_true", default=None,
                          help="BIO-constrained decoding")
    decoding.add_argument("--unconstrained", dest="constrained", action="store_false",
                          help="unconstrained decoding")
    parser.add_argument("--model-dir", default=str(HERE), help="the export folder (default: this file's)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (default 1: fastest for one sentence at a time; 0: the runtime's default)")
    args = parser.parse_args(argv)
    tagger = ExportedTagger(args.model_dir, args.threads)
    sentences = args.sentences if args.sentences else sys.stdin.read().splitlines()
    for result in tagger.tag(sentences, args.constrained):
        print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


def _export_task(cfg: Any) -> Path:
    from slotfill.cli import checkpoint_arg, run_guarded

    def task() -> Path:
        out = export_checkpoint(checkpoint_arg(cfg.ckpt_path), cfg.format, cfg.out_dir)
        print(f"exported {cfg.format} to {out} (run: python {out / 'predict.py'} \"your sentence\")")
        return out

    return run_guarded(task)


def main() -> Any:
    import hydra

    from slotfill.cli import conf_dir
    from slotfill.config import register_configs

    register_configs()
    return hydra.main(version_base="1.3", config_path=conf_dir(), config_name="export")(_export_task)()


if __name__ == "__main__":
    main()
