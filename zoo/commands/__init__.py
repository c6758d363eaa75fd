"""The commands of the ``zoo`` command line, one module per area; :mod:`zoo.cli` puts them in one group.

Each command imports what it needs inside its function: building the command line (for ``--help``, ``zoo
list`` from its cache, shell completion) imports click and the standard library only, never torch.
"""
