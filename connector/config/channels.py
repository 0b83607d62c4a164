"""Channel grouping: the first rule of ``mappings/channels.yaml`` that matches names the channel."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from connector.config.mappings import ChannelRules, Condition

Test = Callable[[dict[str, str]], bool]


def _compile(cond: Condition, lists: dict[str, list[str]]) -> Test:
    field = cond.field
    if cond.equals is not None:
        wanted = cond.equals.lower()
        return lambda t: t[field] == wanted
    if cond.in_ is not None or cond.in_list is not None:
        values = frozenset(v.lower() for v in (cond.in_ or lists[cond.in_list or ""]))
        return lambda t: t[field] in values
    if cond.regex is not None:
        pattern = re.compile(cond.regex, re.IGNORECASE)
        return lambda t: pattern.search(t[field]) is not None
    needle = (cond.contains or "").lower()
    return lambda t: needle in t[field]


class ChannelClassifier:
    """Classify (source, medium, campaign, landing page); distinct inputs are cached."""

    def __init__(self, rules: ChannelRules) -> None:
        self.default = rules.default
        self.direct = rules.direct
        self._rules: list[tuple[str, list[Test], list[Test]]] = [
            (
                rule.channel,
                [_compile(c, rules.lists) for c in rule.all],
                [_compile(c, rules.lists) for c in rule.any],
            )
            for rule in rules.rules
        ]
        self.classify = lru_cache(maxsize=65536)(self._classify)

    def _classify(
        self, source: str, medium: str, campaign: str = "", landing_page: str = ""
    ) -> str:
        touch = {
            "source": source.strip().lower(),
            "medium": medium.strip().lower(),
            "campaign": campaign.strip().lower(),
            "landing_page": landing_page.strip().lower(),
        }
        for channel, all_tests, any_tests in self._rules:
            if all(test(touch) for test in all_tests) and (
                not any_tests or any(test(touch) for test in any_tests)
            ):
                return channel
        return self.default
