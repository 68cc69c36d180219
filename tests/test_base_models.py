import shutil

import pytest

from decobench.models.base import TINY_DIR, BaseModelError, load_base, missing_files, resolve_base_path
from decobench.models.lora import add_lora, lora_target_names, parameter_counts
from decobench.models.prompts import prompt_for
from tests.tiny_models import tiny_base


def test_sd15_needs_a_local_folder(monkeypatch):
    monkeypatch.delenv("DECOBENCH_SD15", raising=False)
    with pytest.raises(BaseModelError, match="--base-path DIR or set DECOBENCH_SD15"):
        resolve_base_path("sd15")


def test_incomplete_folder_lists_what_is_missing(tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text("{}")
    with pytest.raises(BaseModelError) as exc:
        resolve_base_path("sd15", tmp_path)
    msg = str(exc.value)
    assert "vae/config.json" in msg and "tokenizer/merges.txt" in msg and "unet/diffusion_pytorch_model" in msg
    assert "unet/config.json" not in msg


@pytest.mark.skipif(bool(missing_files(TINY_DIR)), reason="tiny-synthface weights not built")
def test_any_diffusers_folder_loads_through_the_sd15_path(tmp_path):
    shutil.copytree(TINY_DIR, tmp_path / "sd")
    base = load_base("sd15", tmp_path / "sd")
    # DECO-Bench A.3 trains and releases SD v1-5 at 128x128; v1 derived 512 from sample_size x 8
    assert base.resolution == 128 and base.vae.config.scaling_factor > 0
    assert load_base("sd15", tmp_path / "sd", resolution=64).resolution == 64
    with pytest.raises(BaseModelError, match="multiple of"):
        load_base("sd15", tmp_path / "sd", resolution=33)
    ids = base.tokenizer(["A 20-29 year-old White Female"]).input_ids[0]
    assert len(ids) > 20  # character tokens, not unknowns
    assert len(set(ids[1:-1])) > 5


def test_lora_targets_every_transformer_block_and_counts():
    base = tiny_base()
    targets = lora_target_names(base.unet)
    assert targets[0].startswith("down_blocks") and targets[-1].startswith("up_blocks")
    assert any(t.startswith("mid_block") for t in targets)
    add_lora(base.unet, rank=4)
    c = parameter_counts(base.unet)
    chans = [dict(base.unet.named_modules())[t].base_layer.out_channels for t in targets]
    assert c["lora_trainable"] == 8 * sum(chans)


def test_prompt_policy():
    assert prompt_for(2, 1, 3) == "A 20-29 year-old Asian Female"
    assert prompt_for(2, 1, 3, "without_sensitive") == "A 20-29 year-old Female"
    assert prompt_for(2, 1, 3, "without_sensitive", sensitive="gender") == "A 20-29 year-old Asian person"
    assert prompt_for(2, 1, 3, "null") == ""
    with pytest.raises(ValueError):
        prompt_for(0, 0, 0, "sometimes")
