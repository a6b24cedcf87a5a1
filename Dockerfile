# syntax=docker/dockerfile:1.4
# msnbridge: see docs/docker.md. The data volume /data holds config.yaml, registration.yaml
# and the SQLite database; docker/entrypoint.sh writes the first two on the first starts.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN useradd --system --uid 1337 --user-group --home-dir /data --no-create-home msnbridge \
 && mkdir /data && chown msnbridge:msnbridge /data

WORKDIR /opt/msnbridge
COPY pyproject.toml setup.py README.md bridge.yaml.example ./
COPY puppets/ puppets/
COPY msnbridge/ msnbridge/
COPY migrations/ migrations/
COPY --chmod=0755 docker/entrypoint.sh docker/entrypoint.sh

# The install command of scripts/test.sh without the test extra (the plain install has
# every dependency of the bridge). Editable: the bridge reads migrations/ beside the
# package directory (msnbridge/db/upgrade.py; a wheel install uses share/msnbridge/).
# A compiler only for the install, for puppets' C parser (puppets/_codec.c), removed in the
# same layer; should the build fail, pip goes on and puppets parses in Python, alike.
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends gcc libc6-dev \
 && python -m venv /opt/venv \
 && pip install -q -e . \
 && apt-get purge -y -q --auto-remove gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

USER msnbridge
VOLUME /data
WORKDIR /data
EXPOSE 29390
ENTRYPOINT ["/opt/msnbridge/docker/entrypoint.sh"]
