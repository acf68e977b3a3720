"""Container networking: network namespaces, bridges and veths, IPAM, port publishing, embedded DNS.

``NetworkService`` (``client.networks``) is the entry point; the engine calls its ``attach`` and
``release`` hooks around a container's life (see ``docs/networking.md``).
"""
