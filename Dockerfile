# The AMPLIfy Auth server. Build from the repository root:
#   docker build -t amplify-auth .
# docker-compose.yml builds it as its auth-service service (docs/deployment.md).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/amplify-auth
COPY pyproject.toml README.md ./
COPY amplify_auth_client ./amplify_auth_client
COPY amplify_auth_server ./amplify_auth_server
COPY stateless_microservice ./stateless_microservice
# server: the app; cli: auth-cli on PATH, for `docker compose exec auth-service auth-cli ...`.
RUN pip install ".[server,cli]"

COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

# Not root. Its home is the working directory, where ADMIN_TOKEN_FILE points:
# with no AUTH_ADMIN_TOKEN the server mints an admin token there on first
# start (mode 0600), and auth-cli run in the container finds it there.
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/amplify-auth amplify
USER amplify
WORKDIR /var/lib/amplify-auth

# 0.0.0.0 inside the container only: docker-compose.yml publishes the port on
# the host's loopback. Anything wider wants TLS in front (docs/security.md).
ENV HOST=0.0.0.0 \
    PORT=8000 \
    ADMIN_TOKEN_FILE=/var/lib/amplify-auth/amplify_auth.admin-token
EXPOSE 8000

ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["amplify-auth-server"]
