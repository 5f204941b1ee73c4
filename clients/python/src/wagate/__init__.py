"""Python client for the wagate WhatsApp gateway.

    import wagate
    with wagate.Client("http://127.0.0.1:8080", token) as wa:
        wa.send_message("4", "3001112233", "Le recordamos su cita mañana a las 10:00")

``wagate.AsyncClient`` has the same methods for asyncio; ``wagate.compat``
holds the drop-in for the old ``whatsapp_baileys_client``."""

from ._core import (
    Contact,
    Event,
    InboundMessage,
    InboundPage,
    Message,
    MessagePage,
    Org,
    PairCode,
    QrCode,
    SendingPolicy,
    SessionStatus,
    StateChange,
    When,
)
from .aio import AsyncClient
from .client import Client
from .errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TimeoutError,
    TransportError,
    WagateError,
)

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "Contact",
    "Event",
    "InboundMessage",
    "InboundPage",
    "Message",
    "MessagePage",
    "NotFoundError",
    "Org",
    "PairCode",
    "PermissionDeniedError",
    "QrCode",
    "RateLimitError",
    "SendingPolicy",
    "ServerError",
    "SessionStatus",
    "StateChange",
    "TimeoutError",
    "TransportError",
    "When",
    "WagateError",
    "__version__",
]
