"""Renderers for the API's file downloads. The views return the file themselves; these let
content negotiation accept `Accept: text/csv` or `application/dicom`, and render an error met
on the way as JSON text (JSON stays the default for every other request)."""

import json

from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response


class _FileRenderer(BaseRenderer):
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, bytes | str):
            return data
        return json.dumps(data).encode()


class CsvRenderer(_FileRenderer):
    media_type = "text/csv"
    format = "csv"


class DicomRenderer(_FileRenderer):
    media_type = "application/dicom"
    format = "dcm"


CSV_RENDERERS = [JSONRenderer, CsvRenderer]
DICOM_RENDERERS = [JSONRenderer, DicomRenderer]


class FileDownloadMixin:
    """For views that answer with a file: an error is always the API's JSON, whatever format
    the request asked for."""

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class DicomJsonRenderer(JSONRenderer):
    """The DICOM JSON model (PS3.18 Annex F), e.g. a STOW-RS response."""

    media_type = "application/dicom+json"
    format = "dicomjson"
