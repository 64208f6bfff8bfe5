# syntax=docker/dockerfile:1
# hotconf's one image: it runs the operator (the default command) and the sidecar
# (`hotconf-sidecar`, set as the container command by the chart's injection or by hand).
#
#   docker build -t REGISTRY/hotconf:TAG .
#
# Stage 1 builds a virtual environment holding hotconf[operator,sidecar] at the exact versions of
# requirements/ci.txt (the versions the test suite ran with); stage 2 is a clean slim Python with
# only that venv copied in: no pip cache, no build backend, no compilers, no source tree.

FROM python:3.11.14-slim-bookworm AS builder

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

# A regular (non-editable) install: the venv holds its own copy of the three packages.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c requirements/ci.txt ".[operator,sidecar]"


FROM python:3.11.14-slim-bookworm

LABEL org.opencontainers.image.title="hotconf" \
      org.opencontainers.image.description="Configuration hot reload for services on Kubernetes: operator and sidecar" \
      org.opencontainers.image.licenses="Apache-2.0"

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
