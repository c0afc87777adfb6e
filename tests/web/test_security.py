"""web.security's pieces that need no server (the server itself is tried in test_serve.py)."""

from __future__ import annotations

import pytest

from engine.config import ServeConfig
from web.security import check_binding, host_name, is_loopback


@pytest.mark.parametrize("header, name", [("127.0.0.1:8765", "127.0.0.1"), ("LocalHost:80", "localhost"),
                                          ("[::1]:8765", "::1"), ("[::1]", "::1"), ("example.org", "example.org")])
def test_host_names(header, name) -> None:
    assert host_name(header) == name


def test_loopback_and_binding() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    check_binding(ServeConfig())  # loopback: no token needed
    check_binding(ServeConfig(host="0.0.0.0", token="t" * 20))
    with pytest.raises(ValueError, match="TAILOR_SERVE_TOKEN"):
        check_binding(ServeConfig(host="0.0.0.0"))
