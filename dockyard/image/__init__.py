"""Images: references, OCI/Docker models, the local image DB, and the archive formats."""
