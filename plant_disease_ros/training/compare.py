"""Compare two evaluations of the same photos, photo by photo: is the new model better?

Two ``plant-disease evaluate`` folders (two models, or one model with two settings such as
``--poses`` or ``--crops``) scored the same test photos; each has a ``predictions.csv``
with a row per frame. A field test set is small (a PlantDoc class has 9–28 test photos),
so a top-1 that moves by two points may be luck. Because both evaluations scored the
*same* photos, the fair question is about the photos on which they disagree: ``fixed``
(the new one right, the base wrong) against ``broken`` (the reverse). Under "no
difference" each disagreement goes either way with probability 1/2, which gives the exact
McNemar test's p-value (:func:`~plant_disease_ros.training.metrics.mcnemar_exact_p`). The
same test is run on the wrong points a model would put on the disease map. Each share also
gets a Wilson 95 % interval.

Outputs of :func:`write_comparison`: ``comparison.json``, ``comparison.md`` (a table for a
results note or a pull request) and ``comparison.png`` (top-1 per domain with intervals).
"""

from __future__ import annotations

from collections.abc import Sequence
import csv
from dataclasses import dataclass
import json
import os
from pathlib import Path

from plant_disease_ros.core.atomic_files import replacing, write_text_atomic
from plant_disease_ros.training.field_evaluate import PREDICTION_COLUMNS
from plant_disease_ros.training.metrics import mcnemar_exact_p, wilson_interval

# The evaluation settings that decide what a figure means; the comparison lists those
# that differ, so that "model A against model B" is not mistaken for "A with 4 poses".
SETTINGS = ('model', 'split', 'seen_as', 'score_threshold', 'crops', 'other_crops_weight',
            'poses', 'vegetation_gate')
# Settings recorded only by later evaluations: missing (or None) in either is unknown, not
# a difference.
LATER_SETTINGS = frozenset({'vegetation_gate'})
DEFAULT_ALPHA = 0.05
# What evaluations of the same camera frames share, whatever their motion blur.
FRAME_SETTINGS = ('split', 'field_split', 'score_threshold', 'crops', 'other_crops_weight',
                  'poses')


class ComparisonError(ValueError):
    """The two folders cannot be compared (not evaluations, or not of the same frames)."""


@dataclass
class Evaluation:
    """One evaluation folder: its ``evaluation.json`` and its rows of ``predictions.csv``."""

    folder: Path
    report: dict
    rows: list[dict]

    def domains(self) -> dict[str, dict[str, dict]]:
        """Return the rows per domain, keyed by frame name, in the file's order."""
        domains: dict[str, dict[str, dict]] = {}
        for row in self.rows:
            frames = domains.setdefault(row['domain'], {})
            if row['frame'] in frames:
                raise ComparisonError(f'{self.folder}: frame {row["frame"]!r} of '
                                      f'{row["domain"]} appears twice in predictions.csv')
            frames[row['frame']] = row
        return domains


def smear_of(report: dict, name: str) -> int:
    """Return the motion blur (px) of an evaluation of camera frames; ValueError otherwise.

    ``name`` says which evaluation in the message.
    """
    if 'camera' not in report or 'model_sha256' not in report:
        raise ValueError(f'{name} was made before evaluate recorded its camera and model: '
                         'evaluate again')
    if not report['camera']:
        raise ValueError(f'{name} is of photos, not camera frames: evaluate it with '
                         '--frames WxH')
    return int(report['camera']['motion_blur_px'])


def node_settings(report: dict) -> dict | None:
    """Return how the nodes of a ``--through-nodes`` evaluation were configured, or None.

    Their params file and ``-p`` overrides (``crops``, ``test_time_poses``,
    ``vegetation_gate``...) decide what they publish; the report's own ``crops`` and
    ``poses`` are the in-process classifier's. Timings and folders are left out.
    """
    through = report.get('through_nodes')
    if not isinstance(through, dict):
        return None
    return {key: through.get(key) for key in ('params_file', 'parameters')}


def frames_but_smear(report: dict) -> dict:
    """Return what evaluations of the same frames share whatever their smear (not the model).

    The camera with its motion blur set to 0, the :data:`FRAME_SETTINGS` and the photos
    per domain; only for evaluations :func:`smear_of` accepts.
    """
    return {'camera': {**report['camera'], 'motion_blur_px': 0},
            **{key: report.get(key) for key in FRAME_SETTINGS},
            'through_nodes': node_settings(report),
            'photos': {name: domain['photos'] for name, domain in report['domains'].items()}}


def read_report(folder: str | Path, need_domains: bool = False) -> dict:
    """Read an evaluation folder's ``evaluation.json``; :class:`ComparisonError` if unusable.

    Any evaluation's is a JSON object; ``need_domains`` also asks for the per-domain
    figures that only an evaluation with ``--field-split`` writes (a photo folder's
    evaluation has none, and is still compared photo by photo).
    """
    folder = Path(folder)
    report_path = folder / 'evaluation.json'
    if not report_path.is_file():
        raise ComparisonError(f'{folder}: no evaluation.json, not a plant-disease evaluate '
                              'folder')
    try:
        report = json.loads(report_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ComparisonError(f'{report_path}: not JSON ({error})') from error
    if not isinstance(report, dict):
        raise ComparisonError(f'{report_path}: not a plant-disease evaluation (not a JSON '
                              'object)')
    if need_domains and (
            not isinstance(report.get('domains'), dict) or not report['domains']
            or not all(isinstance(domain, dict) for domain in report['domains'].values())):
        raise ComparisonError(f'{report_path}: not a field evaluation (no domains; evaluate '
                              'with --field-split)')
    return report


def read_evaluation(folder: str | Path) -> Evaluation:
    """Read an evaluation folder; raise :class:`ComparisonError` with the reason if unusable."""
    folder = Path(folder)
    predictions_path = folder / 'predictions.csv'
    report = read_report(folder)
    if not predictions_path.is_file():
        raise ComparisonError(f'{folder}: no predictions.csv (evaluations before it was '
                              'written cannot be compared photo by photo): evaluate again')
    try:
        with open(predictions_path, newline='', encoding='utf-8') as handle:
            reader = csv.DictReader(handle)
            missing = [column for column in PREDICTION_COLUMNS
                       if column not in (reader.fieldnames or [])]
            if missing:
                raise ComparisonError(f'{predictions_path}: missing columns '
                                      f'{", ".join(missing)}')
            rows = list(reader)
    except (csv.Error, UnicodeDecodeError) as error:
        raise ComparisonError(f'{predictions_path}: not a predictions table ({error})') \
            from error
    for number, row in enumerate(rows, start=2):
        if row['correct'] not in ('0', '1') or row['outcome'] not in ('right', 'wrong',
                                                                      'rejected'):
            raise ComparisonError(f'{predictions_path}, line {number}: correct must be 0 or 1 '
                                  'and outcome right, wrong or rejected, got '
                                  f'{row["correct"]!r} and {row["outcome"]!r}')
    return Evaluation(folder, report, rows)


def _paired(base: Sequence[bool], new: Sequence[bool]) -> tuple[int, int]:
    """Return (new true where base false, base true where new false)."""
    gained = sum(1 for old, now in zip(base, new, strict=True) if now and not old)
    lost = sum(1 for old, now in zip(base, new, strict=True) if old and not now)
    return gained, lost


def _verdict(gained: int, lost: int, p_value: float, alpha: float) -> str:
    if p_value >= alpha:
        return 'no clear difference'
    return 'better' if gained > lost else 'worse'


def compare_domain(name: str, base: dict[str, dict], new: dict[str, dict],
                   alpha: float = DEFAULT_ALPHA) -> dict:
    """Return the paired figures of one domain scored by both evaluations.

    ``base`` and ``new``: that domain's rows keyed by frame name; both must hold the same
    frames with the same truth.
    """
    only_base = [frame for frame in base if frame not in new]
    only_new = [frame for frame in new if frame not in base]
    if only_base or only_new:
        example = (only_base or only_new)[0]
        raise ComparisonError(
            f'{name}: the evaluations scored different frames ({len(only_base)} only in the '
            f'base, {len(only_new)} only in the new one, e.g. {example!r}): compare '
            'evaluations of the same split and field split')
    frames = list(base)
    differing = [frame for frame in frames if base[frame]['truth'] != new[frame]['truth']]
    if differing:
        raise ComparisonError(f'{name}: {len(differing)} frames have a different truth, e.g. '
                              f'{differing[0]!r} ({base[differing[0]]["truth"]} against '
                              f'{new[differing[0]]["truth"]}): not the same labels')
    count = len(frames)
    base_right = [base[frame]['correct'] == '1' for frame in frames]
    new_right = [new[frame]['correct'] == '1' for frame in frames]
    fixed, broken = _paired(base_right, new_right)
    top1_p = mcnemar_exact_p(fixed, broken)
    # A wrong map point removed counts for the new evaluation, one added against it.
    base_wrong = [base[frame]['outcome'] == 'wrong' for frame in frames]
    new_wrong = [new[frame]['outcome'] == 'wrong' for frame in frames]
    wrong_added, wrong_removed = _paired(base_wrong, new_wrong)
    wrong_p = mcnemar_exact_p(wrong_removed, wrong_added)

    def share(flags: Sequence[bool]) -> dict:
        hits = sum(flags)
        return {'count': hits, 'share': hits / count if count else None,
                'interval': list(wilson_interval(hits, count))}

    return {
        'frames': count,
        'negative': all(base[frame]['truth'] == 'no_leaf' for frame in frames),
        'base_top1': share(base_right), 'new_top1': share(new_right),
        'fixed': fixed, 'broken': broken, 'top1_p': top1_p,
        'top1_verdict': _verdict(fixed, broken, top1_p, alpha),
        'base_rejected': share([base[frame]['outcome'] == 'rejected' for frame in frames]),
        'new_rejected': share([new[frame]['outcome'] == 'rejected' for frame in frames]),
        'base_wrong': share(base_wrong), 'new_wrong': share(new_wrong),
        'wrong_removed': wrong_removed, 'wrong_added': wrong_added, 'wrong_p': wrong_p,
        'wrong_verdict': _verdict(wrong_removed, wrong_added, wrong_p, alpha),
    }


# Folder names that say "an evaluation" rather than which: a name is taken from above them.
GENERIC_FOLDER_NAMES = frozenset({'eval', 'evals', 'evaluation', 'evaluations', 'out',
                                  'output', 'outputs', 'results'})


def default_names(base: str | Path, new: str | Path) -> tuple[str, str]:
    """Return names that tell two evaluation folders apart, for the table and the picture.

    A folder's name, or its parent's when the name is generic (``runs/mine/eval`` is
    ``mine``); when those are equal, the shortest path suffixes that differ
    (``a/mine`` and ``b/mine``).
    """
    parts = [Path(os.path.abspath(folder)).parts for folder in (base, new)]

    def trimmed(folder_parts: tuple[str, ...]) -> tuple[str, ...]:
        if len(folder_parts) > 2 and folder_parts[-1].lower() in GENERIC_FOLDER_NAMES:
            return folder_parts[:-1]
        return folder_parts

    for candidates in ([trimmed(folder) for folder in parts], parts):
        for count in range(1, max(map(len, candidates)) + 1):
            first, second = (Path(*folder[-count:]).as_posix() for folder in candidates)
            if first != second:
                return first, second
    same = Path(*parts[0]).as_posix()
    return same, same


def differing_models(base: dict, new: dict) -> list[str] | None:
    """Return the two evaluations' models when they are two models, else None.

    Both record the sha256 of their model (evaluations since it is recorded): the same
    file named by two paths (absolute and relative, or copied) is one model, and two
    exports at one path are two (their sha256 then tells them apart). Older evaluations
    are compared by the path they record.
    """
    paths = [base.get('model'), new.get('model')]
    hashes = [base.get('model_sha256'), new.get('model_sha256')]
    if all(hashes):
        if hashes[0] == hashes[1]:
            return None
        if paths[0] == paths[1]:
            return [f'{path} (sha256 {digest[:12]})' for path, digest in zip(paths, hashes,
                                                                             strict=True)]
        return paths
    return None if paths[0] == paths[1] else paths


def compare_evaluations(base: Evaluation, new: Evaluation,
                        alpha: float = DEFAULT_ALPHA,
                        names: tuple[str, str] | None = None) -> dict:
    """Compare every domain both evaluations scored; return the result as a dict."""
    if not 0.0 < alpha < 1.0:
        raise ComparisonError(f'alpha must be in (0, 1), got {alpha}')
    base_domains, new_domains = base.domains(), new.domains()
    common = [name for name in base_domains if name in new_domains]
    if not common:
        raise ComparisonError(f'{base.folder} and {new.folder} share no domain: nothing to '
                              'compare')
    settings = {key: [base.report.get(key), new.report.get(key)] for key in SETTINGS
                if key != 'model' and base.report.get(key) != new.report.get(key)
                and not (key in LATER_SETTINGS
                         and None in (base.report.get(key), new.report.get(key)))}
    models = differing_models(base.report, new.report)
    if models:
        settings = {'model': models, **settings}
    nodes = [node_settings(base.report), node_settings(new.report)]
    if nodes[0] != nodes[1]:
        settings['through_nodes'] = nodes
    names = names or default_names(base.folder, new.folder)
    return {
        'base': str(base.folder), 'new': str(new.folder),
        'base_name': names[0], 'new_name': names[1], 'alpha': alpha,
        'differing_settings': settings,
        'only_in_base': [name for name in base_domains if name not in new_domains],
        'only_in_new': [name for name in new_domains if name not in base_domains],
        'domains': {name: compare_domain(name, base_domains[name], new_domains[name], alpha)
                    for name in common},
    }


def _pct(value: float | None) -> str:
    return '–' if value is None else f'{100 * value:.2f}'


def _with_interval(figure: dict) -> str:
    low, high = figure['interval']
    return f'{_pct(figure["share"])} ({100 * low:.1f}–{100 * high:.1f})'


def _change(result: dict, key: str) -> str:
    base, new = result[f'base_{key}']['share'], result[f'new_{key}']['share']
    return '–' if base is None or new is None else f'{100 * (new - base):+.2f}'


def _setting_lines(result: dict) -> list[str]:
    lines = [f'base: {result["base_name"]} ({result["base"]})',
             f'new:  {result["new_name"]} ({result["new"]})']
    for key, (base, new) in result['differing_settings'].items():
        lines.append(f'setting {key}: {base!r} -> {new!r}')
    for key in ('only_in_base', 'only_in_new'):
        if result[key]:
            lines.append(f'not compared ({key.replace("_", " ")}): {", ".join(result[key])}')
    return lines


def format_comparison(result: dict) -> str:
    """Return the comparison as a plain-text table (for a terminal or a log)."""
    lines = _setting_lines(result)
    lines.append(f'{"domain":<14} {"frames":>6} {"base top-1 (95 %)":>22} '
                 f'{"new top-1 (95 %)":>22} {"change":>7} {"fixed":>5} {"broken":>6} '
                 f'{"p":>7}  verdict')
    for name, domain in result['domains'].items():
        lines.append(f'{name:<14} {domain["frames"]:6d} {_with_interval(domain["base_top1"]):>22} '
                     f'{_with_interval(domain["new_top1"]):>22} {_change(domain, "top1"):>7} '
                     f'{domain["fixed"]:5d} {domain["broken"]:6d} {domain["top1_p"]:7.3f}  '
                     f'{domain["top1_verdict"]}')
    lines.append(f'{"domain":<14} {"wrong map points: base":>24} {"new":>7} {"removed":>8} '
                 f'{"added":>6} {"p":>7}  verdict;  rejected: base -> new')
    for name, domain in result['domains'].items():
        lines.append(f'{name:<14} {_pct(domain["base_wrong"]["share"]):>24} '
                     f'{_pct(domain["new_wrong"]["share"]):>7} {domain["wrong_removed"]:8d} '
                     f'{domain["wrong_added"]:6d} {domain["wrong_p"]:7.3f}  '
                     f'{domain["wrong_verdict"]};  {_pct(domain["base_rejected"]["share"])} -> '
                     f'{_pct(domain["new_rejected"]["share"])}')
    lines.append(f'fixed/broken: frames only the new/base evaluation gets right; p: exact '
                 f'McNemar test on them; a verdict needs p < {result["alpha"]:g}. Percent; '
                 'for non-leaf domains top-1 is the share labelled no_leaf.')
    return '\n'.join(lines)


def comparison_markdown(result: dict) -> str:
    """Return the comparison as Markdown: settings, the paired table, how to read it."""
    lines = ['# Comparison, photo by photo', '']
    lines += [f'- {line}' for line in _setting_lines(result)]
    lines += ['', '| domain | frames | base top-1 (95 % interval) | new top-1 (95 % interval) | '
                  'change | fixed | broken | p | verdict | wrong map points, base → new | '
                  'p | rejected, base → new |',
              '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: '
              '| ---: |']
    for name, domain in result['domains'].items():
        lines.append(
            f'| {name} | {domain["frames"]} | {_with_interval(domain["base_top1"])} % | '
            f'{_with_interval(domain["new_top1"])} % | {_change(domain, "top1")} | '
            f'{domain["fixed"]} | {domain["broken"]} | {domain["top1_p"]:.3f} | '
            f'{domain["top1_verdict"]} | {_pct(domain["base_wrong"]["share"])} → '
            f'{_pct(domain["new_wrong"]["share"])} % | {domain["wrong_p"]:.3f} | '
            f'{_pct(domain["base_rejected"]["share"])} → '
            f'{_pct(domain["new_rejected"]["share"])} % |')
    lines += ['', f'"Fixed": frames the new evaluation gets right and the base wrong; "broken": '
                  f'the reverse. p: the exact McNemar test on those frames (the others carry '
                  f'no evidence); a verdict needs p < {result["alpha"]:g}. A wrong map point '
                  'is a leaf accepted with a wrong label or a non-leaf frame accepted as a '
                  'leaf. For non-leaf domains top-1 is the share labelled `no_leaf`.', '']
    return '\n'.join(lines)


def plot_comparison(result: dict, path: str | Path) -> Path:
    """Draw top-1 per domain for both evaluations with their 95 % intervals and p-values."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = list(result['domains'])
    figure, axis = plt.subplots(figsize=(max(6.0, 1.6 * len(names) + 2), 4.6))
    width = 0.38
    for offset, key, label in ((-width / 2, 'base', result['base_name']),
                               (width / 2, 'new', result['new_name'])):
        shares = [100 * (result['domains'][name][f'{key}_top1']['share'] or 0.0)
                  for name in names]
        low = [share - 100 * result['domains'][name][f'{key}_top1']['interval'][0]
               for share, name in zip(shares, names, strict=True)]
        high = [100 * result['domains'][name][f'{key}_top1']['interval'][1] - share
                for share, name in zip(shares, names, strict=True)]
        axis.bar([index + offset for index in range(len(names))], shares, width, label=label,
                 yerr=[low, high], capsize=3)
    for index, name in enumerate(names):
        domain = result['domains'][name]
        axis.text(index, 102, f'p={domain["top1_p"]:.3g}\n{domain["fixed"]} fixed, '
                              f'{domain["broken"]} broken', ha='center', va='bottom',
                  fontsize=7)
    axis.set_xticks(range(len(names)), names)
    axis.set(ylim=(0, 118), ylabel='top-1, % (95 % interval)',
             title='Same frames, two evaluations (non-leaf domains: labelled no_leaf)')
    axis.legend(fontsize=8, loc='upper center', bbox_to_anchor=(0.5, -0.08), ncol=2)
    axis.grid(axis='y', alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    with replacing(path) as temporary:
        figure.savefig(temporary, dpi=110)
    plt.close(figure)
    return path


OUTPUT_NAMES = ('comparison.json', 'comparison.md', 'comparison.png')


def free_output_folder(out_dir: str | Path, limit: int = 10000) -> Path:
    """Return ``out_dir``, or ``out_dir-2``, ``-3``...: the first that holds no comparison.

    A comparison never replaces an earlier one, as a replay never replaces another run's
    outputs: a folder is taken when it holds any of :data:`OUTPUT_NAMES` (or is a file).
    """
    given = Path(out_dir)
    # '.' and '..' have no name to number: their absolute path has.
    base = given if given.name not in ('', '.', '..') else Path(os.path.abspath(given))
    for number in range(1, limit):
        folder = given if number == 1 else base.with_name(f'{base.name}-{number}')
        if not folder.exists():
            return folder
        if folder.is_dir() and not any((folder / name).exists() for name in OUTPUT_NAMES):
            return folder
    raise ComparisonError(f'no free output folder {out_dir}-N: move earlier comparisons')


def write_comparison(result: dict, out_dir: str | Path) -> list[Path]:
    """Write ``comparison.json``, ``comparison.md`` and ``comparison.png``; return the paths.

    Files of an earlier comparison in ``out_dir`` are replaced: pick the folder with
    :func:`free_output_folder` to keep them.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = write_text_atomic(out_dir / 'comparison.json', json.dumps(result, indent=1) + '\n')
    markdown = write_text_atomic(out_dir / 'comparison.md', comparison_markdown(result))
    return [report, markdown, plot_comparison(result, out_dir / 'comparison.png')]
