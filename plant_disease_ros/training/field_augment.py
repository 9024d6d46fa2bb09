"""Class-balanced, field-robust training batches (numpy/OpenCV, no TensorFlow).

:class:`FieldBatchMaker` draws every sample of a batch from a mixture of sources:
plain lab leaves, lab leaves cut out and pasted into field scenes (:mod:`composite`),
field photos, photographed non-leaf scenes and synthetic non-leaf frames
(:mod:`synthetic`). Within a source the class is drawn first and the photo second, so a
class with 30 field photos counts as much as one with 300. Every sample then gets
geometric and photometric augmentation: crop and zoom, the eight right-angle poses,
light, colour cast, blur, noise and JPEG re-encoding. Batches are a pure function of
``(seed, epoch, batch index)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from plant_disease_ros.core.motion_blur import smear
from plant_disease_ros.training.composite import composite_leaf
from plant_disease_ros.training.synthetic import synthetic_frame

# Clutter kinds used as backgrounds for pasted leaves (not flat colours: a leaf on a
# uniform backdrop is what the lab photos already are).
BACKGROUND_KINDS = ('grass', 'soil', 'sky', 'pipes', 'plastic_mulch', 'fence', 'heavy_blur',
                    'uniform_green')


@dataclass
class SourceMix:
    """Share of each source in a batch (normalised when used)."""

    lab: float = 0.15
    lab_composite: float = 0.30
    field: float = 0.30
    negative_photo: float = 0.12
    synthetic: float = 0.13

    @classmethod
    def parse(cls, text: str) -> SourceMix:
        """Return a mix from ``"lab=0.3,field=0.25"`` (unnamed sources keep their default)."""
        values: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(','))):
            name, _, value = item.partition('=')
            if name not in SOURCES or not value:
                raise ValueError(f'bad source share {item!r}: write NAME=SHARE with NAME one '
                                 f'of {", ".join(SOURCES)}')
            try:
                values[name] = float(value)
            except ValueError:
                raise ValueError(f'bad source share {item!r}: {value!r} is not a number'
                                 ) from None
        mix = cls(**values)
        mix.probabilities()  # validates
        return mix

    def probabilities(self) -> np.ndarray:
        """Return the shares as probabilities in the order of :data:`SOURCES`."""
        values = np.array([getattr(self, name) for name in SOURCES], np.float64)
        if (values < 0).any() or values.sum() <= 0:
            raise ValueError('source shares must be non-negative with a positive sum')
        return values / values.sum()


SOURCES = ('lab', 'lab_composite', 'field', 'negative_photo', 'synthetic')


@dataclass
class Pool:
    """Decoded photos of one source, grouped for class-balanced drawing."""

    images: np.ndarray  # N×S×S×3 uint8
    labels: np.ndarray  # N int, model label indices
    groups: np.ndarray  # N int: the balancing unit (class, or domain×class, or kind)
    masks: np.ndarray | None = None  # N×S×S uint8 leaf masks (lab only)
    _members: list[np.ndarray] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels) or len(self.labels) != len(self.groups):
            raise ValueError('images, labels and groups must have the same length')
        self._members = [np.flatnonzero(self.groups == group)
                         for group in np.unique(self.groups)]

    def draw(self, rng: np.random.Generator) -> int:
        """Return the row of a photo: a group uniformly, then a photo of it uniformly."""
        members = self._members[int(rng.integers(len(self._members)))]
        return int(members[int(rng.integers(len(members)))])

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class AugmentOptions:
    """Strength of the per-sample augmentation."""

    min_crop_area: float = 0.45
    lab_min_crop_area: float = 0.6  # plain lab leaves: keep most of the leaf
    blur_probability: float = 0.15
    noise_probability: float = 0.15
    jpeg_probability: float = 0.3
    photometric_probability: float = 0.85
    # A second, longer streak as a camera on the move makes it (0: off, the shipped recipe):
    # this share of frames gets a box of 3..motion_blur_max_px px along rows or columns.
    motion_blur_probability: float = 0.0
    motion_blur_max_px: int = 16

    def __post_init__(self) -> None:
        if not 0.0 <= self.motion_blur_probability <= 1.0:
            raise ValueError('the motion blur share must be in 0..1, got '
                             f'{self.motion_blur_probability}')
        if self.motion_blur_max_px < 3:
            raise ValueError('the longest motion streak must be 3 px or more, got '
                             f'{self.motion_blur_max_px}')

    @classmethod
    def scaled(cls, strength: float) -> AugmentOptions:
        """Return the defaults scaled by ``strength`` (1: as is, 0: no crop and no jitter).

        Probabilities are multiplied by ``strength``; the kept crop area moves towards the
        whole photo. A short last stage at about 0.5 lets the network settle on frames
        closer to the test photos after training on hard ones.
        """
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f'augmentation strength must be in 0..1, got {strength}')
        default = cls()
        if strength == 1.0:
            return default
        return cls(min_crop_area=1.0 - (1.0 - default.min_crop_area) * strength,
                   lab_min_crop_area=1.0 - (1.0 - default.lab_min_crop_area) * strength,
                   blur_probability=default.blur_probability * strength,
                   noise_probability=default.noise_probability * strength,
                   jpeg_probability=default.jpeg_probability * strength,
                   photometric_probability=default.photometric_probability * strength)


class FieldBatchMaker:
    """Make seeded, class-balanced, augmented batches of ``size`` px uint8 RGB frames."""

    def __init__(self, lab: Pool, field_photos: Pool | None, negatives: Pool,
                 no_leaf_index: int, size: int, batch_size: int, seed: int,
                 mix: SourceMix | None = None, augment: AugmentOptions | None = None) -> None:
        if lab.masks is None:
            raise ValueError('the lab pool needs leaf masks for compositing')
        self.lab, self.field, self.negatives = lab, field_photos, negatives
        self.no_leaf_index = no_leaf_index
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.mix = mix or SourceMix()
        if field_photos is None or len(field_photos) == 0:
            self.mix = SourceMix(**{**self.mix.__dict__, 'field': 0.0})
        self.probabilities = self.mix.probabilities()
        self.augment = augment or AugmentOptions()

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return batch ``index`` of ``epoch``: (B×size×size×3 uint8, B int32 labels)."""
        images, labels, _ = self.batch_with_sources(epoch, index)
        return images, labels

    def batch_with_sources(self, epoch: int, index: int
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return :meth:`batch` plus each row's source as an index into :data:`SOURCES`."""
        rng = np.random.default_rng([self.seed, epoch, index])
        images = np.empty((self.batch_size, self.size, self.size, 3), np.uint8)
        labels = np.empty(self.batch_size, np.int32)
        sources = rng.choice(len(SOURCES), size=self.batch_size, p=self.probabilities)
        for row, source in enumerate(sources):
            images[row], labels[row] = self.sample(rng, SOURCES[int(source)])
        return images, labels, sources.astype(np.int32)

    def sample(self, rng: np.random.Generator, source: str) -> tuple[np.ndarray, int]:
        """Return one augmented frame of ``source`` and its label."""
        size = self.size
        if source == 'lab':
            row = self.lab.draw(rng)
            image = random_crop(rng, self.lab.images[row], size,
                                min_area=self.augment.lab_min_crop_area)
            label = int(self.lab.labels[row])
        elif source == 'lab_composite':
            row = self.lab.draw(rng)
            background = self.background(rng)
            leaf, mask = self.lab.images[row], self.lab.masks[row]
            if rng.random() < 0.5:  # mirror; the paste turns the leaf by any angle
                leaf, mask = leaf[:, ::-1], mask[:, ::-1]
            image = composite_leaf(rng, np.ascontiguousarray(leaf),
                                   np.ascontiguousarray(mask), background)
            label = int(self.lab.labels[row])
        elif source == 'field':
            row = self.field.draw(rng)
            image = random_crop(rng, self.field.images[row], size,
                                min_area=self.augment.min_crop_area)
            label = int(self.field.labels[row])
        elif source == 'negative_photo':
            row = self.negatives.draw(rng)
            image = random_crop(rng, self.negatives.images[row], size,
                                min_area=self.augment.min_crop_area)
            label = self.no_leaf_index
        else:
            image = synthetic_frame(rng, size)
            label = self.no_leaf_index
        image = random_pose(rng, image)
        return photometric(rng, image, self.augment), label

    def background(self, rng: np.random.Generator) -> np.ndarray:
        """Return a field scene to paste a leaf into: a non-leaf photo or synthetic clutter."""
        if rng.random() < 0.6:
            row = self.negatives.draw(rng)
            return random_crop(rng, self.negatives.images[row], self.size, min_area=0.3)
        kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))]
        return synthetic_frame(rng, self.size, kind)


def random_pose(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Return one of the eight right-angle poses (flips and transposes) of ``image``."""
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if rng.random() < 0.5:
        image = image[::-1]
    if rng.random() < 0.5:
        image = np.swapaxes(image, 0, 1)
    return np.ascontiguousarray(image)


def random_crop(rng: np.random.Generator, image: np.ndarray, size: int,
                min_area: float = 0.45) -> np.ndarray:
    """Crop a random box of ``min_area``..1 of the image (aspect 3:4..4:3), resize to ``size``."""
    height, width = image.shape[:2]
    area = rng.uniform(min_area, 1.0) * height * width
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    crop_w = int(min(width, max(8, round(np.sqrt(area * aspect)))))
    crop_h = int(min(height, max(8, round(np.sqrt(area / aspect)))))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    crop = image[top:top + crop_h, left:left + crop_w]
    interpolation = cv2.INTER_AREA if crop_h > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def motion_streak(rng: np.random.Generator, image: np.ndarray, max_px: int) -> np.ndarray:
    """Smear ``image`` by a box of 3..``max_px`` px along its rows or its columns."""
    length = int(rng.integers(3, max(3, max_px) + 1))
    return smear(image, length, 'horizontal' if rng.random() < 0.5 else 'vertical')


def photometric(rng: np.random.Generator, image: np.ndarray,
                options: AugmentOptions) -> np.ndarray:
    """Jitter light and colour, then maybe blur, add noise and re-encode as JPEG."""
    out = image.astype(np.float32)
    if rng.random() < options.photometric_probability:
        grey = out.mean(axis=-1, keepdims=True)
        out = grey + (out - grey) * rng.uniform(0.6, 1.4)  # saturation
        mean = out.mean()
        out = mean + (out - mean) * rng.uniform(0.7, 1.3)  # contrast
        out = out * rng.uniform(0.6, 1.4)  # exposure
        out = out * np.array([rng.uniform(0.85, 1.15), 1.0, rng.uniform(0.85, 1.15)],
                             np.float32)  # white balance
        out = 255.0 * (np.clip(out, 0, 255) / 255.0) ** rng.uniform(0.75, 1.35)  # gamma
    if rng.random() < options.blur_probability:
        if rng.random() < 0.5:
            out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.6, 2.0))
        else:
            length = int(rng.integers(3, 10))
            kernel = np.zeros((length, length), np.float32)
            kernel[length // 2] = 1.0 / length
            if rng.random() < 0.5:
                kernel = kernel.T.copy()
            out = cv2.filter2D(out, -1, kernel, borderType=cv2.BORDER_REFLECT)
    if options.motion_blur_probability > 0 and rng.random() < options.motion_blur_probability:
        out = motion_streak(rng, out, options.motion_blur_max_px)
    if rng.random() < options.noise_probability:
        out = out + rng.normal(0, rng.uniform(2, 10), out.shape).astype(np.float32)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < options.jpeg_probability:
        quality = int(rng.integers(25, 90))
        ok, encoded = cv2.imencode('.jpg', cv2.cvtColor(out, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out
