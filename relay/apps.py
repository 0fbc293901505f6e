from django.apps import AppConfig


class RelayConfig(AppConfig):
    name = "relay"
    verbose_name = "Relay and channels"

    def ready(self) -> None:
        # Every process that loads Django announces its catalog changes, not
        # only those that happen to import relay.operations: a Celery worker
        # that auto-disables a channel must empty the web processes' caches
        # at once, not a TTL later.
        from relay.catalog import invalidation

        invalidation.connect()
