"""Ingest-time inspection: flag memories that look like markup or like instructions to a model.

An agent's memory is read back into prompts later, so a chunk carrying HTML or a line such as
"ignore all previous instructions" is a way to steer a future model call (stored prompt
injection). The memory server records such input as an audit event but stores it unchanged and
never refuses it: the detectors are heuristics, and a memory about HTML or about prompt injection
is legitimate content. Findings are rule names only, never the matched text. Every pattern
runs in time linear in the text (no quantifier may match a line break where another one can):
content of a million characters is accepted, and the scan holds the GIL.
"""

from __future__ import annotations

import re

#: markup that a renderer or a model would treat as active: scripts, frames, handlers, URLs
_ACTIVE_HTML = re.compile(
    r"<\s*/?\s*(?:script|iframe|frame|object|embed|style|svg|form|input|meta|link|base)\b"
    r"|\bon[a-z]{3,16}\s*=\s*['\"]"
    r"|\b(?:javascript|vbscript|data\s*:\s*text/html)\s*:",
    re.IGNORECASE,
)
_HTML_TAG = re.compile(r"</?[a-z][a-z0-9-]*(?:\s[^<>]{0,512})?/?>", re.IGNORECASE)
_INSTRUCTIONS = re.compile(
    r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+|the\s+|your\s+)*(?:previous|prior|above|earlier|"
    r"preceding|system)\s+(?:instructions?|prompts?|rules|directions|messages)"
    r"|\b(?:new|updated|real)\s+(?:system\s+)?instructions?\s*:"
    r"|\byou\s+are\s+now\s+(?:in\s+)?(?:developer\s+mode|an?\s+unrestricted|jailbroken|dan\b)"
    r"|\b(?:reveal|print|show|repeat)\s+(?:your|the)\s+(?:system\s+prompt|hidden\s+instructions)"
    r"|<\|im_(?:start|end)\|>|\[/?INST\]|<<\s*/?SYS\s*>>|^[ \t]*#{2,}[ \t]*(?:system|instruction)s?[ \t]*:?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
# zero-width and bidirectional controls, and Unicode tag characters: text a reader does not see
_HIDDEN = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]")

RULES = ("active_html", "html_markup", "instruction_injection", "hidden_characters")


# words without which no instruction rule can match: most text is ruled out by substring tests
_INSTRUCTION_WORDS = ("ignore", "disregard", "forget", "override", "instruction", "you are now", "prompt",
                      "im_start", "im_end", "inst]", "sys>>", "##")


def findings(text: str) -> list[str]:
    """The names of the rules ``text`` trips, in :data:`RULES` order (empty: nothing suspicious)."""
    found: list[str] = []
    lowered = text.lower()
    if ("<" in text or "script" in lowered or "text/html" in lowered) and _ACTIVE_HTML.search(text):
        found.append("active_html")
    elif "<" in text and _HTML_TAG.search(text):
        found.append("html_markup")
    if any(word in lowered for word in _INSTRUCTION_WORDS) and _INSTRUCTIONS.search(text):
        found.append("instruction_injection")
    if not text.isascii() and _HIDDEN.search(text):
        found.append("hidden_characters")
    return found
