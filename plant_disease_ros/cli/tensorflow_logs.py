"""Keep TensorFlow's routine start-up lines and warnings out of the ``plant-disease`` output.

TensorFlow 2.16+ logs through absl before absl's log is initialised, so its start-up lines
reach stderr whatever ``TF_CPP_MIN_LOG_LEVEL`` says, once per native library (twice): the
``absl::InitializeLog`` notice and the oneDNN note. They are written while ``tensorflow``
is imported, so the import runs with stderr (the file descriptor) sent to a temporary
file, and what it wrote comes back without exactly those lines; anything else, an error
above all, is passed on. Python-side, the converter's warning on input statistics (an
int8 export needs none) and tf.function's retracing advice (the search and embed build
models in a loop on purpose) are left out; other warnings still show.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile
import types
import warnings

# Whole lines TensorFlow writes when imported, that say nothing about the user's run.
IMPORT_NOISE = (
    re.compile(r'WARNING: All log messages before absl::InitializeLog\(\) is called are '
               r'written to STDERR'),
    re.compile(r'I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\..*'),
)
RETRACING = 'triggered tf.function retracing'


def quiet_tensorflow() -> None:
    """Quieten TensorFlow for this process, before it is imported (idempotent).

    ``TF_CPP_MIN_LOG_LEVEL`` is set to 2 (warnings and info hidden, errors shown) unless
    the user set it; the import of ``tensorflow``, whenever a command makes it, leaves
    out :data:`IMPORT_NOISE`; the two Python warnings of the module docstring are
    filtered.
    """
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    warnings.filterwarnings('ignore', message='Statistics for quantized inputs were expected',
                            category=UserWarning)
    logger = logging.getLogger('tensorflow')
    if not any(isinstance(item, _RetracingFilter) for item in logger.filters):
        logger.addFilter(_RetracingFilter())
    if 'tensorflow' not in sys.modules and not any(
            isinstance(finder, _QuietImportFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietImportFinder())


class _RetracingFilter(logging.Filter):
    """Drop tf.function's retracing advice; pass every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return RETRACING not in record.getMessage()


class _QuietImportFinder(importlib.abc.MetaPathFinder):
    """Find ``tensorflow`` as the other finders do, then import it quietly; once."""

    def find_spec(self, name: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if name != 'tensorflow':
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    """Run a module's loader with stderr filtered (:func:`filtered_stderr`)."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        # The module keeps its own loader, as if imported plainly.
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        with filtered_stderr(IMPORT_NOISE):
            self.loader.exec_module(module)


@contextlib.contextmanager
def filtered_stderr(noise: Sequence[re.Pattern]) -> Iterator[None]:
    """Send stderr (file descriptor 2) to a temporary file; pass it on without ``noise``.

    Lines that match one of ``noise`` whole are left out; every other line is written to
    stderr when the block ends, also when it raises. Without a usable descriptor 2 (an
    embedding host), the block runs unfiltered.
    """
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(ValueError, OSError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True)
                    if not any(pattern.fullmatch(line.decode(errors='replace').rstrip('\r\n'))
                               for pattern in noise)]
            if kept:
                os.write(2, b''.join(kept))
