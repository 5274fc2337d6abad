"""The scenario suite's marker: `@pytest.mark.settings(name=value)` changes the service's CHATSCRIBE settings
for one scenario (a low rate, a larger file limit) without a fixture per variation."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "settings(**values): CHATSCRIBE settings for the scenario's service")
