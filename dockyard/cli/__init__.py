"""The ``dockyard`` command: ``dockyard <object> <verb>`` plus docker's short aliases.

Each object has its own module here (``image.py``, ``container.py``, ...) exposing
``build_parser(parser)``; ``main.py`` imports only the module the command line names, so that
start-up stays fast.
"""
