# The image runs the wheel that tests/test_packaging.py builds and tests: the
# first stage builds it (from an sdist, with the consoles' catalogs compiled),
# the second installs it. Nothing of the source tree is on the path at run time
# but manage.py.

FROM python:3.11-slim AS build
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md manage.py ./
COPY accounts ./accounts
COPY billing ./billing
COPY relay ./relay
COPY console ./console
COPY templates ./templates
COPY locale ./locale
# The message catalogs are compiled here, in pure Python (Babel): the image
# needs no GNU gettext, and no .mo file is committed. Run as a script, so the
# relay package (and its dependencies) need not be importable yet.
RUN pip install "babel>=2.14" "setuptools>=68" \
    && python relay/devtools/locales.py \
    && python -c "import setuptools.build_meta as b; b.build_sdist('/dist')" \
    && pip wheel --no-deps --no-build-isolation -w /dist /dist/embeddings_relay-*.tar.gz

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY --from=build /dist/*.whl /tmp/
RUN pip install /tmp/embeddings_relay-*.whl && rm /tmp/*.whl && useradd --system relay
COPY manage.py ./
USER relay
EXPOSE 8000
CMD ["python", "-m", "relay.server", "relay.asgi:application", "-c", "python:relay.server.gunicorn_conf", "--bind", "0.0.0.0:8000"]
