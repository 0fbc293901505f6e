"""``python -m relay.server relay.asgi:application -c python:relay.server.gunicorn_conf``:
gunicorn, once the environment its configuration reads has been checked.

gunicorn reads ``WEB_CONCURRENCY`` itself, with a bare ``int()``, as it is
imported and before it loads any configuration: ``abc`` was a traceback of
gunicorn's own, ``-1`` its "Value must be positive", and nothing of the
relay's had run. So the variables are read here first, and gunicorn is
imported only once they are known to be good. The arguments are gunicorn's.
"""

import sys

from relay.server import environment


def main() -> None:
    environment.read()  # exits with one line on a bad value
    from gunicorn.app.wsgiapp import run

    sys.argv[0] = "gunicorn"
    run(prog="gunicorn")


if __name__ == "__main__":
    main()
