# One image for the operator and the router: `pip install .` installs the whole project,
# whose console scripts include `lambdakube-operator` and `lambdakube-router` (see
# pyproject.toml). The function runtime has its own image (runtime-image/Dockerfile).
#
#   docker build -t lambdakube/lambdakube:0.1.0 .
#   docker build --build-arg BASE_IMAGE=local/debian-python:bookworm ...   (no registry)
#
# BASE_IMAGE must provide python3 (>= 3.11) with the venv module; python:3.11-slim and a
# debootstrapped Debian bookworm with python3 + python3-venv both do (hack/E2E-NOTES.md).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first (a layer that survives source edits), then the sources.
COPY pyproject.toml ./
RUN python3 -m venv /opt/lambdakube \
 && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/requirements.txt \
 && /opt/lambdakube/bin/pip install -r /tmp/requirements.txt
COPY lambdakube/ lambdakube/
COPY router/ router/
COPY operator/ operator/
COPY runtime-image/ runtime-image/
COPY pyproject.toml README* ./
# pyproject.toml again because a COPY glob must match something. pyproject names
# README.md as the readme; an empty one keeps a checkout without it buildable.
RUN test -f README.md || : > README.md \
 && /opt/lambdakube/bin/pip install --no-deps . \
 && test -x /opt/lambdakube/bin/lambdakube-router \
 && test -x /opt/lambdakube/bin/lambdakube-operator

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="lambdakube" \
      org.opencontainers.image.description="lambdakube operator and router" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/lambdakube/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
COPY --from=build /opt/lambdakube /opt/lambdakube
# Non-root, numeric (so runAsNonRoot can verify it); matches the chart's uid 10001.
RUN groupadd --gid 10001 lambdakube \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin lambdakube \
 && mkdir -p /var/lib/lambdakube && chown 10001:10001 /var/lib/lambdakube
USER 10001:10001
WORKDIR /var/lib/lambdakube
EXPOSE 9000 9102 8080
# The chart sets the command per workload (lambdakube-operator / lambdakube-router).
CMD ["lambdakube-router", "--help"]
