# Moodlens production image: the runtime lock only (ONNX Runtime serving, no training
# framework), gunicorn, non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_ENV=production \
    MODELS_DIR=/app/models \
    INSTANCE_DIR=/app/instance \
    OMP_NUM_THREADS=2

# ffmpeg decodes browser recordings (WebM/Opus, MP4/AAC); libsndfile reads WAV/FLAC/OGG.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libsndfile1 curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Locked versions with hashes: the image gets what the models were measured with.
COPY requirements.txt .
RUN pip install --require-hashes -r requirements.txt

RUN useradd --create-home --uid 10001 moodlens
COPY --chown=moodlens:moodlens . .
RUN mkdir -p /app/instance && chown moodlens:moodlens /app/instance

USER moodlens
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1

CMD ["sh", "-c", "alembic upgrade head && exec gunicorn -c gunicorn_config.py wsgi:app"]
