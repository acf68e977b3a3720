"""Dockerfile builds: ``dockyard image build`` turns a Dockerfile and a context into an image.

The pieces, each in its own module: ``dockerfile`` (parse + directives), ``instructions`` (typed
instructions and their flags), ``shell_lex`` (docker's word expansion), ``stages`` (the stage
graph, ARG scoping, ``--target``), ``context`` and ``dockerignore`` (what the build may read),
``checksum`` (content hashes for the cache), ``fsops`` (COPY/ADD), ``layerdiff`` and ``gzipfast``
(a directory diff to a reproducible gzip layer), ``runstep`` (RUN through the runtime),
``cache`` (the layer cache), ``progress`` (plain/tty output) and ``service`` (``client.builder``).
"""
