"""One static HTML page for an agronomist: model card, training, evaluation, explanations,
embeddings and the disease map of a field run.

The page needs no network: CSS is inline, pictures are copied into a folder beside the
page (or, with ``inline=True``, embedded as ``data:`` URIs) and every link is relative.
A section whose inputs are missing says so and says how to make them. This module gathers
the material of each section; :mod:`report_html` renders Markdown and the page, and
:mod:`report_assets` places the files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
import datetime
import json
import os
from pathlib import Path
import shlex
import shutil
import sys
from typing import Any

from plant_disease_ros.core.atomic_files import replacing, sha256_of
from plant_disease_ros.core.output_paths import check_output_file
from plant_disease_ros.training.metrics import split_description
from plant_disease_ros.training.report_assets import Assets
from plant_disease_ros.training.report_html import (
    escape,
    figure_html,
    key_value_table,
    markdown_to_html,
    missing_note,
    page_html,
    percent,
    section_html,
)

MODEL_FILENAME = 'plant_disease_int8.tflite'
FLOAT_MODEL_FILENAME = 'plant_disease_float.keras'
# What `plant-disease export` writes into a run by default, and the run's float model.
RUN_MODEL_FILENAME = 'model_int8.tflite'
RUN_FLOAT_MODEL_FILENAME = 'model.keras'
LABELS_FILENAME = 'labels.txt'
MODEL_CARD_FILENAME = 'MODEL_CARD.md'
CURVES_FILENAME = 'training_curves.png'
CONFUSION_FILENAME = 'confusion_matrix.png'
# Where a run keeps its analyses, and where `explain` and `embed` write by default.
RUN_EXPLANATIONS = 'explanations'
RUN_EMBEDDING = 'embedding'
SHARED_EXPLANATIONS = Path('outputs/explanations')
SHARED_EMBEDDING = Path('outputs/embedding')


@dataclass
class ReportInputs:
    """Where the report's material is; any of it may be missing."""

    models_dir: Path = Path('models')
    run_dir: Path | None = Path('runs/plantvillage')
    eval_dir: Path | None = None
    explanations_dir: Path | None = None
    embed_dir: Path | None = None
    map_path: Path | None = None
    max_explanations: int = 60
    max_maps: int = 10


@dataclass
class ReportResult:
    """The page, and each section's state: 'ok' or why it is missing."""

    path: Path
    sections: dict[str, str] = field(default_factory=dict)


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _figure(assets: Assets, path: Path, caption: str, wide: bool = False,
            alt: str | None = None) -> str:
    """Return the picture at ``path`` placed on the page, linked, with its caption."""
    return figure_html(assets.url(path), caption, wide=wide, alt=alt, linked=not assets.inline)


def _figure_once(assets: Assets, path: Path, caption: str, what: str) -> str:
    """Return the figure, or a pointer to it when the model card already shows it."""
    if assets.shown(path):
        full = '' if assets.inline else \
            f' (<a href="{escape(assets.url(path))}">full size</a>)'
        return (f'<p>Shown in the <a href="#model">model card</a>: the {escape(what)}'
                f'{full}.</p>')
    return _figure(assets, path, caption)


def _first_file(folders: Sequence[Path | None], name: str) -> Path | None:
    for folder in folders:
        if folder is not None and (folder / name).is_file():
            return folder / name
    return None


def command(*words: str | os.PathLike) -> str:
    """Return a shell command line of ``words``, each quoted where the shell needs it."""
    return shlex.join(str(word) for word in words)


def code(text: str) -> str:
    """Return ``text`` (a command or a path) as HTML ``<code>``."""
    return f'<code>{escape(text)}</code>'


def run_summary(run_dir: Path | None) -> dict | None:
    """Return a run's ``train_summary.json``, or None when it has no readable one."""
    if run_dir is None:
        return None
    summary = _read_json(Path(run_dir) / 'train_summary.json')
    return summary if isinstance(summary, dict) else None


def replaced_outputs(run_dir: Path | None) -> set[str]:
    """Return the sha256 of the files an earlier run left in ``run_dir`` (``train --overwrite``).

    ``train_summary.json``'s ``replaced_outputs``: exports and evaluations that were in
    the folder before its ``model.keras`` was trained; they describe an earlier model.
    """
    replaced = (run_summary(run_dir) or {}).get('replaced_outputs')
    return {str(digest) for digest in replaced.values()} if isinstance(replaced, dict) \
        else set()


def run_export(run_dir: Path | None) -> Path | None:
    """Return the int8 model a run folder holds (its export), or None."""
    if run_dir is None:
        return None
    return _first_file([Path(run_dir)], RUN_MODEL_FILENAME) \
        or _first_file([Path(run_dir)], MODEL_FILENAME)


def stale_export(run_dir: Path | None) -> Path | None:
    """Return the run's export when it predates the run's model (``replaced_outputs``)."""
    export = run_export(run_dir)
    if export is None or _sha256(export) not in replaced_outputs(run_dir):
        return None
    return export


# What the shipped model's folder holds beside the model for a report: a colcon install's
# share folder has the model, labels and card only, the source tree all of them.
SHIPPED_REPORT_FILES = ('MODEL_CARD.md', 'evaluation.json')


def shipped_models_folder() -> Path:
    """Return the shipped model's folder to report, wherever the command runs.

    The first of the source tree's ``models/``, ``./models`` and the installed model's
    folder that holds the card and its evaluation (:data:`SHIPPED_REPORT_FILES`); else
    the installed model's folder (``default_model_path()``'s).
    """
    from plant_disease_ros.core.classifier import default_model_path, source_models_dir

    installed = default_model_path().parent
    for folder in (source_models_dir(), Path('models'), installed):
        if all((folder / name).is_file() for name in SHIPPED_REPORT_FILES):
            return folder
    return installed


def models_folder_of(run_dir: Path | None, default: Path = Path('models')) -> Path:
    """Return the folder of the model to report: the run's own export when it has one.

    A report of a user's run must not show the shipped model as the run's; nor an export
    an earlier run left in the folder (``train --overwrite``) as this run's.
    """
    if run_export(run_dir) is not None and stale_export(run_dir) is None:
        return Path(run_dir)
    return default


def report_model_path(models_dir: Path) -> Path:
    """Return the int8 model the report is of: the shipped name, else a run's export."""
    models = Path(models_dir)
    return _first_file([models], MODEL_FILENAME) or _first_file([models], RUN_MODEL_FILENAME) \
        or models / MODEL_FILENAME


def analysis_folder(given: str | os.PathLike | None, run_dir: Path | None, models_dir: Path,
                    name: str, shared: Path) -> Path | None:
    """Return the folder of an analysis (explanations, embedding) the report shows.

    ``given``: the option's value, None when not given ('' leaves the section out). By
    default ``RUN/<name>`` when it exists; else, when the report is of the run's own
    export, None (the section then says how to make it): ``shared`` (``outputs/...``,
    where the commands write by default) holds some other model's, likely the shipped.
    """
    if given is not None:
        return Path(given) if str(given) else None
    if run_dir is not None and (Path(run_dir) / name).is_dir():
        return Path(run_dir) / name
    if _of_run_export(run_dir, models_dir):
        return None
    return shared


def _of_run_export(run_dir: Path | None, models_dir: Path) -> bool:
    """Return whether the report's model is the run's own export (models folder = run)."""
    return run_dir is not None and Path(run_dir).is_dir() \
        and Path(run_dir).resolve() == Path(models_dir).resolve()


def _sha256(path: Path) -> str | None:
    try:
        return sha256_of(path)
    except OSError:
        return None


def explanations_model_problem(document: dict, model: Path) -> str | None:
    """Return why explanations are not of ``model`` (one clause), or None when they are.

    The model is told by its content (``tflite_model_sha256``, or the file at the
    recorded path when older explanations lack the digest), not by its path.
    """
    recorded = document.get('tflite_model')
    if not recorded:
        return 'they do not say which model they explain'
    expected = _sha256(Path(model))
    if expected is None:
        return f'the report has no model ({model}) to match them with'
    digest = document.get('tflite_model_sha256') or _sha256(Path(recorded))
    if digest is None:
        return f'their model {recorded} is gone: cannot tell whether it is {model}'
    if digest != expected:
        return f"they explain {recorded}, not the report's model {model}"
    return None


def evaluation_model_problem(evaluation: dict, model: Path) -> str | None:
    """Return why an evaluation is not of ``model`` (one clause), or None when it is.

    The model is told by its content (``model_sha256``); an evaluation written before the
    digest was recorded by its model's size (``model_bytes``), as ``model-card`` does.
    """
    expected = _sha256(Path(model))
    if expected is None:
        return f'the report has no model ({model}) to match it with'
    if evaluation.get('model_sha256'):
        same = evaluation['model_sha256'] == expected
    elif evaluation.get('model_bytes') is not None:
        same = evaluation['model_bytes'] == Path(model).stat().st_size
    else:
        return 'it does not say which model it evaluates'
    if not same:
        return (f'it evaluates {evaluation.get("model") or "another model"}, not the '
                f"report's model {model}")
    return None


def _evaluation_problem(inputs: ReportInputs, path: Path, evaluation: dict,
                        model: Path) -> str | None:
    """Return why the evaluation at ``path`` is not shown (one clause), or None.

    One an earlier run left in the run folder (``replaced_outputs``, as ``model-card``
    checks) describes an earlier model, whatever model it names.
    """
    if inputs.run_dir is not None and _sha256(path) in replaced_outputs(inputs.run_dir):
        return (f'it was in {inputs.run_dir} before its model.keras was trained '
                '(replaced_outputs): it evaluates an earlier model')
    return evaluation_model_problem(evaluation, model)


def _own_run(inputs: ReportInputs) -> bool:
    """Return whether a run folder other than the models folder is being reported."""
    if inputs.run_dir is None or not Path(inputs.run_dir).is_dir():
        return False
    return Path(inputs.run_dir).resolve() != Path(inputs.models_dir).resolve()


def _eval_folders(inputs: ReportInputs) -> list[Path]:
    folders = []
    if inputs.eval_dir is not None:
        folders.append(Path(inputs.eval_dir))
    if inputs.run_dir is not None:
        run = Path(inputs.run_dir)
        folders += [run / 'eval', run / 'evaluation', run]
    if not _own_run(inputs):
        # The models folder's evaluation is the shipped model's: never a run's stand-in.
        folders.append(Path(inputs.models_dir))
    return [folder for folder in folders if folder.is_dir()]


def _is_shipped(models: Path) -> bool:
    """Return whether ``models`` is a folder of the shipped model (installed or source)."""
    from plant_disease_ros.core.classifier import default_model_path, source_models_dir

    return Path(models).resolve() in (default_model_path().parent.resolve(),
                                      source_models_dir().resolve())


def _stale_export_note(run: Path, export: Path) -> str:
    """Return why an export left by an earlier run is not shown, and how to redo it."""
    return (f'The export {code(str(export))} was in {code(str(run))} before its '
            '<code>model.keras</code> was trained (<code>train_summary.json</code>, '
            "<code>replaced_outputs</code>): it is an earlier model, not this run's, and "
            'is not shown. Export the run again with '
            f'{code(command("plant-disease", "export", "--run", run))}')


def _run_not_exported_note(inputs: ReportInputs) -> str | None:
    """Return the note for a report of a run whose model is not the one shown, or None.

    The Training section shows the run; the Model section another model (the shipped
    one, when the run has no export of its current model).
    """
    if not _own_run(inputs) or run_summary(inputs.run_dir) is None:
        return None
    run, models = Path(inputs.run_dir), Path(inputs.models_dir)
    export = run_export(run)
    stale = stale_export(run)
    which = 'the shipped model' if _is_shipped(models) else f'the model in {code(str(models))}'
    redo = f'export it with {code(command("plant-disease", "export", "--run", run))}'
    if stale is not None:
        return (f"Shown below: {which}, not the run's; the Training section is the run's. "
                + _stale_export_note(run, stale))
    if export is None:
        return (f'This run ({code(str(run))}) has no export: shown below is {which}, not '
                f"the run's; the Training section is the run's. To report the run's model, "
                f'{redo}')
    return (f"Shown below is {which}, not this run's export {code(str(export))} (the "
            "Training section is the run's); leave out <code>--models</code> to report the "
            "run's.")


def _evaluation_of(inputs: ReportInputs) -> tuple[Path | None, Any, str | None]:
    """Return the evaluation the report considers: ``(path, document, why not shown)``.

    The first ``evaluation.json`` of the evaluation folders; the reason is None when it
    is shown (or when there is none).
    """
    path = _first_file(_eval_folders(inputs), 'evaluation.json')
    evaluation = _read_json(path) if path else None
    if not isinstance(evaluation, dict):
        return path, evaluation, None
    return path, evaluation, _evaluation_problem(inputs, path, evaluation,
                                                 report_model_path(inputs.models_dir))


def _evaluation_picture_folders(inputs: ReportInputs) -> list[Path]:
    """Return the folders the report takes evaluation pictures from: the shown evaluation's.

    A folder whose evaluation is not shown (another model's, an earlier one's) supplies
    no picture, to the card or anywhere else.
    """
    path, evaluation, problem = _evaluation_of(inputs)
    if path is None or not isinstance(evaluation, dict) or problem is not None:
        return []
    return [path.parent]


def _model_section(inputs: ReportInputs, assets: Assets) -> tuple[str, str]:
    models = Path(inputs.models_dir)
    parts = []
    state = 'ok'
    rows = []
    model = report_model_path(models)
    note = _run_not_exported_note(inputs)
    if note is not None:
        parts.append(missing_note(note))
    if inputs.run_dir is not None and Path(inputs.run_dir).is_dir() \
            and models.resolve() == Path(inputs.run_dir).resolve() and model.is_file() \
            and _sha256(model) in replaced_outputs(inputs.run_dir):
        # The run's folder named as the models folder, its export an earlier model's: its
        # card, written from that export, is no more this run's.
        parts.append(missing_note(_stale_export_note(models, model)))
        return '\n'.join(parts), f'skipped {model}: an earlier model (replaced_outputs)'
    if model.is_file():
        digest = sha256_of(model)[:16]
        rows.append(('int8 model', f'<code>{escape(model.name)}</code>, '
                                   f'{model.stat().st_size / 1024:.0f} KiB, sha256 '
                                   f'<code>{digest}…</code>'))
    else:
        rows.append(('int8 model', f'<span class="missing">no {escape(model)}</span>'))
        state = f'no {model}'
    float_model = _first_file([models], FLOAT_MODEL_FILENAME) \
        or _first_file([models], RUN_FLOAT_MODEL_FILENAME) or models / FLOAT_MODEL_FILENAME
    rows.append(('float model', f'<code>{escape(float_model.name)}</code>, '
                                f'{float_model.stat().st_size / 1024:.0f} KiB'
                 if float_model.is_file() else 'not shipped (Grad-CAM needs it)'))
    labels_path = models / LABELS_FILENAME
    if labels_path.is_file():
        labels = [line.strip() for line in labels_path.read_text().splitlines()
                  if line.strip()]
        rows.append(('classes', f'{len(labels)}: ' + ', '.join(
            f'<code>{escape(label)}</code>' for label in labels)))
    else:
        rows.append(('classes', f'<span class="missing">no {escape(labels_path)}</span>'))
    parts.append(key_value_table(rows))
    card = models / MODEL_CARD_FILENAME
    if (card.is_file() and inputs.run_dir is not None
            and _sha256(card) in replaced_outputs(inputs.run_dir)):
        # The run was exported again, its card not written again: the earlier model's.
        parts.append(missing_note(
            f'The model card {code(str(card))} was in {code(str(inputs.run_dir))} before '
            'its <code>model.keras</code> was trained (<code>train_summary.json</code>, '
            '<code>replaced_outputs</code>): it describes an earlier model; write this '
            "model's with " + code(command('plant-disease', 'model-card', '--run',
                                            inputs.run_dir))))
        return '\n'.join(parts), f'card skipped {card}: an earlier model (replaced_outputs)'
    if card.is_file():
        folders = [models] + _evaluation_picture_folders(inputs)
        # The card's heading ids are prefixed: its 'Model' and 'Training' are not the
        # page's sections of those names.
        # Links are followed within these folders and the run's (a card in an export
        # folder shows its run's ../training_curves.png).
        roots = folders + ([Path(inputs.run_dir)] if inputs.run_dir is not None else [])
        rendered = markdown_to_html(card.read_text(), assets.resolver(folders, roots),
                                    heading_offset=2, id_prefix='card-')
        parts.append(f'<div class="card">{rendered}</div>')
    else:
        parts.append(missing_note(f'No model card ({escape(card)}): write one with '
                              '<code>plant-disease model-card</code>.'))
        if state == 'ok':
            state = f'no {card}'
    return '\n'.join(parts), state


def _training_section(inputs: ReportInputs, assets: Assets) -> tuple[str, str]:
    if inputs.run_dir is None or not Path(inputs.run_dir).is_dir():
        return missing_note('No training run folder given or found (<code>--run</code>).'), \
            'no run folder'
    run = Path(inputs.run_dir)
    parts = []
    summary = _read_json(run / 'train_summary.json')
    if isinstance(summary, dict):
        model = summary.get('model', {})
        rows = [
            ('network', escape(f'{model.get("architecture", "?")} width '
                                f'{model.get("width", "?")}, input {model.get("input_size", "?")}'
                                ' px')),
            ('epochs', escape(summary.get('epochs_run', '?'))),
            ('best validation top-1', percent(summary.get('best_val_accuracy'), 2)),
            ('training time', escape(f'{float(summary.get("train_seconds", 0)) / 60:.0f} min')),
            ('parameters', escape(f'{summary.get("parameters", 0):,}')),
        ]
        parts.append(key_value_table(rows))
    else:
        parts.append(missing_note(f'No <code>train_summary.json</code> in {escape(run)}.'))
    curves = _first_file([run], CURVES_FILENAME)  # the run's own, never another's
    if curves is None:
        parts.append(missing_note(f'No <code>{CURVES_FILENAME}</code> in {escape(run)}.'))
        return '\n'.join(parts), f'no {CURVES_FILENAME}'
    parts.append(_figure_once(assets, curves, 'Loss and accuracy per epoch (training and '
                                              'validation).', 'training curves'))
    return '\n'.join(parts), 'ok'


def _split_words(evaluation: dict) -> str:
    """Return what the evaluated photos were, for captions ('held-out test photos')."""
    return split_description(str(evaluation.get('split', 'test')))


def _domain_evaluation(evaluation: dict, evaluation_path: Path, assets: Assets,
                       resolver: Callable) -> str:
    """Return the per-domain table and pictures of a field evaluation."""
    lines = ['| domain | frames | top-1 | rejected | wrong map points | ECE |',
             '| --- | ---: | ---: | ---: | ---: | ---: |']
    figures = []
    for name, domain in evaluation['domains'].items():
        if not isinstance(domain, dict):
            continue
        cells = [percent(domain.get(key)) for key in
                 ('top1', 'rejected', 'accepted_wrong', 'ece')]
        lines.append(f'| {name} | {domain.get("photos", "?")} | ' + ' | '.join(cells) + ' |')
        picture = evaluation_path.parent / str(domain.get('confusion_png', ''))
        if domain.get('confusion_png') and picture.is_file():
            figures.append(_figure_once(assets, picture,
                                        f'{name}: confusion matrix of the int8 model on the '
                                        f'{_split_words(evaluation)} (rows: truth, columns: '
                                        'prediction).', f'{name} confusion matrix'))
    reliability = evaluation_path.parent / 'reliability.png'
    if reliability.is_file():
        figures.append(_figure_once(assets, reliability, 'Reliability: mean score against '
                                    'the share right, per domain.', 'reliability diagram'))
    note = (f'<p>{escape(evaluation.get("photos", "?"))} frames, '
            f'{escape(_split_words(evaluation))}; for non-leaf domains top-1 is the share '
            'labelled <code>no_leaf</code>; wrong map points: frames accepted with a wrong '
            'label.</p>')
    return note + markdown_to_html('\n'.join(lines), resolver) + '\n'.join(figures)


def _evaluation_section(inputs: ReportInputs, assets: Assets) -> tuple[str, str]:
    parts = []
    evaluation_path, evaluation, problem = _evaluation_of(inputs)
    folders = _evaluation_picture_folders(inputs)
    if isinstance(evaluation, dict):
        model = report_model_path(inputs.models_dir)
        if problem is not None:
            evaluate = code(command('plant-disease', 'evaluate', '--model', model, '--out',
                                    'DIR'))
            return missing_note(
                f'The evaluation {code(str(evaluation_path))} is not shown: '
                f'{escape(problem)}; pass <code>--eval DIR</code> after evaluating the '
                f'model with {evaluate}'), f'skipped {evaluation_path}: {problem}'
    if isinstance(evaluation, dict) and isinstance(evaluation.get('domains'), dict):
        return _domain_evaluation(evaluation, evaluation_path, assets,
                                  assets.resolver(folders)), 'ok'
    if isinstance(evaluation, dict):
        int8 = evaluation.get('int8', {})
        float_ = evaluation.get('float', {})
        rows = [('photos', escape(f'{evaluation.get("photos", "?")} '
                                   f'({evaluation.get("split", "?")} split)')),
                ('int8 top-1 / top-3', f'{percent(int8.get("top1"), 2)} / '
                                       f'{percent(int8.get("top3"), 2)}'),
                ('int8 macro F1', escape(f'{int8.get("macro_f1", float("nan")):.4f}'))]
        interval = int8.get('top1_interval')
        if isinstance(interval, list) and len(interval) == 2:
            rows.insert(2, ('int8 top-1, 95 % interval (Wilson)',
                            f'{percent(interval[0])} – {percent(interval[1])}'))
        outcomes = int8.get('outcomes')
        if isinstance(outcomes, dict):
            threshold = evaluation.get('score_threshold', 0.5)
            rows += [(f'int8 rejected (top score below score_threshold {threshold:g}: '
                      'unknown, no map point)',
                      escape(f'{outcomes.get("rejected")} photos, ')
                      + percent(int8.get('rejected'), 2)),
                     ('int8 wrong map points (accepted with a wrong label)',
                      escape(f'{outcomes.get("wrong")} photos, ')
                      + percent(int8.get('accepted_wrong'), 2))]
        if float_:
            rows.append(('float top-1 / top-3', f'{percent(float_.get("top1"), 2)} / '
                                                f'{percent(float_.get("top3"), 2)}'))
        if evaluation.get('int8_float_agreement') is not None:
            rows.append(('int8/float agreement',
                         percent(evaluation['int8_float_agreement'], 2)))
        confused = evaluation.get('most_confused') or []
        if confused:
            rows.append(('most confused', '<br>'.join(
                escape(f'{pair.get("truth")} → {pair.get("predicted")} ({pair.get("count")})')
                for pair in confused[:8])))
        files = [evaluation_path] + [evaluation_path.parent / name for name in
                                     ('per_class.csv',)
                                     if (evaluation_path.parent / name).is_file()]
        rows.append(('files', ', '.join(assets.link(path) for path in files)))
        parts.append(key_value_table(rows))
    matrix = _first_file(folders, CONFUSION_FILENAME)
    if matrix is None:
        parts.append(missing_note(f'No <code>{CONFUSION_FILENAME}</code> (run <code>plant-disease '
                              'evaluate</code> and pass its folder with <code>--eval</code>).'))
        return '\n'.join(parts), f'no {CONFUSION_FILENAME}'
    seen = _split_words(evaluation) if isinstance(evaluation, dict) else 'evaluated photos'
    parts.append(_figure_once(assets, matrix, f'Confusion matrix of the int8 model on the '
                                              f'{seen} (rows: truth, columns: prediction).',
                              'confusion matrix'))
    return '\n'.join(parts), 'ok'


def _yes_no(value: bool | None) -> str:
    if value is None:
        return '–'
    return '<span class="ok">on leaf</span>' if value else '<span class="bad">off leaf</span>'


def _run_analysis_missing(inputs: ReportInputs, name: str, words: Sequence[str | Path],
                          ) -> tuple[str, str] | None:
    """Return the note and state of a run's absent ``RUN/<name>``, or None.

    Only for a report of a run's own export with no such folder: its analyses are taken
    from there, never from another model's.
    """
    run = inputs.run_dir
    if not _of_run_export(run, inputs.models_dir) or (Path(run) / name).is_dir():
        return None
    folder = Path(run) / name
    # The command last, with no full stop: it is copied and pasted as it is.
    return missing_note(f'Not shown: this run has no {code(str(folder))}. Make it with '
                        f'{code(command(*words, "--out", folder))}'), \
        f'left out: no {folder}'


def _explanations_section(inputs: ReportInputs, assets: Assets) -> tuple[str, str]:
    folder = inputs.explanations_dir
    model = report_model_path(inputs.models_dir)
    explain = ['plant-disease', 'explain', '--model', model, '--labels',
               Path(inputs.models_dir) / LABELS_FILENAME, 'PHOTOS']
    how = ('pass <code>--explanations DIR</code> after making them with '
           f'{code(command(*explain, "--out", "DIR"))}')
    if folder is None:
        missing = _run_analysis_missing(inputs, RUN_EXPLANATIONS, explain)
        return missing or (missing_note(f'No explanations given: {how}'), 'not given')
    document = _read_json(Path(folder) / 'explanations.json')
    if not isinstance(document, dict):
        return missing_note(f'No readable <code>explanations.json</code> in '
                        f'{escape(folder)}: {how}'), 'no explanations.json'
    problem = explanations_model_problem(document, model)
    if document.get('tflite_model_sha256') in replaced_outputs(inputs.run_dir):
        problem = (f'they explain the export that was in {inputs.run_dir} before its '
                   'model.keras was trained (replaced_outputs): an earlier model')
    if problem is not None:
        return missing_note(f'The explanations in {escape(folder)} are not shown: '
                            f'{escape(problem)}; {how}'), f'skipped {folder}: {problem}'
    summary = document.get('summary', {})
    iou = summary.get('iou_top20') or {}
    from plant_disease_ros.training.explain import UNCALIBRATED

    images = document.get('images', [])
    # Explanations from before it was recorded had the float model's own scores.
    float_scores = summary.get('float_scores') or (
        UNCALIBRATED if any(record.get('top3_float') for record in images) else None)
    float_name = 'float' if float_scores != UNCALIBRATED else UNCALIBRATED
    rows = [('photos', escape(summary.get('images', '?'))),
            ('occlusion map peak on the leaf',
             percent(summary.get('occlusion_peak_on_leaf_fraction'), 0)),
            ('Grad-CAM peak on the leaf', percent(summary.get('gradcam_peak_on_leaf_fraction'),
                                                   0)),
            # Explanations from before it was recorded judged every photo's peak.
            ('photos whose leaf is not separable from the background (field or greyscale '
             'photos; no peak judged)', escape(summary.get('leaf_not_separable', '–'))),
            ("IoU of the two maps' top-20 % regions",
             escape(f'mean {iou["mean"]:.2f}, median {iou["median"]:.2f}, min '
                     f'{iou["min"]:.2f}, max {iou["max"]:.2f}') if iou else '–'),
            ('photos whose IoU is not comparable (a top region far from 20 %)',
             escape(summary.get('iou_top20_not_comparable', '–'))),
            ('float/int8 top-1 agreement', percent(summary.get('top1_agreement'), 0)),
            ('float scores', escape(float_scores or '–')),
            ('photos skipped (cannot be decoded)', escape(summary.get('unreadable', 0))),
            ('all figures', assets.link(Path(folder) / 'explanations.json')),
            ('occlusion grid', escape(
                f'{document.get("grid", "?")} × {document.get("grid", "?")} cells, fill '
                f'{document.get("fill", "?")}; retried with larger patches '
                f'({", ".join(map(str, document.get("fallback_patches", [])))} cells) where '
                'flat: '
                f'{summary.get("occlusion_fallback_patch", "?")} photos, still flat: '
                f'{summary.get("occlusion_flat", "?")}'))]
    parts = [
        "<p>Grad-CAM shows where the float Keras model's evidence for the class lies; "
        "occlusion shows how much the deployed int8 model's score drops when each part of "
        "the photo is covered. Both explain the int8 model's top class. A low IoU means "
        'the two models rely on different regions.</p>',
        key_value_table(rows)]
    figures = []
    for record in images[:inputs.max_explanations]:
        figure = record.get('figure')
        path = Path(folder) / figure if figure else None
        int8 = (record.get('top3_int8') or [{}])[0]
        float_ = (record.get('top3_float') or [{}])[0]
        caption = (f'<b>{escape(Path(record.get("image", "?")).name)}</b><br>'
                   f'int8: {escape(int8.get("label", "–"))} {percent(int8.get("score"), 0)}'
                   f'; {escape(float_name)}: {escape(float_.get("label", "–"))} '
                   f'{percent(float_.get("score"), 0)}<br>'
                   f'IoU {escape(record.get("iou_top20", "–"))}; occlusion '
                   f'{_yes_no(record.get("occlusion_peak_on_leaf"))}, Grad-CAM '
                   f'{_yes_no(record.get("gradcam_peak_on_leaf"))}')
        if path is not None and path.is_file():
            figures.append(_figure(assets, path, caption,
                                   alt=f'explanation of {Path(record.get("image", "?")).name}'))
        else:
            figures.append(f'<figure><span class="missing">picture missing</span>'
                           f'<figcaption>{caption}</figcaption></figure>')
    parts.append('<div class="figures">' + '\n'.join(figures) + '</div>')
    if len(images) > inputs.max_explanations:
        parts.append(f'<p>{len(images) - inputs.max_explanations} more photos are in '
                     f'<code>explanations.json</code>.</p>')
    return '\n'.join(parts), 'ok'


def _embedding_section(inputs: ReportInputs, assets: Assets) -> tuple[str, str]:
    folder = inputs.embed_dir
    how = ('pass <code>--embed DIR</code> after making them with '
           '<code>plant-disease embed PHOTOS --out DIR</code>')
    if folder is None:
        run = Path(inputs.models_dir)
        missing = _run_analysis_missing(
            inputs, RUN_EMBEDDING, ['plant-disease', 'embed', 'PHOTOS', '--keras',
                                    run / RUN_FLOAT_MODEL_FILENAME, '--split-manifest',
                                    run / 'split.json'])
        return missing or (missing_note(f'No embedding pictures given: {how}'), 'not given')
    folder = Path(folder)
    overlap = _read_json(folder / 'overlap.json')
    if not isinstance(overlap, dict) and not any(
            (folder / name).is_file() for name in ('pca.png', 'tsne.png')):
        return missing_note(f'No embedding pictures in {escape(folder)}: {how}'), 'no files'
    problem = _embedding_model_problem(overlap, inputs) \
        or _embedding_classes_problem(overlap, inputs)
    if problem is not None:
        floats = _float_models(inputs)
        keras = floats[0] if floats else 'MODEL.keras'
        redo = code(command('plant-disease', 'embed', 'PHOTOS', '--keras', keras, '--out',
                            'DIR'))
        return missing_note(f'The embedding in {code(str(folder))} is not shown: '
                            f'{escape(problem)}; pass <code>--embed DIR</code> after making '
                            f'it with {redo}'), f'skipped {folder}: {problem}'
    # t-SNE only when this embedding made it: a tsne.png beside it may be an earlier one's.
    pictures = [(folder / name, caption) for name, caption, made in (
        ('pca.png', 'PCA of the penultimate (pooled) features, coloured by class.', True),
        ('tsne.png', 't-SNE of the same features: classes the network separates form '
                     'islands.', bool(overlap.get('tsne'))))
        if made and (folder / name).is_file()]
    parts = ['<div class="figures">' + '\n'.join(
        _figure(assets, path, caption) for path, caption in pictures) + '</div>']
    pairs = overlap.get('pairs', [])[:10]
    parts.append(f'<p>{escape(overlap.get("photos", "?"))} photos; for each, its '
                 f'{escape(overlap.get("k", "?"))} nearest neighbours in feature space '
                 f'({escape(overlap.get("distance", ""))} distance). Classes whose '
                 'neighbourhoods mix most (all pairs in '
                 f'{assets.link(folder / "overlap.json")}):</p>')
    if pairs:
        parts.append('<table><thead><tr><th>classes</th><th>overlap</th>'
                     '<th>first → second</th><th>second → first</th></tr></thead><tbody>'
                     + ''.join(
                         f'<tr><td>{escape(" ↔ ".join(pair["classes"]))}</td>'
                         f'<td>{percent(pair["overlap"])}</td>'
                         f'<td>{percent(pair["first_to_second"])}</td>'
                         f'<td>{percent(pair["second_to_first"])}</td></tr>'
                         for pair in pairs) + '</tbody></table>')
    else:
        parts.append('<p>No two classes share neighbourhoods.</p>')
    return '\n'.join(parts), 'ok'


def _float_models(inputs: ReportInputs) -> list[Path]:
    """Return the float Keras models an embedding of the report may be of.

    The models folder's float model (the shipped one's, or a run's ``model.keras``
    beside its export) and the run's ``model.keras``.
    """
    models = Path(inputs.models_dir)
    found = [_first_file([models], FLOAT_MODEL_FILENAME)
             or _first_file([models], RUN_FLOAT_MODEL_FILENAME)]
    if inputs.run_dir is not None:
        found.append(_first_file([Path(inputs.run_dir)], RUN_FLOAT_MODEL_FILENAME))
    return list(dict.fromkeys(path for path in found if path is not None))


def _embedding_model_problem(overlap: Any, inputs: ReportInputs) -> str | None:
    """Return why an embedding is not of the report's float model (one clause), or None.

    ``embed`` records the Keras model's path and sha256 in ``overlap.json``; one written
    before it did (or without ``overlap.json``) is of a model nobody can tell.
    """
    if not isinstance(overlap, dict):
        return 'it has no overlap.json to say which model it is of'
    recorded = overlap.get('keras_model_sha256')
    if not recorded:
        return ('its model is unknown (overlap.json does not record it: made before embed '
                'recorded its model)')
    floats = _float_models(inputs)
    if not floats:
        return (f'the report has no float model (in {inputs.models_dir} or the run) to '
                'match it with')
    if recorded in {_sha256(path) for path in floats}:
        return None
    return (f'it embeds {overlap.get("keras_model") or "another model"}, not the '
            f"report's float model {' or '.join(str(path) for path in floats)}")


def _embedding_classes_problem(overlap: Any, inputs: ReportInputs) -> str | None:
    """Return why an embedding is not of the report's model's classes, or None.

    ``embed`` does not record its model; classes the model does not know are a sure sign
    of another model's (the shipped one's PlantVillage classes beside a run's own).
    """
    labels_path = Path(inputs.models_dir) / LABELS_FILENAME
    if not isinstance(overlap, dict) or not isinstance(overlap.get('classes'), list) \
            or not labels_path.is_file():
        return None
    labels = {line.strip() for line in labels_path.read_text().splitlines()}
    unknown = [str(name) for name in overlap['classes'] if str(name) not in labels]
    if not unknown:
        return None
    return (f'{len(unknown)} of its classes (e.g. {unknown[0]}) are not among the labels '
            f"of the report's model ({labels_path})")


def utf8_name(path: Path) -> bool:
    """Return whether the name of ``path`` is UTF-8 (a page, and matplotlib, can hold it)."""
    try:
        path.name.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return True


def shown_name(path: Path) -> str:
    """Return the name of ``path`` as text, its bytes that are not UTF-8 replaced."""
    return os.fsencode(path.name).decode('utf-8', 'replace')


def _map_files(path: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """Return the (PNG pictures, detection maps, misnamed files) a --map path names.

    Newest first. In a folder, a run's disease grid (``*_grid.geojson``: cells, not
    detections) is left out, and of a run saved both as records (``.geojsons``) and as a
    collection (``.geojson``), the collection, unless the records file is newer (written
    after the last save). A file whose name is not UTF-8 is set apart (misnamed): the page
    cannot name it.
    """
    from plant_disease_ros.core.map_gis import GRID_SUFFIX
    from plant_disease_ros.core.map_run import newer_records_of

    if path.is_dir():
        entries = [entry for entry in path.iterdir()
                   if entry.is_file() and not entry.name.startswith('.')]
    else:
        entries = [path]
    misnamed = sorted((entry for entry in entries if not utf8_name(entry)
                       and entry.suffix.lower() in ('.png', '.geojson', '.geojsons')),
                      key=lambda entry: os.fsencode(entry.name))
    entries = [entry for entry in entries if utf8_name(entry)]

    def newest_first(entry: Path) -> tuple[float, str]:
        return -entry.stat().st_mtime, entry.name

    entries.sort(key=newest_first)
    pictures = [entry for entry in entries if entry.suffix.lower() == '.png']
    geojson = [entry for entry in entries if entry.suffix.lower() == '.geojson'
               and not (path.is_dir() and entry.stem.endswith(GRID_SUFFIX))]
    # A saved run has both the sequence and the collection: use the collection, unless
    # records came after it (the recorder cut off after its last save).
    geojson = [newer_records_of(entry) or entry for entry in geojson]
    stems = {entry.stem for entry in geojson}
    geojson += [entry for entry in entries
                if entry.suffix.lower() == '.geojsons' and entry.stem not in stems]
    geojson.sort(key=newest_first)
    return pictures, geojson, misnamed


def _map_grid(source: Path) -> tuple[float, tuple[float, float, float] | None, str]:
    """Return the cell size, origin and where they come from for a map file's run.

    The recorder's (or replay's) ``<name>_summary.json`` beside it names the grid its
    markers and cells used; without a readable one, 2 m cells from the first fix.
    """
    from plant_disease_ros.core.map_run import summary_path_of
    from plant_disease_ros.tools.replay.outputs import DEFAULT_CELL_SIZE_M, read_recorder_grid

    recorded = summary_path_of(source)
    grid = read_recorder_grid(recorded) if recorded.is_file() else None
    if grid is None:
        return DEFAULT_CELL_SIZE_M, None, 'default: no recorder summary beside it'
    return grid[0], grid[1], recorded.name


# A map's PNG this much older than its map file was drawn before the last records came; a
# copy (cp -r) gives the files of one moment mtimes in any order, within this.
STALE_PICTURE_S = 2.0


def _map_section(inputs: ReportInputs, assets: Assets) -> tuple[str, str]:
    how = ('record a field run with <code>disease_map_recorder</code> and pass '
           '<code>--map</code> its PNG, GeoJSON or folder')
    if inputs.map_path is None:
        return missing_note(f'No disease map given: {how}.'), 'not given'
    path = Path(inputs.map_path)
    if not path.exists():
        return missing_note(f'{escape(path)} does not exist: {how}.'), 'missing'
    pictures, geojson, misnamed = _map_files(path)
    parts = [missing_note(f'{escape(shown_name(entry))} is skipped: its name is not UTF-8; '
                          'rename it') for entry in misnamed]
    more = geojson[max(inputs.max_maps, 0):]
    geojson = geojson[:max(inputs.max_maps, 0)]
    if len(geojson) > 1 or more:
        runs = len(geojson) + len(more)
        which = (f'the newest {len(geojson)} shown, {len(more)} more not'
                 if geojson else 'none shown')
        parts.append(f'<p>{runs} run{"s" if runs != 1 else ""} in {escape(path)}, newest first'
                     + (f'; {which} (<code>--max-maps {inputs.max_maps}</code>)' if more
                        else '') + '.</p>')
    drawn = 0  # maps shown: a run's table, or a picture
    shown: set[Path] = set(more)
    shown.update(picture for picture in pictures
                 if any(picture.stem == source.stem for source in more))
    for number, source in enumerate(geojson):
        try:
            from plant_disease_ros.core.map_file import read_features, SeqReadStats
            from plant_disease_ros.core.map_grid import summarize

            stats = SeqReadStats()
            features = read_features(source, stats)
        except (OSError, ValueError) as error:
            parts.append(missing_note(f'Cannot read {escape(source.name)}: {escape(error)}'))
            continue
        others = sum(stats.not_detections.values())
        if not features and others:
            parts.append(missing_note(f'{escape(source.name)} is left out: none of its '
                                      f'{others} feature(s) is a detection (a disease grid '
                                      'or another layer?).'))
            continue
        unreadable = stats.skipped + int(stats.truncated_tail)
        if not features and unreadable:
            parts.append(missing_note(f'{escape(source.name)} is left out: it holds no '
                                      'readable detection (a file of zeros, as a power cut '
                                      'can leave, or not GeoJSON).'))
            continue
        cell_size_m, origin, grid_source = _map_grid(source)
        summary = summarize(features, cell_size_m=cell_size_m, origin=origin)
        per_label = summary.get('detections_per_label', {})
        saved = datetime.datetime.fromtimestamp(source.stat().st_mtime).astimezone()
        rows = [('file', assets.link(source)),
                ('saved', escape(saved.strftime('%Y-%m-%d %H:%M %Z'))),
                ('detections', escape(f'{summary["detections"]} ({summary["located"]} with a '
                                       f'position)')),
                ('diseased detections', escape(summary['diseased_detections'])),
                (f'diseased {cell_size_m:g} m cells',
                 escape(f'{summary["diseased_cells"]} of {summary["cells"]} (grid: '
                        f'{grid_source})')),
                ('per label', '<br>'.join(escape(f'{label}: {count}')
                                          for label, count in per_label.items()) or '–')]
        if unreadable:
            rows.append(('unreadable records', escape(
                f'{stats.skipped} skipped' + (', and an incomplete last record (a writer cut '
                                              'off)' if stats.truncated_tail else ''))))
        heading = source.name + (' (newest run)' if number == 0 and len(geojson) > 1 else '')
        parts.append(f'<h3>{escape(heading)}</h3>' + key_value_table(rows))
        drawn += 1
        picture = next((picture for picture in pictures if picture.stem == source.stem), None)
        if (picture is not None
                and picture.stat().st_mtime < source.stat().st_mtime - STALE_PICTURE_S):
            # Drawn before the map's last records (at lunch, reported at night): the table
            # above counts them all, so the picture is drawn again from the same file.
            shown.add(picture)
            parts.append(f'<p>{escape(picture.name)} is older than {escape(source.name)}: '
                         'the map below is drawn from the file.</p>')
            picture = None
        if picture is None and features:
            print(f'report: drawing the map of {source.name} ({number + 1} of '
                  f'{len(geojson)})', file=sys.stderr, flush=True)
            picture = _render_map(features, assets, source)
        if picture is not None:
            shown.add(picture)
            parts.append('<div class="figures">'
                         + _figure(assets, picture, escape(picture.name), wide=True) + '</div>')
    rest = [picture for picture in pictures if picture not in shown]
    if rest:
        parts.append('<div class="figures">' + '\n'.join(
            _figure(assets, picture, escape(picture.name), wide=True)
            for picture in rest) + '</div>')
        drawn += len(rest)
    if not parts:
        return missing_note(f'No PNG or GeoJSON in {escape(path)}: {how}.'), 'no files'
    if not drawn:
        why = ('--max-maps 0' if more else 'names not UTF-8' if misnamed
               else 'no readable map')
        return '\n'.join(parts), f'none shown ({why})'
    return '\n'.join(parts), 'ok'


def _render_map(features: list[dict], assets: Assets, source: Path) -> Path | None:
    """Render a map PNG of ``features`` into the asset folder (None without matplotlib)."""
    try:
        from plant_disease_ros.core.map_render import render_disease_map
    except ImportError:
        return None
    try:
        return render_disease_map(features, assets.scratch() / f'{source.stem}_map.png',
                                  title=source.name)
    except (ImportError, ValueError, OSError):
        return None


SECTIONS: tuple[tuple[str, str, Callable[[ReportInputs, Assets], tuple[str, str]]], ...] = (
    ('model', 'Model and model card', _model_section),
    ('training', 'Training', _training_section),
    ('evaluation', 'Evaluation', _evaluation_section),
    ('explanations', 'What the model looks at', _explanations_section),
    ('embedding', 'Feature space', _embedding_section),
    ('map', 'Disease map', _map_section),
)


# Written into every asset folder this command makes: only such a folder is replaced.
ASSETS_MARK = '.made-by-plant-disease-report'


def build_report(inputs: ReportInputs, out_path: str | os.PathLike = 'report/index.html',
                 inline: bool = False, title: str = 'Plant disease classifier report',
                 ) -> ReportResult:
    """Write the HTML page gathering whatever of ``inputs`` exists; return its state.

    The page and its ``<stem>_files/`` folder are replaced only once the new ones are
    complete: a run that fails leaves the previous report as it was. A ``<stem>_files/``
    folder that an earlier report did not make is never touched (ValueError).
    """
    page = Path(out_path)
    check_output_file(page)
    final = page.parent / f'{page.stem}_files'
    if final.exists() and not (final / ASSETS_MARK).is_file():
        raise ValueError(f'{final} exists and was not made by plant-disease report; move it '
                         'or give another --out')
    page.parent.mkdir(parents=True, exist_ok=True)
    staging = page.parent / f'.{page.stem}_files.{os.getpid()}.tmp'
    shutil.rmtree(staging, ignore_errors=True)
    assets = Assets(page, inline=inline, staging=staging)
    result = ReportResult(path=page)
    bodies = []
    try:
        try:
            for key, heading, render in SECTIONS:
                body, state = render(inputs, assets)
                result.sections[key] = state
                bodies.append(section_html(key, heading, body))
        finally:
            assets.cleanup()
        stamp = datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')
        nav = [(key, heading) for key, heading, _ in SECTIONS]
        assets_note = 'the page' if inline else final.name
        html = page_html(title, stamp, assets_note, nav, bodies)
        if staging.is_dir():
            (staging / ASSETS_MARK).write_text('plant-disease report assets\n')
        # Swap in: the page written aside, the old folder aside, the new one in place, the
        # page renamed over the old one; the old folder goes last.
        old = page.parent / f'.{page.stem}_files.{os.getpid()}.old'
        with replacing(page) as new_page:
            new_page.write_text(html, encoding='utf-8')
            moved = final.exists()
            if moved:
                final.rename(old)
            try:
                if staging.is_dir():
                    staging.rename(final)
            except BaseException:
                if moved:
                    old.rename(final)
                raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return result
