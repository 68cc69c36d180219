"""DECO-Bench's prompt "A {age} year-old {race} {gender}", with a policy for the sensitive attribute.

Policies: ``paper`` (the paper's prompt, every attribute named), ``without_sensitive`` (the sensitive
attribute left out of the generator's input), ``null`` (the empty prompt).
"""

from __future__ import annotations

from decobench.data.labels import AGE_BINS, GENDERS, RACES

POLICIES = ("paper", "without_sensitive", "null")


def prompt_for(race: int, gender: int, age: int, policy: str = "paper", sensitive: str = "race") -> str:
    if policy not in POLICIES:
        raise ValueError(f"prompt policy must be one of {POLICIES}, got {policy!r}")
    if policy == "null":
        return ""
    drop = sensitive if policy == "without_sensitive" else None
    age_part = "A" if drop == "age" else f"A {AGE_BINS[age]} year-old"
    race_part = "" if drop == "race" else f" {RACES[race]}"
    gender_part = " person" if drop == "gender" else f" {GENDERS[gender]}"
    return f"{age_part}{race_part}{gender_part}"


def prompts_for(records, policy: str = "paper", sensitive: str = "race") -> list[str]:
    return [prompt_for(int(r), int(g), int(a), policy, sensitive)
            for r, g, a in zip(records["race"], records["gender"], records["age"])]


def encode_prompts(tokenizer, text_encoder, prompts: list[str], device="cpu", batch: int = 256):
    """Text-encoder hidden states [N, tokens, dim] (frozen encoder: computed once and cached)."""
    import torch

    uniq = sorted(set(prompts))
    out = {}
    with torch.no_grad():
        for i in range(0, len(uniq), batch):
            chunk = uniq[i:i + batch]
            ids = tokenizer(chunk, padding="max_length", max_length=tokenizer.model_max_length,
                            truncation=True, return_tensors="pt").input_ids.to(device)
            hs = text_encoder(ids)[0]
            out.update(zip(chunk, hs))
    return torch.stack([out[p] for p in prompts])
