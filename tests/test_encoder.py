"""The model track's encoder is DP-ready: per-example gradients (torch.func) are exact, nothing couples examples."""

import torch
from torch.func import functional_call, grad, vmap

from decobench.models.encoder import FaceEncoder, to_input


def test_per_example_gradients_of_the_encoder_add_up_to_the_batch_gradient():
    torch.manual_seed(0)
    enc, head = FaceEncoder((8, 16, 16, 32)), torch.nn.Linear(32, 3)
    x, y = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    params = {n: p.detach() for n, p in enc.named_parameters()}

    def loss_one(p, xi, yi):
        _, f = functional_call(enc, p, (xi[None],))
        return torch.nn.functional.cross_entropy(head(f), yi[None])
    per = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
    maps, f = enc(x)
    batch = torch.autograd.grad(torch.nn.functional.cross_entropy(head(f), y), list(enc.parameters()))
    for (name, _), b in zip(enc.named_parameters(), batch):
        assert torch.allclose(per[name].mean(0), b, atol=1e-6, rtol=1e-4), name
    assert [m.shape[-1] for m in maps] == [16, 8, 4, 2] and f.shape == (6, 32)
    # examples are independent: changing one image changes no other example's features
    x2 = x.clone()
    x2[0] += 1
    assert torch.equal(enc(x2)[1][1:], f[1:])


def test_input_scaling():
    img = torch.tensor([[[[0, 255, 127]]]], dtype=torch.uint8)
    assert torch.allclose(to_input(img).flatten(), torch.tensor([-1.0, 1.0, 127 / 127.5 - 1]))
