# Priorizer as a container: a small image, run as an unprivileged user.
#   docker build -t priorizer .
#   docker run -p 8002:8002 -v priorizer-data:/data priorizer
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# The runtime dependencies at the versions the lock file pins, then the package itself.
COPY requirements.lock pyproject.toml README.md ./
COPY src ./src
RUN pip install --constraint requirements.lock . \
    && useradd --system --uid 10001 --home-dir /data --no-create-home priorizer \
    && mkdir -p /data && chown priorizer /data

USER priorizer
# Inside a container the service must listen beyond loopback to be reachable at all.
ENV PRIORIZER_HOST=0.0.0.0 \
    PRIORIZER_PORT=8002 \
    DATA_DIRECTORY=/data
VOLUME ["/data"]
EXPOSE 8002

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8002/health', timeout=4).status == 200 else 1)"]

CMD ["priorizer", "serve"]
