# Layan: one image for the web server (gunicorn), the worker (qcluster) and the
# one-off migrate/schedules step. Built by docker-compose.yml.
FROM python:3.12-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

# No system packages needed: psycopg's binary wheel bundles libpq, and the health
# checks use Python itself instead of curl.
WORKDIR /app

# torch first and CPU-only: the default wheel pulls several GB of CUDA libraries.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install "torch==2.13.0" --index-url "${TORCH_INDEX_URL}"

# Dependencies before the code, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p agent_project tenants knowledge conversations followups contacts channels tools \
    && pip install . && pip uninstall -y layan

COPY . .
RUN pip install --no-deps . \
    && DJANGO_SETTINGS_MODULE=agent_project.settings DATABASE_URL=postgres://build@localhost/build \
       SECRET_KEY=collectstatic-only DEBUG=false python manage.py collectstatic --noinput

RUN useradd --create-home --uid 1000 layan \
    && mkdir -p /app/var/media /tmp/prometheus \
    && chown -R layan:layan /app/var /tmp/prometheus
USER layan

ENV PORT=8000 \
    DEBUG=false \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
EXPOSE 8000

CMD ["gunicorn", "-c", "agent_project/gunicorn_conf.py", "agent_project.wsgi"]
