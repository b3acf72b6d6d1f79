class ClassifierError(Exception):
    """Base class for errors raised by the classifier package."""


class BundleError(ClassifierError):
    """A model bundle is missing, unreadable or inconsistent."""


class ImageDecodeError(ClassifierError):
    """An input image cannot be turned into a model input."""
