"""The Docker Engine API on a unix socket (``dockyard system service``).

A thin translation layer: every endpoint parses docker's request, calls the library
(``dockyard.Client``) and writes docker's response shape. Modules:

* :mod:`~dockyard.api.http` — HTTP/1.1 exchange: bodies (length or chunked), JSON replies,
  chunked streams, connection hijacking;
* :mod:`~dockyard.api.routes` — the route table (versioned paths) and dispatch;
* :mod:`~dockyard.api.server` — the threaded unix-socket server and the ``Daemon`` state it
  shares between requests (events, exec instances, attaches waiting for a start);
* one module per object: :mod:`~dockyard.api.containers`, :mod:`~dockyard.api.execs`,
  :mod:`~dockyard.api.images`, :mod:`~dockyard.api.volumes`, :mod:`~dockyard.api.networks`,
  :mod:`~dockyard.api.system`; endpoint modules are imported on first use.
"""
