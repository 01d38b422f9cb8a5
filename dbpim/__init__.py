"""The DB-PIM application: the ``dbpim`` command line, the demo and the benchmark harnesses.

This package sits above the libraries (``dbpim.model``, ``dbpim.model.torch``,
``dbpim.hw``, ``dbpim.verif``, ``dbpim.sim_bench``: the folders ``model/``,
``hw/``, ``verif/``, ``sim_bench/`` of the source tree) and is the only place
that may import all of them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dbpim")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

# The libraries install under this package (``dbpim.model``, ``dbpim.hw``, ``dbpim.verif``,
# ``dbpim.sim_bench``: pyproject's package-dir), while their folders stay at the top of the source tree.
# In a source tree they are found next to this folder.
from pathlib import Path as _Path

_TOP = _Path(__file__).resolve().parent.parent
if (_TOP / "pyproject.toml").is_file() and (_TOP / "model" / "__init__.py").is_file() and str(_TOP) not in __path__:
    __path__.append(str(_TOP))
del _Path, _TOP
