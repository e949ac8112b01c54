#!/bin/sh
# The auth service image's entrypoint: migrate, then become the command (by
# default `amplify-auth-server`, the image's CMD).
#
# Migrating here, before the server, makes an unreachable or unmigratable
# database stop the container with one clear line and exit code 1, which
# docker-compose shows and restarts on, instead of a half-started server.
# `exec` hands PID 1 to the server, so `docker stop`'s SIGTERM reaches it and
# it shuts down gracefully. tests/containers runs this very file natively.
set -eu
amplify-auth-server migrate
exec "$@"
