from django.core.management.base import BaseCommand, CommandError

from xrayweb.directory.services import DirectoryUnreachable, directory_check


class Command(BaseCommand):
    help = (
        "Check every directory user against the directory now: turn off whoever it no longer "
        "lists in a role group (their API tokens revoked), set the others' roles and site."
    )

    def handle(self, *args, **options) -> None:
        try:
            counts = directory_check()
        except DirectoryUnreachable as error:
            raise CommandError(
                f"the directory could not be reached ({error}); the check stopped and "
                "turned nobody off for lack of an answer"
            ) from error
        if not counts["enabled"]:
            raise CommandError("directory sign-in is off: set LDAP_SERVER_URI")
        self.stdout.write(
            f"checked {counts['checked']}, removed {counts['removed']} "
            f"({counts['tokens_revoked']} API tokens revoked), changed {counts['changed']}"
        )
