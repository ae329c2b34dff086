"""Orthanc REST failures, translated at one seam (as httpx's map_httpcore_exceptions does).

    OrthancError
    ├── OrthancUnavailable   connection refused, timeout, 5xx: retry later
    └── OrthancResourceGone  404 for a resource we asked for: do not retry
"""


class OrthancError(Exception):
    pass


class OrthancUnavailable(OrthancError):
    pass


class OrthancResourceGone(OrthancError):
    pass


class OrthancRejected(OrthancError):
    """4xx other than 404: our request was wrong (e.g. Orthanc could not parse a file)."""
