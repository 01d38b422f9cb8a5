"""One module per ``dbpim`` subcommand; each defines ``command`` (a click command). See :mod:`dbpim.cli`."""
