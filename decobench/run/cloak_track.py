"""``decobench run --track cloak``: craft one cloak per protected person, score it with ``fr_protection``.

people (SynthFaces' Privacy-Commons stand-in, or ``--data-root DIR/privacy-commons``) -> masks crafted on
the surrogate (``--set method.surrogate=...``; cached by content hash) -> the cloak attack suite ->
result.json (track ``cloak``, setup ``PC``, regime ``cloak``). The track's own settings are ``cloak.*``
(``--set cloak.identities=50``); a cloak method's are ``method.*``.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

import decobench
from decobench.io import atomic_write_json, files_digest
from decobench.run.config import ConfigError, _parse_scalar, config_hash, in_suite_order

SETUP, REGIME = "PC", "cloak"


class CloakTrackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: str = "embedded"
    identities: int = Field(500, ge=1, description="protected people (SynthFaces: at most 500)")
    distractors: int = Field(10_500, ge=1, description="gallery distractor images of other people")
    image_size: int = Field(112, ge=16, description="real data only: every photo is resized to this side")
    targets: tuple[str, ...] = Field((), description="target FR models; empty: every zoo model (+ dlib if installed), "
                                                     "written into the result")
    bootstrap: int = Field(1000, ge=50, description="resamples of identities for the CIs")
    attacks: tuple[str, ...] = ("fr_protection",)


CLOAK_PROFILES = {"quick": {"identities": 50, "distractors": 2000, "bootstrap": 300},
                  "embedded": {}, "paper": {}}


def resolve_cloak(profile: str, method_cls, overrides: dict | None) -> tuple[CloakTrackConfig, object]:
    """Profile + ``cloak.*`` / ``method.*`` overrides -> (track config, method Params); every problem at once."""
    from decobench.models.fr.zoo import SPECS

    if profile not in CLOAK_PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(CLOAK_PROFILES)}")
    track, method, problems = {"profile": profile, **CLOAK_PROFILES[profile]}, {}, []
    for key, raw in (overrides or {}).items():
        section, _, leaf = key.partition(".")
        if section == "cloak" and leaf in CloakTrackConfig.model_fields and leaf != "profile":
            value = _parse_scalar(raw)
            track[leaf] = [value] if leaf in ("targets", "attacks") and isinstance(value, str) else value
        elif section == "method" and leaf in method_cls.Params.model_fields:
            method[leaf] = _parse_scalar(raw)
        else:
            problems.append(f"unknown key {key!r} on the cloak track; it takes cloak.<{'|'.join(sorted(set(CloakTrackConfig.model_fields) - {'profile'}))}> "
                            f"and method.<{'|'.join(method_cls.Params.model_fields)}>")
    cfg = params = None
    if not track.get("targets"):  # resolved here, so the result (and its comparability key) names the targets:
        from decobench.attacks.fr_protection import targets  # a black-box mean with dlib is not one without it

        track["targets"] = targets()
    try:
        cfg = CloakTrackConfig(**track)
    except ValidationError as exc:
        problems += [f"cloak.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    try:
        params = method_cls.Params(**method)
    except ValidationError as exc:
        problems += [f"method.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    if params is not None and params.surrogate not in SPECS:
        problems.append(f"method.surrogate={params.surrogate!r}: a cloak is crafted on a differentiable zoo model: "
                        f"{', '.join(SPECS)}")
    if problems:
        raise ConfigError("; ".join(problems))
    return cfg, params


def cloak_version(cls) -> str:
    """The method's declared version and the digest of the crafting code (the method, craft, objectives, hull)."""
    import inspect

    here = Path(__file__).resolve().parents[1] / "cloaks"
    files = {inspect.getsourcefile(cls), *(str(here / f) for f in ("craft.py", "objectives.py", "hull.py"))}
    return f"{cls.version}:{files_digest({Path(f).name: f for f in files})}"


def run_folder(out, method: str, cfg: CloakTrackConfig, params, seed: int, where: dict | None = None
               ) -> tuple[str, Path]:
    """(config hash, the run's folder): runs that differ in any setting (the attacks included), or in real data
    or CUDA (``where``, see identity.where_of), never share a folder."""
    from decobench.run.identity import where_tag

    chash = config_hash({"cloak": cfg.model_dump(), "method": params.model_dump()})
    return chash, Path(out) / SETUP / method / f"{REGIME}-{cfg.profile}-{chash[:10]}{where_tag(where)}" / f"seed{seed}"


def with_cloak_attacks(cfg: CloakTrackConfig, attacks) -> CloakTrackConfig:
    """--attacks written into the config (its hash names the folder); the default suite leaves it as it was."""
    return cfg.model_copy(update={"attacks": in_suite_order(attacks, cfg.attacks)}) if attacks else cfg


def load_people(cfg: CloakTrackConfig, data_root):
    from decobench.cloaks.data import from_folder, synthfaces

    if data_root:
        return from_folder(Path(data_root) / "privacy-commons", cfg.image_size).subset(cfg.identities, cfg.distractors)
    return synthfaces(cfg.identities, cfg.distractors)


def run_cloak(method: str, seed: int = 0, profile: str = "embedded", out="runs", data_root=None, device="cpu",
              overrides: dict | None = None, attacks: list[str] | None = None, log=print,
              where: dict | None = None) -> tuple[dict, Path]:
    from safetensors.torch import load_file, save_file

    from decobench.attacks.base import AttackContext, CloakRelease
    from decobench.cloaks.craft import craft_masks
    from decobench.models.fr.train import to_unit
    from decobench.models.fr.zoo import load_zoo_model, weights_sha256
    from decobench.registry import methods
    from decobench.results.build import comparability_key, commit, hardware, versions
    from decobench.results.schema import validate
    from decobench.run.cache import StageCache, file_lock
    from decobench.run.identity import select_attacks

    t_all, seconds = time.time(), {}
    entry = methods.entry(method)
    cfg, params = resolve_cloak(profile, entry.obj, overrides)
    cfg = with_cloak_attacks(cfg, attacks)
    suite = select_attacks(cfg.attacks, "cloak")
    for e in suite:
        e.obj.preflight(cfg)
    people = load_people(cfg, data_root)
    version, fp = cloak_version(entry.obj), people.fingerprint()
    chash, run_dir = run_folder(out, method, cfg, params, seed, where)
    cache = StageCache(Path(out) / ".cache")
    with file_lock(run_dir.parent / f".seed{seed}.lock"):
        t = time.time()
        inputs = {"method": method, "version": version, "params": params.model_dump(), "seed": seed, "people": fp,
                  "surrogate": weights_sha256(params.surrogate)}
        with cache.stage("cloak_masks", inputs) as (folder, cached):
            if not cached:
                I, n = people.craft.shape[:2]
                images = to_unit(people.craft.reshape(I * n, *people.craft.shape[2:])).reshape(I, n, 3, *people.craft.shape[2:4])
                settings = entry.obj.settings(params)
                log(f"crafting {I} cloaks on {params.surrogate} ({settings.gradients_per_identity(n)} gradients each)")
                masks = craft_masks(images.to(device), load_zoo_model(params.surrogate, device).net, settings, seed,
                                    log=log).cpu()
                save_file({"masks": masks.contiguous()}, str(folder / "masks.safetensors"))
            masks = load_file(str(folder / "masks.safetensors"))["masks"]
        seconds["craft"] = round(time.time() - t, 2)
        release = CloakRelease(people, masks, params.surrogate)
        evaluation = {"dataset": people.name, "metrics": {}, "reference": {}, "attack_info": {}}
        for e in suite:
            t = time.time()
            res = e.obj(AttackContext(cfg=cfg, seed=seed, device=device, cache=cache, log=log)).run(release)
            evaluation["metrics"].update(res.metrics)
            evaluation["reference"].update(res.reference)
            evaluation["attack_info"][e.name] = res.info
            seconds[e.name] = round(time.time() - t, 2)
        seconds["total"] = round(time.time() - t_all, 2)
        result = {
            "schema_version": 2, "track": "cloak", "method": method, "method_origin": entry.origin,
            "method_version": version, "method_params": params.model_dump(), "setup": SETUP, "regime": REGIME,
            "sensitive": "identity", "profile": profile, "prompt_policy": "none",
            "datasets": {"train": [], "evaluate": [people.name]}, "split_hashes": {},
            "data_fingerprints": {people.name: fp}, "config": {"cloak": cfg.model_dump()}, "config_hash": chash,
            "seed": seed, "base_model": params.surrogate, "base_weights": weights_sha256(params.surrogate) or "none",
            "resolution": int(people.test.shape[2]),
            "attacks": {e.name: {"version": e.obj.version, "origin": e.origin} for e in suite},
            "decobench_version": decobench.__version__, "decobench_commit": commit(), "packages": versions(),
            "hardware": hardware(device), "stage_seconds": seconds,
            "parameter_counts": {"mask_values_per_person": int(masks[0].numel()),
                                 "people": len(people.identities), "distractors": len(people.distractors)},
            "evaluations": [evaluation],
        }
        result["comparability_key"] = comparability_key(result)
        validate(result)
        atomic_write_json(run_dir / "result.json", result)
    return result, run_dir
