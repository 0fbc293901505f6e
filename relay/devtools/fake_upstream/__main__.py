"""``python -m relay.devtools.fake_upstream``: the fake's command line."""

from relay.devtools.fake_upstream.server import main

if __name__ == "__main__":
    main()
