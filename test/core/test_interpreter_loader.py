"""The interpreter loader: backend fallback, model checks and one-line errors."""

from __future__ import annotations

import gc
import importlib.abc
from pathlib import Path
import sys
import types

from helpers.shipped_model import LABELS_PATH, MODEL_PATH
from helpers.tiny_model import tiny_models
import numpy as np
import pytest

from plant_disease_ros.core.interpreter_loader import (
    BACKENDS,
    load_interpreter,
    LoadedModel,
    ModelLoadError,
    TensorSpec,
)


@pytest.fixture(scope='session')
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Return the tiny contract models (built once per session with TensorFlow)."""
    return tiny_models(tmp_path_factory)


@pytest.fixture
def shipped_model() -> Path:
    """Return the shipped model, failing clearly if it is not in the repository."""
    assert MODEL_PATH.is_file(), f'shipped model missing: {MODEL_PATH}'
    return MODEL_PATH


def load_error(path: Path | str, **kwargs) -> str:
    """Return the one-line ModelLoadError message for loading ``path``."""
    with pytest.raises(ModelLoadError) as info:
        load_interpreter(path, **kwargs)
    message = str(info.value)
    assert '\n' not in message
    assert isinstance(info.value, RuntimeError)
    return message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / 'nope.tflite'
    message = load_error(path)
    assert str(path) in message
    assert 'not found' in message


def test_directory(tmp_path: Path) -> None:
    assert 'not a file' in load_error(tmp_path)


def test_empty_path() -> None:
    assert 'no model path' in load_error('')


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / 'empty.tflite'
    path.write_bytes(b'')
    assert 'empty' in load_error(path)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / 'model.tflite'
    path.write_text('this is a labels file, not a model\n' * 10)
    message = load_error(path)
    assert str(path) in message
    assert 'not a TFLite model' in message
    assert 'TFL3' in message


def test_tiny_header_only(tmp_path: Path) -> None:
    path = tmp_path / 'stub.tflite'
    path.write_bytes(b'\x1c\x00\x00\x00TFL3' + bytes(8))
    assert 'truncated' in load_error(path)


@pytest.mark.parametrize('fraction', [0.02, 0.5, 0.99])
def test_truncated_copy_of_shipped_model(tmp_path: Path, shipped_model: Path,
                                         fraction: float) -> None:
    data = shipped_model.read_bytes()
    path = tmp_path / 'truncated.tflite'
    path.write_bytes(data[:int(len(data) * fraction)])
    message = load_error(path)
    assert str(path) in message
    assert 'interpreter failed' in message


def test_shipped_model_loads(shipped_model: Path) -> None:
    model = load_interpreter(shipped_model, num_threads=1)
    assert isinstance(model, LoadedModel)
    assert model.backend in BACKENDS
    assert model.path == shipped_model
    assert model.num_threads == 1
    assert model.delegate == ''
    spec = model.input
    assert isinstance(spec, TensorSpec)
    assert len(spec.shape) == 4 and spec.shape[0] == 1 and spec.shape[3] == 3
    assert spec.dtype in (np.uint8, np.int8)
    assert spec.scale > 0
    assert model.output.shape == (1, model.num_outputs)
    assert model.num_outputs == len(LABELS_PATH.read_text().split())
    assert model.input_size == spec.shape[1:3]
    assert model.backend in model.describe()
    details = model.interpreter.get_input_details()[0]
    assert int(details['index']) == model.input_index


OVERWRITE_IN_PLACE = """
import sys
from pathlib import Path
import numpy as np
from plant_disease_ros.core.interpreter_loader import load_interpreter

path = Path(sys.argv[1])
model = load_interpreter(path, num_threads=1)
frame = np.random.default_rng(3).integers(0, 256, model.input.shape, dtype=np.uint8)
frame = frame.astype(model.input.dtype)
def scores():
    model.interpreter.set_tensor(model.input_index, frame)
    model.interpreter.invoke()
    return model.interpreter.get_tensor(model.output_index).copy()
before = scores()
data = path.read_bytes()
with path.open('r+b') as stream:   # as cp, scp or rsync --inplace overwrite a file
    stream.truncate(0)
    stream.write(data[:100])
    stream.flush()
after = scores()
print('same' if np.array_equal(before, after) else 'different', flush=True)
"""


def test_a_model_overwritten_in_place_keeps_running(tmp_path: Path,
                                                    shipped_model: Path) -> None:
    """A model file cut short while loaded neither kills the process nor changes scores.

    A memory-mapped model (``model_path=``) dies with SIGBUS at the next invoke; the model
    is read into memory instead. Run in a child process, so that such a death fails this
    test instead of ending the test run.
    """
    import subprocess

    copy = tmp_path / 'model.tflite'
    copy.write_bytes(shipped_model.read_bytes())
    result = subprocess.run([sys.executable, '-c', OVERWRITE_IN_PLACE, str(copy)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.split()[-1] == 'same'
    assert copy.stat().st_size == 100


def test_litert_is_first_choice(shipped_model: Path) -> None:
    pytest.importorskip('ai_edge_litert.interpreter')
    assert load_interpreter(shipped_model).backend == 'ai_edge_litert'


class _Blocker(importlib.abc.MetaPathFinder):
    """Make chosen imports fail, either as missing or as crashing on import."""

    def __init__(self, missing: tuple[str, ...], crashing: tuple[str, ...] = ()) -> None:
        self.missing = missing
        self.crashing = crashing

    def find_spec(self, name, path=None, target=None):  # noqa: D102
        root = name.split('.')[0]
        if root in self.missing:
            raise ImportError(f'No module named {name!r} (blocked)')
        if root in self.crashing:
            raise RuntimeError(f'{name} crashed on import\nsecond line')
        return None


@pytest.fixture
def block_imports(monkeypatch: pytest.MonkeyPatch):
    """Return a function that blocks the given top-level modules for this test."""

    def block(missing: tuple[str, ...], crashing: tuple[str, ...] = ()) -> None:
        for name in list(sys.modules):
            if name.split('.')[0] in missing + crashing:
                monkeypatch.delitem(sys.modules, name)
        monkeypatch.setattr(sys, 'meta_path', [_Blocker(missing, crashing), *sys.meta_path])

    return block


def fake_tflite_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Install a ``tflite_runtime`` package backed by LiteRT's interpreter."""
    litert = pytest.importorskip('ai_edge_litert.interpreter')
    package = types.ModuleType('tflite_runtime')
    module = types.ModuleType('tflite_runtime.interpreter')
    module.Interpreter = litert.Interpreter
    module.load_delegate = litert.load_delegate
    package.interpreter = module
    monkeypatch.setitem(sys.modules, 'tflite_runtime', package)
    monkeypatch.setitem(sys.modules, 'tflite_runtime.interpreter', module)


def test_falls_back_to_tflite_runtime(monkeypatch: pytest.MonkeyPatch, block_imports,
                                      shipped_model: Path) -> None:
    fake_tflite_runtime(monkeypatch)
    block_imports(('ai_edge_litert',))
    assert load_interpreter(shipped_model).backend == 'tflite_runtime'


def test_backend_crashing_on_import_is_skipped(monkeypatch: pytest.MonkeyPatch,
                                               block_imports, shipped_model: Path) -> None:
    fake_tflite_runtime(monkeypatch)
    block_imports((), crashing=('ai_edge_litert',))
    assert load_interpreter(shipped_model).backend == 'tflite_runtime'


def test_no_backend_at_all(block_imports, shipped_model: Path) -> None:
    block_imports(('ai_edge_litert', 'tflite_runtime'), crashing=('tensorflow',))
    message = load_error(shipped_model)
    assert 'no TFLite interpreter' in message
    for name in BACKENDS:
        assert name in message


@pytest.mark.filterwarnings('ignore:.*tf.lite.Interpreter is deprecated')
def test_falls_back_to_tensorflow_lite(block_imports, shipped_model: Path) -> None:
    pytest.importorskip('tensorflow')
    block_imports(('ai_edge_litert', 'tflite_runtime'))
    model = load_interpreter(shipped_model)
    assert model.backend == 'tensorflow.lite'
    assert model.input.shape[3] == 3


def test_missing_delegate_library(shipped_model: Path) -> None:
    message = load_error(shipped_model, delegate_path='/nonexistent/libedgetpu.so.1')
    assert 'delegate' in message
    assert 'libedgetpu.so.1' in message
    gc.collect()


DELEGATE_LOAD = """
import gc
import sys
from plant_disease_ros.core.interpreter_loader import load_interpreter, ModelLoadError

try:
    load_interpreter(sys.argv[1], num_threads=1, delegate_path=sys.argv[2])
    message = 'loaded'
except ModelLoadError as error:
    message = str(error)
gc.collect()  # what the failed load left is collected here, not at exit
print(message, flush=True)
"""


def _not_a_delegate() -> str:
    """Return a shared library that loads but is no TFLite delegate (the C maths library)."""
    import ctypes.util

    library = ctypes.util.find_library('m')
    if library is None:
        pytest.skip('no C maths library to load')
    return library


@pytest.mark.parametrize('library', ['/nonexistent/libedgetpu.so.1', 'not a delegate'])
def test_unusable_delegate_library_is_one_error_line(shipped_model: Path, library: str) -> None:
    """A delegate library that does not load, or is no delegate, gives the error alone.

    Given it, LiteRT's Delegate raised from its constructor and the half-built object's
    ``__del__`` then printed "Exception ignored in: <function Delegate.__del__ ...>" and
    an AttributeError traceback after the node's one FATAL line. Run in a child process,
    whose standard error is all it printed.
    """
    import subprocess

    if library == 'not a delegate':
        library = _not_a_delegate()
    result = subprocess.run([sys.executable, '-c', DELEGATE_LOAD, str(shipped_model), library],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert 'Exception ignored' not in result.stderr, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr, result.stderr[-2000:]
    (message,) = result.stdout.splitlines()
    assert any(f'delegate library {library!r} could not be loaded ({backend}): ' in message
               for backend in BACKENDS), message
    assert message.startswith(f'{shipped_model}: ')
    if library.startswith('/nonexistent'):
        assert 'No such file' in message
    else:
        assert 'not a TFLite external delegate (no tflite_plugin_create_delegate' in message


@pytest.mark.parametrize('threads', [0, -1, 'many'])
def test_bad_thread_count(shipped_model: Path, threads) -> None:
    assert 'num_threads' in load_error(shipped_model, num_threads=threads)


@pytest.mark.parametrize(('variant', 'dtype', 'scale', 'zero_point'), [
    ('uint8', np.uint8, 1.0, 0),
    ('int8', np.int8, 1.0, -128),
    ('float32', np.float32, 0.0, 0),
])
def test_tiny_model_input_specs(tiny: dict[str, Path], variant: str, dtype: type,
                                scale: float, zero_point: int) -> None:
    model = load_interpreter(tiny[variant])
    assert model.input == TensorSpec((1, 96, 96, 3), dtype, scale, zero_point,
                                     model.input.name)
    assert model.output.shape == (1, 21)
    assert model.output.dtype == dtype
    assert model.output.quantized == (variant != 'float32')


def test_grey_input_model_rejected(tiny: dict[str, Path]) -> None:
    message = load_error(tiny['grey_input'])
    assert '3 channels' in message
    assert '[1, 96, 96, 1]' in message


def test_two_output_model_rejected(tiny: dict[str, Path]) -> None:
    assert '1 input and 1 output' in load_error(tiny['two_outputs'])
    assert '2 outputs' in load_error(tiny['two_outputs'])


class StubInterpreter:
    """Just enough of an interpreter for the loader's input/output checks."""

    inputs: list[dict] = []
    outputs: list[dict] = []

    def __init__(self, **_kwargs) -> None:
        pass

    def allocate_tensors(self) -> None:  # noqa: D102
        pass

    def get_input_details(self) -> list[dict]:  # noqa: D102
        return self.inputs

    def get_output_details(self) -> list[dict]:  # noqa: D102
        return self.outputs


def details(shape, dtype=np.uint8, signature=None) -> dict:
    """Return a tensor details dictionary like the interpreter's."""
    return {'index': 0, 'shape': np.array(shape), 'dtype': dtype,
            'shape_signature': np.array(signature if signature is not None else shape),
            'quantization': (1.0, 0)}


@pytest.mark.parametrize(('inputs', 'outputs', 'text'), [
    ([], [details([1, 5])], '0 inputs'),
    ([details([1, 8, 8, 3])] * 2, [details([1, 5])], '2 inputs'),
    ([details([1, 64, 3])], [details([1, 5])], '4-D NHWC'),
    ([details([1, 3, 64, 64])], [details([1, 5])], '3 channels'),
    ([details([1, 1, 1, 3], signature=[1, -1, -1, 3])], [details([1, 5])], 'fixed'),
    ([details([1, 8, 8, 3], dtype=np.float16)], [details([1, 5])], 'input dtype float16'),
    ([details([1, 8, 8, 3], dtype=np.int16)], [details([1, 5])], 'input dtype int16'),
    ([details([1, 8, 8, 3])], [details([1, 5], dtype=np.int32)], 'output dtype int32'),
    ([details([1, 8, 8, 3])], [details([1, 4, 4, 5])], '1xN'),
])
def test_io_checks(monkeypatch: pytest.MonkeyPatch, shipped_model: Path,
                   inputs: list[dict], outputs: list[dict], text: str) -> None:
    """A model whose tensors break the contract is refused with a one-line reason."""
    stub = type('Stub', (StubInterpreter,), {'inputs': inputs, 'outputs': outputs})
    package = types.ModuleType('tflite_runtime')
    module = types.ModuleType('tflite_runtime.interpreter')
    module.Interpreter = stub
    module.load_delegate = lambda path: None
    package.interpreter = module
    monkeypatch.setitem(sys.modules, 'tflite_runtime', package)
    monkeypatch.setitem(sys.modules, 'tflite_runtime.interpreter', module)
    assert text in load_error(shipped_model, backends=('tflite_runtime',))
