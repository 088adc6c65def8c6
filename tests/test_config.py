"""Every config option composes against its schema; typos fail at composition time."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from slotfill.config import validate_train
from slotfill.errors import ConfigError
from tests.conftest import CONF, compose_eval, compose_train

GROUPS = {group: sorted(p.stem for p in (CONF / group).glob("*.yaml")) for group in
          ("data", "model", "optim", "scheduler", "logger", "experiment")}
FILLED = {"folder": ["data.dir=x"], "conll": ["data.train=a", "data.dev=b", "data.test=c"],
          "iob": ["data.train=a", "data.dev=b", "data.test=c"],
          "snips_distill": ["trainer.distill_from=[]"]}  # its teachers' folder: test_snips_distill_...


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes_and_validates(group, option):
    overrides = [f"{group}={option}"] + FILLED.get(option, [])
    cfg = compose_train(overrides)
    assert OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    validate_train(cfg)


def test_groups_are_not_empty():
    assert all(GROUPS.values()), GROUPS


def test_defaults_are_the_documented_ones():
    with_defaults = compose_train([])
    assert with_defaults.model.cell == "lstm" and with_defaults.model.bidirectional is True
    assert with_defaults.model.num_layers == 1
    assert with_defaults.trainer.clip_norm == 5.0
    assert with_defaults.trainer.loss_reduction == "sum"
    assert with_defaults.data.dir == "data/airline"


def test_presets_read_slotfill_data(monkeypatch):
    monkeypatch.setenv("SLOTFILL_DATA", "/some/where")
    cfg = compose_train(["data=snips"])
    assert cfg.data.dir == "/some/where/snips" and cfg.data.download == "snips"
    monkeypatch.delenv("SLOTFILL_DATA")
    assert compose_train(["data=atis"]).data.dir == "data/atis"


@pytest.mark.parametrize("override", ["model.cel=gru", "trainer.lr_rate=0.1", "vocab.lower=false"])
def test_typo_in_a_key_fails_at_composition(override):
    with pytest.raises(ConfigCompositionException):
        compose_train([override])


@pytest.mark.parametrize("override", ["model.hidden_size=big", "trainer.max_epochs=1.5", "model.bidirectional=maybe"])
def test_wrong_type_fails_at_composition(override):
    with pytest.raises((ConfigCompositionException, ValidationError)):
        compose_train([override])


def test_eval_requires_a_checkpoint_and_takes_data_presets():
    cfg = compose_eval(["ckpt_path=x.pt"])
    assert cfg.data is None and cfg.split == "test"
    assert OmegaConf.is_missing(compose_eval([]), "ckpt_path")
    assert compose_eval(["ckpt_path=x.pt", "data=atis"]).data.download == "atis"


@pytest.mark.parametrize("ensemble,single,size", [
    ("atis_ensemble", ["experiment=atis_best"], 5),
    ("snips_ensemble", ["experiment=snips_best"], 10),
])
def test_an_ensemble_member_is_the_single_run_its_config_file_names(ensemble, single, size):
    # Member i of ensemble seed s is the documented single run with seed k*s+i (k members):
    # what lets a seed sweep of the single configuration supply the ensembles' members (and
    # the README's rows).
    from slotfill.ensemble import member_config

    cfg = compose_train([f"experiment={ensemble}", "seed=3"], small=False)
    assert cfg.trainer.ensemble == size
    member = OmegaConf.to_container(member_config(cfg, 2))
    alone = OmegaConf.to_container(compose_train([*single, f"seed={3 * size + 2}"], small=False), resolve=True)
    member.pop("resume"), alone.pop("resume")
    assert member == alone


def test_snips_distill_is_snips_best_with_the_documented_teachers():
    distill = OmegaConf.to_container(compose_train(["experiment=snips_distill"], small=False), resolve=True)
    best = OmegaConf.to_container(
        compose_train(["experiment=snips_best", "vocab.slot_swap=0", "trainer.distill_from=[runs/snips_teachers]"], small=False),
        resolve=True,
    )
    assert distill == best and distill["trainer"]["distill_weight"] == 0.5
    # the teachers' folder is checked before any data is read
    with pytest.raises(ConfigError, match="runs/snips_teachers is neither a checkpoint nor a run folder"):
        validate_train(compose_train(["experiment=snips_distill", "data.dir=/nonexistent"], small=False))
