"""What inference tells the apps above it, which it never imports."""

from django.dispatch import Signal

# Sent once a batch of predictions is committed (by predictions_record), with
# ``prediction_ids``. The DICOM node connects to it and sends the results to its destinations
# (xrayweb.dicomnet.apps).
predictions_recorded = Signal()
