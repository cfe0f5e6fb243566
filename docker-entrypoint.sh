#!/bin/sh
# Bring the schema up to date, then hand over to the server (gunicorn by default).
set -e
flask --app authserver db upgrade
exec "$@"
