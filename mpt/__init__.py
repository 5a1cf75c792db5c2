"""Music Practice Tracker shared package: settings, the data directory and the ``mpt`` CLI.

Importing :mod:`mpt` has no side effects and loads no service: the CLI imports the engine
only inside the commands that need it.
"""
