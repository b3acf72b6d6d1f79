import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from xrayweb.dicomnet.listener import Listener, ListenerConfig, allowed_peers
from xrayweb.dicomnet.receiving import service_user


class Command(BaseCommand):
    help = (
        "Run the DICOM Storage SCP (C-ECHO; C-STORE of chest CR and DX films) on DICOM_HOST:"
        "DICOM_PORT as DICOM_AE_TITLE, until SIGTERM or Ctrl-C."
    )

    def handle(self, *args, **options) -> None:
        config = ListenerConfig(
            ae_title=settings.DICOM_AE_TITLE,
            host=settings.DICOM_HOST,
            port=settings.DICOM_PORT,
            allowed_calling_aets=settings.DICOM_ALLOWED_CALLING_AETS,
            max_associations=settings.DICOM_MAX_ASSOCIATIONS,
            network_timeout=settings.DICOM_NETWORK_TIMEOUT,
            tls_cert=settings.DICOM_TLS_CERT,
            tls_key=settings.DICOM_TLS_KEY,
            tls_ca=settings.DICOM_TLS_CA,
            refusal_audit_seconds=settings.DICOM_REFUSAL_AUDIT_SECONDS,
            max_bytes=settings.MAX_UPLOAD_BYTES,
        )
        try:
            peers = allowed_peers(config.allowed_calling_aets)
        except ValueError as exc:
            raise CommandError(f"DICOM_ALLOWED_CALLING_AETS: {exc}") from exc
        anywhere = sorted(title for title, networks in peers.items() if networks is None)
        if settings.PRODUCTION and (not peers or anywhere):
            raise CommandError(
                "in production every allowed calling AE title is tied to its host or network "
                f"(DICOM_ALLOWED_CALLING_AETS=AET@10.1.2.3,...); not tied: {anywhere or 'all'}"
            )
        listener = Listener(config, user=service_user())
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        listener.start()
        allowed = ", ".join(config.allowed_calling_aets) or "any calling AE title"
        tls = " over TLS" if config.tls_cert else ""
        self.stdout.write(
            f"DICOM listener on {config.host}:{listener.port}{tls} as {config.ae_title} "
            f"({allowed}; studies uploaded by {settings.DICOM_SERVICE_USER})",
        )
        self.stdout.flush()
        stop.wait()
        listener.stop()
        self.stdout.write("DICOM listener stopped")
