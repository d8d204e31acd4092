"""The Examples sections of the package's docstrings, run as tests (one per module).

Run here rather than with ``--doctest-modules``: that option also imports every
``conftest.py`` as a module, and the two of ``tests/`` and ``tests/browser/`` then clash.
"""

import doctest
import importlib
import pkgutil

import pytest

import radipop_widgets

MODULES = sorted(m.name for m in pkgutil.walk_packages(radipop_widgets.__path__,
                                                       "radipop_widgets."))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_examples_of(name, capsys):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in doctest.DocTestFinder().find(module, name):
        runner.run(test)
    report = capsys.readouterr().out
    assert runner.failures == 0, report


def test_the_package_has_examples():
    examples = sum(len(t.examples) for name in MODULES
                   for t in doctest.DocTestFinder().find(importlib.import_module(name)))
    assert examples >= 40
