"""Layer snapshots: each image layer unpacked once into its own directory, named by chain ID.

``store.SnapshotStore`` is the service (``client.snapshots``): it unpacks layers safely
(``unpack.py`` over the streaming tar reader in ``tarstream.py`` and the decompressors in
``layerstream.py``), keeps their metadata in the state DB, and mounts container root
filesystems as overlayfs stacks of those directories (``mounts.py``).
"""
