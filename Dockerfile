# syntax=docker/dockerfile:1
# synthscan consumer image: `python -m consumer run`, one GPU-resident model per container.
#
#   docker build -t ghcr.io/synthscan/synthscan:0.1.0 .
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t synthscan:cpu .
#
# PyPI's torch wheels bundle their own CUDA and cuDNN libraries (pip packages), so the base
# only needs what nvidia/cuda:*-base sets up for the NVIDIA container toolkit
# (NVIDIA_VISIBLE_DEVICES, NVIDIA_DRIVER_CAPABILITIES); a *-cudnn-runtime base would ship a second copy of the same libraries. The node's
# driver must support the CUDA version of the torch wheel (torch 2.15: CUDA 13.x).
# The checkpoint is not baked in: mount it (chart `model.source: pvc|initImage`) or build a
# derived image that copies it to /opt/synthscan/models/ (see docs/deploy.md).
ARG BASE_IMAGE=nvidia/cuda:13.0.1-base-ubuntu24.04

# ---- build: a virtualenv with the package and its wheels (a compiler only for pdqhash, which
#      PyPI ships as source; the runtime stage gets the built venv, not the compiler) ----
FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=""
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev g++ \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, optionally from another index (CPU-only or another CUDA build).
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --index-url "$TORCH_INDEX_URL" torch torchvision; \
    fi
WORKDIR /src
COPY pyproject.toml README.md ./
COPY detector/ detector/
COPY schemas/ schemas/
COPY consumer/ consumer/
COPY provenance/ provenance/
RUN pip install . && pip check

# ---- runtime: interpreter + virtualenv, non-root, no build tools ----
FROM ${BASE_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 synthscan \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin synthscan \
    && mkdir -p /opt/synthscan/models
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    TORCH_HOME=/tmp/.cache/torch
WORKDIR /opt/synthscan
USER 10001:10001
EXPOSE 8080
# Read-only root works: writes go to /tmp (mount an emptyDir/tmpfs there) and the caches above.
CMD ["python", "-m", "consumer", "run"]
