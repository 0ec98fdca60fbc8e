"""Write README.md from nbs/index.ipynb (the docs' home page), so the two never drift apart.

nbdev_readme needs quarto; this does the same for our index, which holds only markdown cells:
`python tools/make_readme.py` writes README.md, `python tools/make_readme.py --check` fails when it is stale.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = '<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n'


def readme_text(index=ROOT / 'nbs' / 'index.ipynb') -> str:
    "The README made from the markdown cells of `index` (code cells are skipped)."
    cells = json.loads(Path(index).read_text())['cells']
    parts = [''.join(c['source']).strip() for c in cells if c['cell_type'] == 'markdown']
    return HEADER + '\n\n'.join(p for p in parts if p) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--check', action='store_true', help='fail if README.md differs from the index notebook')
    args = parser.parse_args(argv)
    text, readme = readme_text(), ROOT / 'README.md'
    if args.check:
        if readme.read_text() != text:
            sys.exit('README.md is stale: run `python tools/make_readme.py` and commit it')
        return
    readme.write_text(text)


if __name__ == '__main__':
    main()
