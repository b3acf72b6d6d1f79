# The model tier: Celery workers for the "inference" (and "training") queues on a CUDA
# PyTorch base. The model loads in each worker child on its first task, never in the
# prefork parent, so CUDA is safe with prefork.
# Build from the repository root:  docker build -f docker/worker.Dockerfile -t xrayweb-worker .
FROM pytorch/pytorch:2.7.0-cuda12.8-cudnn9-runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    XRAYWEB_DATA_DIR=/data \
    INFERENCE_DEVICE=cuda

RUN groupadd --gid 10001 xrayweb \
 && useradd --uid 10001 --gid xrayweb --home-dir /app --shell /usr/sbin/nologin xrayweb

# python-ldap (directory sign-in) compiles against OpenLDAP's client library.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libldap2-dev libsasl2-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md manage.py ./
COPY xrayweb ./xrayweb
COPY classifier ./classifier
COPY training ./training
COPY templates ./templates
COPY static ./static
# The base image's torch satisfies the "ml" extra's range; pip adds what is missing.
RUN pip install ".[ml]" \
 && mkdir -p /data \
 && chown -R xrayweb:xrayweb /data

USER xrayweb
HEALTHCHECK --interval=60s --timeout=20s --start-period=60s --retries=3 \
  CMD celery -A xrayweb inspect ping --destination "celery@$HOSTNAME" --timeout 10 || exit 1
CMD ["celery", "-A", "xrayweb", "worker", "--queues", "inference", "--concurrency", "1", \
     "--hostname", "celery@%h", "--loglevel", "INFO"]
