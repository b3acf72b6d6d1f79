"""The API's multipart parser: file names are checked as parsed, with the pages' rule
(xrayweb.studies.middleware); and the STOW-RS body parser."""

from django.conf import settings
from django.http.multipartparser import MultiPartParserError
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, DataAndFiles
from rest_framework.parsers import MultiPartParser as DrfMultiPartParser

from xrayweb.dicomnet.stow import Part, parts_read
from xrayweb.studies.middleware import StrictNamesParser


class StrictMultiPartParser(DrfMultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        request = parser_context["request"]
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            parser = StrictNamesParser(meta, stream, request.upload_handlers, encoding)
            return DataAndFiles(*parser.parse())
        except MultiPartParserError as exc:
            raise ParseError(f"Multipart form parse error: {exc}.") from exc


class MultipartRelatedParser(BaseParser):
    """STOW-RS bodies: ``multipart/related; type="application/dicom"``, at most
    DICOMWEB_MAX_BYTES, parsed as they stream in, each part spooled to disk."""

    media_type = "multipart/related"

    def parse(self, stream, media_type=None, parser_context=None) -> list[Part]:
        return parts_read(
            stream=stream, content_type=media_type or "", limit=settings.DICOMWEB_MAX_BYTES
        )
