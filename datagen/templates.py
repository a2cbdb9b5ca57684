"""A tiny template language used by every generator.

Two kinds of markup:

- ``[a|b|c]`` picks one alternative at random (brackets may nest);
- ``{key}`` is replaced from a context dict. A value may be a string, a list of strings (one is
  picked) or a callable taking the ``random.Random``. Writing the key with a capital first letter
  (``{He}`` for ``he``) capitalises the result.

Articles are written ``a(n)`` and resolved after filling, so ``a(n) {animal}`` becomes
"an otter" or "a fox".

>>> import random
>>> fill("[A|A] {Who} saw a(n) {what}.", random.Random(0), {"who": "pip", "what": "owl"})
'A Pip saw an owl.'
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence

Context = Mapping[str, "str | Sequence[str] | Callable[[random.Random], str]"]

_CHOICE = re.compile(r"\[([^\[\]]*)\]")
_SLOT = re.compile(r"\{(\w+)\}")
_ARTICLE = re.compile(r"\b([Aa])\(n\)(\s+)([\w'-]+)")

# Words that start with a vowel letter but a consonant sound, and the reverse.
_CONSONANT_SOUND = ("uni", "use", "usu", "one", "once", "eu", "ewe", "ufo", "uk")
_VOWEL_SOUND = ("hour", "honest", "honour", "heir")


def article_for(word: str) -> str:
    """Return "a" or "an" for ``word``.

    >>> [article_for(w) for w in ["owl", "fox", "hour", "unicorn", "umbrella"]]
    ['an', 'a', 'an', 'a', 'an']
    """
    w = word.lower()
    if w.startswith(_VOWEL_SOUND):
        return "an"
    if w.startswith(_CONSONANT_SOUND):
        return "a"
    return "an" if w[:1] in "aeiou" else "a"


def with_article(word: str) -> str:
    """``"owl"`` -> ``"an owl"``."""
    return f"{article_for(word.split()[0])} {word}"


def capitalise(text: str) -> str:
    """Upper-case the first letter only (``str.capitalize`` would lower the rest)."""
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1 :]
    return text


def fix_articles(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        art = article_for(m.group(3))
        if m.group(1) == "A":
            art = art.capitalize()
        return f"{art}{m.group(2)}{m.group(3)}"

    return _ARTICLE.sub(repl, text)


def _resolve(key: str, rng: random.Random, ctx: Context) -> str:
    cap = False
    if key not in ctx and key[:1].isupper() and key[:1].lower() + key[1:] in ctx:
        key, cap = key[:1].lower() + key[1:], True
    value = ctx[key]
    if callable(value):
        out = value(rng)
    elif isinstance(value, str):
        out = value
    else:
        out = rng.choice(list(value))
    out = expand(out, rng, ctx)
    return capitalise(out) if cap else out


def expand(template: str, rng: random.Random, ctx: Context | None = None) -> str:
    """Resolve choices and slots (but not articles); innermost choices first."""
    ctx = ctx or {}
    while True:
        m = _CHOICE.search(template)
        if not m:
            break
        pick = rng.choice(m.group(1).split("|"))
        template = template[: m.start()] + pick + template[m.end() :]
    return _SLOT.sub(lambda m: _resolve(m.group(1), rng, ctx), template)


def fill(template: str, rng: random.Random, ctx: Context | None = None) -> str:
    """Expand ``template`` fully: choices, slots, then articles; tidy doubled spaces."""
    out = fix_articles(expand(template, rng, ctx))
    out = re.sub(r" {2,}", " ", out)
    return re.sub(r" ([,.!?;:])", r"\1", out)


def pick(rng: random.Random, options: Sequence[str], ctx: Context | None = None) -> str:
    """Choose one template from ``options`` and fill it."""
    return fill(rng.choice(list(options)), rng, ctx)
