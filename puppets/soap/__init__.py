"""SOAP clients of the MSNP13-18 services, one module per service: ``abservice`` (address
book), ``sharing`` (membership lists), ``oim`` (sending offline messages), ``rsi``
(reading them). ``base`` holds the POST and the typed errors."""

from .base import SoapError, SoapFault, SoapHTTPError
from .endpoints import ServiceURLs

__all__ = ["ServiceURLs", "SoapError", "SoapFault", "SoapHTTPError"]
