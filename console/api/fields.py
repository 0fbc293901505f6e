"""Input fields that take exactly the JSON types the OpenAPI schema names.

DRF's own fields are lenient: a text field takes 5 as "5", an integer field
takes "5", a boolean takes "yes", a slug takes "acme\\n". The schema promises
clients, and Schemathesis checks, that such input is refused with a 400.
"""

from __future__ import annotations

import re

from rest_framework import serializers


class Text(serializers.CharField):
    """Text, trimmed unless ``trim_whitespace=False``. The schema's maxLength
    is the length sent: DRF checks it after trimming, so 400 characters of
    which 200 are spaces would pass a limit of 300."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class Pattern(serializers.RegexField):
    """Text matching ``regex`` as a whole (``$`` alone would let "x\\n" through)."""

    def __init__(self, regex: str, **kwargs) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(regex, **kwargs)
        self.whole = re.compile(regex.removeprefix("^").removesuffix("$"))

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not self.whole.fullmatch(value):
            self.fail("invalid")
        return value


class Slug(serializers.SlugField):
    whole = re.compile(r"[-a-zA-Z0-9_]+")

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not self.whole.fullmatch(value):
            self.fail("invalid")
        return value


class Url(serializers.URLField):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class Integer(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class Boolean(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data
