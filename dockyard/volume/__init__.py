"""Volumes: named and anonymous data directories that outlive containers, and container mounts.

``VolumeService`` (``client.volumes``) is the entry point; the engine calls ``resolve_mounts``
when it builds a container's OCI spec (see ``docs/volumes.md``).
"""
