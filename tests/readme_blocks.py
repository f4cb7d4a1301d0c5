"""The README's command blocks, read by the tests that run them."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_block(marker: str = "quickstart") -> list[str]:
    """The commands between <!-- marker --> and <!-- /marker --> in README.md, comments stripped."""
    text = open(os.path.join(REPO, "README.md")).read()
    start = text.index(f"<!-- {marker}")
    block = text[start:text.index(f"<!-- /{marker} -->")]
    lines = [line.split("  #")[0].strip() for line in block.splitlines()]
    return [line for line in lines if line.startswith(("python ", "pip "))]
