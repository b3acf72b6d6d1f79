class ApplicationError(Exception):
    """The one web-side error type: a message fit to show the user, and an HTTP status."""

    def __init__(self, message: str, *, status: int = 400, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra = extra or {}
