"""synthscan consumer: Kafka image events in, verdicts with patch evidence out, nothing lost.

Public entry points::

    python -m consumer run [--set key=value ...]     # the service
    python -m consumer tail --topic verdicts          # print verdicts

    from consumer import Service, ServiceSettings
    service = Service(ServiceSettings(...)); thread = service.start(); service.wait_ready(60)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from consumer.serving.service import Service
    from consumer.settings import ServiceSettings

__all__ = ["Service", "ServiceSettings"]


def __getattr__(name: str) -> Any:
    """Import lazily: ``python -m consumer tail`` should not load torch."""
    if name == "Service":
        from consumer.serving.service import Service

        return Service
    if name == "ServiceSettings":
        from consumer.settings import ServiceSettings

        return ServiceSettings
    raise AttributeError(name)
