"""Names of the generated API: Prisma's plural, camelCase and capitalisation (reference 5.10).

The plural is a port of the Evo-Inflector English rules that `prisma-datamodel` ships (and the
Scala server uses through Java's `English.plural`). A dictionary-based inflector such as
`inflect` disagrees on words like `Todo` (`todoes`) or `Data` (`datas`), and every client that
was generated against Prisma would then call fields that do not exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache


def _words(text: str) -> list[str]:
    return text.split()


_UNCOUNTABLE = _words(
    "fish ois sheep deer pox itis bison flounder pliers bream gallows proceedings breeches "
    "graffiti rabies britches headquarters salmon carp herpes scissors chassis high-jinks "
    "sea-bass clippers homework series cod innings shears contretemps jackanapes species corps "
    "mackerel swine debris measles trout diabetes mews tuna djinn mumps whiting eland news "
    "wildebeest elk pincers sugar"
)
_IRREGULAR = [
    ("child", "children"),
    ("ephemeris", "ephemerides"),
    ("mongoose", "mongoose"),
    ("mythos", "mythoi"),
    ("soliloquy", "soliloquies"),
    ("trilby", "trilbys"),
    ("genus", "genera"),
    ("quiz", "quizzes"),
    ("beef", "beefs"),
    ("brother", "brothers"),
    ("cos", "cows"),
    ("genie", "genies"),
    ("money", "moneys"),
    ("octopus", "octopuses"),
    ("opus", "opuses"),
]
_EX_ICES = ["codex", "murex", "silex"]
_IX_ICES = ["radix", "helix"]
_UM_A = _words("bacterium agendum desideratum erratum stratum datum ovum extremum candelabrum")
_US_I = _words("alumnus alveolus bacillus bronchus locus nucleus stimulus meniscus thesaurus")
_ON_A = _words(
    "criterion perihelion aphelion phenomenon prolegomenon noumenon organon asyndeton hyperbaton"
)
_A_AE = ["alumna", "alga", "vertebra", "persona"]
_O_OS = _words(
    "albino archipelago armadillo commando crescendo fiasco ditto dynamo embryo ghetto guano "
    "inferno jumbo lumbago magneto manifesto medico octavo photo pro quarto canto lingo "
    "generalissimo stylo rhino casino auto macro zero"
)
_O_I = _words("solo soprano basso alto contralto tempo piano virtuoso")
_A_ATA = _words(
    "anathema enema oedema bema enigma sarcoma carcinoma gumma schema charisma lemma soma diploma "
    "lymphoma stigma dogma magma stoma drama melisma trauma edema miasma"
)
_IS_IDES = ["iris", "clitoris"]
_US_US = _words("apparatus impetus prospectus cantus nexus sinus coitus plexus status hiatus")
_S_ES = _words(
    "acropolis chaos lens aegis cosmos mantis alias dais marquis asbestos digitalis metropolis "
    "atlas epidermis pathos bathos ethos pelvis bias gas polis caddis glottis rhinoceros "
    "cannabis glottis sassafras canvas ibis trellis"
)
# The upstream list also holds capitalised demonyms ("German"); they never match because the
# word is lower-cased before the comparison, so only "human" matters.
_MAN_MANS = ["human"]

Rule = Callable[[str], str | None]


def _category(words: list[str], singular: str, plural: str) -> Rule:
    def rule(word: str) -> str | None:
        lower = word.lower()
        if any(lower.endswith(w) for w in words):
            return word[: len(word) - len(singular)] + plural
        return None

    return rule


def _regex(pattern: str, replacement: str, flags: int = 0) -> Rule:
    compiled = re.compile(pattern, flags)
    python_replacement = re.sub(r"\$(\d)", r"\\\1", replacement)

    def rule(word: str) -> str | None:
        if compiled.search(word):
            return compiled.sub(python_replacement, word, count=1)
        return None

    return rule


def _rules() -> list[Rule]:
    rules: list[Rule] = [_category(_UNCOUNTABLE, "", "")]
    for singular, plural in _IRREGULAR:
        rules.append(
            _regex(f"{singular[0].upper()}{singular[1:]}$", plural[0].upper() + plural[1:])
        )
        rules.append(
            _regex(f"{singular[0].lower()}{singular[1:]}$", plural[0].lower() + plural[1:])
        )
    rules.append(_category(_MAN_MANS, "", "s"))
    for pattern, replacement in [
        ("man$", "men"),
        ("([lm])ouse$", "$1ice"),
        ("tooth$", "teeth"),
        ("goose$", "geese"),
        ("foot$", "feet"),
        ("zoon$", "zoa"),
        ("([csx])is$", "$1es"),
    ]:
        rules.append(_regex(pattern, replacement, re.I))
    rules += [
        _category(_EX_ICES, "ex", "ices"),
        _category(_IX_ICES, "ix", "ices"),
        _category(_UM_A, "um", "a"),
        _category(_ON_A, "on", "a"),
        _category(_A_AE, "a", "ae"),
        _category(_US_I, "us", "i"),
        _regex("([cs]h|[zx])$", "$1es", re.I),
        _category(_S_ES, "", "es"),
        _category(_IS_IDES, "", "es"),
        _category(_US_US, "", "es"),
        _regex("(us)$", "$1es", re.I),
        _category(_A_ATA, "", "s"),
        _regex("([cs])h$", "$1hes", re.I),
        _regex("ss$", "sses", re.I),
        _regex("([aeo]l)f$", "$1ves", re.I),
        _regex("([^d]ea)f$", "$1ves", re.I),
        _regex("(ar)f$", "$1ves", re.I),
        _regex("([nlw]i)fe$", "$1ves", re.I),
        _regex("([aeiou])y$", "$1ys", re.I),
        _regex("y$", "ies", re.I),
        _category(_O_I, "o", "os"),
        _category(_O_OS, "o", "os"),
        _regex("([aeiou])o$", "$1os", re.I),
        _regex("o$", "oes", re.I),
        _regex("ulum", "ula", re.I),
        _category(_A_ATA, "", "es"),
        _regex("s$", "ses", re.I),
        _regex("$", "s", re.I),
    ]
    return rules


_RULES = _rules()


@cache
def plural(name: str) -> str:
    """`English.plural`, then Prisma's fallback: an unchanged word gets `es` or `s`."""
    result = next((r for r in (rule(name) for rule in _RULES) if r is not None), None)
    if result == name:  # the inflector's own fallback for uncountable words
        result = name + "es" if name.endswith("s") else name + "s"
    if result is None or result == name:
        return name + "es" if name.endswith("s") else name + "s"
    return result


def capitalize(name: str) -> str:
    return name[:1].upper() + name[1:]


def camel_case(name: str) -> str:
    """Prisma's camelCase: split on blanks, dashes and underscores, keep inner capitals."""
    joined = "".join(word[:1].upper() + word[1:] for word in re.split(r"\s|-|_", name))
    return joined[:1].lower() + joined[1:]
