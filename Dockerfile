FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml ./
COPY accounts ./accounts
COPY billing ./billing
COPY relay ./relay
COPY console ./console
COPY templates ./templates
COPY locale ./locale
COPY manage.py ./
# The consoles' message catalogs are compiled here, in pure Python (Babel):
# the image needs no GNU gettext, and no .mo file is committed.
RUN pip install --no-cache-dir . && python -m relay.devtools.locales && useradd --system relay
USER relay
EXPOSE 8000
CMD ["gunicorn", "relay.asgi:application", "-c", "relay/server/gunicorn_conf.py", "--bind", "0.0.0.0:8000"]
