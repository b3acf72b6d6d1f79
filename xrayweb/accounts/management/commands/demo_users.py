import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from xrayweb.accounts.services import demo_users_ensure


class Command(BaseCommand):
    help = "Create (or reset) one demo account per role and print the credentials."

    def add_arguments(self, parser):
        parser.add_argument("--password", default=os.environ.get("DEMO_PASSWORD", "xrayweb-demo"))

    def handle(self, *args, password: str, **options):
        if settings.PRODUCTION:
            # It resets the password of an account named "admin", a superuser: never in
            # production (docker/README.md: createsuperuser there).
            raise CommandError("demo_users is for `make run` only: refused in production")
        users = demo_users_ensure(password=password)
        self.stdout.write("Demo accounts (username / password / role):")
        for username, role in users:
            self.stdout.write(f"  {username:<12} {password:<16} {role}")
