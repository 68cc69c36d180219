"""Typed config: --set values are parsed and range-checked; bad input is one error line, exit 2."""

import pytest

from decobench.cli.main import main
from decobench.registry import methods
from decobench.run.config import ConfigError, resolve


def test_set_values_are_typed():
    """v1 turned augment_flip=false into the truthy string 'false'."""
    cfg, params = resolve("quick", methods.get("ce_mask"), "ce_mask",
                          {"eval.classifier.augment_flip": "false", "lr": "3e-4", "max_train_images": "none",
                           "method.mask_ratio": "0.5", "release.num_inference_steps": "12"})
    assert cfg.eval.classifier.augment_flip is False and cfg.train.lr == 3e-4 and cfg.train.max_train_images is None
    assert params.mask_ratio == 0.5 and cfg.method["mask_ratio"] == 0.5 and cfg.release.num_inference_steps == 12


def test_every_bad_value_is_reported_at_once_with_its_range():
    with pytest.raises(ConfigError) as exc:
        resolve("quick", methods.get("ce_mask"), "ce_mask", {"lr": "-1", "method.mask_ratio": "1.5"})
    msg = str(exc.value)
    assert "train.lr='-1': Input should be greater than 0" in msg
    assert "method.mask_ratio='1.5': Input should be less than 1" in msg


def test_unknown_keys_name_the_valid_ones():
    with pytest.raises(ConfigError, match="valid keys: .*train.lr"):
        resolve("quick", methods.get("ce"), "ce", {"learning_rate": "1"})
    with pytest.raises(ConfigError, match="ce takes: method.adv_weight"):
        resolve("quick", methods.get("ce"), "ce", {"method.mask_ratio": "0.5"})


def test_method_params_change_the_config_hash():
    a, _ = resolve("quick", methods.get("ce"), "ce", {})
    b, _ = resolve("quick", methods.get("ce"), "ce", {"method.adv_weight": "2"})
    assert a.hash() != b.hash()


@pytest.mark.parametrize("sets", [["lr=-1"], ["method.mask_ratio=1.5"], ["augment_flip"], ["nope=1"]])
def test_cli_bad_set_is_one_error_line_exit_2(capsys, sets, tmp_path):
    args = ["run", "--method", "ce_mask", "--setup", "A", "--profile", "quick", "--out", str(tmp_path)]
    assert main(args + [a for s in sets for a in ("--set", s)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert not list(tmp_path.rglob("result.json"))


def test_internal_bugs_keep_their_traceback(monkeypatch):
    """v1 printed every ValueError as a user error, hiding bugs."""
    import decobench.run.runner as runner

    def boom(*a, **k):
        raise ValueError("an internal bug")
    monkeypatch.setattr(runner, "run_benchmark", boom)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["run", "--method", "ce", "--setup", "A"])
