"""Load a TFLite model with the first interpreter available on this machine.

The order is LiteRT (``ai_edge_litert``), then ``tflite_runtime``, then TensorFlow's
``tensorflow.lite``; each is imported only when the previous one is unavailable, so a
robot never needs TensorFlow. Every failure is a :class:`ModelLoadError` with one line
naming the file and the problem, meant to be logged once at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import ctypes
from dataclasses import dataclass
import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np

BACKENDS: tuple[str, ...] = ('ai_edge_litert', 'tflite_runtime', 'tensorflow.lite')
SUPPORTED_INPUT_DTYPES: tuple[type, ...] = (np.uint8, np.int8, np.float32)
SUPPORTED_OUTPUT_DTYPES: tuple[type, ...] = (np.uint8, np.int8, np.float32)
# A TFLite flatbuffer carries its file identifier at bytes 4..8.
TFLITE_IDENTIFIER = b'TFL3'
# Smaller than any valid model: root offset, identifier and a minimal Model table.
_MIN_MODEL_BYTES = 32
# What an external delegate library exports (TFLite's external delegate plugin interface);
# every backend's load_delegate calls both through ctypes.
DELEGATE_FUNCTIONS = ('tflite_plugin_create_delegate', 'tflite_plugin_destroy_delegate')


class ModelLoadError(RuntimeError):
    """A model, labels file or delegate that cannot be used; the message is one line."""


@dataclass(frozen=True)
class TensorSpec:
    """Shape, dtype and (per-tensor) quantisation of a model input or output."""

    shape: tuple[int, ...]
    dtype: type
    scale: float
    zero_point: int
    name: str = ''

    @property
    def quantized(self) -> bool:
        """Return whether values are integers with a real (scale, zero_point) mapping."""
        return np.dtype(self.dtype).kind in 'iu' and self.scale > 0.0


@dataclass
class LoadedModel:
    """An allocated interpreter and what the rest of the pipeline needs to know about it."""

    interpreter: Any
    backend: str
    input: TensorSpec
    output: TensorSpec
    input_index: int
    output_index: int
    path: Path
    num_threads: int
    delegate: str

    @property
    def input_size(self) -> tuple[int, int]:
        """Return the model's input (height, width)."""
        return int(self.input.shape[1]), int(self.input.shape[2])

    @property
    def num_outputs(self) -> int:
        """Return the number of output values (classes)."""
        return int(self.output.shape[-1])

    def describe(self) -> str:
        """Return a one-line summary for the start-up log."""
        height, width = self.input_size
        delegate = f', delegate {self.delegate}' if self.delegate else ''
        return (f'{self.path.name}: {self.backend}, input {height}x{width}x3 '
                f'{np.dtype(self.input.dtype).name}, {self.num_outputs} outputs '
                f'{np.dtype(self.output.dtype).name}, {self.num_threads} threads{delegate}')


@dataclass(frozen=True)
class _Backend:
    """The two entry points a backend provides."""

    name: str
    interpreter_class: Callable[..., Any]
    load_delegate: Callable[[str], Any]


def _import_backend(name: str) -> _Backend:
    """Import one backend lazily; raise ImportError (or whatever its import raises)."""
    if name == 'ai_edge_litert':
        module = importlib.import_module('ai_edge_litert.interpreter')
        return _Backend(name, module.Interpreter, module.load_delegate)
    if name == 'tflite_runtime':
        module = importlib.import_module('tflite_runtime.interpreter')
        return _Backend(name, module.Interpreter, module.load_delegate)
    if name == 'tensorflow.lite':
        tf = importlib.import_module('tensorflow')
        return _Backend(name, tf.lite.Interpreter, tf.lite.experimental.load_delegate)
    raise ImportError(f'unknown interpreter backend {name!r}')


def find_backend(backends: Sequence[str] = BACKENDS) -> _Backend:
    """Return the first importable backend of ``backends``, or raise ModelLoadError."""
    problems = []
    for name in backends:
        try:
            return _import_backend(name)
        except Exception as error:  # noqa: BLE001 - a broken install must not stop the search
            problems.append(f'{name}: {_one_line(error)}')
    raise ModelLoadError('no TFLite interpreter available (' + '; '.join(problems) + ')')


def _one_line(error: BaseException) -> str:
    """Return the first non-empty line of an exception's message (or its type)."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__


def check_model_file(path: Path) -> None:
    """Raise ModelLoadError unless ``path`` is a readable file that looks like TFLite."""
    if not path.exists():
        raise ModelLoadError(f'{path}: model file not found')
    if not path.is_file():
        raise ModelLoadError(f'{path}: model path is not a file')
    try:
        size = path.stat().st_size
        with path.open('rb') as stream:
            header = stream.read(8)
    except OSError as error:
        raise ModelLoadError(f'{path}: cannot read model file: {_one_line(error)}') from error
    if size == 0:
        raise ModelLoadError(f'{path}: model file is empty')
    if size >= 8 and header[4:8] != TFLITE_IDENTIFIER:
        raise ModelLoadError(
            f'{path}: not a TFLite model (no {TFLITE_IDENTIFIER.decode()} identifier at '
            f'bytes 4..8, found {header[4:8]!r})')
    if size < _MIN_MODEL_BYTES:
        raise ModelLoadError(f'{path}: model file is truncated ({size} bytes)')


def check_delegate_library(library: str) -> None:
    """Raise OSError unless ``library`` loads and exports the delegate functions.

    A backend's ``load_delegate`` given such a library raises, and the half-built Delegate
    it leaves behind prints an "Exception ignored in ... Delegate.__del__" traceback when
    it is collected; checked first, the backend never sees it.
    """
    loaded = ctypes.CDLL(library)
    missing = [name for name in DELEGATE_FUNCTIONS if not hasattr(loaded, name)]
    if missing:
        raise OSError(f'{library}: not a TFLite external delegate (no {", ".join(missing)})')


def _tensor_spec(details: dict) -> TensorSpec:
    """Build a TensorSpec from an interpreter's tensor details dictionary."""
    scale, zero_point = details.get('quantization', (0.0, 0)) or (0.0, 0)
    return TensorSpec(
        shape=tuple(int(v) for v in details['shape']),
        dtype=np.dtype(details['dtype']).type,
        scale=float(scale),
        zero_point=int(zero_point),
        name=str(details.get('name', '')),
    )


def _validate_io(path: Path, interpreter: Any) -> tuple[dict, dict]:
    """Check the model has one NHWC RGB input and one class vector output."""
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelLoadError(
            f'{path}: expected 1 input and 1 output, model has {len(inputs)} inputs and '
            f'{len(outputs)} outputs')
    details = inputs[0]
    shape = tuple(int(v) for v in details['shape'])
    signature = tuple(int(v) for v in details.get('shape_signature', shape))
    if len(shape) != 4 or shape[3] != 3:
        raise ModelLoadError(
            f'{path}: input must be 4-D NHWC with 3 channels, got shape {list(shape)}')
    if any(v <= 0 for v in shape[1:3]) or any(v < 0 for v in signature[1:3]):
        raise ModelLoadError(
            f'{path}: input height and width must be fixed, got shape {list(signature)}')
    if np.dtype(details['dtype']).type not in SUPPORTED_INPUT_DTYPES:
        raise ModelLoadError(
            f'{path}: unsupported input dtype {np.dtype(details["dtype"]).name} '
            '(expected uint8, int8 or float32)')
    out = outputs[0]
    out_shape = tuple(int(v) for v in out['shape'])
    if np.dtype(out['dtype']).type not in SUPPORTED_OUTPUT_DTYPES:
        raise ModelLoadError(
            f'{path}: unsupported output dtype {np.dtype(out["dtype"]).name} '
            '(expected uint8, int8 or float32)')
    if not out_shape or int(np.prod(out_shape)) != out_shape[-1] or out_shape[-1] < 1:
        raise ModelLoadError(
            f'{path}: output must be a 1xN class vector, got shape {list(out_shape)}')
    return details, out


def load_interpreter(model_path: str | os.PathLike, num_threads: int = 2,
                     delegate_path: str = '',
                     backends: Sequence[str] = BACKENDS) -> LoadedModel:
    """Load and allocate ``model_path`` with the first available TFLite backend.

    ``delegate_path`` names an external delegate library (Edge TPU, NPU), checked with
    :func:`check_delegate_library`, then loaded with the same backend's ``load_delegate``.
    ``backends`` restricts or reorders the search.
    Raises :class:`ModelLoadError` with a one-line message on any problem.
    """
    if not str(model_path):
        raise ModelLoadError('no model path given')
    path = Path(model_path).expanduser()
    check_model_file(path)
    try:
        num_threads = int(num_threads)
    except (TypeError, ValueError) as error:
        raise ModelLoadError(f'{path}: num_threads must be an integer') from error
    if num_threads < 1:
        raise ModelLoadError(f'{path}: num_threads must be >= 1, got {num_threads}')
    backend = find_backend(backends)
    delegates = []
    if delegate_path:
        try:
            check_delegate_library(str(delegate_path))
            delegates.append(backend.load_delegate(str(delegate_path)))
        except Exception as error:  # noqa: BLE001 - backends raise ValueError, OSError, ...
            raise ModelLoadError(
                f'{path}: delegate library {delegate_path!r} could not be loaded '
                f'({backend.name}): {_one_line(error)}') from error
    try:
        # The model is read into memory, never memory-mapped: a file overwritten in place
        # while the node runs (cp, scp, rsync --inplace truncate it first) would otherwise
        # kill the process with SIGBUS at its next invoke.
        content = path.read_bytes()
    except OSError as error:
        raise ModelLoadError(f'{path}: cannot read model file: {_one_line(error)}') from error
    try:
        kwargs: dict[str, Any] = {'model_content': content, 'num_threads': num_threads}
        if delegates:
            kwargs['experimental_delegates'] = delegates
        interpreter = backend.interpreter_class(**kwargs)
        interpreter.allocate_tensors()
    except Exception as error:  # noqa: BLE001 - any interpreter failure is a load error
        raise ModelLoadError(
            f'{path}: {backend.name} interpreter failed: {_one_line(error)}') from error
    try:
        input_details, output_details = _validate_io(path, interpreter)
        if int(input_details['shape'][0]) != 1:
            # A fixed batch other than 1: run one frame at a time.
            shape = [1, *(int(v) for v in input_details['shape'][1:])]
            interpreter.resize_tensor_input(input_details['index'], shape)
            interpreter.allocate_tensors()
            input_details, output_details = _validate_io(path, interpreter)
    except ModelLoadError:
        raise
    except Exception as error:  # noqa: BLE001
        raise ModelLoadError(
            f'{path}: {backend.name} interpreter failed: {_one_line(error)}') from error
    return LoadedModel(
        interpreter=interpreter,
        backend=backend.name,
        input=_tensor_spec(input_details),
        output=_tensor_spec(output_details),
        input_index=int(input_details['index']),
        output_index=int(output_details['index']),
        path=path,
        num_threads=num_threads,
        delegate=str(delegate_path),
    )
