"""An HTML page template for `dvc plots show/diff --html-template` that works offline.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so on a machine without
network every plot stays blank. This template inlines them instead, bundled by the PyPI package
vl-convert-python (pinned in requirements.txt), so `index.html` is one self-contained file.
Without DVC's `{scripts}` placeholder the CDN tags are left out.
"""

from __future__ import annotations

import os
from pathlib import Path

from synthempathy.io import atomic_path

# vega-lite 5: DVC's own templates and ours (.dvc/plots/) are written against its v5 schema.
VEGA_LITE_VERSION = "5.20"
TEMPLATE_PATH = Path(".dvc/tmp/plots/offline.html")  # .dvc/tmp is ignored by git

PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <script>
{bundle}
    </script>{head_extra}
    <style>
        body {{ font-family: sans-serif; }}
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def page_template(bundle: str, head_extra: str = "") -> str:
    """The page with ``bundle`` (JavaScript defining vegaEmbed) inlined; ``head_extra`` is put in
    <head> after it. DVC fills ``{plot_divs}`` and ``{refresh_tag}``."""
    if "</script" in bundle.lower():
        raise ValueError("the JavaScript bundle contains '</script': it cannot be inlined")
    return PAGE.format(bundle=bundle, head_extra=head_extra)


def vega_bundle() -> str:
    """vega-embed, vega-lite and vega as one script (made locally by vl-convert, no download)."""
    import vl_convert  # only the commands that write the page need it

    return vl_convert.javascript_bundle(vl_version=VEGA_LITE_VERSION)


def write_template(path: str | os.PathLike = TEMPLATE_PATH, head_extra: str = "") -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(page_template(vega_bundle(), head_extra), encoding="utf-8")
    return Path(path)
