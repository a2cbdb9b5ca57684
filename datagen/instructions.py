"""Alpaca-style instruction data: ``{"instruction", "input", "output"}`` records.

Each task type is a small function that returns one ``(instruction, input, output)`` triple,
built from our own word lists and sentences, with many phrasings of the instruction. Answers are
computed (arithmetic, conversions, counting, reversing) or looked up in our own tables
(antonyms, plurals, animal classes, the invented world), so they are correct by construction.
Stories to summarise come from :mod:`datagen.stories`, whose plots give a correct summary, and
messages to classify come from :mod:`datagen.sms`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from datagen import sms, stories, world
from datagen.templates import capitalise, fill

N_PER_TASK = 65
SPLITS = (("train", 0.85), ("val", 0.05), ("test", 0.10))

Item = tuple[str, str, str]  # instruction, input, output

NAMES = ("Pip", "Wren", "Tobias", "Nettle", "Juniper", "Sam", "Maya", "Leo", "Hazel", "Otto",
         "Clara", "Finn", "Rosie", "Hugo", "Ivy", "Barnaby", "Ada", "Ravi", "Noor", "Elsie")

# --- rewriting --------------------------------------------------------------------------------

# (base, past, past participle, object nouns that fit)
VERBS = (
    ("eat", "ate", "eaten", ("cake", "apple", "soup", "pie", "sandwich")),
    ("paint", "painted", "painted", ("fence", "door", "boat", "picture", "wall")),
    ("find", "found", "found", ("key", "map", "coin", "hat", "letter")),
    ("build", "built", "built", ("bridge", "nest", "wall", "raft", "shed")),
    ("write", "wrote", "written", ("letter", "song", "poem", "story", "note")),
    ("clean", "cleaned", "cleaned", ("kitchen", "window", "floor", "boat", "shed")),
    ("open", "opened", "opened", ("door", "box", "gate", "window", "parcel")),
    ("carry", "carried", "carried", ("basket", "bag", "box", "lantern", "parcel")),
    ("break", "broke", "broken", ("window", "cup", "plate", "gate", "chair")),
    ("bake", "baked", "baked", ("bread", "pie", "cake", "biscuits", "loaf")),
    ("mend", "mended", "mended", ("roof", "fence", "boat", "chair", "net")),
    ("draw", "drew", "drawn", ("map", "picture", "circle", "plan", "castle")),
    ("catch", "caught", "caught", ("ball", "fish", "kite", "frisbee", "butterfly")),
    ("sing", "sang", "sung", ("song", "lullaby", "tune", "hymn", "chorus")),
    ("plant", "planted", "planted", ("tree", "seeds", "roses", "beans", "bulbs")),
    ("lose", "lost", "lost", ("key", "hat", "scarf", "ticket", "map")),
)
AGENTS = ("the fox", "the children", "Wren", "my brother", "the teacher", "Otto the owl",
          "the baker", "our neighbours", "Grandma", "the old badger", "Tobias", "the class",
          "the farmer", "a little mouse", "the twins", "Ember the otter", "the miller")
PLURAL_OBJECTS = {"seeds", "roses", "beans", "bulbs", "biscuits"}

PASSIVE_PHRASES = (
    "Rewrite this sentence in the active voice.",
    "Change the sentence from passive to active voice.",
    "Make this sentence active instead of passive.",
    "Turn the following passive sentence into an active one.",
    "Rewrite the sentence so that the doer of the action comes first.",
    "Convert this sentence to the active voice.",
)


def task_passive_to_active(rng: random.Random) -> Item:
    base, past, pp, objs = rng.choice(VERBS)
    obj = rng.choice(objs)
    agent = rng.choice(AGENTS)
    be = "were" if obj in PLURAL_OBJECTS else "was"
    det = rng.choice(("the", "my", "our", "a"))
    if det == "a":
        det = "some" if obj in PLURAL_OBJECTS or obj == "bread" else "a(n)"
    src = fill(f"{capitalise(det)} {obj} {be} {pp} by {agent}.", rng)
    dst = fill(f"{capitalise(agent)} {past} {det} {obj}.", rng)
    return rng.choice(PASSIVE_PHRASES), src, dst


FORMAL_PAIRS = (
    ("hey, can u send me the {doc} asap?",
     "Hello, could you please send me the {doc} as soon as possible?"),
    ("gonna be late for the {event}, sorry",
     "I am sorry, but I will be late for the {event}."),
    ("thx for the {gift}, it's awesome!",
     "Thank you for the {gift}; it is wonderful."),
    ("wanna grab lunch on {day}?",
     "Would you like to have lunch on {day}?"),
    ("dunno if I can make it to the {event}",
     "I am not sure whether I can attend the {event}."),
    ("can't come on {day}, got loads of work",
     "I am unable to come on {day}, as I have a great deal of work."),
    ("the {thing} is broke, fix it pls",
     "The {thing} is broken. Could you please repair it?"),
    ("gimme a call when u get the {doc}",
     "Please telephone me when you receive the {doc}."),
    ("yeah, the {event} was kinda boring tbh",
     "To be honest, the {event} was rather dull."),
    ("no worries, I'll sort out the {doc} tomorrow",
     "That is quite all right; I will deal with the {doc} tomorrow."),
    ("hi guys, the {event} is moved to {day}",
     "Dear all, the {event} has been moved to {day}."),
    ("sorry, totally forgot about the {doc}!",
     "I apologise; I completely forgot about the {doc}."),
)
FORMAL_SLOTS = {
    "doc": ("report", "invoice", "timetable", "photos", "minutes", "application form",
            "spreadsheet", "letter"),
    "event": ("meeting", "rehearsal", "workshop", "interview", "training session", "dinner",
              "conference", "concert"),
    "gift": ("flowers", "book", "present", "card", "scarf", "chocolates"),
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"),
    "thing": ("printer", "heater", "door handle", "kettle", "projector", "lift"),
}
FORMAL_PHRASES = (
    "Rewrite this message in a formal tone.",
    "Make the following sentence more formal.",
    "Rewrite the text so it is suitable for a work email.",
    "Change this informal message into polite, formal English.",
    "Rewrite this in formal English.",
)


def _paired(rng: random.Random, pairs, slots) -> tuple[str, str]:
    src, dst = rng.choice(pairs)
    chosen = {k: rng.choice(v) for k, v in slots.items()}
    return fill(src, rng, chosen), fill(dst, rng, chosen)


def task_make_formal(rng: random.Random) -> Item:
    src, dst = _paired(rng, FORMAL_PAIRS, FORMAL_SLOTS)
    return rng.choice(FORMAL_PHRASES), src, dst


SIMPLE_PAIRS = (
    ("Due to the fact that it was raining, {name} decided to remain indoors.",
     "{Name} stayed inside because it was raining."),
    ("In the event that you require assistance, do not hesitate to contact {name}.",
     "If you need help, ask {name}."),
    ("{Name} made the decision to commence the {task} at an earlier time.",
     "{Name} decided to start the {task} earlier."),
    ("The {animal} was in possession of a considerable quantity of {food}.",
     "The {animal} had a lot of {food}."),
    ("At this point in time, the {place} is not open to visitors.",
     "The {place} is closed now."),
    ("{Name} endeavoured to ascertain the location of the {thing}.",
     "{Name} tried to find the {thing}."),
    ("Prior to departing, {name} ensured that the door had been locked.",
     "Before leaving, {name} locked the door."),
    ("It is of the utmost importance that the {task} is completed by {day}.",
     "The {task} must be finished by {day}."),
    ("The {animal} proceeded to consume the entirety of the {food}.",
     "The {animal} ate all the {food}."),
    ("{Name} was of the opinion that the {place} was exceedingly beautiful.",
     "{Name} thought the {place} was very beautiful."),
    ("With regard to the {task}, {name} has not yet reached a conclusion.",
     "{Name} has not decided about the {task} yet."),
    ("The {animal} exhibited a strong reluctance to enter the {place}.",
     "The {animal} did not want to go into the {place}."),
)
SIMPLE_SLOTS = {
    "name": NAMES,
    "task": ("homework", "painting", "cleaning", "project", "repairs", "baking", "journey"),
    "animal": ("fox", "badger", "goose", "rabbit", "otter", "mouse", "hedgehog", "owl"),
    "food": ("acorns", "honey", "bread", "apples", "cheese", "berries", "nuts"),
    "place": ("garden", "museum", "old mill", "library", "orchard", "castle", "barn"),
    "thing": ("key", "map", "lantern", "basket", "ticket", "letter"),
    "day": ("Friday", "Monday", "noon", "tomorrow", "the weekend"),
}
SIMPLE_PHRASES = (
    "Simplify this sentence.",
    "Rewrite the sentence using simpler words.",
    "Make this sentence shorter and easier to read.",
    "Rewrite this so a young child could understand it.",
    "Say the same thing in plain English.",
)


def task_simplify(rng: random.Random) -> Item:
    src, dst = _paired(rng, SIMPLE_PAIRS, SIMPLE_SLOTS)
    return rng.choice(SIMPLE_PHRASES), src, dst


# --- grammar ----------------------------------------------------------------------------------

PRESENT = (("walks", "walk"), ("reads", "read"), ("plays", "play"), ("sings", "sing"),
           ("runs", "run"), ("goes", "go"), ("swims", "swim"), ("cooks", "cook"),
           ("writes", "write"), ("visits", "visit"))
PRESENT_TAIL = {"walks": "to the market", "reads": "a book", "plays": "in the garden",
                "sings": "in the choir", "runs": "in the park", "goes": "to school",
                "swims": "in the lake", "cooks": "dinner", "writes": "a letter",
                "visits": "the library"}
REGULAR_PAST = (("walked", "walk"), ("played", "play"), ("cooked", "cook"),
                ("painted", "paint"), ("cleaned", "clean"), ("visited", "visit"))
IRREGULAR_PAST = (("went", "goed"), ("ate", "eated"), ("saw", "seed"), ("ran", "runned"),
                  ("caught", "catched"), ("brought", "bringed"), ("wrote", "writed"),
                  ("took", "taked"), ("made", "maked"), ("found", "finded"))
PAST_TAIL = {"walked": "to the river", "played": "football", "cooked": "a big dinner",
             "painted": "the shed", "cleaned": "the kitchen", "visited": "the museum",
             "went": "to the beach", "ate": "three pancakes", "saw": "a heron",
             "ran": "all the way home", "caught": "a fish", "brought": "some cake",
             "wrote": "a long letter", "took": "the bus", "made": "a kite",
             "found": "a shiny coin"}
ARTICLE_NOUNS = ("owl", "apple", "egg", "umbrella", "orange", "elephant", "island", "oak",
                 "hour", "ant", "fox", "pear", "kite", "bicycle", "lemon", "uniform")
GRAMMAR_PHRASES = (
    "Correct the grammar in this sentence.",
    "Fix the mistake in the following sentence.",
    "Rewrite the sentence with correct grammar.",
    "Find and correct the error.",
    "Proofread this sentence and fix any errors.",
    "There is one grammar mistake here. Correct it.",
)


def task_grammar(rng: random.Random) -> Item:
    name = rng.choice(NAMES)
    kind = rng.randrange(5)
    when = rng.choice(("Yesterday", "Last week", "On Monday", "Last night", "This morning"))
    if kind == 0:  # subject-verb agreement
        good, bad = rng.choice(PRESENT)
        tail = PRESENT_TAIL[good]
        often = rng.choice(("every day", "on Sundays", "most mornings", "every week"))
        right, wrong = f"{name} {good} {tail} {often}.", f"{name} {bad} {tail} {often}."
    elif kind == 1:  # wrong past form
        good, bad = rng.choice(REGULAR_PAST + IRREGULAR_PAST)
        right = f"{when}, {name} {good} {PAST_TAIL[good]}."
        wrong = f"{when}, {name} {bad} {PAST_TAIL[good]}."
    elif kind == 2:  # a/an
        noun = rng.choice(ARTICLE_NOUNS)
        verb = rng.choice(("saw", "found", "drew", "wanted"))
        right = fill(f"{name} {verb} a(n) {noun}.", rng)
        art = right.split()[2]
        wrong = right.replace(f" {art} ", " an " if art == "a" else " a ", 1)
    elif kind == 3:  # there / their
        pl = rng.choice(("The children", "The twins", "My cousins", "The players"))
        thing = rng.choice(("bags", "coats", "bikes", "books", "boots"))
        right = f"{pl} left their {thing} over there."
        wrong = rng.choice((f"{pl} left there {thing} over there.",
                            f"{pl} left their {thing} over their."))
    else:  # plural after a number
        n = rng.choice(("two", "three", "four", "five", "six"))
        sing, plural = rng.choice(NOUNS[:30])
        right = f"There are {n} {plural} in the picture."
        wrong = f"There are {n} {sing} in the picture."
        if sing == plural:
            right, wrong = f"{name} has {n} {plural}.", f"{name} have {n} {plural}."
    return rng.choice(GRAMMAR_PHRASES), wrong, right


# --- words ------------------------------------------------------------------------------------

ANTONYMS = (
    ("hot", "cold"), ("big", "small"), ("happy", "sad"), ("fast", "slow"), ("light", "dark"),
    ("early", "late"), ("full", "empty"), ("open", "closed"), ("strong", "weak"),
    ("young", "old"), ("high", "low"), ("wet", "dry"), ("loud", "quiet"), ("hard", "soft"),
    ("rich", "poor"), ("clean", "dirty"), ("brave", "cowardly"), ("kind", "cruel"),
    ("thick", "thin"), ("heavy", "light"), ("begin", "end"), ("push", "pull"),
    ("win", "lose"), ("arrive", "leave"), ("remember", "forget"), ("buy", "sell"),
    ("laugh", "cry"), ("sink", "float"), ("above", "below"), ("inside", "outside"),
    ("always", "never"), ("first", "last"), ("true", "false"), ("easy", "difficult"),
    ("narrow", "wide"), ("sweet", "sour"), ("noisy", "silent"), ("ancient", "modern"),
    ("generous", "selfish"), ("polite", "rude"), ("tidy", "messy"), ("safe", "dangerous"),
    ("friend", "enemy"), ("day", "night"), ("summer", "winter"), ("north", "south"),
    ("accept", "refuse"), ("increase", "decrease"), ("awake", "asleep"), ("cheap", "expensive"),
)
SYNONYMS = (
    ("happy", "joyful"), ("big", "large"), ("small", "tiny"), ("quick", "fast"),
    ("angry", "cross"), ("begin", "start"), ("shout", "yell"), ("look", "gaze"),
    ("sad", "unhappy"), ("clever", "smart"), ("scared", "afraid"), ("tired", "sleepy"),
    ("pretty", "lovely"), ("end", "finish"), ("help", "assist"), ("quiet", "silent"),
    ("hard", "difficult"), ("rich", "wealthy"), ("ill", "unwell"), ("shut", "close"),
    ("gift", "present"), ("jump", "leap"), ("walk", "stroll"), ("talk", "speak"),
    ("kind", "gentle"), ("brave", "bold"), ("cold", "chilly"), ("wet", "damp"),
    ("strange", "odd"), ("huge", "enormous"), ("rock", "stone"), ("path", "track"),
    ("glad", "pleased"), ("mend", "repair"), ("choose", "pick"), ("hurry", "rush"),
    ("answer", "reply"), ("journey", "trip"), ("shiny", "bright"), ("funny", "amusing"),
    ("wise", "sensible"), ("giggle", "chuckle"), ("grab", "seize"), ("tale", "story"),
)
WORD_PHRASES = {
    "antonym": (
        "What is the opposite of \"{w}\"?",
        "Give an antonym for the word \"{w}\".",
        "Write a word that means the opposite of \"{w}\".",
        "Name the opposite of {w}.",
        "Find an antonym of the following word.",
    ),
    "synonym": (
        "Give a synonym for \"{w}\".",
        "What is another word for \"{w}\"?",
        "Write a word that means the same as \"{w}\".",
        "Suggest a word with a similar meaning to {w}.",
        "Find a synonym of the following word.",
    ),
}


def _word_task(rng: random.Random, pairs, kind: str, answer: str) -> Item:
    a, b = rng.choice(pairs)
    if rng.random() < 0.5:
        a, b = b, a
    phrase = rng.choice(WORD_PHRASES[kind])
    if "{w}" in phrase:
        return phrase.replace("{w}", a), "", answer.format(w=a, a=b)
    return phrase, a, answer.format(w=a, a=b)


def task_antonym(rng: random.Random) -> Item:
    return _word_task(rng, ANTONYMS, "antonym", "The opposite of \"{w}\" is \"{a}\".")


def task_synonym(rng: random.Random) -> Item:
    return _word_task(rng, SYNONYMS, "synonym", "A synonym for \"{w}\" is \"{a}\".")


NOUNS = (
    ("cat", "cats"), ("box", "boxes"), ("baby", "babies"), ("leaf", "leaves"),
    ("knife", "knives"), ("bus", "buses"), ("church", "churches"), ("berry", "berries"),
    ("wolf", "wolves"), ("fox", "foxes"), ("day", "days"), ("toy", "toys"),
    ("potato", "potatoes"), ("tomato", "tomatoes"), ("dish", "dishes"), ("wish", "wishes"),
    ("city", "cities"), ("lady", "ladies"), ("shelf", "shelves"), ("half", "halves"),
    ("apple", "apples"), ("garden", "gardens"), ("kite", "kites"), ("lantern", "lanterns"),
    ("brush", "brushes"), ("pony", "ponies"), ("key", "keys"), ("boat", "boats"),
    ("sheep", "sheep"), ("deer", "deer"),
    ("child", "children"), ("mouse", "mice"), ("goose", "geese"), ("tooth", "teeth"),
    ("foot", "feet"), ("man", "men"), ("woman", "women"), ("person", "people"),
    ("fish", "fish"), ("ox", "oxen"), ("cactus", "cacti"), ("loaf", "loaves"),
    ("hero", "heroes"), ("roof", "roofs"), ("piano", "pianos"), ("echo", "echoes"),
    ("glass", "glasses"), ("wife", "wives"), ("calf", "calves"), ("life", "lives"),
    ("butterfly", "butterflies"), ("class", "classes"), ("fairy", "fairies"),
    ("monkey", "monkeys"), ("story", "stories"), ("torch", "torches"), ("owl", "owls"),
    ("badger", "badgers"), ("hedgehog", "hedgehogs"), ("village", "villages"),
)
PLURAL_PHRASES = (
    "What is the plural of \"{w}\"?",
    "Write the plural form of the word \"{w}\".",
    "Give the plural of {w}.",
    "How do you say more than one {w}?",
    "Change this noun to its plural form.",
)


def task_plural(rng: random.Random) -> Item:
    sing, plural = rng.choice(NOUNS)
    phrase = rng.choice(PLURAL_PHRASES)
    out = f"The plural of \"{sing}\" is \"{plural}\"."
    if "{w}" in phrase:
        return phrase.replace("{w}", sing), "", out
    return phrase, sing, out


PAST_VERBS = (
    ("go", "went"), ("eat", "ate"), ("see", "saw"), ("run", "ran"), ("swim", "swam"),
    ("sing", "sang"), ("write", "wrote"), ("take", "took"), ("give", "gave"),
    ("make", "made"), ("find", "found"), ("think", "thought"), ("bring", "brought"),
    ("buy", "bought"), ("catch", "caught"), ("teach", "taught"), ("fly", "flew"),
    ("draw", "drew"), ("sleep", "slept"), ("keep", "kept"), ("feel", "felt"),
    ("leave", "left"), ("speak", "spoke"), ("break", "broke"), ("choose", "chose"),
    ("drink", "drank"), ("ring", "rang"), ("begin", "began"), ("wear", "wore"),
    ("tell", "told"), ("sell", "sold"), ("hold", "held"), ("stand", "stood"),
    ("walk", "walked"), ("jump", "jumped"), ("play", "played"), ("cry", "cried"),
    ("try", "tried"), ("stop", "stopped"), ("hop", "hopped"), ("bake", "baked"),
    ("smile", "smiled"), ("carry", "carried"), ("plan", "planned"), ("visit", "visited"),
    ("paint", "painted"), ("laugh", "laughed"), ("clap", "clapped"), ("hurry", "hurried"),
    ("dance", "danced"), ("open", "opened"), ("climb", "climbed"), ("bring", "brought"),
    ("put", "put"), ("cut", "cut"), ("hit", "hit"), ("read", "read"), ("grow", "grew"),
    ("throw", "threw"), ("know", "knew"),
)
PAST_PHRASES = (
    "What is the past tense of \"{w}\"?",
    "Give the simple past form of the verb \"{w}\".",
    "Write the past tense of {w}.",
    "Change this verb to the past tense.",
    "Yesterday I ___ (to {w}). Fill in the past tense.",
)


def task_past_tense(rng: random.Random) -> Item:
    base, past = rng.choice(PAST_VERBS)
    phrase = rng.choice(PAST_PHRASES)
    out = f"The past tense of \"{base}\" is \"{past}\"."
    if "{w}" in phrase:
        return phrase.replace("{w}", base), "", out
    return phrase, base, out


# --- numbers ----------------------------------------------------------------------------------

THINGS = ("apples", "marbles", "acorns", "stickers", "pebbles", "buttons", "cakes", "shells",
          "books", "carrots")


def task_arithmetic(rng: random.Random) -> Item:
    op = rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        c = a * b
    else:
        a, b = rng.randint(2, 99), rng.randint(1, 99)
        if op == "-" and b > a:
            a, b = b, a
        c = a + b if op == "+" else a - b
    sym = {"+": "+", "-": "-", "*": "×"}[op]
    if rng.random() < 0.3:  # a word problem
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        if op == "+":
            q = f"{name} has {a} {thing} and finds {b} more. How many {thing} does {name} have now?"
            out = f"{a} + {b} = {c}, so {name} has {c} {thing}."
        elif op == "-":
            q = f"{name} has {a} {thing} and gives away {b}. How many {thing} are left?"
            out = f"{a} - {b} = {c}, so {c} {thing} are left."
        else:
            q = f"There are {a} bags with {b} {thing} in each. How many {thing} are there?"
            out = f"{a} × {b} = {c}, so there are {c} {thing}."
        return q, "", out
    word = {"+": "plus", "-": "minus", "*": "times"}[op]
    sum_text = f"{a} {sym} {b}"
    if rng.random() < 0.3:
        phrase = rng.choice(("Solve this sum.", "What is the answer to this calculation?"))
        return phrase, sum_text, f"{sum_text} = {c}"
    phrase = rng.choice((f"What is {a} {word} {b}?", f"Calculate {sum_text}.",
                         f"Work out {sum_text}."))
    return phrase, "", f"{sum_text} = {c}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


# (from unit, to unit, factor, plural names)
UNITS = (
    ("km", "m", 1000, "kilometres", "metres"),
    ("m", "km", 0.001, "metres", "kilometres"),
    ("kg", "g", 1000, "kilograms", "grams"),
    ("g", "kg", 0.001, "grams", "kilograms"),
    ("h", "min", 60, "hours", "minutes"),
    ("min", "h", 1 / 60, "minutes", "hours"),
    ("m", "cm", 100, "metres", "centimetres"),
    ("l", "ml", 1000, "litres", "millilitres"),
    ("min", "s", 60, "minutes", "seconds"),
)


def task_units(rng: random.Random) -> Item:
    _, _, factor, src, dst = rng.choice(UNITS)
    if factor >= 1:
        value = rng.choice((rng.randint(1, 20), rng.randint(1, 19) + 0.5))
    elif factor == 1 / 60:
        value = 30 * rng.randint(1, 12)
    else:
        value = rng.choice((250, 500, 750, 1000, 1500, 2000, 2500, 3000, 4500, 5000, 12000))
    result = round(value * factor, 3)
    phrase = rng.choice((
        f"Convert {_num(value)} {src} to {dst}.",
        f"How many {dst} are in {_num(value)} {src}?",
        f"What is {_num(value)} {src} in {dst}?",
        f"Change {_num(value)} {src} into {dst}.",
    ))
    return phrase, "", f"{_num(value)} {src} is {_num(result)} {dst}."


def task_compare(rng: random.Random) -> Item:
    a, b = rng.sample(range(1, 1000), 2)
    if rng.random() < 0.5:
        phrase = rng.choice((f"Which is larger, {a} or {b}?", f"Which number is bigger: {a} or {b}?",
                             f"Is {a} greater than {b}?"))
        big = max(a, b)
        if phrase.startswith("Is"):
            return phrase, "", f"{'Yes' if a > b else 'No'}, {big} is the larger number."
        return phrase, "", f"{big} is larger."
    phrase = rng.choice((f"Which is smaller, {a} or {b}?", f"Which number is less: {a} or {b}?"))
    return phrase, "", f"{min(a, b)} is smaller."


# --- classification ---------------------------------------------------------------------------

POSITIVE = (
    "I loved the {thing}, it was {good}!", "What a {good} {thing}.",
    "The {thing} made me so happy.", "I had a {good} time at the {thing}.",
    "Best {thing} ever, I would go again.", "The {thing} was {good} and everyone smiled.",
    "Thank you for the {good} {thing}!", "I am really pleased with the {thing}.",
)
NEGATIVE = (
    "I hated the {thing}, it was {bad}.", "What a {bad} {thing}.",
    "The {thing} made me really sad.", "I had a {bad} time at the {thing}.",
    "Worst {thing} ever, I will never go again.", "The {thing} was {bad} and nobody smiled.",
    "I am very disappointed with the {thing}.", "The {thing} was a waste of time.",
)
SENT_SLOTS = {
    "thing": ("party", "film", "picnic", "concert", "meal", "holiday", "book", "game",
              "lesson", "trip", "show", "match"),
    "good": ("wonderful", "brilliant", "lovely", "fantastic", "delightful", "great"),
    "bad": ("awful", "boring", "terrible", "dreadful", "horrible", "dull"),
}
SENT_PHRASES = (
    "Is the sentiment of this sentence positive or negative?",
    "Classify the following review as positive or negative.",
    "Does this sentence express a positive or a negative feeling?",
    "Label the sentiment: positive or negative.",
    "Decide whether this text is positive or negative.",
)


def task_sentiment(rng: random.Random) -> Item:
    positive = rng.random() < 0.5
    text = fill(rng.choice(POSITIVE if positive else NEGATIVE), rng, SENT_SLOTS)
    return rng.choice(SENT_PHRASES), text, "Positive" if positive else "Negative"


ANIMALS = {
    "mammal": ("fox", "badger", "rabbit", "hedgehog", "otter", "mouse", "horse", "whale",
               "dolphin", "bat", "cow", "goat", "squirrel", "deer", "elephant", "mole"),
    "bird": ("owl", "robin", "goose", "heron", "sparrow", "eagle", "penguin", "swan", "duck",
             "crow", "magpie", "ostrich", "parrot", "wren"),
    "fish": ("salmon", "trout", "shark", "cod", "goldfish", "pike", "eel", "herring", "carp"),
    "reptile": ("tortoise", "snake", "lizard", "crocodile", "turtle", "gecko"),
    "amphibian": ("frog", "toad", "newt", "salamander"),
    "insect": ("bee", "ant", "butterfly", "beetle", "ladybird", "dragonfly", "moth", "grasshopper"),
}
ANIMAL_PHRASES = (
    "Is a(n) {a} a mammal, bird, fish, reptile, amphibian or insect?",
    "Which group of animals does the {a} belong to?",
    "What kind of animal is a(n) {a}? Answer with its class.",
    "Is the {a} a mammal, a bird, a fish, a reptile, an amphibian or an insect?",
)


def task_animal(rng: random.Random) -> Item:
    group = rng.choice(sorted(ANIMALS))
    animal = rng.choice(ANIMALS[group])
    out = capitalise(fill(f"a(n) {animal} is a(n) {group}.", rng))
    if rng.random() < 0.25:
        phrase = "Classify this animal: mammal, bird, fish, reptile, amphibian or insect."
        return phrase, animal, out
    return fill(rng.choice(ANIMAL_PHRASES), rng, {"a": animal}), "", out


SPAM_PHRASES = (
    "Is this text message spam or not spam?",
    "Classify the following SMS as spam or ham.",
    "Decide whether this message is spam.",
    "Would you mark this text as spam? Answer spam or ham.",
    "Label this SMS: spam or ham.",
)


def task_spam(rng: random.Random) -> Item:
    is_spam = rng.random() < 0.5
    text = sms.make_spam(rng) if is_spam else sms.make_ham(rng)
    return rng.choice(SPAM_PHRASES), " ".join(text.split()), "spam" if is_spam else "ham"


# --- the invented world -----------------------------------------------------------------------


def task_world(rng: random.Random) -> Item:
    if rng.random() < 0.3:
        q, a = rng.choice(world.WORLD_FACTS)
        return q, "", a
    c = rng.choice(world.CHARACTERS)
    who = f"{c.name} the {c.kind}"
    does = "does"  # the subject is the name, so singular even for "they" characters
    field = rng.choice(("home", "kind", "food", "job"))
    if field == "home":
        q = rng.choice((f"Where does {who} live?", f"Where is {c.name}'s home?",
                        f"In which place would you find {who}'s home?"))
        a = f"{capitalise(who)} lives {c.home}."
    elif field == "kind":
        q = rng.choice((f"What kind of animal is {c.name}?", f"What sort of creature is {c.name}?",
                        f"Who is {c.name}?"))
        if c.kind in ("girl", "boy", "old woman"):
            q = rng.choice((f"Who is {c.name}?", f"Is {c.name} an animal or a person?"))
        a = fill(f"{c.name} is a(n) {c.kind} who lives {c.home}.", rng)
    elif field == "food":
        q = rng.choice((f"What {does} {who} like to eat?", f"What is {c.name}'s favourite food?",
                        f"What food {does} {c.name} love most?"))
        a = f"{capitalise(who)} loves {c.food}."
    else:
        q = rng.choice((f"What is {c.name} known for?", f"What {does} {who} do?",
                        f"Tell me one thing {c.name} is known for."))
        a = f"{c.name} {c.job}."
    return q, "", a


SUMMARY_PHRASES = (
    "Summarise this story in one or two sentences.",
    "Write a short summary of the story below.",
    "What happens in this story? Answer briefly.",
    "Give a brief summary of the following story.",
    "Sum up this story in a couple of sentences.",
)


def task_summary(rng: random.Random) -> Item:
    story = stories.make_story(rng)
    return rng.choice(SUMMARY_PHRASES), story.text, story.summary


# --- lists and strings ------------------------------------------------------------------------

CATEGORIES = {
    "fruits": ("apple", "pear", "plum", "cherry", "banana", "orange", "grape", "peach",
               "lemon", "strawberry", "mango", "apricot"),
    "vegetables": ("carrot", "potato", "onion", "pea", "cabbage", "leek", "bean", "turnip",
                   "lettuce", "spinach", "parsnip"),
    "colours": ("red", "blue", "green", "yellow", "purple", "orange", "pink", "brown",
                "white", "black", "grey"),
    "farm animals": ("cow", "pig", "sheep", "goat", "hen", "horse", "duck", "donkey", "goose"),
    "tools": ("hammer", "saw", "spade", "screwdriver", "rake", "drill", "chisel", "spanner"),
    "musical instruments": ("piano", "violin", "drum", "flute", "guitar", "trumpet", "harp",
                            "cello", "recorder"),
    "things in a kitchen": ("kettle", "spoon", "oven", "fridge", "plate", "pan", "cup",
                            "toaster", "bowl", "whisk"),
    "shapes": ("circle", "square", "triangle", "rectangle", "oval", "hexagon", "star",
               "diamond"),
    "sports": ("football", "tennis", "swimming", "cricket", "running", "netball", "hockey",
               "rowing", "cycling"),
    "things you wear": ("hat", "scarf", "coat", "boots", "gloves", "jumper", "socks", "shirt"),
    "places in Hollowmere's valley": tuple(p.name for p in world.PLACES),
}
LIST_PHRASES = (
    "List {n} {cat}.",
    "Name {n} {cat}.",
    "Give me a list of {n} {cat}.",
    "Write down {n} examples of {cat}.",
    "Can you think of {n} {cat}?",
)
NUM_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}


def task_list(rng: random.Random) -> Item:
    cat = rng.choice(sorted(CATEGORIES))
    n = rng.randint(3, 5)
    items = rng.sample(CATEGORIES[cat], n)
    phrase = rng.choice(LIST_PHRASES).format(n=NUM_WORDS[n], cat=cat)
    return phrase, "", "\n".join(f"{i}. {capitalise(x)}" for i, x in enumerate(items, 1))


def _all_words() -> tuple[str, ...]:
    words = {w for pair in ANTONYMS + SYNONYMS for w in pair}
    words |= {w for pair in NOUNS for w in pair}
    return tuple(sorted(words))


WORDS = _all_words()


def task_reverse(rng: random.Random) -> Item:
    word = rng.choice(WORDS)
    phrase = rng.choice((
        f"Spell the word \"{word}\" backwards.",
        f"Write \"{word}\" in reverse.",
        f"Reverse the letters of the word {word}.",
        "Spell this word backwards.",
    ))
    inp = word if phrase == "Spell this word backwards." else ""
    return phrase, inp, word[::-1]


def _sentence(rng: random.Random) -> str:
    story = stories.make_story(rng)
    sents = [s for s in stories.split_sentences(story.text) if 4 <= len(s.split()) <= 22]
    return rng.choice(sents)


def task_count_words(rng: random.Random) -> Item:
    text = _sentence(rng)
    n = len(text.split())
    phrase = rng.choice((
        "How many words are in this sentence?",
        "Count the words in the following sentence.",
        "Tell me the number of words in this text.",
    ))
    return phrase, text, f"There are {n} words."


def task_count_letters(rng: random.Random) -> Item:
    word = rng.choice([w for w in WORDS if w.isalpha()])
    phrase = rng.choice((
        f"How many letters are in the word \"{word}\"?",
        f"Count the letters in \"{word}\".",
        f"How long is the word {word}, in letters?",
    ))
    return phrase, "", f"The word \"{word}\" has {len(word)} letters."


def task_capitalise(rng: random.Random) -> Item:
    text = _sentence(rng).lower()
    kind = rng.randrange(3)
    if kind == 0:
        phrase = rng.choice(("Convert this text to uppercase.", "Write this in capital letters.",
                             "Make every letter a capital."))
        return phrase, text, text.upper()
    if kind == 1:
        phrase = rng.choice(("Capitalise the first letter of every word.",
                             "Write this in title case, capitalising each word."))
        return phrase, text, " ".join(capitalise(w) for w in text.split(" "))
    phrase = rng.choice(("Convert this text to lowercase.", "Write this without capital letters."))
    upper = text.upper() if rng.random() < 0.5 else " ".join(capitalise(w) for w in text.split())
    return phrase, upper, text


def task_sort(rng: random.Random) -> Item:
    words = rng.sample([w for w in WORDS if w.isalpha()], rng.randint(4, 6))
    phrase = rng.choice((
        "Sort these words into alphabetical order.",
        "Put the following words in alphabetical order.",
        "Arrange these words from A to Z.",
    ))
    return phrase, ", ".join(words), ", ".join(sorted(words))


def task_odd_one_out(rng: random.Random) -> Item:
    cats = sorted(c for c in CATEGORIES if not c.startswith("places"))
    main, other = rng.sample(cats, 2)
    items = rng.sample([x for x in CATEGORIES[main] if x not in CATEGORIES[other]], 3)
    odd = rng.choice([x for x in CATEGORIES[other] if x not in CATEGORIES[main]])
    words = items + [odd]
    rng.shuffle(words)
    phrase = rng.choice((
        "Which word is the odd one out?",
        "Find the word that does not belong with the others.",
        "One of these does not fit. Which one?",
    ))
    return phrase, ", ".join(words), f"\"{odd}\" is the odd one out; the others are {main}."


# --- assembling -------------------------------------------------------------------------------

TASKS: dict[str, Callable[[random.Random], Item]] = {
    "passive_to_active": task_passive_to_active,
    "make_formal": task_make_formal,
    "simplify": task_simplify,
    "grammar_correction": task_grammar,
    "antonym": task_antonym,
    "synonym": task_synonym,
    "plural": task_plural,
    "past_tense": task_past_tense,
    "arithmetic": task_arithmetic,
    "unit_conversion": task_units,
    "compare_numbers": task_compare,
    "sentiment": task_sentiment,
    "animal_class": task_animal,
    "spam_or_ham": task_spam,
    "world_facts": task_world,
    "story_summary": task_summary,
    "list_items": task_list,
    "reverse_word": task_reverse,
    "count_words": task_count_words,
    "count_letters": task_count_letters,
    "capitalisation": task_capitalise,
    "alphabetical_sort": task_sort,
    "odd_one_out": task_odd_one_out,
}


def generate(
    seed: int, n_per_task: int = N_PER_TASK, exclude_inputs: frozenset[str] = frozenset()
) -> list[tuple[str, dict[str, str]]]:
    """``(task name, record)`` pairs; no two records share instruction + input.

    ``exclude_inputs`` (lower-cased) keeps out inputs such as the SMS data set's messages, so a
    spam classifier's test messages never turn up in instruction tuning.
    """
    rng = random.Random(seed)
    seen: set[tuple[str, str]] = set()
    out = []
    for name, task in TASKS.items():
        made = tries = 0
        while made < n_per_task:
            tries += 1
            if tries > 50 * n_per_task:
                raise RuntimeError(f"task {name} cannot make {n_per_task} distinct items")
            instruction, inp, output = task(rng)
            key = (instruction, inp)
            if key in seen or (inp and inp.lower() in exclude_inputs):
                continue
            seen.add(key)
            out.append((name, {"instruction": instruction, "input": inp, "output": output}))
            made += 1
    return out


def split(
    items: list[tuple[str, dict[str, str]]], seed: int, splits=SPLITS
) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Stratified by task: each task's items are shuffled and cut by the same fractions."""
    rng = random.Random(seed)
    out: dict[str, list] = {name: [] for name, _ in splits}
    for task in TASKS:
        group = [it for it in items if it[0] == task]
        rng.shuffle(group)
        start = 0
        for i, (name, frac) in enumerate(splits):
            end = len(group) if i == len(splits) - 1 else start + round(len(group) * frac)
            out[name] += group[start:end]
            start = end
    for name in out:
        rng.shuffle(out[name])
    return out


def generate_splits(
    seed: int, n_per_task: int = N_PER_TASK, exclude_inputs: frozenset[str] = frozenset()
) -> dict[str, list]:
    """``{split: [(task, record), ...]}``."""
    return split(generate(seed, n_per_task, exclude_inputs), seed)


def to_json(items: list[tuple[str, dict[str, str]]]) -> str:
    return json.dumps([rec for _, rec in items], indent=2, ensure_ascii=False) + "\n"
