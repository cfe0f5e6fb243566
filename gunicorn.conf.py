"""gunicorn settings for authserver: `gunicorn -c gunicorn.conf.py wsgi:app` (the Dockerfile's
command; gunicorn also reads this file by itself when started from this folder).

Workers, threads and the address stay on the command line (or WEB_CONCURRENCY); what is here
keeps secrets out of the access log, bounds what a request may send before the app sees it,
and warns when in-memory rate limits would be counted per worker. authserver/serving.py says
why each one is what it is.
"""

from authserver import serving

# Metrics: every worker writes to one folder (a fresh temporary one unless
# PROMETHEUS_MULTIPROC_DIR names one), emptied as the master starts; /metrics adds them up.
serving.metrics_directory()
on_starting = serving.clean_metrics_directory
child_exit = serving.worker_exited
on_exit = serving.remove_own_metrics_directory

# The access log on stdout, without query strings (a magic link's token is in one); with
# LOG_FORMAT=json (the default here) it and gunicorn's error log are JSON lines like the app's.
accesslog = "-"
access_log_format = serving.ACCESS_LOG_FORMAT
logconfig_dict = serving.logging_config() or {}

# Oversized request lines and headers are refused before the app, as problem documents.
limit_request_line = serving.LIMIT_REQUEST_LINE
limit_request_fields = serving.LIMIT_REQUEST_FIELDS
limit_request_field_size = serving.LIMIT_REQUEST_FIELD_SIZE
serving.answer_refusals_as_problems()

# memory:// rate limits and several workers: each worker would count on its own.
when_ready = serving.warn_if_limits_per_worker
