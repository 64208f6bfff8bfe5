# syntax=docker/dockerfile:1
# hotconf's one image: it runs the operator (the default command) and the sidecar
# (`hotconf-sidecar`, set as the container command by the chart's injection or by hand).
#
#   docker build -t REGISTRY/hotconf:TAG .
#
# Stage 1 builds a virtual environment holding hotconf[operator-runtime,sidecar] at the exact
# versions of requirements/ci.txt (the versions the test suite ran with); stage 2 is the same
# base with only that venv copied in: no pip, no build backend, no compilers, no source tree.
# scripts/build-image builds it without a Docker engine (podman) and says what it needs.

# The official Python slim image, pinned by the digest of its multi-architecture index so that a
# rebuild gets the same bytes. Any image with python3 (3.11+) and its venv module works: the test
# suite passes a Debian bookworm made with debootstrap here, since it cannot pull images.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# hadolint ignore=DL3006
FROM ${BASE_IMAGE} AS builder

# A CA bundle for pip, for a build behind a TLS-intercepting proxy: scripts/build-image passes
# the machine's bundle (mounted read-only) as PIP_CERT. Unset, pip uses its own bundle.
ARG PIP_CERT

# PIP_CONSTRAINT also reaches pip's isolated build environment, so the build backend (hatchling)
# is pinned by requirements/ci.txt too, not only the runtime dependencies.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONSTRAINT=/src/requirements/ci.txt

WORKDIR /src
# Only what the wheel is built from (.dockerignore keeps everything else out of the context).
COPY pyproject.toml README.md ./
COPY requirements/ci.txt requirements/ci.txt
COPY wire wire
COPY client client
COPY operator operator
COPY sidecar sidecar

# A regular (non-editable) install: the venv holds its own copy of the four packages.
# `operator-runtime`, not `operator`: the image has no use for the official Kubernetes client
# that only the `kubectl hotconf` plugin needs (about 130 MB installed). pip and setuptools
# leave the venv once it is installed: nothing installs at run time.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c requirements/ci.txt ".[operator-runtime,sidecar]" \
    && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
    && rm -f /opt/venv/bin/activate* /opt/venv/bin/Activate.ps1


# hadolint ignore=DL3006
FROM ${BASE_IMAGE}

# Open Containers labels; scripts/build-image fills in the build's own values.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="hotconf" \
      org.opencontainers.image.description="Configuration hot reload for services on Kubernetes: operator and sidecar" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}"

# Same base image as the builder, so the venv's interpreter links stay valid.
COPY --from=builder /opt/venv /opt/venv

# Unbuffered output: log lines reach `kubectl logs` as they are written. No .pyc writes at run
# time: the chart mounts the root filesystem read-only (pip compiled the bytecode at build time).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# A numeric user (and group) that exists in no image: Kubernetes' runAsNonRoot can verify it.
USER 65532:65532

# Operator: health 8080, metrics 9090, admission webhook 9443. Sidecar: push endpoint 8790.
EXPOSE 8080 9090 9443 8790

# No ENTRYPOINT: `docker run IMAGE hotconf-sidecar ...` and a pod's `command` both just work.
CMD ["hotconf-operator"]
