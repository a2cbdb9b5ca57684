"""The invented world that the stories happen in and the instructions ask about.

Everything here was made up for this project: the village of Hollowmere on the river Sable,
the wood, the hill, the creatures who live there and the facts about them. Stories use these
characters and places, and the instruction set asks questions whose answers come from here, so
the three data sets agree with one another.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pronouns:
    he: str
    him: str
    his: str
    himself: str
    was: str  # "was" or "were", to agree with the subject pronoun

    def as_context(self, prefix: str) -> dict[str, str]:
        """Slots like ``h_he``, ``h_his`` for a character whose prefix is ``h``."""
        return {
            f"{prefix}_he": self.he,
            f"{prefix}_him": self.him,
            f"{prefix}_his": self.his,
            f"{prefix}_himself": self.himself,
            f"{prefix}_was": self.was,
        }


HE = Pronouns("he", "him", "his", "himself", "was")
SHE = Pronouns("she", "her", "her", "herself", "was")
THEY = Pronouns("they", "them", "their", "themselves", "were")


@dataclass(frozen=True)
class Character:
    name: str
    kind: str  # "fox", "girl", ...
    pronouns: Pronouns
    traits: tuple[str, ...]
    home: str  # a phrase that follows "lived ...": "in a den under the oak in Thimble Wood"
    home_place: str  # the Place name the home is in
    food: str = ""
    job: str = ""  # a phrase that follows "who ...": "kept the village clock"
    age: int | None = None
    facts: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Place:
    name: str  # as used in a sentence: "Thimble Wood", "the Old Mill"
    kind: str  # "wood", "village", ...
    looks: tuple[str, ...]  # short descriptive phrases, usable after "where"/"with"
    where: str  # one sentence that locates it
    at: str  # the name with its preposition: "in Thimble Wood", "on Lantern Hill"


VILLAGE = "Hollowmere"
RIVER = "the river Sable"
TOWN = "Brackenford"

PLACES: tuple[Place, ...] = (
    Place(
        "Hollowmere",
        "village",
        ("crooked chimneys", "a green with a chestnut tree", "a bakery that smelled of cinnamon"),
        "Hollowmere is a small village on the east bank of the river Sable.",
        "in Hollowmere",
    ),
    Place(
        "Thimble Wood",
        "wood",
        ("tall beeches", "mossy stones", "paths that twisted between the ferns"),
        "Thimble Wood lies just north of Hollowmere.",
        "in Thimble Wood",
    ),
    Place(
        "Lantern Hill",
        "hill",
        ("a windmill with blue sails", "short sweet grass", "a view over the whole valley"),
        "Lantern Hill rises west of Hollowmere, across the river Sable.",
        "on Lantern Hill",
    ),
    Place(
        "Mossy Bridge",
        "bridge",
        ("grey stones", "ferns growing from the cracks", "swallows nesting under its arch"),
        "Mossy Bridge is the old stone bridge that crosses the river Sable at Hollowmere.",
        "at Mossy Bridge",
    ),
    Place(
        "the Old Mill",
        "mill",
        ("a creaking water wheel", "sacks of flour", "a loft full of sleepy cats"),
        "The Old Mill stands on the river Sable just below Mossy Bridge.",
        "at the Old Mill",
    ),
    Place(
        "Larkspur Meadow",
        "meadow",
        ("long grass", "blue flowers", "larks singing high above"),
        "Larkspur Meadow lies between Thimble Wood and the river Sable.",
        "in Larkspur Meadow",
    ),
    Place(
        "Greyfen Marsh",
        "marsh",
        ("tall reeds", "slow brown pools", "frogs that sang at dusk"),
        "Greyfen Marsh is a wide, wet place south of Hollowmere.",
        "in Greyfen Marsh",
    ),
    Place(
        "Glimmer Lake",
        "lake",
        ("still silver water", "a tiny island with one willow", "pebbles on the shore"),
        "Glimmer Lake is where the river Sable ends, far to the south.",
        "by Glimmer Lake",
    ),
    Place(
        "Applecross Orchard",
        "orchard",
        ("rows of apple trees", "humming beehives", "a wooden gate painted yellow"),
        "Applecross Orchard is on the sunny slope behind Hollowmere.",
        "in Applecross Orchard",
    ),
    Place(
        "Crumble Cliffs",
        "cliffs",
        ("red rock", "seabirds wheeling", "a narrow path down to the pebbles"),
        "Crumble Cliffs are the red rocks east of Thimble Wood.",
        "at Crumble Cliffs",
    ),
    Place(
        "Brackenford",
        "town",
        ("a busy market square", "a clock tower", "stalls of cloth and cheese"),
        "Brackenford is a market town downstream from Hollowmere on the river Sable.",
        "in Brackenford",
    ),
)

PLACE_BY_NAME = {p.name: p for p in PLACES}

CHARACTERS: tuple[Character, ...] = (
    Character(
        "Pip", "fox", HE, ("curious", "clever", "restless"),
        "in a den under the roots of the great oak in Thimble Wood", "Thimble Wood",
        food="blackberries", job="knew every path in Thimble Wood",
    ),
    Character(
        "Nettle", "hedgehog", SHE, ("shy", "gentle", "careful"),
        "in a snug burrow beside the garden wall in Hollowmere", "Hollowmere",
        food="beetles and fallen pears", job="collected lost buttons",
    ),
    Character(
        "Otto", "owl", HE, ("wise", "patient", "thoughtful"),
        "in the hollow elm on Lantern Hill", "Lantern Hill",
        food="moths and crunchy beetles", job="read the stars every night",
    ),
    Character(
        "Juniper", "rabbit", SHE, ("quick", "cheerful", "bold"),
        "in a warren at the edge of Larkspur Meadow", "Larkspur Meadow",
        food="clover", job="was the fastest runner in the valley",
    ),
    Character(
        "Barnaby", "badger", HE, ("grumpy", "kind", "strong"),
        "in a deep sett near Crumble Cliffs", "Crumble Cliffs",
        food="mushroom stew", job="mended anything that was broken",
    ),
    Character(
        "Wren", "girl", SHE, ("brave", "kind", "stubborn"),
        "in the blue cottage next to Mossy Bridge", "Mossy Bridge",
        food="honey cakes", job="helped her mother at the bakery",
    ),
    Character(
        "Tobias", "boy", HE, ("friendly", "clumsy", "hard-working"),
        "at the Old Mill with his father, the miller", "the Old Mill",
        food="warm bread", job="carried the flour sacks at the Old Mill",
    ),
    Character(
        "Ember", "otter", THEY, ("playful", "quick", "generous"),
        "in a holt on the bank of the river Sable", "the river Sable",
        food="fresh fish", job="ran the little ferry across the river Sable",
    ),
    Character(
        "Moss", "tortoise", THEY, ("wise", "slow", "calm"),
        "in the walled garden behind the bakery in Hollowmere", "Hollowmere",
        food="dandelion leaves", job="remembered every story ever told in Hollowmere",
        age=112,
    ),
    Character(
        "Clementine", "goose", SHE, ("proud", "loud", "loyal"),
        "in a reed house on the shore of Glimmer Lake", "Glimmer Lake",
        food="sweet grass", job="rang the bell in the village clock tower",
    ),
    Character(
        "Fennel", "mouse", HE, ("tiny", "brave", "nervous"),
        "in the flour cupboard of the Hollowmere bakery", "Hollowmere",
        food="crumbs of cheese", job="helped the baker count the loaves",
    ),
    Character(
        "Granny Rosehip", "old woman", SHE, ("warm", "wise", "busy"),
        "in a cottage at Applecross Orchard", "Applecross Orchard",
        food="apple pie", job="kept the bees at Applecross Orchard", age=81,
    ),
    Character(
        "Dot", "frog", SHE, ("noisy", "cheerful", "curious"),
        "on a lily pad in Greyfen Marsh", "Greyfen Marsh",
        food="flies", job="led the frog choir every evening",
    ),
    Character(
        "Rufus", "dog", HE, ("loyal", "eager", "silly"),
        "in a kennel behind the Brackenford clock tower", "Brackenford",
        food="bones", job="guarded the Brackenford market",
    ),
)

CHARACTER_BY_NAME = {c.name: c for c in CHARACTERS}

# Extra facts about the world, as (question, answer) pairs with the answer as a full sentence.
WORLD_FACTS: tuple[tuple[str, str], ...] = (
    ("Which river flows past Hollowmere?", "The river Sable flows past Hollowmere."),
    ("Where does the river Sable end?", "The river Sable ends in Glimmer Lake."),
    ("What is the name of the bridge in Hollowmere?", "It is called Mossy Bridge."),
    ("What stands on Lantern Hill?", "A windmill with blue sails stands on Lantern Hill."),
    ("Which town is downstream from Hollowmere?", "Brackenford is downstream from Hollowmere."),
    ("What is Brackenford known for?", "Brackenford is known for its busy market square."),
    ("Which wood lies north of Hollowmere?", "Thimble Wood lies north of Hollowmere."),
    ("What colour are the rocks of Crumble Cliffs?", "The rocks of Crumble Cliffs are red."),
    ("Who is the oldest creature in Hollowmere?", "Moss the tortoise is the oldest, at 112."),
    ("How old is Moss the tortoise?", "Moss the tortoise is 112 years old."),
    ("What grows in Applecross Orchard?", "Apple trees grow in Applecross Orchard."),
    ("What colour is the gate of Applecross Orchard?", "The gate is painted yellow."),
    ("What is on the island in Glimmer Lake?", "A single willow tree grows on it."),
    ("Who runs the ferry across the river Sable?", "Ember the otter runs the ferry."),
    ("Who rings the bell in the village clock tower?", "Clementine the goose rings it."),
    ("What sings in Greyfen Marsh at dusk?", "Frogs sing in Greyfen Marsh at dusk."),
    ("Which side of the river is Hollowmere on?", "Hollowmere is on the east bank."),
    ("What turns the wheel of the Old Mill?", "The river Sable turns the wheel of the Old Mill."),
    ("What can you see from the top of Lantern Hill?", "You can see the whole valley."),
    ("Who keeps the bees at Applecross Orchard?", "Granny Rosehip keeps the bees there."),
)

SEASONS = ("spring", "summer", "autumn", "winter")
