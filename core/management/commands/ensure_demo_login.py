from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the demo superuser if it does not exist (refused in production settings)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", required=True)

    def handle(self, *args, username, password, **options):
        if settings.SETTINGS_MODULE.endswith("production"):
            raise CommandError("Refusing to create a demo login with production settings.")
        user_model = get_user_model()
        if user_model.objects.filter(username=username).exists():
            self.stdout.write(f"Demo login '{username}' already exists.")
            return
        user_model.objects.create_superuser(username, f"{username}@example.com", password)
        self.stdout.write(f"Created demo login '{username}'.")
