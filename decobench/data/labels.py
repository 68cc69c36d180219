"""The common label space (DECO-Bench's cross-label mapping) and the mappings into it.

Every dataset keeps its original labels (``race_orig``, ``age_orig``, ...) for stratification
and exposes the mapped ones (``race``, ``gender``, ``age``) as integer codes into the lists below.
"""

from __future__ import annotations

RACES = ["White", "Black", "Asian", "Indian", "Others"]
GENDERS = ["Male", "Female"]
AGE_BINS = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"]
EXPRESSIONS = ["neutral", "smiling"]

CLASSES = {"race": RACES, "gender": GENDERS, "age": AGE_BINS}

FAIRFACE_RACES = ["White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian",
                  "Indian", "Middle Eastern"]
FAIRFACE_AGES = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]

# DECO-Bench §4.1: East + Southeast Asian -> Asian; Latino_Hispanic + Middle Eastern -> Others.
FAIRFACE_RACE_TO_RACE = {
    "White": "White", "Black": "Black", "Indian": "Indian",
    "East Asian": "Asian", "Southeast Asian": "Asian",
    "Latino_Hispanic": "Others", "Middle Eastern": "Others",
}
FAIRFACE_AGE_TO_AGE = dict(zip(FAIRFACE_AGES, AGE_BINS))

UTK_RACES = ["White", "Black", "Asian", "Indian", "Others"]  # UTKFace race codes 0..4
UTK_GENDERS = ["Male", "Female"]  # UTKFace gender codes 0, 1

_AGE_LOWER = [0, 3, 10, 20, 30, 40, 50, 60, 70]


def age_years_to_bin(age: int) -> int:
    """UTKFace ages (0-116 years) -> index into AGE_BINS (FairFace bins)."""
    if age < 0:
        raise ValueError(f"age must be >= 0, got {age}")
    idx = 0
    for i, lo in enumerate(_AGE_LOWER):
        if age >= lo:
            idx = i
    return idx


def chance_level(attribute: str) -> float:
    """Accuracy of uniform guessing over the attribute's classes."""
    return 1.0 / len(CLASSES[attribute])
