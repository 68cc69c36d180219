"""DECO-Bench's prompt "A {age} year-old {race} {gender}", with a policy for the sensitive attribute."""

from __future__ import annotations

from decobench.data.labels import AGE_BINS, GENDERS, RACES

POLICIES = ("with_race", "without_race")


def prompt_for(race: int, gender: int, age: int, policy: str = "with_race") -> str:
    """``with_race`` is the paper's prompt; ``without_race`` keeps race out of the generator's input."""
    if policy not in POLICIES:
        raise ValueError(f"prompt policy must be one of {POLICIES}, got {policy!r}")
    race_part = f" {RACES[race]}" if policy == "with_race" else ""
    return f"A {AGE_BINS[age]} year-old{race_part} {GENDERS[gender]}"


def prompts_for(records, policy: str = "with_race") -> list[str]:
    return [prompt_for(int(r), int(g), int(a), policy)
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
