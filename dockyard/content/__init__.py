"""Content-addressable storage: blobs by digest, written through a verify-then-rename lifecycle."""
