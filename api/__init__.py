"""The REST edge of the Music Practice Tracker (FastAPI, paths under ``/api/v1``).

``create_app(settings)`` in :mod:`api.main` builds the application; nothing connects or reads
configuration at import time. Domains live in ``api/<domain>/`` (``accounts``, ``teaching``,
``practice``, ``sync``), each with ``models``, ``schemas``, ``service`` and ``router``.
"""
