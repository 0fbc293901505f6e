FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml ./
COPY accounts ./accounts
COPY billing ./billing
COPY relay ./relay
COPY templates ./templates
COPY manage.py ./
RUN pip install --no-cache-dir . && useradd --system relay
USER relay
EXPOSE 8000
CMD ["gunicorn", "relay.asgi:application", "-c", "relay/server/gunicorn_conf.py", "--bind", "0.0.0.0:8000"]
