"""Conformance suite for PII filters.

Fixture contract
----------------
A plugin's test class subclasses :class:`PIIFilterSuite`, sets
``capabilities`` to what its filter declares, and provides one fixture,
``pii_filter``, returning a **builder**::

    build(blocklist: Sequence[str] = ()) -> PIIFilter

that constructs the backend as production would (ideally through
``PluginHost().create("pii", NAME, BackendContext(options={"blocklist": [...]}))``)
with the given blocklist terms. Building with an invalid blocklist (an empty
or blank term) must raise ``LoomError`` with code ``PII_CONFIG_INVALID``.

Capabilities: ``phone``, ``email``, ``id`` (at least US SSNs) and
``blocklist``. Each gates the detection tests for that kind; a declared kind
is mandatory (its tests are core tier).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from loom_core.contracts.pii import PII_TOKENS, PIIFilter, PIIResult
from loom_core.errors import ErrorCode, LoomError
from loom_core.testing.base import ConformanceSuite, core, requires

Builder = Callable[..., PIIFilter]

#: Ordinary text every filter must leave byte-for-byte unchanged.
CLEAN_TEXTS: tuple[str, ...] = (
    "The meeting moved to 2024-01-15 at 10:30.",
    "Logged at 2024-01-15T10:20:30.123456Z and 2024-01-15T10:20:30+05:30.",
    "Upgrade from version 1.2.3 to 10.0.19045.3693 (build 4521).",
    "It costs $1,234.56, or EUR 1.234,56, or 12 500 yen.",
    "Chunk 01HF8XJ4ZK6Q3V7N2M5R9T0WBC replaces chunk-000123 and 123e4567-e89b-12d3-a456-426614174000.",
    "Server at 192.168.1.10:8420; took 1234567 ns; epoch 1700000000.",
    "Dates: 15/01/2024, 15.01.2024, 01/15/24; pi is 3.14159; score +5, delta -0.5.",
    "Plain prose with no personal data at all, \u00fcml\u00e4uts and \u6f22\u5b57.",
    "",
)

PHONES_INTERNATIONAL = ("+44 20 7946 0958", "+1-202-555-0143", "+49 30 901820", "+33 1 42 68 53 00")
PHONES_LOCAL = ("(202) 555-0143", "020 7946 0958", "202-555-0143")
EMAILS = ("jane.doe@example.com", "ops+alerts@mail.example.co.uk", "X_Y-1@sub.example.org")
SSNS = ("123-45-6789", "078-05-1121")
BLOCKLIST = ("Project Falcon", "bluebird")

_NEW_TOKEN = re.compile(r"\[[A-Z_:]+\]")


def _tokens(text: str) -> list[str]:
    return _NEW_TOKEN.findall(text)


class PIIFilterSuite(ConformanceSuite):
    """Guarantees of :class:`loom_core.contracts.pii.PIIFilter`.

    See the module docstring for the ``pii_filter`` builder fixture.
    """

    @pytest.fixture
    def plain_filter(self, pii_filter: Builder) -> PIIFilter:
        return pii_filter()

    def _redact(self, flt: PIIFilter, text: str) -> PIIResult:
        result = flt.redact(text)
        assert isinstance(result, PIIResult), f"redact returned {type(result).__name__}, not PIIResult"
        assert isinstance(result.text, str), "PIIResult.text must be str"
        return result

    def _assert_replaced(self, flt: PIIFilter, samples: Sequence[str], token: str) -> None:
        for sample in samples:
            out = self._redact(flt, f"Reach me at {sample} today.").text
            assert out == f"Reach me at {token} today.", (
                f"{sample!r} in a sentence became {out!r}; expected exactly 'Reach me at {token} today.'"
            )

    # -- shape --------------------------------------------------------------

    @core
    def test_filter_satisfies_contract(self, plain_filter: PIIFilter) -> None:
        """Proves the filter has ``redact`` and declares the suite's capabilities.

        Fix: give the backend ``capabilities`` equal to the test class's and a
        ``redact(text) -> PIIResult`` method.
        """
        assert isinstance(plain_filter, PIIFilter), "backend lacks redact/capabilities"
        assert frozenset(plain_filter.capabilities) == type(self).capabilities, (
            f"filter declares {sorted(plain_filter.capabilities)}, test class {sorted(type(self).capabilities)}"
        )

    # -- no harm to ordinary text --------------------------------------------

    @core
    @pytest.mark.parametrize("text", CLEAN_TEXTS)
    def test_clean_text_unchanged(self, plain_filter: PIIFilter, text: str) -> None:
        """Proves text without PII (dates, timestamps, versions, prices, ids, IPs) comes back unchanged.

        Fix: anchor patterns so they do not fire on digit runs that are part of
        dates, versions or identifiers; add checksums where the format has one.
        """
        result = self._redact(plain_filter, text)
        assert result.text == text, f"ordinary text was altered: {result.text!r}"
        assert sum(result.counts.values()) == 0, f"counts {dict(result.counts)} reported for clean text"

    @core
    def test_never_raises_on_arbitrary_unicode(self, plain_filter: PIIFilter) -> None:
        """Proves ``redact`` accepts any string (control chars, surrogates, emoji, long input).

        Fix: do not decode/encode inside the filter, and catch nothing: just
        make the patterns total.
        """
        rng = random.Random(20240115)  # noqa: S311 - reproducible fuzz input, not crypto
        alphabet = [chr(c) for c in range(0, 0x250)] + ["\ud800", "\U0001f511", "\u200b", "+", "@", "-", "(", ")"]
        samples = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200))) for _ in range(150)]
        samples.append("9" * 20000 + "@" + "a." * 5000)
        for sample in samples:
            self._redact(plain_filter, sample)

    @core
    def test_only_contract_tokens_introduced(self, pii_filter: Builder) -> None:
        """Proves the filter emits only ``[PHONE]``, ``[EMAIL]``, ``[ID]``, ``[REDACTED]`` and counts them.

        Fix: use :data:`loom_core.contracts.pii.PII_TOKENS` for replacements
        and count one per replacement under the same kind key.
        """
        flt = pii_filter(blocklist=list(BLOCKLIST))
        text = " / ".join([*PHONES_INTERNATIONAL, *EMAILS, *SSNS, *BLOCKLIST, "no pii here"])
        result = self._redact(flt, text)
        introduced = _tokens(result.text)
        assert set(introduced) <= set(PII_TOKENS.values()), f"unknown tokens {sorted(set(introduced))}"
        assert set(result.counts) <= set(PII_TOKENS), f"unknown count keys {sorted(result.counts)}"
        for kind, token in PII_TOKENS.items():
            assert result.counts.get(kind, 0) == introduced.count(token), (
                f"counts[{kind!r}]={result.counts.get(kind, 0)} but {introduced.count(token)} {token} in output"
            )

    @core
    def test_idempotent(self, pii_filter: Builder) -> None:
        """Proves filtering redacted output again changes nothing (tokens are never re-matched).

        Fix: leave existing ``[TOKEN]`` spans alone, including when a
        blocklist term equals a token word.
        """
        flt = pii_filter(blocklist=[*BLOCKLIST, "redacted", "phone"])
        texts = [
            " and ".join([*PHONES_INTERNATIONAL, *PHONES_LOCAL, *EMAILS, *SSNS, *BLOCKLIST]),
            "Already [PHONE] and [EMAIL] and [ID] and [REDACTED].",
            *CLEAN_TEXTS,
        ]
        for text in texts:
            once = self._redact(flt, text).text
            twice = self._redact(flt, once)
            assert twice.text == once, f"second pass changed {once!r} into {twice.text!r}"
            assert sum(twice.counts.values()) == 0, f"second pass counted {dict(twice.counts)}"

    @core
    def test_matches_not_logged_or_printed(self, pii_filter: Builder, secret_leak_check: Any) -> None:
        """Proves detected values never reach logs, output or the filter's repr.

        Fix: never log matched text; log counts per kind if anything.
        """
        flt = pii_filter(blocklist=list(BLOCKLIST))
        probe_email = "leak.probe.7731@example.net"
        self._redact(flt, f"contact {probe_email} about Project Falcon")
        secret_leak_check.assert_absent(probe_email, what="matched email", objects=[flt])
        secret_leak_check.assert_absent("Project Falcon", what="blocklist term", objects=[flt])

    # -- detection by kind ----------------------------------------------------

    @requires("phone")
    @core
    def test_international_phones(self, plain_filter: PIIFilter) -> None:
        """Proves ``+CC`` numbers with spaces or dashes become ``[PHONE]``.

        Fix: accept a ``+`` country code followed by digit groups separated by
        spaces, dots or dashes; replace the whole number, nothing around it.
        """
        self._assert_replaced(plain_filter, PHONES_INTERNATIONAL, PII_TOKENS["phone"])

    @requires("phone")
    @core
    def test_local_phones(self, plain_filter: PIIFilter) -> None:
        """Proves local formats ``(202) 555-0143``, ``020 7946 0958``, ``202-555-0143`` become ``[PHONE]``.

        Fix: add patterns for NANP and trunk-prefix (leading 0) numbers with
        separators.
        """
        self._assert_replaced(plain_filter, PHONES_LOCAL, PII_TOKENS["phone"])

    @requires("email")
    @core
    def test_emails(self, plain_filter: PIIFilter) -> None:
        """Proves e-mail addresses (with ``+``, dots, sub-domains) become ``[EMAIL]``.

        Fix: match ``local@domain.tld`` including ``+``/``.``/``-`` in the local part.
        """
        self._assert_replaced(plain_filter, EMAILS, PII_TOKENS["email"])

    @requires("id")
    @core
    def test_us_ssn(self, plain_filter: PIIFilter) -> None:
        """Proves US social security numbers ``AAA-GG-SSSS`` become ``[ID]``.

        Fix: add an SSN pattern; exclude impossible areas (000, 666, 9xx).
        """
        self._assert_replaced(plain_filter, SSNS, PII_TOKENS["id"])

    @core
    def test_found_wherever_text_places_it(self, pii_filter: Builder) -> None:
        """Proves each declared kind is found at the start and end of the text and of a line, after
        a tab, and inside quotes, brackets and parentheses.

        Memories are notes and lists: a number alone on a line is the common case, not the odd one.
        Fix: bound matches by "not a word character" (or the text's ends), not by a space.
        """
        samples = {
            "phone": (PHONES_INTERNATIONAL[0], PII_TOKENS["phone"]),
            "email": (EMAILS[0], PII_TOKENS["email"]),
            "id": (SSNS[0], PII_TOKENS["id"]),
            "blocklist": (BLOCKLIST[0], PII_TOKENS["blocklist"]),
        }
        flt = pii_filter(blocklist=list(BLOCKLIST)) if "blocklist" in type(self).capabilities else pii_filter()
        places = ("{}", "Contact:\n{}\nthanks", "Contact:\r\n{}\r\n", "name\t{}\tnote", '"{}"', "({})",
                  "[{}]", "'{}'", "- {}\n- next")
        for kind in sorted(type(self).capabilities & set(samples)):
            value, token = samples[kind]
            for place in places:
                text = place.format(value)
                out = self._redact(flt, text).text
                assert out == place.format(token), f"{kind} in {place!r} became {out!r}"

    @requires("blocklist")
    @core
    def test_blocklist_case_insensitive_whole_words(self, pii_filter: Builder) -> None:
        """Proves blocklist terms are replaced case-insensitively, as whole words only.

        ``bluebird`` must not match inside ``bluebirds``. Fix: compare
        case-insensitively and require non-word characters (or the text's
        ends) on both sides of a match.
        """
        flt = pii_filter(blocklist=list(BLOCKLIST))
        result = self._redact(flt, "PROJECT FALCON met Bluebird; bluebirds and project falconry stay.")
        assert result.text == "[REDACTED] met [REDACTED]; bluebirds and project falconry stay.", result.text
        assert result.counts.get("blocklist") == 2, f"counts {dict(result.counts)}"

    @requires("blocklist")
    @core
    @pytest.mark.parametrize("bad", [[""], ["   "], ["ok", ""]])
    def test_invalid_blocklist_refused(self, pii_filter: Builder, bad: list[str]) -> None:
        """Proves a blank blocklist term is refused with ``PII_CONFIG_INVALID`` at build time.

        A blank term would redact nothing or everything; either is silent.
        Fix: validate the blocklist in the factory and raise the coded error.
        """
        with pytest.raises(LoomError) as info:
            pii_filter(blocklist=bad)
        assert info.value.code is ErrorCode.PII_CONFIG_INVALID, f"raised {info.value.code}"


__all__ = ["BLOCKLIST", "CLEAN_TEXTS", "EMAILS", "PHONES_INTERNATIONAL", "PHONES_LOCAL", "SSNS", "PIIFilterSuite"]
