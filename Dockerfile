# PortWatch image: web, worker and beat run from it with different commands
# (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEBUG=0 \
    PORTWATCH_VAR_DIR=/var/lib/portwatch

RUN apt-get update \
    && apt-get install -y --no-install-recommends nmap masscan libldap-2.5-0 libsasl2-2 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt requirements-sso.txt ./
# Single sign-on included: python-ldap builds against OpenLDAP's headers, removed again after.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libldap2-dev libsasl2-dev \
    && pip install --no-cache-dir -r requirements.txt -r requirements-sso.txt \
    && apt-get purge -y gcc libldap2-dev libsasl2-dev && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*

COPY . .
RUN useradd --system --home-dir /var/lib/portwatch --shell /usr/sbin/nologin portwatch \
    && mkdir -p /var/lib/portwatch \
    && SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v0 \
    && chown -R portwatch /var/lib/portwatch

# web and beat run unprivileged; the worker runs as root in compose so that
# nmap may send raw packets (SYN and UDP scans), and masscan (fast discovery) at all.
USER portwatch
EXPOSE 8000
# WEB_WORKERS (a process per core) and WEB_THREADS size the web tier (README: Sizing).
CMD ["sh", "-c", "exec gunicorn portwatch.wsgi --bind 0.0.0.0:8000 --workers ${WEB_WORKERS:-3} --threads ${WEB_THREADS:-4} --access-logfile - --no-control-socket"]
