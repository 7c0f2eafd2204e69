from django.core.management.base import BaseCommand, CommandError

from access.scopes import ALL_SCOPES, ScopeError
from access.services import create_api_key


class Command(BaseCommand):
    help = "Create an API key for an integration and print it once (it is stored only as a hash)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Who uses the key, e.g. 'shopify-sync'")
        parser.add_argument(
            "--scopes",
            nargs="+",
            required=True,
            help=f"Scopes such as customers:read orders:write products:* (or 'all'). Known: {', '.join(ALL_SCOPES)}",
        )
        parser.add_argument("--rate", default="", help="Throttle override, e.g. 600/min")

    def handle(self, *args, name, scopes, rate, **options):
        try:
            api_key, secret = create_api_key(name=name, scopes=scopes, rate=rate)
        except (ScopeError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(
            f"Created key {api_key.prefix} '{api_key.name}' with scopes: {' '.join(api_key.scopes)}"
        )
        self.stderr.write("Store it now: it cannot be shown again.")
        self.stdout.write(secret)
