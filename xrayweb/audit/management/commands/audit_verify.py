from django.core.management.base import BaseCommand, CommandError

from xrayweb.audit.selectors import chains_verify
from xrayweb.audit.services import chains_check


class Command(BaseCommand):
    help = (
        "Walk the hash chains of the audit trail and the readings; exit non-zero, naming the "
        "first bad row, if any row was changed, removed or inserted behind the application."
    )

    def handle(self, *args, **options):
        broken = []
        results = chains_verify()
        for chain, checked, problem in results:
            if problem is None:
                self.stdout.write(f"{chain}: {checked} rows, chain intact")
            else:
                self.stdout.write(f"{chain}: BROKEN after {checked} good rows: {problem}")
                broken.append(problem)
        chains_check(via="command", results=results)
        if broken:
            raise CommandError(f"the audit trail was tampered with: {broken[0]}")
