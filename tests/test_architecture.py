"""The core stays light: importing it pulls in no widget library."""

import subprocess
import sys

CORE_MODULES = [
    "radipop_widgets",
    "radipop_widgets.io",
    "radipop_widgets.io.phantom",
    "radipop_widgets.render",
    "radipop_widgets.session",
    "radipop_widgets.export",
    "radipop_widgets.persist",
    "radipop_widgets.measure",
    "radipop_widgets.segmentation",
]


def test_core_imports_no_widget_library():
    code = (
        "import importlib, sys\n"
        f"for name in {CORE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "import radipop_widgets as rw\n"
        "rw.load_study, rw.Session\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('ipywidgets', 'ipycanvas', 'IPython', 'ipykernel', 'voila'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == ""


def test_app_is_imported_lazily():
    code = ("import sys, radipop_widgets as rw\n"
            "assert 'radipop_widgets.app' not in sys.modules\n"
            "rw.App\n"
            "assert 'radipop_widgets.app' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
