"""setup.py as the tests read it: parsed, never run."""

from __future__ import annotations

import ast
from pathlib import Path

SETUP_PY = Path(__file__).resolve().parents[2] / 'setup.py'


def _constant_string(node: ast.AST | None) -> str | None:
    """Return the string of a string constant node, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def console_scripts() -> dict[str, str]:
    """Return setup.py's console scripts: executable name -> 'module:function'."""
    tree = ast.parse(SETUP_PY.read_text(encoding='utf-8'))
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if _constant_string(key) == 'console_scripts' and isinstance(value, ast.List):
                    entries = [_constant_string(item) or '' for item in value.elts]
                    return {name.strip(): target.strip() for name, target in
                            (entry.split('=', 1) for entry in entries)}
    raise AssertionError('no console_scripts in setup.py')
