"""The example plugin with a bug, for the test that an author sees their
own exception: `validate_settings` assumes a setting is always given, so
an uncaught KeyError escapes it. Built as `componentize broken_app`."""

from typing import List, Tuple

from app import Oauth2Server, PluginInfo  # noqa: F401 (exported as they are)
from app import ProvisioningTarget as Working


class ProvisioningTarget(Working):
    def validate_settings(self, settings: List[Tuple[str, str]]) -> None:
        values = dict(settings)
        if values["region"] not in ("emea", "apac"):  # KeyError: 'region'
            raise ValueError("unknown region")
        super().validate_settings(settings)
