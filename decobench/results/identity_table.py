"""Identity privacy across tracks: privacy cloaks and decoupling releases read side by side.

Both tracks are scored by the same kind of FR search (1:N, cosine of the FR zoo's embeddings, ties count
against the release) and reported the same way: protection success = 1 − hit rate @1 / @5, averaged over the
FR models that did not make the release, beside the unprotected rate of the same search on clean images.

- cloak track (``fr_protection``): the probe is a cloaked photo; the gallery is another clean photo of the
  person plus distractors; the cloak's surrogate is left out of the average (it is white-box);
- data track (``identity_linkage``): the probe is a released image; the gallery is another real photo of its
  source person plus distractors; every linkage model counts (no FR model made the release).

Each group keeps its own people, gallery and image size, so a group is a block of its own: read a row against
its group's unprotected rate, and across groups only the share of the unprotected hits a release removes
(1 − hit rate / unprotected hit rate), never the raw rates.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

from decobench.results.aggregate import Group, seed_interval


@dataclass
class IdentityRow:
    label: str
    seeds: list[int]
    protect: dict[int, tuple]        # k -> (mean, lo, hi) in %, over seeds
    unprotected: dict[int, float]    # k -> protection of the clean search, %
    removed: dict[int, float]        # k -> share of the clean search's hits the release removes, %
    cost: str                        # what the protection cost the image


@dataclass
class IdentityGroup:
    title: str
    models: list[str]
    rows: list[IdentityRow]


def _cloak_seed(r: dict, ev: dict, k: int) -> tuple[float, float]:
    info = ev["attack_info"]["fr_protection"]
    targets = [t for t in info["targets"] if t != info["surrogate"]]
    hit = np.mean([ev["metrics"][f"privacy_fr_top{k}_{t}"]["value"] for t in targets])
    clean = np.mean([ev["reference"]["real_source"][f"privacy_fr_top{k}_{t}"]["value"] for t in targets])
    return 100 * (1 - hit), 100 * (1 - clean)


def _linkage_seed(r: dict, ev: dict, k: int) -> tuple[float, float]:
    per = ev["attack_info"]["identity_linkage"]["per_model"]
    return (100 * (1 - np.mean([m[f"rank{k}"] for m in per.values()])),
            100 * (1 - np.mean([m[f"unprotected_rank{k}"] for m in per.values()])))


def identity_groups(comparable: list[Group]) -> list[IdentityGroup]:
    """The identity table's groups, from the board's comparable groups (:func:`aggregate.groups`)."""
    out = []
    for g in comparable:
        track = g.components["track"]
        rows = [row for row in g.rows if row.complete]
        evs = lambda row: [next(e for e in r["evaluations"] if e["dataset"] == g.dataset) for r in row.results]  # noqa: E731
        if track == "cloak":
            seed_fn, info = _cloak_seed, rows[0].results[0]["evaluations"][0]["attack_info"]["fr_protection"] if rows else {}
            title = (f"Cloak track, Privacy-Commons protocol ({g.dataset}): a cloaked photo against 1 clean photo of the "
                     f"person + {info.get('gallery', 1) - 1:,} distractors; mean over the black-box targets")
            models = list(info.get("targets", []))
        elif track == "data" and rows and all("identity_linkage" in e["attack_info"] for e in evs(rows[0])):
            seed_fn, info = _linkage_seed, evs(rows[0])[0]["attack_info"]["identity_linkage"]
            c = g.components
            title = (f"Data track, setup {c['setup']}, regime {c['regime']} ({g.dataset}): identity linkage, a released "
                     f"image against a gallery of {info['gallery']:,} real images holding another photo of its source "
                     f"person; mean over the FR models")
            models = list(info["per_model"])
        else:
            continue
        irows = []
        for row in rows:
            per_seed = {k: [seed_fn(r, e, k) for r, e in zip(row.results, evs(row))] for k in (1, 5)}
            m0 = evs(row)[0]["metrics"]
            if track == "cloak":
                cost = (f"PSNR {np.mean([e['metrics']['utility_psnr']['value'] for e in evs(row)]):.1f} dB, SSIM "
                        f"{np.mean([e['metrics']['utility_ssim']['value'] for e in evs(row)]):.3f}")
            else:
                cost = (f"KID×1000 {np.mean([e['metrics']['kid_synthface']['value'] for e in evs(row)]):.1f}"
                        if "kid_synthface" in m0 else "—")
            irows.append(IdentityRow(row.label, row.seeds, {k: seed_interval([p for p, _ in v]) for k, v in per_seed.items()},
                                     {k: float(np.mean([u for _, u in v])) for k, v in per_seed.items()},
                                     {k: float(np.mean([100 * (1 - (100 - p) / (100 - u)) if u < 100 else np.nan
                                                        for p, u in v])) for k, v in per_seed.items()}, cost))
        if irows:
            out.append(IdentityGroup(title, models, irows))
    return out


def _pm(cell: tuple) -> str:
    mean, lo, hi = cell
    return f"{mean:.1f}" + (f" ± {(hi - lo) / 2:.1f}" if lo is not None else "")


HEAD = ["release", "seeds", "protection @1 (%)", "unprotected @1", "hits removed @1", "protection @5 (%)",
        "unprotected @5", "hits removed @5", "image cost"]


def _cells(r: IdentityRow) -> list[str]:
    return [r.label, ",".join(map(str, r.seeds)), _pm(r.protect[1]), f"{r.unprotected[1]:.1f}", f"{r.removed[1]:.0f} %",
            _pm(r.protect[5]), f"{r.unprotected[5]:.1f}", f"{r.removed[5]:.0f} %", r.cost]


INTRO = ("Identity privacy across tracks: protection success = 1 − hit rate of a 1:N FR search, mean ± 95 % CI over "
         "seeds, averaged over the FR models that did not make the release; each group has its own people and "
         "gallery, so compare rows within a group; across groups compare only the share of the unprotected search's hits a "
         "release removes (1 − hit rate / unprotected hit rate).")


def render_identity(comparable: list[Group]) -> str:
    gs = identity_groups(comparable)
    if not gs:
        return ""
    out = ["## Identity privacy across tracks\n", INTRO, ""]
    for g in gs:
        out += [f"### {g.title}\n", f"FR models: {', '.join(g.models)}.\n", "| " + " | ".join(HEAD) + " |",
                "|" + "---|" * len(HEAD)]
        out += ["| " + " | ".join(_cells(r)) + " |" for r in g.rows]
        out.append("")
    return "\n".join(out)


def render_identity_html(comparable: list[Group]) -> str:
    gs = identity_groups(comparable)
    if not gs:
        return ""
    parts = ['<section id="identity"><h2>Identity privacy across tracks</h2>', f'<p class="note">{html.escape(INTRO)}</p>']
    for g in gs:
        parts.append(f"<h3>{html.escape(g.title)}</h3><p class=\"note\">FR models: {html.escape(', '.join(g.models))}.</p>")
        parts.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in HEAD) + "</tr></thead><tbody>")
        parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r)) + "</tr>" for r in g.rows]
        parts.append("</tbody></table>")
    parts.append("</section>")
    return "\n".join(parts)
