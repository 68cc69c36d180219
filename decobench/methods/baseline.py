from decobench.methods.base import DecouplingMethod
from decobench.registry import methods


@methods.register("baseline")
class Baseline(DecouplingMethod):
    """LoRA fine-tune with no decoupling term (DECO-Bench's reference)."""

    paper_lr = 1e-5
    tracks = ("data", "model")
