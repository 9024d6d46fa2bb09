"""Choose between the shipped model and a candidate by validation on sharp and smeared frames.

The rule the shipped model was chosen by (``benchmarks/results/2026-12-06-blur-augment.md``),
written before the candidate ran: each model's score is the mean over the domains of its
validation figure (top-1 of leaves; the share of non-leaf frames rejected), once on sharp
camera frames and once on frames smeared as by a moving camera. The candidate replaces the
incumbent when

1. the mean of its sharp and smeared scores is higher;
2. its sharp score is at most ``max_sharp_loss`` lower;
3. it rejects at most ``max_lab_rejected`` of the lab leaves and at least
   ``min_non_leaf_rejected`` of every non-leaf domain, on sharp frames.

Only validation evaluations are taken (``evaluate --split val --frames WxH``, with
``--motion-blur PX`` for the smeared ones): choosing on the test split would make its
figures optimistic. No TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plant_disease_ros.training.compare import frames_but_smear, read_report, smear_of

MAX_SHARP_LOSS = 0.01
MAX_LAB_REJECTED = 0.02
MIN_NON_LEAF_REJECTED = 0.95
# A leaf domain's rejected share may rise by at most this much: top-1 counts a frame's top
# label whether or not it clears score_threshold, so a candidate that rejects field
# leaves (nothing on the map) would otherwise keep its top-1 credit.
MAX_LEAF_REJECTED_RISE = 0.05
LAB_DOMAIN = 'lab'
# How far apart two figures may be and still count as equal in a bound check: shares of
# whole frames (7/20 + 0.05 is below 8/20 in binary floating point) and their means are
# exact only to a few units in the last place, far below any share of a real frame count.
FIGURE_TOLERANCE = 1e-9


def at_most(value: float, bound: float) -> bool:
    """Return whether ``value <= bound``, a difference of rounding counted as equal."""
    return value <= bound + FIGURE_TOLERANCE


def above(value: float, bound: float) -> bool:
    """Return whether ``value > bound`` by more than rounding (a tie is not above)."""
    return value > bound + FIGURE_TOLERANCE


@dataclass(frozen=True)
class ModelScores:
    """One model's validation figures on sharp and on smeared frames."""

    name: str
    sharp: dict[str, float]  # domain -> top-1 (leaves) or rejected share (non-leaf)
    smeared: dict[str, float]
    non_leaf_rejected: dict[str, float]
    leaf_rejected: dict[str, float]  # leaf domain -> rejected share, sharp frames
    smear_px: int
    frames: dict  # what the frames were, but for the smear (compare.frames_but_smear)

    @property
    def lab_rejected(self) -> float | None:
        """Return the share of lab leaves rejected on sharp frames (None: no lab domain)."""
        return self.leaf_rejected.get(LAB_DOMAIN)

    @property
    def sharp_mean(self) -> float:
        """Return the mean over the domains on sharp frames."""
        return sum(self.sharp.values()) / len(self.sharp)

    @property
    def smeared_mean(self) -> float:
        """Return the mean over the domains on smeared frames."""
        return sum(self.smeared.values()) / len(self.smeared)

    @property
    def score(self) -> float:
        """Return the rule's score: the mean of the sharp and the smeared means."""
        return (self.sharp_mean + self.smeared_mean) / 2


@dataclass(frozen=True)
class Choice:
    """The rule's verdict and the reasons for it."""

    incumbent: ModelScores
    candidate: ModelScores
    checks: list[tuple[str, bool]]  # (what was checked, with the figures; passed)

    @property
    def replace(self) -> bool:
        """Return whether the candidate replaces the incumbent."""
        return all(passed for _, passed in self.checks)


def _figures(evaluation: dict) -> dict[str, float]:
    return {name: float(report['rejected'] if report['negative'] else report['top1'])
            for name, report in evaluation['domains'].items()}


def _check_val(evaluation: dict, folder: str | Path) -> None:
    if evaluation.get('split') != 'val':
        raise ValueError(f'{folder} is an evaluation of the {evaluation.get("split")!r} split; '
                         'choose on validation frames (evaluate --split val)')


def model_scores(name: str, sharp_dir: str | Path, smeared_dir: str | Path) -> ModelScores:
    """Read one model's sharp and smeared validation evaluations.

    ValueError, naming the folders, when they are not usable evaluations.
    """
    try:
        return _model_scores(name, sharp_dir, smeared_dir)
    except (KeyError, TypeError) as error:
        raise ValueError(f'{sharp_dir} or {smeared_dir}: an evaluation.json without the '
                         f'figures choose needs ({type(error).__name__}: {error})') from error


def _model_scores(name: str, sharp_dir: str | Path, smeared_dir: str | Path) -> ModelScores:
    sharp, smeared = read_report(sharp_dir, True), read_report(smeared_dir, True)
    for evaluation, folder in ((sharp, sharp_dir), (smeared, smeared_dir)):
        _check_val(evaluation, folder)
    sharp_px, smear_px = smear_of(sharp, str(sharp_dir)), smear_of(smeared, str(smeared_dir))
    frames = frames_but_smear(sharp)
    if frames != frames_but_smear(smeared):
        raise ValueError(f'{sharp_dir} and {smeared_dir} are not the same photos, camera and '
                         'settings')
    if sharp['model_sha256'] != smeared['model_sha256']:
        raise ValueError(f'{sharp_dir} and {smeared_dir} are evaluations of two models')
    if sharp_px > 1 or smear_px <= 1:
        raise ValueError(f'{sharp_dir} must be sharp frames and {smeared_dir} smeared ones '
                         '(evaluate --motion-blur PX)')
    domains = sharp['domains']
    return ModelScores(
        name=name, sharp=_figures(sharp), smeared=_figures(smeared),
        non_leaf_rejected={domain: float(report['rejected'])
                           for domain, report in domains.items() if report['negative']},
        leaf_rejected={domain: float(report['rejected'])
                       for domain, report in domains.items() if not report['negative']},
        smear_px=smear_px, frames=frames)


def choose(incumbent: ModelScores, candidate: ModelScores,
           max_sharp_loss: float = MAX_SHARP_LOSS, max_lab_rejected: float = MAX_LAB_REJECTED,
           min_non_leaf_rejected: float = MIN_NON_LEAF_REJECTED,
           max_leaf_rejected_rise: float = MAX_LEAF_REJECTED_RISE) -> Choice:
    """Apply the rule to two models' scores on the same frames.

    A figure exactly on a bound passes (and a score equal to the incumbent's is not
    higher), whatever the rounding of the shares: :data:`FIGURE_TOLERANCE`.
    """
    if incumbent.frames != candidate.frames or incumbent.smear_px != candidate.smear_px:
        raise ValueError('the two models were not evaluated on the same frames, settings and '
                         'smear')
    checks = [
        (f'sharp and smeared mean {candidate.score:.4f} > {incumbent.score:.4f}',
         above(candidate.score, incumbent.score)),
        (f'sharp mean {candidate.sharp_mean:.4f} >= {incumbent.sharp_mean:.4f} - '
         f'{max_sharp_loss:g}',
         at_most(incumbent.sharp_mean - max_sharp_loss, candidate.sharp_mean)),
    ]
    if candidate.lab_rejected is not None:
        checks.append((f'lab leaves rejected {100 * candidate.lab_rejected:.2f} % <= '
                       f'{100 * max_lab_rejected:g} %',
                       at_most(candidate.lab_rejected, max_lab_rejected)))
    for domain, rejected in candidate.leaf_rejected.items():
        before = incumbent.leaf_rejected.get(domain)
        if before is not None:
            checks.append((f'{domain} leaves rejected {100 * rejected:.2f} % <= '
                           f'{100 * before:.2f} % + {100 * max_leaf_rejected_rise:g} points',
                           at_most(rejected, before + max_leaf_rejected_rise)))
    for domain, rejected in candidate.non_leaf_rejected.items():
        checks.append((f'{domain} rejected {100 * rejected:.2f} % >= '
                       f'{100 * min_non_leaf_rejected:g} %',
                       at_most(min_non_leaf_rejected, rejected)))
    return Choice(incumbent, candidate, checks)


def format_choice(choice: Choice) -> str:
    """Return the per-domain table, the checks and the verdict as text."""
    models = (choice.incumbent, choice.candidate)
    width = max(len(name) for name in models[0].sharp) + 2
    px = choice.candidate.smear_px
    lines = [f'{"domain":<{width}}' + ''.join(f'{model.name + " sharp":>18}'
                                              f'{model.name + f" {px} px":>18}'
                                              for model in models)]
    for domain in models[0].sharp:
        lines.append(f'{domain:<{width}}' + ''.join(
            f'{100 * model.sharp[domain]:>17.2f}%{100 * model.smeared[domain]:>17.2f}%'
            for model in models))
    lines.append(f'{"mean":<{width}}' + ''.join(
        f'{model.sharp_mean:>18.4f}{model.smeared_mean:>18.4f}' for model in models))
    lines.append('')
    lines += [f'{"pass" if passed else "FAIL"}  {text}' for text, passed in choice.checks]
    verdict = (f'verdict: ship {choice.candidate.name}' if choice.replace
               else f'verdict: keep {choice.incumbent.name}')
    return '\n'.join(lines + ['', verdict])


def choice_json(choice: Choice) -> dict:
    """Return the choice as JSON-ready data."""
    def scores(model: ModelScores) -> dict:
        return {'name': model.name, 'sharp': model.sharp, 'smeared': model.smeared,
                'smear_px': model.smear_px, 'sharp_mean': model.sharp_mean,
                'smeared_mean': model.smeared_mean, 'score': model.score}

    return {'incumbent': scores(choice.incumbent), 'candidate': scores(choice.candidate),
            'checks': [{'check': text, 'passed': passed} for text, passed in choice.checks],
            'replace': choice.replace}


__all__ = ['choice_json', 'choose', 'Choice', 'format_choice', 'model_scores', 'ModelScores']
