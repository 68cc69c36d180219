"""Attack answers cached in the stage cache: once per inputs, again when an input, the code or a scorer changes."""

import types

from decobench.attacks.base import AttackContext, AttackResult, cached_result, source_digest
from decobench.models.fr.zoo import weights_identity, weights_sha256
from decobench.run.cache import StageCache


def test_cached_result_computes_once_per_inputs_and_reads_back_what_it_wrote(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return AttackResult({"m": {"value": 0.5, "ci": [0.4, 0.6], "n": len(calls)}}, info={"calls": len(calls)})
    ctx = AttackContext(cfg=None, cache=StageCache(tmp_path))
    first = cached_result(ctx, "x", {"k": 1}, compute)
    again = cached_result(ctx, "x", {"k": 1}, compute)
    other = cached_result(ctx, "x", {"k": 2}, compute)
    assert first == again and first.info == {"calls": 1} and other.info == {"calls": 2}
    assert cached_result(AttackContext(cfg=None), "x", {"k": 1}, compute).info == {"calls": 3}  # no cache
    assert cached_result(ctx, "x", None, compute).info == {"calls": 4}  # no inputs: never cached
    assert len(calls) == 4


def test_source_digest_follows_the_code(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("x = 1\n")
    mod = types.SimpleNamespace(__name__="m", __file__=str(f))
    before = source_digest(mod)
    f.write_text("x = 2\n")
    assert source_digest(mod) != before
    # two modules with one file name (decobench has several base.py): a change to either still counts
    g = tmp_path / "pkg" / "m.py"
    g.parent.mkdir()
    g.write_text("y = 1\n")
    other = types.SimpleNamespace(__name__="pkg.m", __file__=str(g))
    both = source_digest(mod, other)
    f.write_text("x = 3\n")
    assert source_digest(mod, other) != both


def test_weights_identity_names_the_weights_not_the_path(tmp_path):
    assert weights_identity("resnet-arcface") == weights_sha256("resnet-arcface") is not None
    ts = tmp_path / "fr.pt"
    ts.write_bytes(b"one")
    first = weights_identity(f"torchscript:{ts}@112")
    ts.write_bytes(b"two")
    assert weights_identity(f"torchscript:{ts}@112") != first and len(first) == 64
    assert weights_identity(f"torchscript:{tmp_path / 'missing.pt'}@112").startswith("torchscript:")
