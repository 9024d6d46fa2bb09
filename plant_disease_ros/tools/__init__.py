"""Off-robot programs: bag replay, the benchmark and the demo bag composer."""
