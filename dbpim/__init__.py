"""The DB-PIM application: the ``dbpim`` command line, the demo and the benchmark harnesses.

This package sits above the libraries (``model``, ``model.torch``, ``hw``,
``verif``, ``sim_bench``) and is the only place that may import all of them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dbpim")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
