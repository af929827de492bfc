#!/usr/bin/env python3
"""Stamp every notebook with its "Open in Colab" badge and the Colab set-up cell.

    python tools/notebook_header.py           # update notebooks/NN_*.ipynb in place
    python tools/notebook_header.py --check   # exit 1 if any notebook is out of date

The repository URL is read from pyproject.toml ([project.urls] Repository), its one home.
The set-up cell does nothing outside Colab; in Colab it clones the repository, installs the
package (Colab already has torch), puts the clone on sys.path (pip's editable install works
through a .pth file, read only when Python starts, so without this `import effnet_lab` would
fail until the runtime is restarted), and moves into notebooks/ so relative paths work.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BADGE_TAG, SETUP_TAG = "colab-badge", "colab-setup"
# Notebooks that need an optional extra of the package (Colab lacks onnxruntime, for one).
EXTRAS = {"08_deployment.ipynb": "deploy"}


def install_target(name: str) -> str:
    extra = EXTRAS.get(name)
    return f'"/content/effnet_lab[{extra}]"' if extra else "/content/effnet_lab"


def repository_url() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    m = re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.M)
    if not m:
        sys.exit("pyproject.toml has no [project.urls] Repository")
    return m.group(1).rstrip("/")


def header_cells(name: str, url: str) -> list[dict]:
    github_path = url.split("github.com/", 1)[1]
    colab = f"https://colab.research.google.com/github/{github_path}/blob/main/notebooks/{name}"
    badge = {"cell_type": "markdown", "metadata": {"tags": [BADGE_TAG]},
             "source": [f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab})"]}
    setup = [
        "# Colab only: fetch the workbook and install what Colab lacks. Elsewhere this does nothing.\n",
        "import sys\n",
        "\n",
        'if "google.colab" in sys.modules:\n',
        f"    !git clone -q --depth 1 {url} /content/effnet_lab\n",
        f"    %pip install -q -e {install_target(name)}\n",
        "    sys.path.insert(0, \"/content/effnet_lab\")  # an editable install is seen only after a restart\n",
        "    %cd /content/effnet_lab/notebooks",
    ]
    code = {"cell_type": "code", "execution_count": None, "metadata": {"tags": [SETUP_TAG]},
            "outputs": [], "source": setup}
    return [badge, code]


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def stamp(nb: dict, name: str, url: str) -> bool:
    """Put the header cells first (replacing old ones); True if `nb` changed."""
    old = [c for c in nb["cells"] if {BADGE_TAG, SETUP_TAG} & set(_tags(c))]
    body = [c for c in nb["cells"] if c not in old]
    new = header_cells(name, url)
    for cell, tag in zip(new, (BADGE_TAG, SETUP_TAG), strict=True):
        cell["id"] = tag  # nbformat >= 4.5 wants cell ids; an existing cell keeps its own below
    if len(old) == 2:  # keep ids, metadata and the run count: stamping must not dirty anything else
        for cell, before in zip(new, old, strict=True):
            cell["id"] = before.get("id", cell["id"])
            cell["metadata"] = {**before.get("metadata", {}), "tags": cell["metadata"]["tags"]}
        new[1]["execution_count"] = old[1].get("execution_count")
    def text(c: dict) -> str:
        return "".join(c["source"])

    if len(old) == 2 and nb["cells"][:2] == old and [text(c) for c in old] == [text(c) for c in new]:
        return False
    nb["cells"] = new + body
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    url = repository_url()
    stale = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        if stamp(nb, path.name, url):
            if args.check:
                stale.append(path.name)
            else:
                # sorted keys and one-space indent, as Jupyter writes: no spurious diffs
                path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
                print(f"stamped {path.name}")
    if stale:
        print("out of date (run python tools/notebook_header.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
