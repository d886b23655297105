# syntax=docker/dockerfile:1
# chatgpt-wecom in a slim image that runs as a non-root user.
#
#   docker build -t chatgpt-wecom .
#   docker run -d --name chatgpt-wecom -p 8090:8090 -v chatgpt-wecom-data:/app/data \
#     -e CORP_ID=ww… -e AGENT_ID=1000002 -e AGENT_SECRET=… -e RECEIVE_MSG_TOKEN=… -e RECEIVE_MSG_KEY=… \
#     -e APIKEY=sk-… chatgpt-wecom
#
# Configure it with the Go project's environment variables (as above, or docker-compose.yml), or mount a
# config.yml at /app/config.yml (and a prompts.yml beside it). Either way data_dir is ./data relative to
# /app — /app/data, the volume: SQLite, the control socket. Details: docs/deployment.md.

ARG PYTHON_VERSION=3.11

# --- build: the package and its dependencies in a virtualenv (no test extras) ---------------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY chatgpt_wecom ./chatgpt_wecom
RUN /opt/venv/bin/pip install .

# --- run: the virtualenv, a non-root user, the data volume ---------------------------------------------
FROM python:${PYTHON_VERSION}-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /app/data \
    && chown app:app /app/data \
    && chmod 0700 /app/data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER app
# The operator's files (e.g. a history exported from the TUI) go to the home folder, /home/app.
# A new named volume starts as a copy of this folder, owned by app. A bind mount must be writable by uid 10001.
VOLUME ["/app/data"]
EXPOSE 8090
STOPSIGNAL SIGTERM
# 200 once the daemon is ready. Python, not curl (the slim image has none); no proxy, whatever HTTP_PROXY says.
# It reads PORT (default 8090): set PORT when config.yml moves the port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % (os.environ.get('PORT') or 8090), timeout=4)"]
CMD ["chatgpt-wecom", "run"]
