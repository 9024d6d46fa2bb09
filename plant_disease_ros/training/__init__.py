"""The offline half: dataset, training, int8 export, evaluation and explanations.

TensorFlow is imported inside the functions that need it, never at module import, so the
robot can install the package without it.
"""
