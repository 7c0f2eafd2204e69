"""Security tests reuse the campaign tests' real parts (SMTP sink, push receiver, send settings)."""

from tests.integration.campaigns.conftest import push_receiver, send_settings, smtp_sink  # noqa: F401
