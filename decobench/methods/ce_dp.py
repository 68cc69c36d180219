from decobench.methods.base import DPParams, OptimGroup
from decobench.methods.ce import CEParams, CrossEntropyDecoupling
from decobench.registry import methods


class CEDPParams(CEParams, DPParams):
    """CE's adversary weight and DP-SGD's settings (DECO-Bench A.4: ε 5 at δ 1e-5)."""


@methods.register("ce_dp")
class CrossEntropyDP(CrossEntropyDecoupling):
    """CE decoupling trained with DP-SGD (DECO-Bench A.4): the LoRA *and* the adversary are private.

    Both players' per-example gradients are clipped jointly to ``max_grad_norm`` and noised once per
    step (one Gaussian mechanism on a Poisson sample of Tr, one accountant step): an adversary trained
    without DP on Tr would feed the LoRA's loss a non-private function of the data and void its ε.
    Opacus's accountant gives ε; result.json records (z, q, steps, S, δ) and what the ε covers.
    """

    Params = CEDPParams
    dp_backbone = True
    tracks = ("data", "model")

    def optimizer_groups(self):
        return [OptimGroup("adversary", list(self.adversary.parameters()), dp=True, name="adversary")]
