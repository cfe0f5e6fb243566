"""gunicorn settings for authserver: `gunicorn -c gunicorn.conf.py wsgi:app` (the Dockerfile's
command; gunicorn also reads this file by itself when started from this folder).

The address stays on the command line (`--bind`); what is here keeps secrets out of the
access log, bounds what a request may send before the app sees it, warns when in-memory rate
limits would be counted per worker, and sizes workers, threads and timeouts (flags on the
command line, and WEB_CONCURRENCY for the worker count, still win). authserver/serving.py says
why each one is what it is.
"""

import os

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

# --- Processes, threads, timeouts and the proxy in front -----------------------------------
# Command-line flags still win (`--workers 4`); WEB_CONCURRENCY sets the worker count too.

# One worker process per core (argon2 hashing is CPU-bound; at least 2, so one busy or
# restarting worker never leaves the replica without one), each with threads for the waits
# (database, Redis, SMS/e-mail providers: a hung dependency holds a thread for seconds, not the
# process). Several threads also keep two slow clients from stalling the server: each holds
# one thread, never a whole worker (behind nginx, which buffers bodies, they hold none).
workers = int(os.environ.get("WEB_CONCURRENCY") or max(2, len(os.sched_getaffinity(0))))
threads = 8
# A request still running after `timeout` seconds is a hung worker (the app's own waits are
# bounded well below it); restarts and deploys give requests in flight as long to finish.
timeout = 30
graceful_timeout = 30
# Idle keep-alive connections (from nginx, or a client) are closed after this many seconds.
keepalive = 5
# Which peers may set X-Forwarded-Proto for gunicorn itself (FORWARDED_ALLOW_IPS, default
# loopback only; docker-compose.yml sets "*" because only nginx reaches the replicas). The
# client's address is the app's business: PROXY_FIX_HOPS.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
