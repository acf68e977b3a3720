"""The registry client: ``pull``, ``push``, ``login``/``logout`` against OCI distribution registries.

Layers, top to bottom (each module talks only to the one below):

- ``service``     ``client.distribution``: pull / push / login / logout, the library API.
- ``pull``, ``push``   one operation each: what to fetch or send, concurrency, progress lines.
- ``registry``    the distribution API of one registry (manifests, blobs, uploads, tags).
- ``auth``        401 challenges, Docker token auth and Basic auth, tokens cached per scope.
- ``credentials`` docker's ``config.json`` (``auths``, ``credsStore``, ``credHelpers``).
- ``transport``   HTTP/1.1 keep-alive connections per host (stdlib ``http.client``), redirects,
                  ``sendfile`` uploads.
- ``hosts``       docker's naming rules: which host serves a domain, https or plain HTTP, TLS.
- ``records``     what we learnt about blobs: where each was seen (cross-repository mounts) and
                  which compressed blob a local uncompressed layer became.
- ``progress``    docker's output: a bar per layer on a terminal, plain lines otherwise.
"""
