"""Math answer equivalence: normalisation, then symbolic equivalence through math-verify.

Follows the lessons of Huang et al. 2025, *Pitfalls of Rule- and Model-based Verifiers -- A Case Study
on Mathematical Reasoning* (arXiv:2505.22203): a rule verifier
with strong normalisation and symbolic equivalence, because every false negative on an
equivalent answer written another way is a wrong training signal, and because a gold answer that
cannot be read is an error, never a free reward.

What counts as the same answer (each rule has a line in tests/rewards/test_verifier.py):

- Layout is ignored: surrounding ``$…$``, ``\\(…\\)``, ``\\[…\\]`` and ``\\boxed{}``; ``\\left``/
  ``\\right``, ``\\displaystyle``, LaTeX spacing (``\\,``, ``\\!``, ``~``); ``\\dfrac``/``\\tfrac``;
  ``\\text{}``/``\\mathrm{}``/``\\mathbf{}`` wrappers; trailing ``.``, ``,``, ``;``.
- Numbers: ``1/2`` ≡ ``0.5`` ≡ ``\\frac{1}{2}``, ``3.0`` ≡ ``3``, ``x=3`` ≡ ``3``, exact symbolic
  forms (``2\\sqrt{2}`` ≡ ``\\sqrt{8}``); a decimal must match to math-verify's 6 rounded places,
  so ``0.333`` ≢ ``1/3``.
- Thousands separators (``,``, ``{,}``, a space or ``\\,`` between groups of three digits) are
  removed only when the whole answer is one number, so ``[100,200]`` stays an interval and
  ``1,2`` a pair.
- Units and currency after or before a number are dropped (``5 cm`` ≡ ``5``, ``\\$5`` ≡ ``5``,
  ``90^\\circ`` ≡ ``90``).
- Percent rule: ``p%`` reads as ``p/100`` *and* as the bare number ``p`` (``50%`` ≡ ``0.5`` and
  ``50%`` ≡ ``50``), because gold answers to "what percent" questions are written both ways; with
  no percent sign the numbers must be equal (``50`` ≢ ``0.5``).
- Sets are unordered (``\\{1,2\\}`` ≡ ``\\{2,1\\}``), intervals keep their brackets
  (``[1,2]`` ≢ ``[1,2)``), a list of values is not one of its values (``2, 3`` ≢ ``2``).
- Word answers (``yes``, ``Monday``) compare as case-folded text, since a word read as a product
  of symbols would make anagrams equal.
- Hedged answers (``either``, ``maybe``, ``possibly``, ``perhaps``, ``probably``) and empty answers
  are wrong; "2 or 3" is read by math-verify as the set {2, 3}, so it matches only that set.

math-verify's own timeouts use ``SIGALRM``, which only the main thread may set; off the main
thread (a reward run in a worker thread) they are switched off here rather than letting
math-verify's error handling turn the failure into a silent "not equal".
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

HEDGES = re.compile(r"\b(either|maybe|possibly|perhaps|probably|not sure)\b", re.IGNORECASE)
WORD_ANSWER = re.compile(r"^[A-Za-z][A-Za-z' -]*[A-Za-z]$")  # two letters or more
MATH_WORDS = frozenset({"pi", "inf", "infty", "infinity", "oo"})
_DELIMITERS = ((r"$$", r"$$"), (r"\[", r"\]"), (r"\(", r"\)"), ("$", "$"))
_DROP = re.compile(r"\\(?:left|right|displaystyle)(?![A-Za-z])|\\[!,;:]")
_FRACTIONS = re.compile(r"\\[dt]frac")
_WRAPPERS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mathit|operatorname|mbox)\s*\{([^{}]*)\}")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree")
_THOUSANDS = re.compile(r"^([-+]?\$?)(\d{1,3}(?:(?:,|\{,\}| )\d{3})+)(\.\d+)?(\s*(?:%|[A-Za-z]+)?)$")
_SCIENTIFIC = re.compile(r"^([-+]?\d+(?:\.\d+)?)[eE]([-+]?\d+)$")
_TRAILING = re.compile(r"[.,;:\s]+$")
_BAD_VALUES = ("zoo", "nan")  # sympy's complex infinity (a division by zero) and not-a-number


def normalize_answer(text: str) -> str:
    """The answer with layout, wrappers, separators and trailing punctuation removed (see module doc).

    Mathematical content is left to math-verify; this only removes what it does not read.
    """
    s = text.strip()
    for _ in range(3):  # "$\\boxed{5}$", "\\[\\boxed{5}\\]", ...
        before = s
        for opening, closing in _DELIMITERS:
            if s.startswith(opening) and s.endswith(closing) and len(s) >= len(opening) + len(closing):
                s = s[len(opening) : len(s) - len(closing)].strip()
                break
        s = _unwrap_command(s, ("\\boxed", "\\fbox")).rstrip(".").strip()
        if s == before:
            break
    s = s.replace("\\%", "%").replace("\\$", "$").replace("~", " ").replace("\\ ", " ")
    s = _DROP.sub("", s)
    s = _FRACTIONS.sub(r"\\frac", s)
    s = _DEGREES.sub("", s)
    while True:  # unwrap nested \text{\textbf{...}}
        unwrapped = _WRAPPERS.sub(r"\1", s)
        if unwrapped == s:
            break
        s = unwrapped
    s = re.sub(r"\s+", " ", s).strip()
    s = _TRAILING.sub("", s)
    match = _THOUSANDS.match(s)
    if match:
        sign, digits, decimals, rest = match.groups()
        s = sign + re.sub(r"\{,\}|,| ", "", digits) + (decimals or "") + rest
    s = _SCIENTIFIC.sub(r"\1\\times 10^{\2}", s)
    if s.startswith("$") and "$" not in s[1:]:  # currency: "$5"
        s = s[1:].strip()
    return s.replace("$", "")


def _unwrap_command(s: str, commands: tuple[str, ...]) -> str:
    """The argument of ``\\boxed{...}`` when it spans the whole of ``s``; otherwise ``s``."""
    for command in commands:
        if s.startswith(command + "{") and s.endswith("}"):
            depth = 0
            for index in range(len(command), len(s)):
                depth += {"{": 1, "}": -1}.get(s[index], 0)
                if depth == 0:
                    return s[len(command) + 1 : -1].strip() if index == len(s) - 1 else s
    return s


def is_hedged(answer: str) -> bool:
    """Whether the answer hedges between options ("either 2 or 3", "maybe 4")."""
    return bool(HEDGES.search(answer))


def math_equal(answer: str, gold: str, timeout_seconds: int | None = 5) -> bool:
    """Whether ``answer`` is mathematically equivalent to ``gold`` (rules in the module doc).

    ``answer`` and ``gold`` are the extracted final answers (strings). An empty or hedged answer is
    False. A gold answer that math-verify cannot read (or that reads as a division by zero) raises
    ``ValueError``: an unreadable gold would otherwise hand out free or impossible rewards.
    """
    if gold is None or not str(gold).strip():
        raise ValueError(f"gold answer {gold!r} cannot be parsed by math-verify: it is empty")
    gold_text = normalize_answer(str(gold))
    gold_parsed = _parse(gold_text, _timeout(timeout_seconds))
    if not gold_parsed:
        raise ValueError(
            f"gold answer {gold!r} cannot be parsed by math-verify; fix the dataset's answer column "
            f"(e.g. write it as LaTeX such as \\frac{{1}}{{2}} or as a plain number)"
        )
    if answer is None or not str(answer).strip() or is_hedged(str(answer)):
        return False
    answer_text = normalize_answer(str(answer))
    if not answer_text:
        return False
    if WORD_ANSWER.match(gold_text) and gold_text.lower() not in MATH_WORDS:
        return answer_text.casefold() == gold_text.casefold()
    answer_parsed = _parse(answer_text, _timeout(timeout_seconds))
    if not answer_parsed:
        return False
    from math_verify import verify

    return bool(verify(list(gold_parsed), list(answer_parsed), timeout_seconds=_timeout(timeout_seconds)))


def _timeout(seconds: int | None) -> int | None:
    return seconds if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=8192)
def _parse(text: str, timeout: int | None) -> tuple:
    """math-verify's reading of ``text`` as LaTeX (then as a plain expression); () when unreadable."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    if not text:
        return ()
    config = [LatexExtractionConfig(), ExprExtractionConfig()]
    parsed = parse(
        f"${text}$", extraction_config=config, fallback_mode="no_fallback", parsing_timeout=timeout
    )
    if not parsed:
        parsed = parse(text, extraction_config=config, fallback_mode="no_fallback", parsing_timeout=timeout)
    if parsed and str(parsed[0]) in _BAD_VALUES:
        return ()
    return tuple(parsed)
