"""The package version, in a module of its own so that any module can import it at the top
without importing the package's ``__init__`` (which would make an import cycle)."""

__version__ = "0.1.0"
