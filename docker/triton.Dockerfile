# Image of the triton service: Triton Inference Server on the CPU through PyTriton (nvidia-pytriton
# bundles tritonserver and its Python backend), serving the suite's inference core. Its own venv from
# requirements-triton.txt: PyTriton pins numpy<2 and pulls protobuf 6, so it cannot share the other
# Python services' dependency layer (docker/python-service.Dockerfile). Command, environment, port
# and healthcheck come from docker-compose.yml (host networking, 127.0.0.1).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
# Extra CA certificates for a proxy (docker/certs/*.crt, copied in by `make images`, never committed).
COPY docker/certs/ /usr/local/share/ca-certificates/servebench/
# Triton's Python backend stub links libpython3.11.so.1.0: python:* images have it (/usr/local/lib,
# the same build as their python3); Debian's python3 (servebench/base:bookworm) needs libpython3.11.
RUN update-ca-certificates >/dev/null \
 && if ! ldconfig -p | grep -q 'libpython3\.11\.so\.1\.0'; then \
      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libpython3.11 \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 TF_CPP_MIN_LOG_LEVEL=2
COPY requirements-triton.txt /tmp/requirements-triton.txt
RUN pip install -q -r /tmp/requirements-triton.txt

WORKDIR /app
ENV PYTHONPATH=/app
COPY . /app
