from config.errors import InvalidInput


class ImageryError(InvalidInput):
    """A source file or layer that cannot be ingested; the message says why, for a person."""

    code = "invalid_imagery"
