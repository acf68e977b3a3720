"""Container IDs and docker-style random names.

IDs are 64 lowercase hex characters, like docker's; a unique prefix (or the name) designates a
container. Unnamed containers get ``adjective_surname`` names as docker gives them.
"""
from __future__ import annotations

import os
import re

ID_RE = re.compile(r"^[0-9a-f]{64}$")
# docker's rule for container names (daemon/names: validContainerNamePattern)
NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_ADJECTIVES = (
    "admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome", "beautiful",
    "blissful", "bold", "brave", "busy", "charming", "clever", "compassionate", "competent",
    "confident", "cool", "cranky", "crazy", "dazzling", "determined", "distracted", "dreamy",
    "eager", "ecstatic", "elastic", "elated", "elegant", "eloquent", "epic", "exciting", "fervent",
    "festive", "flamboyant", "focused", "friendly", "frosty", "funny", "gallant", "gifted", "goofy",
    "gracious", "great", "happy", "hardcore", "heuristic", "hopeful", "hungry", "infallible",
    "inspiring", "intelligent", "interesting", "jolly", "jovial", "keen", "kind", "laughing",
    "loving", "lucid", "magical", "modest", "musing", "mystifying", "naughty", "nervous", "nice",
    "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pedantic", "pensive", "practical",
    "priceless", "quirky", "quizzical", "recursing", "relaxed", "reverent", "romantic", "sad",
    "serene", "sharp", "silly", "sleepy", "stoic", "strange", "stupefied", "suspicious", "sweet",
    "tender", "thirsty", "trusting", "unruffled", "upbeat", "vibrant", "vigilant", "vigorous",
    "wizardly", "wonderful", "xenodochial", "youthful", "zealous", "zen",
)

_SURNAMES = (
    "agnesi", "archimedes", "babbage", "banach", "bardeen", "bell", "bhabha", "bohr", "boole",
    "bose", "brahmagupta", "cannon", "carson", "cerf", "chandrasekhar", "clarke", "cori", "curie",
    "darwin", "diffie", "dijkstra", "dirac", "edison", "einstein", "euclid", "euler", "faraday",
    "fermat", "fermi", "feynman", "franklin", "galileo", "gauss", "germain", "goldberg", "goodall",
    "hamilton", "hawking", "heisenberg", "hertz", "hodgkin", "hopper", "hypatia", "jackson",
    "jemison", "johnson", "joliot", "kapitsa", "kepler", "khorana", "knuth", "kowalevski",
    "lalande", "lamarr", "lamport", "leakey", "leavitt", "lovelace", "lumiere", "mahavira",
    "maxwell", "mayer", "mccarthy", "mcclintock", "meitner", "mendel", "merkle", "mirzakhani",
    "morse", "napier", "newton", "nobel", "noether", "noyce", "pascal", "pasteur", "pike",
    "planck", "poincare", "ramanujan", "ritchie", "rosalind", "sammet", "shannon", "shockley",
    "sinoussi", "stallman", "swartz", "tesla", "thompson", "torvalds", "turing", "volhard",
    "wescoff", "wiles", "williams", "wing", "wozniak", "wright", "yalow", "yonath",
)


def new_id() -> str:
    """A fresh 64-hex-character container ID that does not start with digits only (as docker:
    an all-digit short ID would be ambiguous with a number in some tools)."""
    while True:
        cid = os.urandom(32).hex()
        if not cid[:12].isdigit():
            return cid


def random_name(retry: int = 0) -> str:
    """``adjective_surname``; after a collision docker appends a digit, and so do we."""
    import random

    rng = random.SystemRandom()
    name = f"{rng.choice(_ADJECTIVES)}_{rng.choice(_SURNAMES)}"
    if name == "boring_wozniak":  # Steve Wozniak is not boring (docker's own exception)
        return random_name(retry)
    if retry > 0:
        name += str(rng.randrange(10))
    return name


def short_id(cid: str) -> str:
    return cid[:12]
