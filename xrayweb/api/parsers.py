"""Multipart uploads whose file names try a path or control characters are refused (400), not
quietly cut down to a base name: a client that sends "../../x.png" or "a\\x00.png" learns its
file was not taken."""

import html

from django.conf import settings
from django.http import HttpResponseBadRequest
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from rest_framework.exceptions import ParseError
from rest_framework.parsers import DataAndFiles
from rest_framework.parsers import MultiPartParser as DrfMultiPartParser

from xrayweb.studies.images import filename_unsafe


class _StrictNames(DjangoMultiPartParser):
    def sanitize_file_name(self, file_name):
        if problem := filename_unsafe(html.unescape(file_name)):
            raise MultiPartParserError(problem)
        return super().sanitize_file_name(file_name)


class StrictMultiPartParser(DrfMultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        request = parser_context["request"]
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            parser = _StrictNames(meta, stream, request.upload_handlers, encoding)
            return DataAndFiles(*parser.parse())
        except MultiPartParserError as exc:
            raise ParseError(f"Multipart form parse error: {exc}.") from exc


class StrictUploadNamesMiddleware:
    """The same rule for the pages' multipart forms (the upload page), which Django parses
    itself: the form is parsed here first, with the strict names, before the CSRF check reads
    it. A refused name gets a 400 with the reason; nothing is stored. (The API parses its own
    requests with StrictMultiPartParser.)"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (
            request.method == "POST"
            and request.content_type == "multipart/form-data"
            and not request.path.startswith("/api/")
        ):
            try:
                parser = _StrictNames(
                    request.META, request, request.upload_handlers, request.encoding
                )
                request._post, request._files = parser.parse()
            except MultiPartParserError as exc:
                return HttpResponseBadRequest(
                    f"The upload was refused: {exc}. Nothing was stored.",
                    content_type="text/plain; charset=utf-8",
                )
        return self.get_response(request)
