"""CutMix between the leaf rows of a training batch (numpy, no TensorFlow).

A field class has about 40 PlantDoc photos to learn from; a network that sees them whole
on every draw learns their backdrops. CutMix (Yun et al., 2019) pastes a random box of
one frame into another and gives the frame the two targets in proportion to the areas, so
the network has to find the disease in whatever part of the frame it is shown.

Only rows of the sources named by the caller take part (the training script chooses the
field and the composited lab rows): a patch of a non-leaf photo pasted onto a leaf would
teach that a frame with a leaf in it is partly ``no_leaf``, and the plain lab rows keep
the lab teacher's opinion of the whole leaf. Partners are drawn from the same rows of
the same batch, and a patch always comes from the partner's frame as it was drawn, never
from one already mixed.
"""

from __future__ import annotations

import numpy as np


def check_cutmix_share(share: float) -> float:
    """Return ``share`` (the part of eligible rows that get a patch) or raise ValueError."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f'the CutMix share must lie in 0..1, not {share:g}')
    return share


def cutmix_box(rng: np.random.Generator, height: int, width: int
               ) -> tuple[int, int, int, int]:
    """Return ``(top, left, bottom, right)`` of one CutMix box.

    The kept share ``lambda`` is drawn uniformly; the box has sides ``sqrt(1 - lambda)``
    of the frame's (rounded to whole pixels), centred anywhere in the frame and clipped to
    it, so its area (the partner's share of the targets) is about ``1 - lambda`` or less.
    """
    cut = np.sqrt(1.0 - rng.uniform(0.0, 1.0))
    box_height, box_width = int(round(height * cut)), int(round(width * cut))
    centre_y, centre_x = int(rng.integers(0, height)), int(rng.integers(0, width))
    top, bottom = max(0, centre_y - box_height // 2), min(height, centre_y + box_height // 2)
    left, right = max(0, centre_x - box_width // 2), min(width, centre_x + box_width // 2)
    return top, left, bottom, right


def cutmix_rows(images: np.ndarray, targets: np.ndarray, eligible: np.ndarray, share: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """Return ``(images, targets, rows mixed)`` with CutMix applied among ``eligible`` rows.

    ``images`` is B×H×W×C, ``targets`` B×K probabilities, ``eligible`` a boolean mask of
    the rows that may take part. Each eligible row gets, with probability ``share``, a box
    of another eligible row's frame, and its target becomes the two targets weighted by
    the box's share of the frame. The inputs are not changed.
    """
    check_cutmix_share(share)
    if images.shape[0] != targets.shape[0] or eligible.shape != (images.shape[0],):
        raise ValueError(f'{images.shape[0]} frames, {targets.shape[0]} targets and '
                         f'{eligible.shape[0]} eligibility flags do not match')
    rows = np.flatnonzero(eligible)
    out_images, out_targets = images.copy(), targets.copy()
    if rows.size < 2 or share == 0.0:
        return out_images, out_targets, 0
    height, width = images.shape[1:3]
    mixed = 0
    for row in rows:
        if rng.uniform() >= share:
            continue
        partner = int(rng.choice(rows[rows != row]))
        top, left, bottom, right = cutmix_box(rng, height, width)
        area = (bottom - top) * (right - left) / float(height * width)
        if area == 0.0:
            continue
        out_images[row, top:bottom, left:right] = images[partner, top:bottom, left:right]
        out_targets[row] = (1.0 - area) * targets[row] + area * targets[partner]
        mixed += 1
    return out_images, out_targets, mixed
