# Image of every Python service: the Django front end, the Flask and the FastAPI
# model servers. They differ only in command, environment, port and healthcheck,
# which come from docker-compose.yml (generated from servebench/topology.py),
# so the Python dependency layer is built once and shared.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
# Extra CA certificates for a proxy (docker/certs/*.crt, copied in by `make images`, never committed).
COPY docker/certs/ /usr/local/share/ca-certificates/servebench/
# A venv from whichever python3 the base has (/usr/local/bin in python:*, /usr/bin in Debian's).
RUN update-ca-certificates >/dev/null && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 TF_CPP_MIN_LOG_LEVEL=2
COPY requirements.txt /tmp/requirements.txt
RUN pip install -q -r /tmp/requirements.txt

WORKDIR /app
ENV PYTHONPATH=/app
COPY . /app
# The object store's data folder under compose (SB_OBJECTSTORE_DATA), which weed expects to exist.
RUN mkdir -p /data
