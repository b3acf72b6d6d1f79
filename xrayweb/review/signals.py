"""What review tells the apps above it, which it never imports."""

from django.dispatch import Signal

# Sent once a reading that makes a study's label final is committed (by review_submit), with
# ``review_id``. The DICOM node connects to it and sends the reading to its destinations.
reading_finalized = Signal()
