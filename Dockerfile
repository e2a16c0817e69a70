# AI Dungeon Master for Discord: a small, non-root image around the `dungeon-master` console script.
#
#   docker build -t dungeon-master:latest .
#   docker run -d --env-file .env -v dm-data:/data --restart unless-stopped dungeon-master:latest
#
# Settings come from the environment (see .env.example); the SQLite database, logs and the
# heartbeat file live in the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

# Everything `pip install .` needs: the project metadata, the readme it declares, and the packages
# found by [tool.setuptools.packages.find] with their package data (bot/data/tiktoken/*.gz,
# bot/game/prompts/*.md, bot/llm/*.json, migrations/*.sql).
COPY pyproject.toml README.md ./
COPY bot/ ./bot/
COPY cogs/ ./cogs/
COPY migrations/ ./migrations/

# A regular (non-editable) install: the running code is the installed copy in site-packages.
RUN pip install . \
    && rm -rf build ./*.egg-info

# Run as an unprivileged user that owns the data volume. /data is created and chowned before the
# VOLUME line so a fresh named volume starts out owned by `dm`.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /data --shell /usr/sbin/nologin dm \
    && mkdir -p /data \
    && chown dm:dm /data

ENV DATA_DIR=/data
VOLUME /data

USER dm

# The bot touches DATA_DIR/heartbeat every 30 s while connected to the Discord gateway;
# `dungeon-master health` exits 0 if it was touched in the last 90 s, 1 otherwise.
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s --retries=3 \
    CMD ["dungeon-master", "health"]

ENTRYPOINT ["dungeon-master"]
CMD ["run"]
