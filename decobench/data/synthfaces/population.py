"""Who is in a SynthFaces domain: the joint attribute distribution, identities and per-image nuisances.

The whole population of a domain (identity traits and every image's parameters) is drawn at once,
vectorised, from the domain seed, so image ``k`` is the same picture however it is batched.

The joint distribution is the documented, configurable table below: ``race_probs`` (original race
labels), ``female_prob`` per race, and ``age_probs`` (one row of the nine FairFace age bins per race),
so age differs by race the way it does in real face datasets.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from decobench.data.labels import AGE_BINS, FAIRFACE_AGES, FAIRFACE_RACE_TO_RACE, RACES, age_years_to_bin

# How each original race label looks, as distributions of the traits the renderer draws.
#   tone: skin darkness (0 light .. 1 dark), mean and sd; warm: skin hue shift towards yellow;
#   eye_open: eye aperture; nose: nose width; lips: lip thickness; face_w: face width;
#   curl: probability of tightly curled hair; hair: weights over HAIR_COLOURS.
APPEARANCE = {
    "White":           dict(tone=(0.16, 0.09), warm=0.00, eye_open=1.00, nose=0.92, lips=0.88, face_w=0.97, curl=0.08, hair=(.15, .30, .25, .22, .08)),
    "Black":           dict(tone=(0.72, 0.12), warm=0.02, eye_open=1.00, nose=1.30, lips=1.30, face_w=1.00, curl=0.85, hair=(.88, .12, 0, 0, 0)),
    "East Asian":      dict(tone=(0.24, 0.08), warm=0.10, eye_open=0.62, nose=0.96, lips=0.95, face_w=1.08, curl=0.02, hair=(.88, .12, 0, 0, 0)),
    "Asian":           dict(tone=(0.29, 0.10), warm=0.09, eye_open=0.66, nose=1.00, lips=0.98, face_w=1.07, curl=0.04, hair=(.88, .12, 0, 0, 0)),
    "Southeast Asian": dict(tone=(0.40, 0.10), warm=0.08, eye_open=0.72, nose=1.06, lips=1.02, face_w=1.05, curl=0.08, hair=(.85, .15, 0, 0, 0)),
    "Indian":          dict(tone=(0.52, 0.11), warm=0.04, eye_open=1.02, nose=1.06, lips=1.02, face_w=0.96, curl=0.20, hair=(.80, .20, 0, 0, 0)),
    "Latino_Hispanic": dict(tone=(0.34, 0.13), warm=0.05, eye_open=0.94, nose=1.02, lips=1.02, face_w=1.00, curl=0.25, hair=(.45, .38, .15, .02, 0)),
    "Middle Eastern":  dict(tone=(0.31, 0.10), warm=0.03, eye_open=0.95, nose=1.12, lips=0.96, face_w=0.97, curl=0.30, hair=(.60, .34, .06, 0, 0)),
    "Others":          dict(tone=(0.36, 0.16), warm=0.05, eye_open=0.88, nose=1.04, lips=1.02, face_w=1.01, curl=0.30, hair=(.55, .30, .12, .03, 0)),
}
HAIR_COLOURS = np.array([[28, 24, 22], [62, 42, 30], [110, 75, 45], [200, 165, 105], [150, 70, 35]], np.float32)


@dataclass(frozen=True)
class DomainConfig:
    """Everything that defines one SynthFaces domain. Change a field, get another population."""

    name: str
    seed: int
    race_labels: tuple[str, ...]
    race_probs: tuple[float, ...]
    female_prob: tuple[float, ...]                 # per race label
    age_probs: tuple[tuple[float, ...], ...]       # per race label, over the 9 AGE_BINS
    age_label: str                                 # "bin" (FairFace style) or "years" (UTKFace style)
    n_identities: int = 4000
    images_per_identity: int = 15
    yaw_sd_deg: float = 25.0                       # head yaw spread; |yaw| > 35 deg is a profile
    face_scale: float = 0.60                       # half face height as a fraction of half the image
    textured_background: bool = True
    blur: float = 0.0                              # 0..1 softness of the final image
    noise_sd: float = 8.0                          # pixel noise, in 0..255 units
    lighting: float = 0.25                         # spread of illumination gain and direction
    colour_cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    smile_prob: float = 0.45
    age_drift_years: float = 6.0                   # age spread across one identity's photos
    # per-identity marks that make a person recognisable (moles, eye colour, brow tilt, eye asymmetry);
    # off for the DECO-Bench domains, whose images stay as calibrated for race; on for synthfaces-fr
    identity_marks: bool = False
    notes: str = field(default="", compare=False)

    def race_to_common(self, label: str) -> str:
        return FAIRFACE_RACE_TO_RACE.get(label, label)


_AGE_ADULT = (0.01, 0.05, 0.10, 0.30, 0.23, 0.13, 0.10, 0.06, 0.02)
_AGE_YOUNG = (0.02, 0.07, 0.12, 0.34, 0.22, 0.10, 0.07, 0.04, 0.02)
_AGE_OLDER = (0.01, 0.04, 0.08, 0.24, 0.22, 0.15, 0.13, 0.09, 0.04)

DOMAINS: dict[str, DomainConfig] = {
    # FairFace-like: seven original race labels, roughly balanced; ages concentrated at 20-39;
    # web photos: wide pose range, cluttered backgrounds, softer and noisier images.
    "synthfaces-a": DomainConfig(
        name="synthfaces-a", seed=20240501,
        race_labels=("White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern"),
        race_probs=(0.19, 0.14, 0.15, 0.14, 0.12, 0.14, 0.12),
        female_prob=(0.45, 0.50, 0.50, 0.50, 0.48, 0.46, 0.33),
        age_probs=(_AGE_OLDER, _AGE_YOUNG, _AGE_ADULT, _AGE_ADULT, _AGE_YOUNG, _AGE_ADULT, _AGE_ADULT),
        age_label="bin", yaw_sd_deg=28.0, face_scale=0.58, textured_background=True,
        blur=0.35, noise_sd=9.0, lighting=0.30, colour_cast=(1.0, 1.0, 1.0),
        notes="FairFace stand-in"),
    # UTKFace-like: five race labels dominated by White; ages in years 0-116 with many infants and
    # elderly; mostly frontal, plain backgrounds, tighter crops, crisper and warmer images.
    "synthfaces-b": DomainConfig(
        name="synthfaces-b", seed=20240502,
        race_labels=("White", "Black", "Asian", "Indian", "Others"),
        race_probs=(0.42, 0.19, 0.15, 0.17, 0.07),
        female_prob=(0.45, 0.48, 0.52, 0.45, 0.58),
        age_probs=(
            (0.05, 0.06, 0.06, 0.20, 0.16, 0.12, 0.15, 0.12, 0.08),
            (0.03, 0.05, 0.06, 0.33, 0.22, 0.14, 0.10, 0.05, 0.02),
            (0.12, 0.08, 0.06, 0.38, 0.20, 0.06, 0.05, 0.03, 0.02),
            (0.06, 0.08, 0.08, 0.30, 0.22, 0.12, 0.08, 0.04, 0.02),
            (0.10, 0.12, 0.10, 0.38, 0.18, 0.06, 0.03, 0.02, 0.01)),
        age_label="years", yaw_sd_deg=14.0, face_scale=0.68, textured_background=False,
        blur=0.0, noise_sd=5.0, lighting=0.18, colour_cast=(1.06, 1.0, 0.92),
        notes="UTKFace stand-in"),
    # Disjoint population used only to pretrain the embedded diffusion model (LAION stand-in).
    "synthfaces-pretrain": DomainConfig(
        name="synthfaces-pretrain", seed=19990101,
        race_labels=("White", "Black", "Asian", "Indian", "Others"),
        race_probs=(0.2, 0.2, 0.2, 0.2, 0.2), female_prob=(0.5,) * 5,
        age_probs=((1 / 9,) * 9,) * 5, age_label="years", n_identities=2000, images_per_identity=15,
        yaw_sd_deg=22.0, face_scale=0.63, textured_background=True, blur=0.15, noise_sd=7.0,
        lighting=0.25, notes="pretraining population for the tiny diffusion model; in no split"),
}

# Face-recognition population: the FR zoo trains and is calibrated here; no identity of any split or of
# the pretraining population. synthfaces-a's attribute tables, moderate pose, per-identity marks.
DOMAINS["synthfaces-fr"] = replace(
    DOMAINS["synthfaces-a"], name="synthfaces-fr", seed=20261122, n_identities=3200, images_per_identity=60,
    yaw_sd_deg=12.0, face_scale=0.62, blur=0.15, noise_sd=5.0, lighting=0.15, smile_prob=0.3, age_drift_years=2.0,
    identity_marks=True,
    notes="face-recognition population (FR zoo training and identity calibration); in no split")

_BIN_LOWER = np.array([0, 3, 10, 20, 30, 40, 50, 60, 70])
_BIN_UPPER = np.array([3, 10, 20, 30, 40, 50, 60, 70, 90])


@dataclass
class Population:
    """A drawn domain: ``labels`` (one row per image) and ``params`` (renderer inputs per image)."""

    config: DomainConfig
    labels: pd.DataFrame
    params: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.labels)


def _check(cfg: DomainConfig) -> None:
    k = len(cfg.race_labels)
    problems = []
    for fname, n in (("race_probs", k), ("female_prob", k), ("age_probs", k)):
        if len(getattr(cfg, fname)) != n:
            problems.append(f"{fname} has {len(getattr(cfg, fname))} entries for {k} race labels")
    if abs(sum(cfg.race_probs) - 1) > 1e-6:
        problems.append(f"race_probs sum to {sum(cfg.race_probs):.4f}, not 1")
    for lab, row in zip(cfg.race_labels, cfg.age_probs):
        if len(row) != len(AGE_BINS) or abs(sum(row) - 1) > 1e-6:
            problems.append(f"age_probs[{lab}] must have 9 entries summing to 1")
        if lab not in APPEARANCE:
            problems.append(f"race label {lab!r} has no APPEARANCE entry")
    if cfg.images_per_identity < 15:
        problems.append("images_per_identity must be >= 15 (10 to build a cloak, 5 to test it)")
    if cfg.age_label not in ("bin", "years"):
        problems.append(f"age_label must be 'bin' or 'years', got {cfg.age_label!r}")
    if problems:
        raise ValueError(f"invalid SynthFaces domain {cfg.name!r}: " + "; ".join(problems))


def build_population(cfg: DomainConfig | str) -> Population:
    """Draw every identity and image of a domain from its seed."""
    if isinstance(cfg, str):
        cfg = DOMAINS[cfg]
    _check(cfg)
    rng = np.random.default_rng(cfg.seed)
    n_id, per = cfg.n_identities, cfg.images_per_identity
    n = n_id * per

    # identities: race, gender, base age and fixed appearance traits
    race = rng.choice(len(cfg.race_labels), size=n_id, p=np.asarray(cfg.race_probs))
    female = rng.random(n_id) < np.asarray(cfg.female_prob)[race]
    age_p = np.asarray(cfg.age_probs)[race]
    age_bin0 = (rng.random(n_id)[:, None] > np.cumsum(age_p, 1)).sum(1).clip(0, 8)
    base_age = rng.uniform(_BIN_LOWER[age_bin0], _BIN_UPPER[age_bin0])
    app = [APPEARANCE[r] for r in cfg.race_labels]
    tone_mu = np.array([a["tone"][0] for a in app])[race]
    tone_sd = np.array([a["tone"][1] for a in app])[race]
    trait = {
        "tone": np.clip(rng.normal(tone_mu, tone_sd), 0.0, 1.0),
        "warm": np.array([a["warm"] for a in app])[race] + rng.normal(0, 0.03, n_id),
        "eye_open": np.array([a["eye_open"] for a in app])[race] * rng.normal(1, 0.10, n_id),
        "nose": np.array([a["nose"] for a in app])[race] * rng.normal(1, 0.10, n_id),
        "lips": np.array([a["lips"] for a in app])[race] * rng.normal(1, 0.12, n_id),
        "face_w": np.array([a["face_w"] for a in app])[race] * rng.normal(1, 0.04, n_id),
        "curl": (rng.random(n_id) < np.array([a["curl"] for a in app])[race]).astype(np.float32),
        "eye_gap": rng.normal(1, 0.06, n_id),
        "eye_y": rng.normal(0, 0.03, n_id),
        "mouth_w": rng.normal(1, 0.08, n_id),
        "brow": rng.normal(1, 0.15, n_id) * np.where(female, 0.75, 1.25),
        "jaw": np.where(female, 0.90, 1.0) * rng.normal(1, 0.03, n_id),
        "hair_len": np.where(rng.random(n_id) < np.where(female, 0.82, 0.12),
                             rng.uniform(0.6, 1.0, n_id), rng.uniform(0.0, 0.25, n_id)),
        "hair_vol": rng.uniform(0.95, 1.15, n_id),
        "beard": np.where(~female & (rng.random(n_id) < 0.35), rng.uniform(0.4, 1.0, n_id), 0.0),
        "makeup": np.where(female & (rng.random(n_id) < 0.5), rng.uniform(0.3, 1.0, n_id), 0.0),
        "bald": np.where(~female, rng.uniform(0, 1, n_id), 0.0),
        "iris": rng.uniform(0.0, 1.0, n_id),
    }
    hair_w = np.asarray([a["hair"] for a in app], np.float64)[race]
    hair_idx = (rng.random(n_id)[:, None] > np.cumsum(hair_w, 1)).sum(1).clip(0, len(HAIR_COLOURS) - 1)
    trait["hair_rgb"] = HAIR_COLOURS[hair_idx] * rng.normal(1, 0.08, (n_id, 1))

    # images: every identity gets `per` photos with its own age drift, pose, expression, lighting
    ident = np.repeat(np.arange(n_id), per)
    age = np.clip(base_age[ident] + rng.uniform(0, cfg.age_drift_years, n), 0, 99)
    if cfg.age_label == "years":
        age = np.floor(age)  # UTKFace ages are whole years
    age_bin = np.searchsorted(_BIN_LOWER, age, side="right") - 1
    yaw = np.clip(rng.normal(0, cfg.yaw_sd_deg, n), -75, 75)
    smiling = rng.random(n) < cfg.smile_prob
    params = {k: (v[ident] if v.ndim == 1 else v[ident]) for k, v in trait.items()}
    params.update({
        "race_app": race[ident],
        "female": female[ident].astype(np.float32),
        "age": age.astype(np.float32),
        "yaw": np.deg2rad(yaw), "pitch": np.deg2rad(rng.normal(0, 8, n)),
        "roll": np.deg2rad(rng.normal(0, 6, n)),
        "smile": smiling.astype(np.float32) * rng.uniform(0.6, 1.0, n),
        "cx": rng.normal(0, 0.04, n), "cy": rng.normal(0.02, 0.04, n),
        "scale": cfg.face_scale * rng.normal(1, 0.05, n),
        "gain": np.exp(rng.normal(0, cfg.lighting, n)),
        "light_dir": rng.uniform(-1, 1, (n, 2)) * cfg.lighting * 1.6,
        "temp": rng.normal(0, cfg.lighting * 0.25, n),
        "bg_rgb": rng.uniform(30, 225, (n, 3)),
        "bg_rgb2": rng.uniform(30, 225, (n, 3)),
        "bg_tex": rng.integers(0, 1 << 30, n),
        "noise_tex": rng.integers(0, 1 << 30, n),
        "gray": 1 / (1 + np.exp(-(age - 52) / 7)) * rng.uniform(0.5, 1.0, n),
    })
    params["bald"] = np.clip(params["bald"] * (params["age"] - 30) / 50, 0, 1) ** 2
    if cfg.identity_marks:  # drawn from their own stream: the draws above do not depend on this flag
        marks = {k: v[ident] for k, v in _identity_marks(cfg.seed, n_id).items()}
        params["hair_rgb"] = np.clip(params["hair_rgb"] * marks.pop("hair_tint"), 0, 255)
        params["tone"] = np.clip(params["tone"] + marks.pop("tone_shift"), 0, 1)
        params.update(marks)

    race_orig = np.array(cfg.race_labels)[race][ident]
    labels = pd.DataFrame({
        "image_id": [f"{cfg.name}/{i:06d}" for i in range(n)],
        "identity": ident,
        "race_orig": race_orig,
        "gender_orig": np.where(female[ident], "Female", "Male"),
        "age_orig": (age.astype(int).astype(str) if cfg.age_label == "years"
                     else np.array(FAIRFACE_AGES)[age_bin]),
        "race": [RACES.index(cfg.race_to_common(r)) for r in race_orig],
        "gender": female[ident].astype(int),
        "age": age_bin.astype(int),
        "expression": smiling.astype(int),
        "yaw_deg": np.round(yaw, 2), "pitch_deg": np.round(np.rad2deg(params["pitch"]), 2),
        "roll_deg": np.round(np.rad2deg(params["roll"]), 2),
        "profile": (np.abs(yaw) > 35).astype(int),
    })
    assert (labels["age"] == [age_years_to_bin(int(a)) for a in age]).all() if cfg.age_label == "years" else True
    return Population(cfg, labels, params)


IRIS_COLOURS = np.array([[48, 32, 22], [95, 62, 30], [70, 95, 125], [70, 110, 70], [110, 110, 120]], np.float32)
FRAME_COLOURS = np.array([[20, 20, 20], [120, 30, 30], [30, 40, 120], [170, 140, 60], [200, 200, 200]], np.float32)


def _identity_marks(seed: int, n_id: int) -> dict[str, np.ndarray]:
    """What makes one person recognisable at 32 px: two birthmarks (position, size, colour), glasses
    for half (frame colour, shape, thickness), an eye colour, a brow tilt, an eye asymmetry, a
    personal tint of hair colour and skin tone on top of the race-typical ones, and the shape of the
    hairline (a fringe: amplitude, frequency and phase of a wave along it)."""
    rng = np.random.default_rng([seed, 7])
    return {
        "mole_xy": np.stack([rng.uniform(-0.5, 0.5, (n_id, 2)), rng.uniform(-0.35, 0.75, (n_id, 2))], -1),
        "mole_r": rng.uniform(0.07, 0.12, (n_id, 2)),
        "hair_tint": rng.normal(1, 0.18, (n_id, 3)),
        "tone_shift": rng.normal(0, 0.06, n_id),
        "mole_dark": rng.uniform(0.25, 0.6, n_id),
        "mole_red": rng.random(n_id) < 0.35,
        "iris_rgb": IRIS_COLOURS[rng.integers(0, len(IRIS_COLOURS), n_id)] * rng.normal(1, 0.1, (n_id, 1)),
        "brow_tilt": rng.normal(0, 0.35, n_id),
        "eye_dy": rng.normal(0, 0.03, n_id),
        "glasses": (rng.random(n_id) < 0.5).astype(np.float32),
        "frame_rgb": FRAME_COLOURS[rng.integers(0, len(FRAME_COLOURS), n_id)] * rng.normal(1, 0.1, (n_id, 1)),
        "frame_round": rng.uniform(0.75, 1.3, n_id),
        "frame_w": rng.uniform(0.025, 0.05, n_id),
        "fringe_amp": rng.uniform(0.04, 0.16, n_id),
        "fringe_freq": rng.uniform(2.5, 7.0, n_id),
        "fringe_phase": rng.uniform(0, 2 * np.pi, n_id),
    }


def with_size(cfg: DomainConfig, n_identities: int) -> DomainConfig:
    """A copy of ``cfg`` with another number of identities (tests use small populations)."""
    return replace(cfg, n_identities=n_identities)
