"""For a developer's machine and the tests, never imported by the relay
itself: the launcher behind ``python3 dev.py`` (``devstack``) and the fake
upstream (``fake_upstream``).

May import anything below the project's entry points.
"""
