"README.md is generated from nbs/index.ipynb and states the commands CI runs."
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_COMMAND = 'nbdev_test --n_workers 2 && python -m pytest -q tests'
MAIN_COMMAND = 'pip install -e ".[dev]" && papermill nbs/train.ipynb outputs/train.ipynb'


def test_readme_matches_index_notebook():
    result = subprocess.run([sys.executable, str(ROOT / 'tools' / 'make_readme.py'), '--check'], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_commands_are_the_ones_ci_runs():
    readme = (ROOT / 'README.md').read_text()
    assert MAIN_COMMAND in readme and TEST_COMMAND in readme
    assert TEST_COMMAND in (ROOT / '.ci' / 'test').read_text()
