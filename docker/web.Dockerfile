# The web tier: Django under gunicorn, no torch (the web process never imports it).
# Build from the repository root:  docker build -f docker/web.Dockerfile -t xrayweb-web .
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    XRAYWEB_DATA_DIR=/data \
    STATIC_ROOT=/srv/static

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
RUN pip install . "gunicorn==23.0.0" \
 && mkdir -p /data /srv/static \
 && chown -R xrayweb:xrayweb /data /srv/static

USER xrayweb
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"
CMD ["gunicorn", "xrayweb.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", \
     "--timeout", "60", "--access-logfile", "-"]
