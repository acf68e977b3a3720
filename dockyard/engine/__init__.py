"""Containers: records, the per-container monitor, logs, exec, health checks and restart policies.

``client.containers`` (:class:`dockyard.engine.containers.ContainerService`) is the API; the CLI
(``dockyard/cli/container.py``) and the Docker-compatible API are thin layers on it.
"""
