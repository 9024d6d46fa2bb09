"""Run one bench worker: ``python -m plant_disease_ros.tools.bench publisher|baseline|relay``."""

import sys

from plant_disease_ros.tools.bench.workers import main

sys.exit(main())
