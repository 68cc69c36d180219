"""Vectorised SynthFaces renderer: parameters of N images -> N RGB images and their landmarks.

Attributes reach the pixels through several cues at different scales: colour (skin tone, hair
colour, greying), shape and proportions (face width, jaw, eye aperture, nose and lip width, child
proportions), texture (hair curl, wrinkles, stubble) and configuration (hair length, smile). Pose,
lighting, background, colour cast, blur and noise blur them, so no single pixel statistic gives an
attribute away. All arithmetic is float32 on (n, S, S) arrays, in chunks that stay in cache.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

LANDMARKS = ["left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right"]
_CHUNK = 16  # (16, 64, 64) float32 arrays stay in L2; measured fastest
_LIGHT_SKIN = np.array([236, 203, 180], np.float32)
_DARK_SKIN = np.array([72, 47, 35], np.float32)


@lru_cache(maxsize=8)
def _banks(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed texture banks: smooth fields for backgrounds, white noise for sensor noise."""
    rng = np.random.default_rng(12345 + size)
    g = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
    u, v = np.meshgrid(g, g)
    smooth = np.zeros((64, size, size), np.float32)
    for k in range(64):
        for _ in range(5):
            f = rng.uniform(0.5, 6.0)
            a = rng.uniform(0, 2 * np.pi)
            smooth[k] += np.sin(f * (np.cos(a) * u + np.sin(a) * v) + rng.uniform(0, 2 * np.pi)) / f
        smooth[k] /= np.abs(smooth[k]).max()
    noise = rng.standard_normal((131, size, size)).astype(np.float32)
    return smooth, noise


def _col(a) -> np.ndarray:
    return np.asarray(a, np.float32)[:, None, None]


def _ellipse(x, y, px, py, rx, ry, sharp):
    """Soft ellipse mask in [0, 1]: 1 inside, ramping to 0 over ~1/sharp of the radius."""
    q = (x - px) / rx
    q *= q
    t = (y - py) / ry
    t *= t
    q += t
    np.subtract(1.0, q, out=q)
    q *= sharp
    return np.clip(q, 0.0, 1.0, out=q)


def _blend(img, m, rgb):
    """img[c] <- img[c] + m * (rgb[c] - img[c]) for the three channels, in place."""
    for c in range(3):
        d = rgb[c] - img[c]
        d *= m
        img[c] += d


def _feature_window(p, size, eg, ey_, my, proj):
    """Pixel rows/cols (chunk-wide) that contain every image's eyes, brows, nose and mouth."""
    margin = 0.32
    xs, ys = [], []
    for px, py in (proj(-eg, ey_ - 0.2, 0.55), proj(eg, ey_ - 0.2, 0.55), proj(-eg, my + 0.1, 0.6),
                   proj(eg, my + 0.1, 0.6), proj(0 * eg, my, 1.0)):
        xs.append(px[:, 0, 0])
        ys.append(py[:, 0, 0])
    fx, fy = np.stack(xs, 1), np.stack(ys, 1)
    fx = np.concatenate([fx.min(1, keepdims=True) - margin, fx.max(1, keepdims=True) + margin], 1)
    fy = np.concatenate([fy.min(1, keepdims=True) - margin, fy.max(1, keepdims=True) + margin], 1)
    cs, ss = np.cos(p["roll"])[:, None, None], np.sin(p["roll"])[:, None, None]
    sc = p["scale"][:, None, None]
    u = p["cx"][:, None, None] + sc * (cs * fx[:, :, None] - ss * fy[:, None, :])
    v = p["cy"][:, None, None] + sc * (ss * fx[:, :, None] + cs * fy[:, None, :])
    to_px = lambda t: (t + 1) / 2 * size
    c0, c1 = int(np.floor(to_px(u.min()))), int(np.ceil(to_px(u.max())))
    r0, r1 = int(np.floor(to_px(v.min()))), int(np.ceil(to_px(v.max())))
    return (max(r0, 0), min(r1, size)), (max(c0, 0), min(c1, size))


def _face_chunk(p: dict, size: int, style) -> tuple[np.ndarray, np.ndarray]:
    n = len(p["age"])
    smooth, noise = _banks(size)
    g = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
    U, V = g[None, None, :], g[None, :, None]
    roll, sc = p["roll"], p["scale"]
    c, s = _col(np.cos(roll)), _col(np.sin(roll))
    du, dv = U - _col(p["cx"]), V - _col(p["cy"])
    x = (c * du + s * dv) / _col(sc)
    y = (c * dv - s * du) / _col(sc)

    age = p["age"]
    ch = np.clip((16 - age) / 16, 0, 1)             # childness
    ag = np.clip((age - 30) / 50, 0, 1)             # ageing
    adult = np.clip((age - 15) / 5, 0, 1)
    cy_, sy_ = np.cos(p["yaw"]), np.sin(p["yaw"])
    sp = np.sin(p["pitch"])

    def proj(px, py, depth):
        return _col(px * cy_ + depth * sy_), _col(py + depth * sp * 0.6)

    # -- background ------------------------------------------------------------------------------
    tex = smooth[p["bg_tex"] % 64]
    if not style.textured_background:
        tex = tex * 0.15
    t = U * _col(0.3 * np.cos(p["bg_tex"] % 7)) + V * _col(0.3 * np.sin(p["bg_tex"] % 5))
    t += tex * 0.5
    t += 0.5
    np.clip(t, 0, 1, out=t)
    img = np.empty((3, n, size, size), np.float32)
    for k in range(3):
        a, b = _col(p["bg_rgb"][:, k]), _col(p["bg_rgb2"][:, k])
        np.multiply(t, b - a, out=img[k])
        img[k] += a

    # -- geometry of the head ----------------------------------------------------------------------
    fw = 0.72 * p["face_w"] * (1 + 0.10 * ch) * (1 + 0.05 * ag)
    shift = _col(0.14 * sy_)
    fw_eff = _col(fw * (0.80 + 0.20 * cy_))
    taper = _col(0.10 + (1.0 - p["jaw"]) * 1.6 - 0.06 * ag + 0.05 * ch)
    xs = x - shift
    yy = np.clip(y, 0, 1)
    xw = xs / (fw_eff * (1 - taper * yy))
    r2 = xw * xw + y * y
    face_m = np.clip((1 - r2) * 9, 0, 1)

    hair_rgb = p["hair_rgb"] * (1 - p["gray"][:, None]) + 205 * p["gray"][:, None]
    hair_rgb = [_col(hair_rgb[:, k]) for k in range(3)]
    vol = p["hair_vol"] * np.clip(age / 3, 0.25, 1)
    # curled hair: a fine checker of curls; straight hair: fine streaks (texture cues)
    hair_tex = np.sin(x * 22) * np.sin(y * 22) * _col(0.32 * p["curl"])
    hair_tex += np.sin(x * 40 + y * 6) * _col(0.12 * (1 - p["curl"]))
    hair_tex += 1
    hair_shade = [h * hair_tex for h in hair_rgb]

    # long hair, behind the face
    L = p["hair_len"] * np.clip(age / 6, 0.2, 1)
    long_m = _ellipse(xs, y, 0.0, _col(-0.15 + 0.55 * L), _col(fw * (1.15 + 0.30 * L)),
                      _col(0.85 + 0.75 * L), 6.0)
    long_m *= _col(np.clip((L - 0.3) * 4, 0, 1))
    _blend(img, long_m, hair_shade)

    # -- skin, lit from a direction, with wrinkles for the old --------------------------------------
    tone = p["tone"]
    skin = _LIGHT_SKIN[None] + (_DARK_SKIN - _LIGHT_SKIN)[None] * tone[:, None]
    warm = p["warm"]
    skin = skin * np.stack([1 + 0.03 * warm, 1 + 0.02 * warm, 1 - 0.9 * warm], 1)
    skin = skin * (1 + 0.05 * ch[:, None] * np.array([0.6, -0.2, -0.2]))  # rosier children
    ld = p["light_dir"]
    shade = 1 + _col(ld[:, 0] * 0.35) * x + _col(ld[:, 1] * 0.25) * y
    shade *= 0.86 + 0.14 * np.clip(1 - r2, 0, 1)
    ey_ = -0.10 + 0.17 * ch + p["eye_y"]
    ny = 0.24 - 0.06 * ch
    my = 0.52 - 0.06 * ch
    fx, fy = proj(np.zeros(n), -0.45 + 0.1 * ch, 0.5)
    band = np.clip((_col(ey_ - 0.22) - y) * 10, 0, 1) * np.clip((y + 0.78) * 10, 0, 1)
    wr = band * (0.5 + 0.5 * np.sin((y - fy) * 70)) * _col(0.28 * ag ** 1.3)
    nlx, nly = proj(np.zeros(n), (ny + my) / 2, 0.6)
    nl = np.clip(1 - np.abs(np.abs(x - nlx) - _col(0.2 * fw / 0.72 * cy_)) / 0.025, 0, 1)
    nl *= np.clip(1 - np.abs(y - nly) / _col((my - ny) / 2 + 0.05), 0, 1) * _col(0.35 * ag)
    shade *= 1 - wr - nl
    _blend(img, face_m, [_col(skin[:, k]) * shade for k in range(3)])

    # stubble / beard on adult men
    bm = face_m * np.clip((y - _col(ny + 0.06)) * 8, 0, 1) * _col(p["beard"] * adult * 0.55)
    bm *= 0.7 + 0.6 * noise[p["noise_tex"] % 131]
    _blend(img, bm, [h * 0.9 for h in hair_rgb])

    # hair cap, receding with baldness
    q = xs / _col(fw)
    q *= q
    q *= q
    hl = _col(-0.50 - 0.40 * p["bald"]) + 0.9 * q
    if "fringe_amp" in p:  # identity marks: a personal hairline (a fringe wave that turns with the head)
        hl = hl + _col(p["fringe_amp"]) * np.sin(_col(p["fringe_freq"]) * xs / _col(fw) + _col(p["fringe_phase"]))
    head = np.clip((1 - (xs / _col(fw * 1.10 * vol)) ** 2 - ((y + 0.06) / _col(1.10 * vol)) ** 2) * 8, 0, 1)
    cap = head * np.clip((hl - y) * 14, 0, 1)
    _blend(img, cap, hair_shade)

    # -- eyes, brows, nose, mouth ------------------------------------------------------------------
    eg = 0.29 * p["eye_gap"] * fw / 0.72
    erx = 0.105 * (1 + 0.25 * ch)
    ery = 0.058 * p["eye_open"] * (1 + 0.3 * ch) * (1 - 0.25 * p["smile"])
    far_vis = np.clip((cy_ - 0.70) / 0.12, 0, 1)
    side = np.sign(p["yaw"] + 1e-9)
    blue = (p["iris"] > 0.75) & (p["race_app"] == 0)
    iris_rgb = np.where(blue[:, None], [[70, 95, 125]], [[48, 32, 22]]) * (0.8 + 0.4 * p["iris"][:, None])
    marks = "mole_xy" in p  # identity marks (synthfaces-fr); absent, the image is unchanged
    if marks:
        iris_rgb = p["iris_rgb"]
    brow_rgb = [h * 0.75 for h in hair_rgb]
    lm = np.zeros((n, 5, 2), np.float32)
    # the small features all lie in one window around eyes..mouth: draw them there only
    (r0, r1), (c0, c1) = _feature_window(p, size, eg, ey_, my, proj)
    whole_x, whole_y, whole = x, y, img
    x, y, img = x[:, r0:r1, c0:c1], y[:, r0:r1, c0:c1], img[:, :, r0:r1, c0:c1]
    for i, sgn in enumerate((-1.0, 1.0)):
        px, py = proj(sgn * eg, ey_ + (sgn * p["eye_dy"] if marks else 0.0), 0.5)
        vis = np.where(sgn == -side, far_vis, 1.0)
        rx = _col(erx * (0.55 + 0.45 * cy_))
        sclera = _ellipse(x, y, px, py, rx, _col(ery), 3.0) * _col(vis)
        _blend(img, sclera, [_col(np.full(n, 225.0))] * 3)
        iris = _ellipse(x, y, px + _col(0.02 * sy_), py, rx * 0.5, _col(ery) * 1.05, 3.0) * sclera
        _blend(img, iris, [_col(iris_rgb[:, k]) for k in range(3)])
        bx, by = proj(sgn * eg, ey_ - 0.12 - 0.02 * p["brow"], 0.55)
        by_ = by + _col(sgn * p["brow_tilt"]) * (x - bx) if marks else by  # tilted brows
        brow = _ellipse(x, y, bx, by_, rx * 1.2, _col(0.018 * p["brow"] * (1 - 0.4 * ch)), 2.0) * _col(0.9 * vis)
        _blend(img, brow, brow_rgb)
        if marks:  # glasses: a frame ring around the eye (round or wide), identity's colour and thickness
            fr_x, fr_y = rx * 1.45, _col(0.13 * p["frame_round"])
            ring = _ellipse(x, y, px, py, fr_x, fr_y, 1.0) - _ellipse(x, y, px, py, fr_x - _col(p["frame_w"]),
                                                                    fr_y - _col(p["frame_w"]), 1.0)
            ring = np.clip(ring * 4, 0, 1) * _col(p["glasses"] * vis)
            _blend(img, ring, [_col(p["frame_rgb"][:, k]) for k in range(3)])
        lm[:, i] = np.stack([px[:, 0, 0], py[:, 0, 0]], 1)

    nx, nyp = proj(np.zeros(n), ny, 1.0)
    nrx = _col(0.085 * p["nose"] * (1 - 0.3 * ch) * (0.6 + 0.4 * cy_))
    nostril = _ellipse(x, y, nx, nyp, nrx, _col(np.full(n, 0.035)), 2.0) * 0.55
    _blend(img, nostril, [_col(skin[:, k] * 0.55) for k in range(3)])
    lm[:, 2] = np.stack([nx[:, 0, 0], nyp[:, 0, 0]], 1)

    mx, myp = proj(np.zeros(n), my, 0.6)
    mw = _col(0.20 * p["mouth_w"] * (1 - 0.25 * ch) * (1 + 0.15 * p["smile"]) * (0.6 + 0.4 * cy_))
    xm = (x - mx) / mw
    curve = myp - _col(0.09 * p["smile"]) * xm * xm
    lip_h = _col(0.032 * p["lips"] * (1 - 0.3 * ag) + 0.02 * p["smile"])
    across = np.clip((1 - xm * xm) * 5, 0, 1)
    mouth = across * np.clip((1 - ((y - curve) / lip_h) ** 2) * 3, 0, 1)
    lip = skin * 0.72 + np.array([30, -8, -8]) * (1 + 2 * p["makeup"][:, None])
    _blend(img, mouth, [_col(lip[:, k]) for k in range(3)])
    teeth = across * np.clip((1 - ((y - curve) / (lip_h * 0.45)) ** 2) * 3, 0, 1) * _col(p["smile"])
    _blend(img, teeth, [_col(np.full(n, 215.0))] * 3)
    for j, sgn in enumerate((-1.0, 1.0)):
        lm[:, 3 + j, 0] = mx[:, 0, 0] + sgn * mw[:, 0, 0]
        lm[:, 3 + j, 1] = myp[:, 0, 0] - 0.09 * p["smile"]

    x, y, img = whole_x, whole_y, whole
    if marks:  # two dark moles on the skin, placed in face coordinates (they turn with the head)
        for j in range(2):
            mx_, my_ = proj(p["mole_xy"][:, j, 0], p["mole_xy"][:, j, 1], 0.7)
            r = _col(p["mole_r"][:, j])
            mole = _ellipse(x, y, mx_, my_, r, r, 2.5) * face_m * 0.85
            red = p["mole_red"][:, None] * np.array([[1.1, 0.45, 0.5]]) + (1 - p["mole_red"][:, None])
            colour = skin * p["mole_dark"][:, None] * red
            _blend(img, mole, [_col(colour[:, k]) for k in range(3)])

    # -- camera: exposure, colour temperature and cast, blur, sensor noise --------------------------
    gain = _col(p["gain"])
    temp = p["temp"]
    for k, tk in enumerate((1.0, 0.0, -1.0)):
        img[k] *= gain * _col((1 + temp * tk) * style.colour_cast[k])
    if style.blur > 0:
        b = style.blur
        sm = img.copy()
        sm[..., 1:, :] += img[..., :-1, :]
        sm[..., :-1, :] += img[..., 1:, :]
        sm[..., :, 1:] += img[..., :, :-1]
        sm[..., :, :-1] += img[..., :, 1:]
        img *= 1 - b
        sm *= b / 5
        img += sm
    if style.noise_sd > 0:
        nt = p["noise_tex"]
        for k in range(3):
            img[k] += noise[(nt + 7 * k + 1) % 131] * style.noise_sd
    out = np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 3, 0)

    # landmarks: face coordinates -> pixel coordinates
    cs, ss = np.cos(roll)[:, None], np.sin(roll)[:, None]
    lx, ly = lm[..., 0], lm[..., 1]
    u = p["cx"][:, None] + sc[:, None] * (cs * lx - ss * ly)
    v = p["cy"][:, None] + sc[:, None] * (ss * lx + cs * ly)
    pts = np.stack([(u + 1) / 2 * size - 0.5, (v + 1) / 2 * size - 0.5], -1).astype(np.float32)
    return out, pts


def _take(params: dict, idx: np.ndarray) -> dict:
    out = {}
    for k, v in params.items():
        a = v[idx]
        out[k] = a.astype(np.float32) if a.dtype.kind == "f" else a
    return out


def render_faces(population, indices=None, size: int = 64, supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Render images of a Population by row index. Returns (uint8 [N,S,S,3], landmarks [N,5,2] px).

    ``supersample=k`` renders at k*size and block-averages (anti-aliasing for small sizes)."""
    if supersample > 1:
        big, pts = render_faces(population, indices, size * supersample)
        k = supersample
        small = big.reshape(len(big), size, k, size, k, 3).mean((2, 4))
        return np.round(small).astype(np.uint8), (pts + 0.5) / k - 0.5
    n_all = len(population)
    idx = np.arange(n_all) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n_all):
        raise IndexError(f"image index out of range 0..{n_all - 1}")
    imgs = np.empty((len(idx), size, size, 3), np.uint8)
    pts = np.empty((len(idx), 5, 2), np.float32)
    for lo in range(0, len(idx), _CHUNK):
        sl = idx[lo:lo + _CHUNK]
        imgs[lo:lo + len(sl)], pts[lo:lo + len(sl)] = _face_chunk(_take(population.params, sl), size,
                                                                  population.config)
    return imgs, pts


def render_nonfaces(n: int, seed: int, size: int = 64) -> np.ndarray:
    """Non-face patches for a face-detection task: backgrounds with skin-coloured blobs and stripes,
    drawn from the same colour and texture statistics as the faces but with no facial layout."""
    smooth, noise = _banks(size)
    rng = np.random.default_rng(seed)
    g = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
    V, U = np.meshgrid(g, g, indexing="ij")
    U, V = U[None], V[None]
    t = np.clip(0.5 + 0.5 * smooth[rng.integers(0, 64, n)], 0, 1)
    a, b = rng.uniform(30, 225, (2, n, 3))
    img = np.stack([_col(a[:, k]) + _col(b[:, k] - a[:, k]) * t for k in range(3)])
    for _ in range(3):
        tone = rng.uniform(0, 1, n)
        rgb = _LIGHT_SKIN[None] + (_DARK_SKIN - _LIGHT_SKIN)[None] * tone[:, None]
        m = _ellipse(U, V, _col(rng.uniform(-0.7, 0.7, n)), _col(rng.uniform(-0.7, 0.7, n)),
                     _col(rng.uniform(0.1, 0.6, n)), _col(rng.uniform(0.1, 0.6, n)), 6.0)
        m = m * _col(rng.random(n) < 0.7)
        _blend(img, m, [_col(rgb[:, k]) for k in range(3)])
    stripes = 0.5 + 0.5 * np.sin(_col(rng.uniform(5, 30, n)) * (U * _col(rng.uniform(-1, 1, n)) + V))
    _blend(img, stripes * _col(rng.uniform(0, 0.4, n)), [_col(rng.uniform(0, 255, n)) for _ in range(3)])
    img += noise[rng.integers(0, 131, n)][None] * 6
    return np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 3, 0)
