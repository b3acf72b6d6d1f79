"""Multipart uploads whose file names try a path or control characters are refused (400), not
quietly cut down to a base name: a client that sends "../../x.png" or "a\\x00.png" learns its
file was not taken. The parser is shared with the API (xrayweb.api.parsers)."""

import html

from django.http import HttpResponseBadRequest
from django.http.multipartparser import MultiPartParser, MultiPartParserError

from xrayweb.studies.images import filename_unsafe


class StrictNamesParser(MultiPartParser):
    def sanitize_file_name(self, file_name):
        if problem := filename_unsafe(html.unescape(file_name)):
            raise MultiPartParserError(problem)
        return super().sanitize_file_name(file_name)


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
                parser = StrictNamesParser(
                    request.META, request, request.upload_handlers, request.encoding
                )
                request._post, request._files = parser.parse()
            except MultiPartParserError as exc:
                return HttpResponseBadRequest(
                    f"The upload was refused: {exc}. Nothing was stored.",
                    content_type="text/plain; charset=utf-8",
                )
        return self.get_response(request)
