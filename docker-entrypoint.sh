#!/bin/sh
# Bring the schema up to date, then hand over to the server (gunicorn by default).
# Replicas may start together: migrations/env.py holds a per-database lock around the run, so
# one migrates and the others wait for it (MIGRATE_LOCK_TIMEOUT) and find nothing left to do.
set -e
flask --app authserver db upgrade
exec "$@"
