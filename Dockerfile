FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 FLASK_APP=authserver
WORKDIR /app

# Runtime dependencies only, every transitive version as requirements.lock pins it (the
# test tools in the lock are not installed: -c constrains, it does not add).
COPY requirements.txt requirements.lock ./
RUN pip install --no-cache-dir -r requirements.txt -c requirements.lock

COPY authserver authserver
COPY migrations migrations
COPY templates templates
COPY static static
COPY wsgi.py gunicorn.conf.py docker-entrypoint.sh ./

# A fixed numeric user, so Kubernetes can check runAsNonRoot (deploy/k8s/).
RUN groupadd --system --gid 10001 authserver \
    && useradd --system --uid 10001 --gid 10001 --home /app authserver \
    && mkdir -p /app/instance && chown authserver:authserver /app/instance
USER 10001:10001

EXPOSE 8000
ENTRYPOINT ["./docker-entrypoint.sh"]
# gunicorn.conf.py: workers from the cores (or WEB_CONCURRENCY), threads, timeouts, access
# log on stdout without query strings (magic-link tokens), request size limits answered as
# problems, and a warning when memory:// rate limits meet >1 worker.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "--bind", "0.0.0.0:8000", "wsgi:app"]
