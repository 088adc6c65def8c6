"""The trainer end to end on tiny data: clipping, determinism, checkpoints, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from slotfill.checkpoint import load_checkpoint
from slotfill.data.bio import find_ill_formed
from slotfill.data.loading import load_splits
from slotfill.cli import evaluate_checkpoint
from slotfill.errors import ConfigError, DataError
from slotfill.evaluation import score
from slotfill.inference import SlotTagger
from slotfill.training import WeightAverage, clip_grad_norm, train
from tests.conftest import compose_eval, compose_train


def _params_with_grads(values: list[list[float]]) -> list[torch.nn.Parameter]:
    params = []
    for v in values:
        p = torch.nn.Parameter(torch.zeros(len(v)))
        p.grad = torch.tensor(v)
        params.append(p)
    return params


def test_clip_scales_by_exactly_clip_over_global_norm():
    params = _params_with_grads([[3.0, 0.0], [0.0, 4.0, 12.0]])  # ||g|| = 13
    norm = clip_grad_norm(params, 5.0)
    assert float(norm) == pytest.approx(13.0)
    scale = 5.0 / 13.0
    torch.testing.assert_close(params[0].grad, torch.tensor([3.0, 0.0]) * scale, rtol=0, atol=0)
    torch.testing.assert_close(params[1].grad, torch.tensor([0.0, 4.0, 12.0]) * scale, rtol=0, atol=0)
    total = torch.linalg.vector_norm(torch.cat([p.grad for p in params]))
    assert float(total) == pytest.approx(5.0, rel=1e-6)


def test_clip_leaves_small_gradients_and_measures_without_clip():
    params = _params_with_grads([[0.3, 0.4]])
    assert float(clip_grad_norm(params, 5.0)) == pytest.approx(0.5)
    torch.testing.assert_close(params[0].grad, torch.tensor([0.3, 0.4]), rtol=0, atol=0)
    params = _params_with_grads([[30.0, 40.0]])
    assert float(clip_grad_norm(params, None)) == pytest.approx(50.0)
    torch.testing.assert_close(params[0].grad, torch.tensor([30.0, 40.0]), rtol=0, atol=0)


def test_tiny_train_checkpoint_evaluate_round_trip(tiny_corpus: Path, tmp_path: Path):
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", "trainer.max_epochs=3", "logger=tensorboard",
                         "logger.log_every_n_steps=1"])
    run = tmp_path / "run"
    results = train(cfg, run)
    for key in ("dev", "test"):
        for metric in ("f1", "precision", "recall"):
            assert 0.0 <= results[key][metric] <= 1.0
    on_disk = json.loads((run / "results.json").read_text())
    for key in ("best_epoch", "epochs", "train_seconds", "tokens_per_second", "params", "config"):
        assert key in on_disk
    assert on_disk["test"]["f1"] == results["test"]["f1"]
    assert (run / "checkpoints" / "best.pt").is_file() and (run / "checkpoints" / "last.pt").is_file()
    assert (run / "config.yaml").is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    lines = (run / "predictions" / "test.conll").read_text().splitlines()
    assert lines[0].split(" ")[:2] == ["show", "O"] and len(lines[0].split(" ")) == 3

    # The checkpoint alone rebuilds the model, and evaluation reproduces the test score.
    state = load_checkpoint(run / "checkpoints" / "best.pt")
    assert state["epoch"] == results["best_epoch"]
    ecfg = compose_eval([f"ckpt_path={run / 'checkpoints' / 'best.pt'}"])
    f1 = evaluate_checkpoint(ecfg, tmp_path / "eval")
    assert f1 == pytest.approx(results["test"]["f1"], abs=1e-12)
    scored = json.loads((tmp_path / "eval" / "results.json").read_text())
    # B-class_type never occurs in training: it is reported as an unseen gold tag and missed.
    assert scored["unseen_gold_tags"] == ["B-class_type", "I-class_type"]
    assert scored["test"]["per_slot"]["class_type"]["recall"] == 0.0

    tagger = SlotTagger.load(run)
    out = tagger.tag(["show flights from boston to denver", "", ["to", "dallas"]])
    assert out[0]["tokens"] == ["show", "flights", "from", "boston", "to", "denver"]
    assert len(out[0]["tags"]) == 6 and out[1]["tags"] == [] and len(out[2]["tags"]) == 2
    assert "intent" in out[0]
    for slot in out[0]["slots"]:
        assert slot["text"] == " ".join(out[0]["tokens"][slot["start"] : slot["end"]])


def test_slot_swap_trains_on_swapped_slots_with_characters(tiny_corpus: Path, tmp_path: Path):
    """The option reaches the loop (the first epoch's loss moves) and a character model, whose
    batch reads the swapped words' spellings, trains with it."""
    base = ["data=folder", f"data.dir={tiny_corpus}", "model.char_filters=4", "trainer.max_epochs=2", "trainer.batch_size=2"]
    plain = train(compose_train(base), tmp_path / "plain")
    swapped = train(compose_train(base + ["vocab.slot_swap=0.9"]), tmp_path / "swapped")
    assert swapped["history"][0]["train_loss"] != plain["history"][0]["train_loss"]
    assert swapped["status"] == "finished" and 0.0 <= swapped["test"]["f1"] <= 1.0


def test_same_seed_same_result_other_seed_other_weights(tiny_corpus: Path, tmp_path: Path):
    base = ["data=folder", f"data.dir={tiny_corpus}", "vocab.unk_dropout=0.3", "model.dropout=0.2"]
    a = train(compose_train(base + ["seed=3"]), tmp_path / "a")
    b = train(compose_train(base + ["seed=3"]), tmp_path / "b")
    train(compose_train(base + ["seed=4"]), tmp_path / "c")
    assert a["dev"] == b["dev"] and a["test"] == b["test"]
    assert a["history"] == [{**h, "seconds": a["history"][i]["seconds"]} for i, h in enumerate(b["history"])]
    wa = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")["model_state"]
    wb = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["model_state"]
    wc = load_checkpoint(tmp_path / "c" / "checkpoints" / "last.pt")["model_state"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_locked_dropout_trains_changes_the_run_reloads_and_is_logged(tiny_corpus: Path, tmp_path: Path):
    from slotfill.training import describe

    base = ["data=folder", f"data.dir={tiny_corpus}", "model.dropout=0.3", "trainer.max_epochs=2"]
    locked = train(compose_train(base + ["model.locked_dropout=true"]), tmp_path / "locked")
    per_token = train(compose_train(base), tmp_path / "per_token")
    # other masks, so another trajectory from the same seed
    assert locked["history"][0]["train_loss"] != per_token["history"][0]["train_loss"]
    tagger = SlotTagger.load(tmp_path / "locked")
    assert tagger.model.hparams["locked_dropout"] and tagger.model.words.dropout.locked
    assert "locked (variational) dropout" in describe(tagger.model)
    assert "locked" not in describe(SlotTagger.load(tmp_path / "per_token").model)
    assert len(tagger.tag(["flights from boston to denver"])[0]["tags"]) == 5


def test_weight_average_moves_by_one_minus_decay_after_a_warm_up():
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -1.0]]))
        model.bias.fill_(0.0)
    average = WeightAverage(model, decay=0.9)
    assert not any(p.requires_grad for p in average.model.parameters())
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[3.0, 1.0]]))
        model.bias.fill_(2.0)
    average.update(1)  # decay min(0.9, 2/11): the average moves 9/11 of the way
    torch.testing.assert_close(average.model.weight, torch.tensor([[1.0 + 2.0 * 9 / 11, -1.0 + 2.0 * 9 / 11]]))
    torch.testing.assert_close(average.model.bias, torch.tensor([2.0 * 9 / 11]))
    before = average.model.weight.clone()
    average.update(1000)  # past the warm-up: decay 0.9
    torch.testing.assert_close(average.model.weight, before + 0.1 * (model.weight.detach() - before))
    torch.testing.assert_close(model.weight.detach(), torch.tensor([[3.0, 1.0]]))  # the live model is untouched


def test_weight_average_is_what_dev_best_and_test_see(tiny_corpus: Path, tmp_path: Path):
    base = ["data=folder", f"data.dir={tiny_corpus}", "trainer.max_epochs=3", "trainer.patience=10", "trainer.batch_size=2"]
    plain = train(compose_train(base), tmp_path / "plain")
    # A decay that rounds to 0 keeps the average equal to the live weights: the same run.
    tiny = train(compose_train(base + ["trainer.ema_decay=1e-12"]), tmp_path / "tiny")
    assert tiny["history"] == [{**h, "seconds": tiny["history"][i]["seconds"]} for i, h in enumerate(plain["history"])]
    assert tiny["test"] == plain["test"]
    averaged = train(compose_train(base + ["trainer.ema_decay=0.9"]), tmp_path / "ema")
    last = load_checkpoint(tmp_path / "ema" / "checkpoints" / "last.pt")
    plain_last = load_checkpoint(tmp_path / "plain" / "checkpoints" / "last.pt")
    # Training itself is unchanged: the live weights equal the plain run's.
    assert all(torch.equal(last["model_state"][k], plain_last["model_state"][k]) for k in last["model_state"])
    assert not all(torch.equal(last["average_state"][k], last["model_state"][k]) for k in last["model_state"])
    best = load_checkpoint(tmp_path / "ema" / "checkpoints" / "best.pt")
    if best["epoch"] == 3:
        assert all(torch.equal(best["model_state"][k], last["average_state"][k]) for k in last["average_state"])
    assert [h["train_loss"] for h in averaged["history"]] == [h["train_loss"] for h in plain["history"]]
    tagger = SlotTagger.load(tmp_path / "ema" / "checkpoints" / "best.pt")
    dev = load_splits(compose_train(base).data)["dev"]
    assert score(dev, tagger.predict(dev))["f1"] == averaged["dev"]["f1"]


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_every_cell_direction_and_depth_trains(cell, bidirectional, num_layers, tiny_corpus, tmp_path):
    cfg = compose_train([
        "data=folder", f"data.dir={tiny_corpus}", f"model.cell={cell}",
        f"model.bidirectional={bidirectional}", f"model.num_layers={num_layers}", "trainer.max_epochs=1",
    ])
    results = train(cfg, tmp_path / "run")
    h = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")["model_args"]
    assert (h["cell"], h["bidirectional"], h["num_layers"]) == (cell, bidirectional, num_layers)
    assert results["epochs"] == 1


@pytest.mark.parametrize("schedule", ["none", "plateau", "linear"])
@pytest.mark.parametrize("optim", ["adam", "adamw", "sgd"])
def test_optimizers_and_schedules(optim, schedule, tiny_corpus, tmp_path):
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", f"optim={optim}", f"scheduler={schedule}",
                         "trainer.max_epochs=2", "trainer.clip_norm=null", "trainer.clip_value=1.0"])
    results = train(cfg, tmp_path / "run")
    assert results["config"]["optim"]["_target_"].lower().endswith(optim)
    assert results["steps"] == 4


def test_loss_reduction_mean_and_sum_both_train(tiny_corpus, tmp_path):
    for reduction in ("sum", "mean"):
        cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", f"trainer.loss_reduction={reduction}"])
        assert train(cfg, tmp_path / reduction)["history"][0]["train_loss"] > 0


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.cell=transformer", "model.cell='transformer' is unknown"),
        ("model.hidden_size=-3", "model.hidden_size=-3 must be a positive integer"),
        ("model.dropout=1.0", "model.dropout=1.0 is outside [0, 1)"),
        ("vocab.slot_swap=1.5", "vocab.slot_swap=1.5 is outside [0, 1)"),
        ("vocab.digits=DIGIT", "vocab.digits='DIGIT' is unknown"),
        ("trainer.loss_reduction=avg", "trainer.loss_reduction='avg' is unknown"),
        ("trainer.ema_decay=1.0", "trainer.ema_decay=1.0 must be in (0, 1)"),
        ("model.pretrained_vectors=/nonexistent.txt", "does not exist"),
    ],
)
def test_config_errors_fail_before_data_is_read(override, message, tmp_path):
    # data.dir points nowhere: the config error must come first.
    cfg = compose_train(["data=folder", "data.dir=/nonexistent", override])
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        train(cfg, tmp_path / "run")


def test_missing_data_folder_is_a_data_error(tmp_path):
    cfg = compose_train(["data=folder", f"data.dir={tmp_path / 'nothing'}"])
    with pytest.raises(DataError, match="nothing"):
        train(cfg, tmp_path / "run")


def test_intent_on_without_labels_is_a_config_error(tiny_corpus, tmp_path):
    for split in ("train", "dev", "test"):
        (tiny_corpus / split / "label").unlink()
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", "model.intent=on"])
    with pytest.raises(ConfigError, match="model.intent=on"):
        train(cfg, tmp_path / "run")
    results = train(compose_train(["data=folder", f"data.dir={tiny_corpus}"]), tmp_path / "auto")
    assert "intent_accuracy" not in results["test"]
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", "model.intent_slot_bias=true"])
    with pytest.raises(ConfigError, match=r"intent_slot_bias=true needs an intent head.*training data has no intents"):
        train(cfg, tmp_path / "bias")


def test_pretrained_vectors_initialise_embeddings(tiny_corpus, tmp_path):
    vectors = tmp_path / "vec.txt"
    vectors.write_text("3 12\n" + "".join(
        f"{w} " + " ".join(str(i + 0.5) for _ in range(12)) + "\n" for i, w in enumerate(["Boston", "denver", "zzz"])
    ))
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", f"model.pretrained_vectors={vectors}",
                         "trainer.max_epochs=1", "trainer.lr=1e-9"])
    train(cfg, tmp_path / "run")
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    itos = state["vocab"]["itos"]
    emb = state["model_state"]["words.embedding.weight"]
    torch.testing.assert_close(emb[itos.index("boston")], torch.full((12,), 0.5), atol=1e-6, rtol=0)
    torch.testing.assert_close(emb[itos.index("denver")], torch.full((12,), 1.5), atol=1e-6, rtol=0)
    assert torch.count_nonzero(emb[0]) == 0


def test_bad_vectors_file_names_line(tiny_corpus, tmp_path):
    vectors = tmp_path / "vec.txt"
    vectors.write_text("boston 1 2 3\n")
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", f"model.pretrained_vectors={vectors}"])
    with pytest.raises(DataError, match=r"vec.txt:1: vector has 3 dimensions, expected 12"):
        train(cfg, tmp_path / "run")


def test_resolved_config_is_saved_and_loads(tiny_corpus, tmp_path):
    train(compose_train(["data=folder", f"data.dir={tiny_corpus}", "model.cell=gru"]), tmp_path / "run")
    saved = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert saved.model.cell == "gru" and saved.data.dir == str(tiny_corpus)


@pytest.mark.parametrize("head", ["softmax", "crf"])
@pytest.mark.parametrize("constrained", [False, True])
def test_heads_and_decodings_train_and_report_both(head, constrained, tiny_corpus, tmp_path):
    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", f"model.head={head}",
                         f"model.constrained_decoding={constrained}", "trainer.max_epochs=3"])
    results = train(cfg, tmp_path / "run")
    both = results["test"]["by_decoding"]
    assert set(both) == {"unconstrained", "constrained"}
    configured = both["constrained" if constrained else "unconstrained"]
    assert configured["f1"] == results["test"]["f1"]
    tagger = SlotTagger.load(tmp_path / "run")
    assert tagger.model.hparams["head"] == head
    tags = tagger.predict(load_splits(cfg.data)["test"], constrained=True).tags
    assert all(find_ill_formed(t) == [] for t in tags)
    ecfg = compose_eval([f"ckpt_path={tmp_path / 'run'}", "constrained=true"])
    f1 = evaluate_checkpoint(ecfg, tmp_path / "eval")
    assert f1 == pytest.approx(both["constrained"]["f1"], abs=1e-12)


def test_checkpoint_with_mismatched_weights_is_a_clear_error(tiny_corpus, tmp_path):
    import torch as _torch

    from slotfill.errors import CheckpointError

    train(compose_train(["data=folder", f"data.dir={tiny_corpus}", "trainer.max_epochs=1"]), tmp_path / "run")
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert not any(k.startswith("allowed_") for k in state["model_state"])  # derived from the tags
    state["model_args"]["hidden_size"] += 1
    _torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="do not fit the model"):
        SlotTagger.load(tmp_path / "bad.pt")


@pytest.mark.parametrize("cell,context", [("rnn", 0), ("lstm", 1)])
def test_gradient_flow_is_measured_at_init_and_end(cell, context, tiny_corpus, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose_train(["data=folder", f"data.dir={tiny_corpus}", f"model.cell={cell}", f"model.context_window={context}",
                         "logger=tensorboard", "logger.gradient_flow_min_length=4"])
    results = train(cfg, tmp_path / "run")
    flow = results["gradient_flow"]
    assert flow["split"] == "dev"
    for when in ("init", "final"):
        assert flow[when]["utterances"] == 2 and len(flow[when]["forward"]["norms"]) == 4
        assert isinstance(flow[when]["forward"]["decay"], float)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload()
    assert {"gradient_flow/init_decay", "gradient_flow/final_decay"} <= set(events.Tags()["scalars"])
    assert train(compose_train(["data=folder", f"data.dir={tiny_corpus}"]), tmp_path / "off")["gradient_flow"] is None


def test_tensorboard_hparams_keep_list_settings_as_text():
    """TensorBoard's hparams take scalars only; a list setting (model.lm_cutoffs, optim.betas)
    is recorded as its text rather than left out, so runs that differ in it stay apart."""
    from slotfill.training import _flat_hparams

    flat = _flat_hparams(compose_train(["model.lm_loss_weight=0.1", "model.lm_cutoffs=[200,1000]"]))
    assert flat["model.lm_cutoffs"] == "[200, 1000]"
    assert flat["model.lm_loss_weight"] == 0.1 and flat["optim.betas"] == "[0.9, 0.999]"
    assert _flat_hparams(compose_train([]))["model.lm_cutoffs"] == "[]"
