"""Registries: ``pull``, ``push``, ``login`` over the OCI distribution API.

A *registry* (``docker.io``, ``ghcr.io``, ``localhost:5000``) holds *repositories*
(``library/busybox``), each a set of *manifests* and *blobs* addressed by digest, and *tags*
pointing at manifests. The article's vocabulary is still the vocabulary; what changed is the
protocol: Docker Hub's v1 API and schema-1 manifests are gone, and every client now speaks the
OCI distribution spec's ``/v2/`` API, with schema-2 and OCI manifests.

- :mod:`minidocker.registry.client`: the HTTP requests, the digest checks, the 401 dance;
- :mod:`minidocker.registry.auth`: challenges and credentials (Docker's ``config.json``);
- :mod:`minidocker.registry.platforms`: which image of a multi-platform index;
- :mod:`minidocker.registry.pull` and :mod:`minidocker.registry.push`: the two directions,
  both through the image store's own staging and publishing (:mod:`minidocker.archive`).

Nothing here is imported by ``minidocker run`` of an image already present.
"""
