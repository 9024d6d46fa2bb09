"""Keep TensorFlow's routine Python warnings out of the ``plant-disease`` output.

``TF_CPP_MIN_LOG_LEVEL`` is set to 2 (TensorFlow's native info and warning lines hidden,
errors shown) unless the user set it. Python-side, the converter's warning on input
statistics (an int8 export needs none) and tf.function's retracing advice (the search and
embed build models in a loop on purpose) are left out; other warnings still show.

The few lines TensorFlow 2.16+ writes while it is imported, before absl's log is set up
(the ``absl::InitializeLog`` notice and the oneDNN note), are left alone: hiding them
would mean holding back everything the import writes to stderr, and a fatal error of the
native library (a CPU without the instructions it was built for) would then be lost with
the process.
"""

from __future__ import annotations

import logging
import os
import warnings

RETRACING = 'triggered tf.function retracing'


def quiet_tensorflow() -> None:
    """Quieten TensorFlow for this process, before it is imported (idempotent)."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    warnings.filterwarnings('ignore', message='Statistics for quantized inputs were expected',
                            category=UserWarning)
    logger = logging.getLogger('tensorflow')
    if not any(isinstance(item, _RetracingFilter) for item in logger.filters):
        logger.addFilter(_RetracingFilter())


class _RetracingFilter(logging.Filter):
    """Drop tf.function's retracing advice; pass every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return RETRACING not in record.getMessage()
