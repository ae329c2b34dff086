"""Domain exceptions. Edges map them to their own protocol (HTTP, HL7, DICOM).

    DomainError
    ├── InvalidTransition   a state change the worklist table forbids
    ├── NotPermitted        the user may not do this
    ├── NotFound            no such item (or not visible to this user)
    ├── Conflict            someone else holds it / duplicate
    └── InvalidInput        the request itself is malformed
"""


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""


class InvalidTransition(DomainError):
    pass


class NotPermitted(DomainError):
    pass


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    pass


class InvalidInput(DomainError):
    pass
