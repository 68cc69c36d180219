"""``decobench fr train``: train zoo models, calibrate them on held-out identities, write weights + manifest."""

from __future__ import annotations

import time
from dataclasses import asdict, replace

import torch

from decobench.io import atomic_write_json, sha256_file
from decobench.models.fr.train import (DOMAIN, IDENTITY_RANGES, PROBES_PER_ENROLLED, FRData, attribute_floor,
                                       calibrate_identities, identity_protocol, train_zoo_model)
from decobench.models.fr.zoo import MANIFEST, SPECS, WEIGHTS, manifest


def build(names: list[str], epochs: int | None = None, out=WEIGHTS, log=print) -> dict:
    """Train ``names``; each model's entry is its own file, so several processes can train the zoo."""
    from safetensors.torch import save_file

    data = FRData()
    proto = identity_protocol(data)
    floor = attribute_floor(proto)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / MANIFEST.name, {
        "population": f"{DOMAIN} (seed {data.pop.config.seed}; no identity of any split or of synthfaces-pretrain)",
        "identity_ranges": IDENTITY_RANGES,
        "calibration_protocol": (f"1:N search: {len(proto['probe_rows'])} probes ({PROBES_PER_ENROLLED} per enrolled "
                                 f"identity), gallery {len(proto['gallery_rows'])} images = 1 image of each of "
                                 f"{len(proto['probe_rows']) // PROBES_PER_ENROLLED} enrolled identities + "
                                 f"{len(proto['gallery_rows']) - len(proto['probe_rows']) // PROBES_PER_ENROLLED} "
                                 "distractor images of other people; cosine similarity; ties count against"),
        "attribute_only_floor": floor})
    entries = {}
    cache: dict = {}
    for name in names:
        spec = SPECS[name] if epochs is None else replace(SPECS[name], epochs=epochs)
        net, info = train_zoo_model(spec, data, log=log)
        t = time.time()
        calib = calibrate_identities(net, data, proto, cache)
        tmp = out / f".{name}.safetensors.tmp"
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
        tmp.replace(out / f"{name}.safetensors")
        entries[name] = {**asdict(spec), "command": f"decobench fr train --model {name}",
                               "torch": torch.__version__, **info, "calibration": calib,
                               "calibration_s": round(time.time() - t, 1),
                               "sha256": sha256_file(out / f"{name}.safetensors")}
        atomic_write_json(out / f"{name}.json", entries[name])
        log(f"{name}: rank-1 {100 * calib['rank1']:.1f} %, rank-5 {100 * calib['rank5']:.1f} %, "
            f"verification {100 * calib['verification_accuracy']:.1f} % (attribute-only floor rank-1 "
            f"{100 * floor['rank1']:.2f} %)")
    return manifest(out)
