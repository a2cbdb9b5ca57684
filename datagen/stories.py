"""Procedural children's stories set in the world of :mod:`datagen.world`.

A story is built from a :class:`Plot` (who, where, which problem, how it was solved) and then
told beat by beat: an opening, the setting, the problem, a conversation, failed attempts, advice,
the solution and an ending, sometimes with a moral. Every beat has many templates with nested
alternatives, so the same sentence rarely appears twice. Because the plot is explicit, each story
also gets a short summary that is correct by construction (the instruction set uses it).

>>> import random
>>> story = make_story(random.Random(3))
>>> story.summary.endswith(".")
True
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from datagen import world
from datagen.templates import fill
from datagen.world import HE, SHE, THEY, Character

SEPARATOR = "<|endoftext|>"
TARGET_BYTES = 2_300_000

# --- characters -------------------------------------------------------------------------------

NAMES = (
    "Lily", "Sam", "Hazel", "Finn", "Bella", "Milo", "Poppy", "Oscar", "Ivy", "Leo", "Rosie",
    "Alfie", "Daisy", "Teddy", "Maya", "Jasper", "Clara", "Felix", "Luna", "Arlo", "Hattie", "Ned",
    "Olive", "Percy", "Willa", "Basil", "Tilly", "Hugo", "Mabel", "Rory", "Elsie", "Otis", "Fern",
    "Cosmo", "Greta", "Iggy", "Nora", "Quill", "Sunny", "Tansy", "Bo", "Kit", "Marlo", "Sage",
    "Pebble", "Button", "Biscuit", "Maple", "Acorn", "Thistle", "Bramwell", "Lottie", "Sid",
    "Winnie", "Pickle", "Jot", "Hollis", "Tamsin", "Orla", "Bert", "Della", "Gus", "Petra",
    "Sorrel", "Toby", "Wilf", "Zara", "Cass", "Inky", "Mopsy", "Noor", "Ravi", "Ada", "Elliot",
    "Amos", "Bryony", "Caspar", "Dilly", "Edwin", "Flora", "Gideon", "Hester", "Ivo", "Jemima",
    "Kasper", "Linnet", "Monty", "Nell", "Ollie", "Peony", "Quentin", "Rowan", "Saffron", "Tam",
    "Ursula", "Vesper", "Wally", "Yara", "Ziggy", "Alma", "Barley", "Cleo", "Dusty", "Effie",
    "Fitz", "Ginny", "Hamish", "Isla", "Juno", "Kes", "Lulu", "Merry", "Nico", "Opal", "Pim",
    "Rolo", "Suki", "Tadpole", "Umber", "Vito", "Wilma", "Xander", "Yoyo", "Zeb", "Conker",
    "Dumpling", "Puddle", "Snowdrop", "Sprout", "Treacle", "Whisker", "Crumpet", "Fudge",
)

# kind -> home phrases (each follows "lived")
HOMES = {
    "burrow": (
        "in a cosy burrow under a hawthorn hedge",
        "in a burrow at the bottom of a sandy bank",
        "in a little hole between the roots of a beech tree",
        "under a mossy log at the edge of Thimble Wood",
        "in a tunnel beneath Larkspur Meadow",
    ),
    "nest": (
        "in a nest at the top of a tall ash tree",
        "in the ivy on the old church tower",
        "in a hollow in a crooked apple tree",
        "high in the chestnut tree on the village green",
    ),
    "water": (
        "in the reeds at the edge of Greyfen Marsh",
        "on the bank of the river Sable, close to Mossy Bridge",
        "by the still water of Glimmer Lake",
        "under the willow where the stream met the river",
    ),
    "farm": (
        "on a small farm at the foot of Lantern Hill",
        "in a red barn outside Hollowmere",
        "in a field full of buttercups behind the Old Mill",
    ),
    "human": (
        "in a little white cottage at the end of the lane",
        "above the bakery in Hollowmere",
        "in a house with a green door near the village green",
        "in a cottage with roses around the door",
        "in a narrow house by the market square in Brackenford",
    ),
}

KINDS = {
    "burrow": ("rabbit", "mouse", "hedgehog", "badger", "mole", "fox", "hare", "squirrel", "vole"),
    "nest": ("robin", "sparrow", "crow", "wren", "magpie", "blackbird", "owl", "starling"),
    "water": ("otter", "duck", "frog", "beaver", "heron", "toad", "swan", "water vole"),
    "farm": ("lamb", "goat", "pig", "calf", "donkey", "kitten", "puppy", "hen", "pony"),
    "human": ("girl", "boy"),
}

TRAITS = (
    "brave", "shy", "curious", "clever", "kind", "gentle", "cheerful", "grumpy", "careful",
    "clumsy", "proud", "patient", "impatient", "bold", "quiet", "noisy", "cheeky", "thoughtful",
    "helpful", "stubborn", "dreamy", "lively", "honest", "generous", "timid", "playful",
    "sensible", "forgetful", "hard-working", "friendly", "bossy", "nervous", "merry", "sleepy",
    "tidy", "messy", "daring", "chatty", "polite", "adventurous",
)

HOBBIES = (
    "loved to collect shiny pebbles",
    "liked to sing while {h_he} worked",
    "spent hours watching the clouds",
    "always had a pocket full of seeds",
    "could never sit still for long",
    "kept a little book of drawings",
    "knew the name of every flower in the meadow",
    "liked to count the stars before bed",
    "made up rhymes about everything",
    "{h_was} always the first to wake up in the morning",
    "loved the smell of rain",
    "dreamed of one day seeing the sea",
    "{h_was} very good at finding things",
    "told jokes that made everyone groan",
    "liked to build towers out of twigs",
)

FOODS = (
    "acorns", "honey", "apples", "clover", "strawberries", "hazelnuts", "cheese", "seed cake",
    "blackberries", "carrots", "plum jam", "warm bread", "pea soup", "oat biscuits", "pears",
)

ELDERS = (
    ("Grandmother Sorrel", "heron", SHE),
    ("Old Tam", "tortoise", HE),
    ("Aunt Bettony", "goat", SHE),
    ("Uncle Rook", "crow", HE),
    ("Old Hetty", "hare", SHE),
    ("Mr Pennyroyal", "toad", HE),
    ("Madam Quince", "owl", SHE),
    ("Grandpa Burdock", "badger", HE),
)


def random_character(rng: random.Random, avoid: set[str]) -> Character:
    group = rng.choice(sorted(KINDS))
    kind = rng.choice(KINDS[group])
    name = rng.choice([n for n in NAMES if n not in avoid])
    if group == "human":
        pronouns = SHE if kind == "girl" else HE
    else:
        pronouns = rng.choices((HE, SHE, THEY), weights=(45, 45, 10))[0]
    return Character(
        name,
        kind,
        pronouns,
        tuple(rng.sample(TRAITS, 3)),
        rng.choice(HOMES[group]),
        "",
        food=rng.choice(FOODS),
        job=rng.choice(HOBBIES),
    )


def character_context(c: Character, prefix: str, rng: random.Random) -> dict[str, str]:
    names = {"h": "hero", "f": "friend", "e": "elder"}
    ctx = c.pronouns.as_context(prefix)
    ctx[names[prefix]] = c.name
    ctx[f"{names[prefix]}_kind"] = c.kind
    ctx[f"{prefix}_trait"] = rng.choice(c.traits)
    ctx[f"{prefix}_home"] = c.home
    ctx[f"{prefix}_food"] = c.food or rng.choice(FOODS)
    ctx[f"{prefix}_job"] = c.job or rng.choice(HOBBIES)
    return ctx


# --- shared vocabulary ------------------------------------------------------------------------

SEASON_LOOKS = {
    "spring": (
        "the cherry trees were in blossom",
        "lambs were calling in the fields",
        "the first swallows had come back",
        "primroses were peeping out of the hedges",
        "the days were growing longer and the mud was drying",
    ),
    "summer": (
        "the air was warm and smelled of hay",
        "bees hummed lazily in the clover",
        "the river glittered in the sunshine",
        "the evenings were long and golden",
        "the wild roses were open along every lane",
    ),
    "autumn": (
        "the leaves were turning gold and red",
        "shiny conkers lay in the grass",
        "mist hung over the river in the mornings",
        "the apples were ripe in the orchard",
        "the wind tugged the last leaves from the trees",
    ),
    "winter": (
        "frost sparkled on every twig",
        "snow lay thick on the roofs",
        "the puddles had frozen hard",
        "the nights were long and the stars were very bright",
        "smoke curled from every chimney",
    ),
}

TIMES = ("morning", "afternoon", "evening")
FEEL_BAD = (
    "worried", "upset", "miserable", "anxious", "sad", "gloomy", "unhappy", "troubled", "glum",
)
FEEL_GOOD = (
    "happy", "delighted", "proud", "relieved", "glad", "overjoyed", "thrilled", "cheerful",
)
SAID = (
    "said", "said softly", "said quietly", "replied", "answered", "said kindly", "said slowly",
    "said with a smile", "said firmly", "whispered",
)
ASKED = ("asked", "asked gently", "wondered aloud", "asked softly", "asked at once")
CRIED = ("cried", "shouted", "called out", "exclaimed", "gasped", "squeaked")
QUICKLY = ("quickly", "at once", "straight away", "without a moment's pause", "in a hurry")
SLOWLY = ("slowly", "carefully", "very gently", "step by step", "one small step at a time")

BASE_CONTEXT = {
    "feel_bad": FEEL_BAD,
    "feel_good": FEEL_GOOD,
    "said": SAID,
    "asked": ASKED,
    "cried": CRIED,
    "quickly": QUICKLY,
    "slowly": SLOWLY,
    "village": world.VILLAGE,
    "river": world.RIVER,
}

# --- generic beats ----------------------------------------------------------------------------

OPENINGS = (
    "Once upon a time, there was a(n) {h_trait} little {hero_kind} called {hero}.",
    "[There was once|Long ago there was|Not so long ago there was] a(n) {h_trait} {hero_kind} "
    "named {hero}, who lived {h_home}.",
    "{Hero} was a(n) {h_trait} young {hero_kind} who lived {h_home}.",
    "This is a story about {hero}, a(n) {h_trait} {hero_kind} who lived {h_home}.",
    "[In the valley of the river Sable|Near the village of Hollowmere|Not far from Hollowmere], "
    "there lived a(n) {h_trait} {hero_kind} called {hero}.",
    "Everyone [in Hollowmere|in the valley|for miles around] knew {hero}, the {h_trait} "
    "{hero_kind} who lived {h_home}.",
    "{Hero} the {hero_kind} lived {h_home}.",
    "[Once|One year|Long ago], a(n) {hero_kind} called {hero} lived {h_home}.",
)

DETAILS = (
    "{H_he} {h_job}.",
    "{H_he} loved {h_food} more than anything [else in the world|else].",
    "{H_he} {h_was} {h_trait}, [but|and] {h_he} {h_was} also [very|rather|quite] {h_trait2}.",
    "[Some said|Everyone agreed|It was well known] that {hero} {h_job}.",
    "Nothing made {hero} happier than {h_food}[| for supper| after a long day].",
    "{H_his} friends said {h_he} {h_was} [very|truly|rather|wonderfully] {h_trait}.",
)

FRIEND_INTROS = (
    "{H_his} best friend was {friend}, a(n) {f_trait} {friend_kind} who lived {f_home}.",
    "{Hero}'s [best|closest|oldest] friend was a(n) {f_trait} {friend_kind} called {friend}.",
    "{H_he} [often|always|usually] played with {friend} the {friend_kind}, who lived {f_home}.",
    "Not far away lived {friend}, a(n) {f_trait} {friend_kind}, and the two of them were "
    "[the best of friends|never apart|always together].",
    "{Hero} and {friend} the {friend_kind} had been friends for as long as either of them "
    "could remember.",
)

SETTINGS = (
    "It was {season}[ {place_at}| in the valley of the river Sable|, {hero}'s favourite time "
    "of year], and {season_look}.",
    "One {time} in {season}, when {season_look}, {hero} [went|wandered|walked|set off] to "
    "{place}.",
    "[Early|Late] one {season} {time}, {hero} [went out|hurried out|stepped outside] and "
    "[looked|gazed] across {place}.",
    "[The story begins|It all began|It happened] on a(n) {season} {time}, when {season_look}.",
    "It was a(n) [bright|grey|quiet|windy|still|chilly|mild] {season} {time} {place_at}, and "
    "{season_look}.",
    "That {season}, {season_look}, and {hero} spent most days near {place}, where {h_he} "
    "could see {place_look}.",
    "One {time}, {hero} [went|ran|trotted|strolled] down to {place}, where {h_he} could see "
    "{place_look}.",
)

REACTIONS = (
    "{Hero} felt [very|terribly|truly] {feel_bad}[| and did not know what to do| and sat down "
    "on a stone| and wished {friend} were there].",
    "{Hero}'s heart sank[| like a stone in {river}| all the way to {h_his} toes| at once].",
    "{Hero} [sat down|stopped|stood still] [and|,] [sighed|frowned|bit {h_his} lip|stared at "
    "the ground][| for a long time| in the {time} light].",
    "For a moment, {hero} did not know what to do[| or whom to ask| at all| next].",
    "{H_he} felt {feel_bad} and [a little|rather|very] small[, standing there {place_at}| in "
    "the big wide world| all of a sudden].",
    "[Poor|Oh dear, poor] {hero} felt a lump in {h_his} throat[| and blinked hard| and "
    "sniffed].",
    "{Hero} [was|felt] so {feel_bad} that {h_he} could not even think about {h_food}.",
    "[\"What a(n) {time} this is turning out to be!\" thought {hero}.|This was not how {hero} had hoped the {time} "
    "would go.|It was the worst {season} {time} {hero} could remember.]",
)

GOOD_ENDINGS = (
    "{Hero} felt {feel_good} all the way [home|to the tips of {h_his} toes|back to {place}].",
    "That night, {hero} [went to sleep|fell asleep|curled up in bed|drifted off] with a(n) "
    "[big|happy|warm|sleepy] smile on {h_his} face[| while the {season} wind blew outside| "
    "and dreamed of {h_food}].",
    "Everyone [cheered|clapped|laughed with joy], and {hero} felt [so|truly|wonderfully] "
    "{feel_good}[| that {h_he} did a little dance| from nose to tail].",
    "[Afterwards|Later|That evening|When the work was done], {hero} and {friend} shared a(n) "
    "[big|warm|happy|noisy] supper of {h_food}[| by the fire| under the stars| {place_at}].",
    "[From that day on|Ever after|After that], {hero} and {friend} were even better friends "
    "than before[| and went everywhere together| and told the story to anyone who would "
    "listen].",
    "When the {season} sun [went down|set|sank] over {place}, {hero} was still smiling.",
    "{Friend} gave {hero} a(n) [big|warm|gentle|long] hug, and they both [laughed|smiled|"
    "giggled][| until their sides ached| at the same time].",
    "[It had been a long {time}, but|Tired but {feel_good},|With a happy sigh,] {hero} "
    "[walked|skipped|wandered|hurried] home [past {place}|as the stars came out|in the {season} dusk|"
    "before it grew dark].",
)

MORAL_INTROS = (
    "{Hero} learned that {moral}.",
    "And so {hero} found out that {moral}.",
    "That {season}, {hero} understood that {moral}.",
    "{H_he} never forgot that {moral}[| and told the story to {h_his} own children one day].",
    "It goes to show that {moral}[|, as {elder} always says].",
    "As {elder} the {elder_kind} liked to say, {moral}.",
)


# --- problems ---------------------------------------------------------------------------------


@dataclass
class Problem:
    """All the templates for one kind of problem; ``slots`` fills the plot details."""

    name: str
    slots: tuple[dict[str, str], ...]
    setup: tuple[str, ...]
    talk: tuple[str, ...]
    reply: tuple[str, ...]
    tries: tuple[str, ...]
    help: tuple[str, ...]
    solve: tuple[str, ...]
    end: tuple[str, ...]
    morals: tuple[str, ...]
    summary: str


LOST_THINGS = (
    ("red scarf", "{h_his} grandmother had knitted it"),
    ("silver bell", "it had been a present from {friend}"),
    ("wooden whistle", "{h_his} father had carved it"),
    ("lucky blue marble", "{h_he} had carried it everywhere for years"),
    ("little map of the valley", "{h_he} had drawn it {h_himself}"),
    ("brass key", "it opened the box where {h_he} kept {h_his} treasures"),
    ("green hat with a feather", "it had been {h_his} birthday present"),
    ("tin of buttons", "{h_he} had spent a whole summer collecting them"),
    ("string of glass beads", "{h_his} mother had given it to {h_him}"),
    ("storybook", "it was full of {h_his} favourite tales"),
)
FOUND_AT = (
    ("in a magpie's nest at the top of an ash tree", "a magpie had carried it off"),
    ("under a pile of leaves by the gate", "the wind had blown the leaves over it"),
    ("caught on a bramble bush", "it had snagged there when {hero} ran past"),
    ("at the bottom of {h_his} own basket", "it had been there all along"),
    ("in the reeds by the river", "it had rolled down the bank"),
    ("on the windowsill of the bakery", "a kind baker had picked it up and kept it safe"),
    ("inside an old boot by the barn door", "a family of mice had dragged it there"),
    ("in the long grass of Larkspur Meadow", "it had slipped out of {h_his} pocket"),
)
HIDING_SPOTS = (
    "under the bed", "behind the door", "inside the old chest", "up the chimney",
    "behind the curtains", "in the woodshed", "under the stairs", "in the coal bucket",
    "behind the water butt", "in the attic", "under the table", "in the cellar",
)
SEARCH_SPOTS = (
    "under the hedge", "behind the woodpile", "along the riverbank", "in the vegetable patch",
    "beneath the old oak", "around the village green", "by the well", "in the barn",
    "along the lane", "among the ferns", "beside the pond", "under the bridge",
)

BROKEN = (
    ("the little footbridge over the stream", "planks and rope", "crossed the stream"),
    ("the roof of {h_his} home", "straw and reeds", "slept under it"),
    ("the fence around the vegetable patch", "hazel sticks and twine", "kept the goats out"),
    ("the swing in the chestnut tree", "a new rope and a smooth board", "swung on it"),
    ("the bird table in the garden", "some nails and a flat piece of wood", "fed the birds"),
    ("the dam at the edge of the pond", "stones, mud and sticks", "watched the pond fill"),
    ("the garden gate", "a strong hinge and a little oil", "swung the gate open"),
)

RESCUES = (
    ("tiny kitten", "at the top of a tall pine tree", "a long ladder", "climbed up"),
    ("baby duckling", "on a rock in the middle of the river", "a little boat", "rowed out"),
    ("lost lamb", "on a narrow ledge of Crumble Cliffs", "a strong rope", "lowered a loop"),
    ("young squirrel", "in a thick bramble bush", "a pair of thick gloves", "reached in"),
    ("little beetle", "at the bottom of an empty flowerpot", "a long twig", "made a ramp"),
    ("baby bird", "on the ground under its nest", "a soft basket", "lifted it up"),
    ("muddy puppy", "in a deep ditch", "a wide plank", "laid a path"),
    ("young hedgehog", "at the bottom of a slippery drain", "a wooden ladder", "climbed down"),
)

FEARS = (
    ("the dark", "the dark was just the same world, only resting",
     "walked across the garden at night with only the stars for light"),
    ("thunder", "thunder was only a loud noise, and it could not hurt {h_him} indoors",
     "sat by the window and counted between the flashes and the rumbles"),
    ("deep water", "the water held {h_him} up if {h_he} kept calm and kicked slowly",
     "swam all the way across the pond"),
    ("the big dog at the farm", "the dog was only lonely and wanted someone to play with",
     "walked right up to the dog and let it sniff {h_him}"),
    ("the creaky stairs of the Old Mill", "the creaks were only old wood settling",
     "climbed all the way to the top of the mill"),
    ("high places", "looking at the horizon, not at the ground, kept {h_him} steady",
     "climbed to the top of Lantern Hill and looked out over the valley"),
)

CONTESTS = (
    ("the great race at the summer fair", "running up and down the lane", "tripped over a root",
     "race"),
    ("the baking contest in Hollowmere", "baking little cakes", "burned the first batch",
     "baking contest"),
    ("the kite-flying contest on Lantern Hill", "making and flying kites",
     "tore the paper on a thorn", "kite-flying contest"),
    ("the singing contest at the harvest supper", "singing in the meadow",
     "forgot the words of the second verse", "singing contest"),
    ("the boat race on the river Sable", "sailing a little boat of bark and leaves",
     "watched the sail fall off", "boat race"),
    ("the pumpkin show in Brackenford", "watering a pumpkin every day",
     "found a slug nibbling the pumpkin", "pumpkin show"),
)
CONTEST_RESULTS = (
    ("won first prize", "won"),
    ("came second, and was happy anyway", "came second"),
    ("did not win, but everyone loved {h_his} effort", "did not win but enjoyed it"),
)

QUARRELS = (
    ("who would go first on the swing", "the swing"),
    ("a toy boat that got broken", "a broken toy boat"),
    ("a secret that {hero} had told to someone else", "a secret"),
    ("the last slice of {h_food}", "the last slice of {h_food}"),
    ("whose turn it was to carry the basket", "whose turn it was to carry the basket"),
    ("the rules of a game", "the rules of a game"),
)

SKILLS = (
    ("read", "turned the pages of the picture book",
     "read a whole page out loud without a single mistake"),
    ("whistle a tune", "puffed and puffed until {h_his} cheeks were pink",
     "whistled a clear, bright tune"),
    ("bake bread", "mixed flour, water and yeast",
     "pulled a golden loaf out of the oven"),
    ("skate on the frozen pond", "wobbled across the ice",
     "glided all the way around the pond"),
    ("tie a proper knot", "twisted and looped the rope",
     "tied a knot that held fast"),
    ("swim", "paddled in the shallow water",
     "swam from one bank of the pond to the other"),
    ("play the fiddle", "scraped the bow across the strings",
     "played a little tune that made everyone dance"),
    ("build a kite", "glued sticks and paper together",
     "watched {h_his} kite climb high into the sky"),
)

NOISES = (
    ("a strange tapping", "a branch tapping against the window in the wind"),
    ("a low, sad moaning", "the wind blowing across the top of an empty bottle"),
    ("a squeaking and scratching", "a family of mice living in the attic"),
    ("a soft splashing", "a young otter practising dives in the water butt"),
    ("a thin, wobbly hooting", "a lost owlet calling for its mother"),
    ("a rattling clatter", "a loose slate rocking on the roof"),
)

GIFTS = (
    ("a necklace of acorns", "threaded acorns onto a long piece of grass"),
    ("a painted stone", "painted a smooth stone with flowers"),
    ("a little song", "made up a little song with four verses"),
    ("a basket woven from reeds", "wove reeds into a small round basket"),
    ("a card with pressed flowers", "pressed violets and daisies onto a card"),
    ("a crown of autumn leaves", "tied red and gold leaves into a crown"),
    ("a jar of wild honey", "collected honey with Granny Rosehip's help"),
)

GUIDES = (
    ("followed the sound of the river", "the river always led back to Mossy Bridge"),
    ("looked for the blue sails of the windmill", "the windmill stood on Lantern Hill"),
    ("followed the lanterns in the cottage windows", "the lanterns shone from Hollowmere"),
    ("followed the brightest star", "the brightest star always hung over home"),
    ("followed the smell of baking bread", "the bakery in Hollowmere baked all night"),
)

REMEDIES = (
    ("honey", "Applecross Orchard", "mixed the honey into warm milk"),
    ("fresh mint", "the bank of the river Sable", "made a cup of mint tea"),
    ("elderflowers", "Lantern Hill", "brewed a sweet elderflower drink"),
    ("willow bark", "Glimmer Lake", "made a bitter but helpful tea"),
    ("wild thyme", "Crumble Cliffs", "stirred the thyme into a warm soup"),
)


def _slots(rows: tuple[tuple[str, ...], ...], keys: tuple[str, ...]) -> tuple[dict[str, str], ...]:
    return tuple(dict(zip(keys, row)) for row in rows)


def _problem_lost() -> Problem:
    slots = tuple(
        {"thing": t, "why": w, "found": f, "how": h}
        for t, w in LOST_THINGS
        for f, h in FOUND_AT
    )
    return Problem(
        "lost",
        slots,
        setup=(
            "[Then|But then|Suddenly|All of a sudden], {hero} [noticed|realised|discovered] "
            "that {h_his} {thing} was [gone|missing|not where it should be].",
            "When {hero} [checked {h_his} pockets|reached for {h_his} bag|looked down|got "
            "home], {h_his} {thing} was [not there|missing|nowhere to be seen].",
            "{Hero} had a(n) {thing}, and {h_he} treasured it because {why}. But that {time}, "
            "[it was gone|it had vanished|{h_he} could not find it anywhere].",
        ),
        talk=(
            '"I have lost my {thing}, {friend}. [I have looked everywhere!|What shall I do?|'
            'It was so special to me.|I only had it this {time}!]" {hero} [said|cried].',
            '"{Friend}, have you seen my {thing}?" {hero} {asked}, [looking|sounding] '
            "[very|terribly|rather] {feel_bad}.",
            '"My {thing} has [vanished|disappeared|gone]," {hero} {said}, "and {why}."',
        ),
        reply=(
            '"Don\'t worry, {hero}. We will find [it|your {thing}] together," {friend} {said}.',
            '"Let\'s [look|search] [properly|carefully|one place at a time]," {friend} {said}, '
            "[taking {hero}'s arm|already looking around|pointing to {place}].",
            '"Where did you [see|have] it last?" {friend} {asked}.',
            '"I will help you, {hero}. Two pairs of eyes are better than one," {friend} {said}.',
        ),
        tries=(
            "First they looked {spot1}, but the {thing} was not there.",
            "They searched {spot1} and {spot2}, [turning over every leaf|peering into every "
            "corner|calling out to everyone they met], but [they found nothing|there was no "
            "sign of it].",
            "{Hero} [hunted|searched|looked] {spot1} [until the shadows grew long|for a long "
            "time|again and again], but it was no use.",
            "Next they tried {spot2}. They found [a feather|a snail shell|an old spoon|a "
            "button|a conker] and [a bent nail|a ribbon|a pine cone|a snail], but no {thing}.",
        ),
        help=(
            "At last they asked {elder} the {elder_kind}. \"Think about where you have been "
            "today,\" {e_he} {said}, \"and walk that way again, [slowly|carefully].\"",
            "{Elder} the {elder_kind} [listened|nodded] and said, \"Lost things are often "
            "closer than we think, {hero}.\"",
            "Then {friend} had an idea. \"Let's go back the way we came,\" {f_he} {said}.",
        ),
        solve=(
            "And there it was, {found}! It turned out that {how}.",
            "At last {hero} spotted something {found}. It was the {thing}, and it seemed that "
            "{how}.",
            "[Sure enough|To their joy|Just as the sun began to set], they found the {thing} "
            "{found}. [It turned out that|As it happened,|They soon worked out that] {how}.",
        ),
        end=(
            "{Hero} held the {thing} tight and promised to take better care of it [from now "
            "on|in future|always].",
            "{Hero} thanked {friend} [again and again|with a big hug|warmly] for helping "
            "{h_him} look for the {thing}.",
        ),
        morals=(
            "a good friend makes any search easier",
            "it helps to stay calm and look carefully",
            "patience finds what hurry loses",
        ),
        summary="{Hero} the {hero_kind} lost {h_his} {thing} and searched for it with "
        "{friend}. They found it {found}, because {how}.",
    )


def _problem_repair() -> Problem:
    return Problem(
        "repair",
        _slots(BROKEN, ("broken", "stuff", "use")),
        setup=(
            "During the night there was a(n) [terrible|wild|fierce|howling] storm, and in the "
            "{time} {hero} saw that {broken} was broken.",
            "[A great wind|A heavy storm|A falling branch] had smashed {broken}, and "
            "[nobody knew|no one could decide] what to do.",
            "When {hero} [woke up|came outside|looked out], {h_he} found {broken} lying in "
            "pieces[| after the storm| on the wet ground].",
        ),
        talk=(
            '"Look at {broken}! How will we ever [fix|mend] it?" {hero} {cried}.',
            '"It is ruined, and nobody has {use} since the storm," {hero} said [sadly|to '
            "{friend}|with a sigh].",
            '"We cannot leave {broken} like this," {hero} told {friend}.',
        ),
        reply=(
            '"We can mend it, {hero}. We only need {stuff}," {friend} {said}.',
            '"Let\'s fix it ourselves," {friend} {said}, [rolling up {f_his} sleeves|looking '
            "at the pieces|already thinking hard].",
            '"It won\'t be easy," {friend} {said}, "but [we can try|we have done harder '
            'things|I think we can do it]."',
        ),
        tries=(
            "At first {hero} tried to fix it alone, but the pieces [kept falling down|would not "
            "stay together|slipped out of {h_his} grasp].",
            "They worked all {time}, but the first try at mending {broken} [wobbled and fell|"
            "was crooked|broke again at once].",
            "{Hero} pushed and pulled, but [it was too heavy|nothing fitted|the wind knocked "
            "it over|{h_he} only made it worse].",
        ),
        help=(
            "{Elder} the {elder_kind} came by and watched for a while. \"Start with the "
            "strongest part,\" {e_he} {said}, \"and build from there.\"",
            "Then {elder} the {elder_kind} showed them how to use {stuff} properly.",
            "\"Work together,\" said {elder} the {elder_kind}, \"so that one of you holds "
            "and the other [ties|fixes|hammers].\"",
        ),
        solve=(
            "So they gathered {stuff}, and this time {friend} held while {hero} tied and "
            "hammered. By evening, {broken} was as good as new.",
            "With {stuff} and a lot of patience, they mended {broken}, piece by piece.",
            "[Slowly|Bit by bit|Piece by piece], {broken} took shape again, [stronger than "
            "before|almost as good as new|better than ever].",
        ),
        end=(
            "The next day, everyone {use} again, and they all thanked {hero} and {friend}.",
            "{Hero} stood back and looked at {broken}, which was [not perfect|a little crooked|"
            "a bit lopsided] but [strong|sturdy|all their own work].",
        ),
        morals=(
            "hard jobs are easier when friends share them",
            "broken things can be mended with patience",
            "it is better to try than to give up",
        ),
        summary="After a storm broke {broken}, {hero} the {hero_kind} and {friend} mended it "
        "with {stuff}.",
    )


def _problem_rescue() -> Problem:
    return Problem(
        "rescue",
        _slots(RESCUES, ("creature", "stuck", "tool", "action")),
        setup=(
            "[Suddenly|All at once|Just then], {hero} heard a(n) [tiny|faint|frightened] cry. "
            "There was a(n) {creature} {stuck}!",
            "While {hero} was walking near {place}, {h_he} found a(n) {creature} stuck {stuck}.",
            "{Friend} came running. \"Quick, {hero}!\" {f_he} {cried}. \"There is a(n) "
            "{creature} {stuck}!\"",
        ),
        talk=(
            '"We have to help the {creature}. It looks so [frightened|cold|lonely]," {hero} '
            "{said}.",
            '"How can we [reach|get to] it?" {hero} {asked}, [looking around|biting {h_his} '
            "lip|frowning].",
            '"Don\'t be scared, little one! We are [coming|nearly there|here to help]!" {hero} '
            "called to the {creature}.",
        ),
        reply=(
            '"We need a plan," {friend} {said}, [looking around|thinking hard|glancing at '
            "{hero}].",
            '"Let\'s think for a moment," {friend} {said}, [frowning|scratching {f_his} head].',
            '"I will run and fetch help," {friend} [offered|said].',
        ),
        tries=(
            "{Hero} tried to reach the {creature}, but {h_he} could not [get close enough|"
            "stretch far enough].",
            "They called and called, but the {creature} was too scared to move.",
            "{Hero} [jumped|leaned out|stood on tiptoe] as far as {h_he} could, but it was no "
            "good.",
        ),
        help=(
            "\"What you need is {tool},\" said {elder} the {elder_kind}, who had heard the "
            "noise.",
            "{Elder} the {elder_kind} [hurried over|came to see] and [said|suggested], \"Fetch "
            "{tool}.\"",
            "Then {hero} remembered {tool}, and ran to get it.",
        ),
        solve=(
            "With {tool}, {hero} {action}, [slowly|carefully|gently], and brought the "
            "{creature} safely back.",
            "{Hero} {action} with {tool}, and at last the {creature} was safe.",
            "Using {tool}, they {action} and carried the {creature} home to its mother.",
        ),
        end=(
            "The little {creature} snuggled up to {hero} and [stopped shaking|fell asleep|"
            "gave a tiny, happy squeak].",
            "The {creature}'s mother was so grateful that she [thanked|hugged] {hero} "
            "[again and again|three times].",
        ),
        morals=(
            "even small creatures can do big things",
            "we should always help those in trouble",
            "a clear head helps more than a fast leg",
        ),
        summary="{Hero} the {hero_kind} found a(n) {creature} stuck {stuck} and, with help "
        "from {friend}, rescued it using {tool}.",
    )


def _problem_fear() -> Problem:
    return Problem(
        "fear",
        _slots(FEARS, ("fear", "truth", "brave")),
        setup=(
            "{Hero} had a secret: {h_he} {h_was} [terribly|very|a little] afraid of {fear}.",
            "There was one thing that {hero} feared more than anything, and that was {fear}.",
            "Everyone thought {hero} was brave, but {h_he} {h_was} scared of {fear}.",
        ),
        talk=(
            '"I am scared of {fear}. Please don\'t laugh," {hero} whispered to {friend}.',

            '"What if I am always afraid of {fear}?" {hero} {asked}.',
            '"I wish I were braver, {friend}," {hero} {said}.',
        ),
        reply=(
            '"I would never laugh at you, {hero}. Everyone is scared of something," {friend} '
            "{said}.",
            '"Being brave doesn\'t mean not being scared," {friend} {said}.',
            '"I will stay with you, {hero}, and we can face {fear} together," {friend} {said}.',
        ),
        tries=(
            "The first time {hero} tried to face {fear}, {h_he} turned and ran home.",
            "{Hero} tried to be brave, but {h_his} knees [shook|wobbled|trembled].",
            "Once, {hero} got halfway, then stopped and [hid|covered {h_his} eyes].",
        ),
        help=(
            "{Elder} the {elder_kind} listened, and then explained that {truth}.",
            "{Elder} the {elder_kind} took {hero} aside and told {h_him} that {truth}.",
            "{Friend} sat beside {h_him} and reminded {h_him} that {truth}.",
        ),
        solve=(
            "[Taking a deep breath|Counting to ten|With {friend} close beside {h_him}], "
            "{hero} {brave}.",
            "So, {slowly}, {hero} {brave}, and nothing bad happened at all.",
            "In the end {hero} {brave}, and {h_he} felt taller than ever.",
        ),
        end=(
            "{Hero} was still a little scared of {fear} sometimes, but now {h_he} knew {h_he} "
            "could be brave.",
            "\"I did it!\" {hero} {cried}, and {friend} [cheered|clapped|laughed with joy].",
        ),
        morals=(
            "courage means doing something even when you are afraid",
            "fears grow smaller when we share them",
            "friends make us braver than we think",
        ),
        summary="{Hero} the {hero_kind} was afraid of {fear}. With {friend}'s support, "
        "{h_he} learned that {truth}, and {brave}.",
    )


def _problem_contest() -> Problem:
    slots = tuple(
        {"event": e, "practice": p, "mishap": m, "event_short": k, "result": r, "result_short": s}
        for e, p, m, k in CONTESTS
        for r, s in CONTEST_RESULTS
    )
    return Problem(
        "contest",
        slots,
        setup=(
            "[One day|That week|Soon], a notice appeared on the village tree: everyone was "
            "invited to {event}.",
            "{Hero} wanted [more than anything|very much|with all {h_his} heart] to take part "
            "in {event}.",
            "Everyone was talking about {event}, and {hero} decided to enter.",
        ),
        talk=(
            '"I am going to enter {event}, {friend}, but I have never done anything like it!" '
            "{hero} [said|admitted|confessed].",
            '"Do you think I could win {event}?" {hero} {asked}.',
            '"Will you help me get ready, {friend}?" {hero} {asked}.',
        ),
        reply=(
            '"Of course, {hero}. We will practise every {time}," {friend} {said}.',
            '"You can do it, {hero}. Just keep [trying|going|practising]," {friend} {said}.',
            '"Winning doesn\'t matter, {hero}. Doing your best does," {friend} {said}.',
        ),
        tries=(
            "So {hero} began practising, {practice} every day. But on the [second|third|"
            "fourth] day {h_he} {mishap}.",
            "{Hero} spent every {time} {practice}, but once {h_he} {mishap} and nearly gave "
            "up.",
            "[Practising was hard|It was harder than it looked|Nothing went right at first], "
            "and [one {time}|on the second day|one rainy {time}] {hero} {mishap} while "
            "everyone [laughed|giggled|stared].",
        ),
        help=(
            "{Elder} the {elder_kind} said, \"Every expert was once a beginner, {hero}. Try "
            "again tomorrow.\"",
            "\"Mistakes are how we learn,\" {elder} the {elder_kind} told {h_him}.",
            "{Friend} said, \"Don't worry about it, {hero}. Everyone makes mistakes.\"",
        ),
        solve=(
            "On the big day, {hero} did {h_his} very best. When the judges spoke, {hero} had "
            "{result}.",
            "When {event} finally came, {hero} tried as hard as {h_he} could, and {result}.",
            "[At last|Finally|Soon] the day of {event} arrived. {Hero} took a deep breath "
            "and, in the end, {result}.",
        ),
        end=(
            "{Friend} was the first to [congratulate|hug|cheer for] {h_him}.",
            "All the way home, {hero} talked about next year's {event_short}.",
        ),
        morals=(
            "practice and patience matter more than winning",
            "mistakes are part of learning",
            "doing your best is something to be proud of",
        ),
        summary="{Hero} the {hero_kind} practised hard for {event} with {friend}'s "
        "encouragement and, despite a setback, {result_short}.",
    )


def _problem_quarrel() -> Problem:
    return Problem(
        "quarrel",
        _slots(QUARRELS, ("about", "about_short")),
        setup=(
            "One day {hero} and {friend} had a(n) [terrible|silly|big] quarrel about {about}.",
            "[It started|It began] with an argument about {about}, and soon {hero} and "
            "{friend} were not speaking.",
            "{Hero} and {friend} [argued|quarrelled|fell out] over {about}.",
        ),
        talk=(
            '"You are not my friend any more, {friend}!" {hero} {cried}, and stamped away.',
            '"It is all your fault!" {hero} shouted at {friend}.',
            '"I don\'t care!" {hero} {said}, though {h_he} did care, very much.',
        ),
        reply=(
            '"Fine!" {friend} shouted back, and [went home alone|stomped off|turned away].',
            '{Friend} did not answer, but just walked away [with {f_his} head down|towards '
            "{place}|without looking back].",
            '"Then I will play by myself!" {friend} said, [and ran off|crossly|with a '
            "scowl].",
        ),
        tries=(
            "{Hero} tried to play alone, but it was no fun without {friend}.",
            "That night, {hero} could not sleep. {H_he} kept thinking about {friend}.",
            "The next day, {hero} walked past {friend}'s home twice, but did not knock.",
        ),
        help=(
            "{Elder} the {elder_kind} noticed how glum {hero} looked. \"A quarrel is like a "
            "knot,\" {e_he} {said}, \"and it is easier to untie when it is [young|new|"
            "small].\"",
            "\"Say sorry first, {hero},\" said {elder} the {elder_kind}, \"because it takes "
            "courage, and courage [mends|fixes|heals] things.\"",
            "{Hero} remembered all the happy days with {friend}, and knew what to do.",
        ),
        solve=(
            "So {hero} went to {friend} and said, \"I am sorry.\" {Friend} smiled and said, "
            "\"I am sorry too, {hero}.\"",
            "{Hero} knocked on {friend}'s door. \"I was wrong,\" {h_he} {said}. \"Can we be "
            "friends again, {friend}?\"",
            "{Hero} picked some [daisies|violets|buttercups|bluebells] and took them to "
            "{friend}, and said sorry.",
        ),
        end=(
            "[After that|From then on|Ever since], {hero} and {friend} [never quarrelled about "
            "{about} again|shared things more fairly|always talked things over first].",
            "[Later|Soon|By teatime], {hero} and {friend} [laughed|giggled] about how silly "
            "the quarrel had been.",
        ),
        morals=(
            "saying sorry is brave, not weak",
            "friendship is worth more than being right",
            "a quarrel is best mended quickly",
        ),
        summary="{Hero} the {hero_kind} and {friend} quarrelled about {about_short}, but "
        "{hero} apologised and they made friends again.",
    )


def _problem_skill() -> Problem:
    return Problem(
        "skill",
        _slots(SKILLS, ("skill", "try", "success")),
        setup=(
            "More than anything, {hero} wanted to learn to {skill}.",
            "{Hero} had always dreamed of being able to {skill}.",
            "All of {hero}'s friends could {skill}, but {hero} could not.",
        ),
        talk=(
            '"Will you teach me to {skill}, {friend}?" {hero} {asked}.',
            '"I will never be able to {skill}," {hero} said [sadly|with a sigh|glumly].',
            '"I want to {skill} by the end of {season}," {hero} told {friend}.',
        ),
        reply=(
            '"Of course I will, {hero}. Let\'s start [today|this {time}|right now]," {friend} '
            "{said}.",
            '"Everyone has to start somewhere," {friend} said, [smiling|kindly].',
            '"You just need practice, {hero}," {friend} {said}.',
        ),
        tries=(
            "{Hero} {try}, but it went [all wrong|badly|nowhere].",
            "Day after day, {hero} {try}. Sometimes {h_he} wanted to give up on learning to "
            "{skill}.",
            "The first time {hero} {try}, everything went wrong, and {h_he} felt "
            "[silly|clumsy|very small].",
        ),
        help=(
            "{Elder} the {elder_kind} said, \"Do a little every day, and one day it will "
            "be easy.\"",
            "\"Go slowly, {hero},\" advised {elder} the {elder_kind}, \"because hurrying "
            "[makes|leads to] mistakes.\"",
            "{Friend} showed {hero} the trick again, {slowly}.",
        ),
        solve=(
            "Then, one {season} {time}, {hero} {success}!",
            "After many tries, {hero} finally {success}.",
            "At last, {hero} {success}, and {friend} clapped.",
        ),
        end=(
            "{Hero} practised every day after that, just for fun.",
            "Soon {hero} was teaching other young ones how to {skill}.",
        ),
        morals=(
            "practice makes hard things easy",
            "everyone is a beginner once",
            "it is never too late to learn",
        ),
        summary="{Hero} the {hero_kind} wanted to learn to {skill}. After many tries and "
        "help from {friend}, {h_he} {success}.",
    )


def _problem_noise() -> Problem:
    return Problem(
        "noise",
        _slots(NOISES, ("noise", "cause")),
        setup=(
            "One night, {hero} was woken by {noise}.",
            "Every evening that week, {hero} heard {noise} from somewhere nearby.",
            "[In the middle of the night|Late that evening|Just after dark], {noise} came "
            "from outside {hero}'s window.",
        ),
        talk=(
            '"Did you hear that, {friend}? What could it be?" {hero} whispered.',
            '"Maybe it is a monster," {hero} {said}, [pulling the blanket up|hiding behind '
            "{friend}|trembling].",
            '"I have to find out what is making that noise," {hero} told {friend}.',
        ),
        reply=(
            '"Monsters aren\'t real, {hero}," {friend} {said}, though {f_he} did not sound '
            "sure.",
            '"Let\'s find out," {friend} said bravely.',
            '"Bring a lantern, {hero}," {friend} {said}.',
        ),
        tries=(
            "They looked {hide1} and {hide2}, but found [nothing|only dust|nothing at all|"
            "only an old sock].",
            "{Hero} crept outside with a lantern, but the noise stopped whenever {h_he} "
            "moved.",
            "[They|{Hero} and {friend}] [listened|pressed their ears] at every [wall|door|"
            "window], but the sound seemed to come from [everywhere|nowhere|all sides at "
            "once].",
        ),
        help=(
            "{Elder} the {elder_kind} said, \"Most strange noises have simple causes. "
            "Listen carefully, {hero}.\"",
            "\"Follow the sound, not your fears,\" {elder} the {elder_kind} told them.",
            "{Friend} said, \"Let's be very still and listen.\"",
        ),
        solve=(
            "At last {hero} found it: the noise was only {cause}!",
            "[Following the sound|Step by step|Creeping closer], they discovered that it was "
            "{cause}.",
            "It turned out to be {cause}, and {hero} laughed with relief.",
        ),
        end=(
            "{Hero} slept soundly after that, and {h_he} {h_was} never scared of the noise "
            "again.",
            "The next time {hero} heard {noise}, {h_he} just smiled and turned over.",
        ),
        morals=(
            "things are often less scary once we understand them",
            "it is better to find out than to worry",
        ),
        summary="{Hero} the {hero_kind} heard {noise} at night. With {friend}, {h_he} "
        "discovered it was {cause}.",
    )


def _problem_gift() -> Problem:
    return Problem(
        "gift",
        _slots(GIFTS, ("gift", "make")),
        setup=(
            "It was nearly {elder}'s birthday, and {hero} wanted to give {e_him} something "
            "special. But {hero} had no money at all.",
            "{Elder} the {elder_kind} had a birthday coming, and {hero} did not know what to "
            "give {e_him}.",
            "{Hero} wanted to thank {elder} the {elder_kind} for all {e_his} kindness, but "
            "{h_he} had nothing to give.",
        ),
        talk=(
            '"What can I give {elder}? I [have no money|haven\'t a penny|spent my last coin '
            'on {h_food}]," {hero} told {friend}.',
            '"Every present in the shop costs too much," {hero} said [sadly|to {friend}].',
            '"I want {elder}\'s present to be perfect," {hero} told {friend}.',
        ),
        reply=(
            '"You could make something for {elder}," {friend} {said}.',
            '"The best presents come from the heart, {hero}," {friend} {said}.',
            '"Let\'s think of what {elder} loves," {friend} {said}.',
        ),
        tries=(
            "{Hero} tried to make a cake, but it came out [flat and burnt|lumpy|as hard as a "
            "stone].",
            "First {hero} tried to draw a picture of {place}, but the paint ran in the rain.",
            "{Hero} tried [three|four|five] ideas, and none of them felt right.",
        ),
        help=(
            "Then {friend} had an idea. \"Why not make {gift}?\" {f_he} {said}.",
            "Looking around {place}, {hero} suddenly knew: {h_he} would make {gift}.",
            "{Hero} remembered that {elder} loved simple things, and decided to make {gift}.",
        ),
        solve=(
            "{Hero} {make}. It took all {time}, but [it was lovely|it was worth it|the "
            "result was beautiful].",
            "So {hero} {make}, very carefully, and wrapped it in a(n) [big leaf|scrap of "
            "cloth|piece of brown paper].",
            "With {friend}'s help, {hero} {make}.",
        ),
        end=(
            "When {elder} opened {gift}, {e_his} eyes filled with happy tears.",
            "\"It is the best present I have ever had, {hero},\" said {elder}.",
        ),
        morals=(
            "the best gifts are made with love, not money",
            "kindness is worth more than gold",
        ),
        summary="{Hero} the {hero_kind} had no money for {elder}'s present, so {h_he} made "
        "{gift} instead, and {elder} loved it.",
    )


def _problem_lost_way() -> Problem:
    return Problem(
        "lost_way",
        _slots(GUIDES, ("guide", "why")),
        setup=(
            "{Hero} and {friend} went exploring beyond {place}, and [a thick fog rolled in|"
            "night fell quickly|snow began to fall]. [Soon|Before long|In no time at all] "
            "[they were lost|they could not tell which way they had come].",
            "While chasing a butterfly, {hero} and {friend} wandered far from home, and when "
            "they looked up, nothing looked familiar.",
            "The path split in two, then in three, and soon {hero} and {friend} had no idea "
            "which way was home.",
        ),
        talk=(
            '"Which way [is home|did we come|should we go]?" {hero} {asked}, [turning in a '
            "circle|looking left and right|peering into the gloom].",
            '"I think we are lost, {friend}," {hero} whispered.',
            '"Everything looks the same [out here|in this fog|in the dark]," {hero} {said}.',
        ),
        reply=(
            '"Stay calm, {hero}. Let\'s think," {friend} {said}.',
            '"We will find the way," {friend} {said}, sounding braver than {f_he} felt.',
            '"Let\'s stay together, whatever happens," {friend} {said}.',
        ),
        tries=(
            "They took the [left|right|narrow|wider|steeper] path, but it [led to|ended at] "
            "a(n) [dark bog|tangle of brambles|steep bank|thick hedge|wide pond].",
            "They [walked|trudged|wandered] [and walked|for what felt like hours|on and on], "
            "but [came back to|found themselves at] the same [fallen tree|mossy stone|twisted "
            "thorn bush|hollow stump].",
            "{Hero} climbed a(n) [rock|tree stump|little hill] to look around, but could see "
            "nothing but [grey|mist|darkness].",
        ),
        help=(
            "Then {hero} remembered what {elder} the {elder_kind} always said: \"If you are "
            "lost, use what you know.\"",
            "{Friend} said, \"What do we know about the way home, {hero}?\"",
            "{Hero} closed {h_his} eyes and thought hard.",
        ),
        solve=(
            "So they {guide}, because {why}, and [before long|soon|at last] they were "
            "[home|back {place_at}|safe at home].",
            "{Hero} {guide}, since {why}, and it led them safely back.",
            "[Then|In the end|After a while] they {guide}. {Why}, and soon they saw the "
            "familiar roofs of [home|Hollowmere|{place}].",
        ),
        end=(
            "[Their families|Everyone at home|All the neighbours] [were so glad|were "
            "overjoyed|were so relieved] to see them, and there was [hot soup|warm milk|a big "
            "pot of stew] for [everyone|both of them].",
            "{Hero} promised never to wander so far without telling anyone.",
        ),
        morals=(
            "staying calm helps us find our way",
            "it is wise to tell someone where you are going",
        ),
        summary="{Hero} the {hero_kind} and {friend} got lost, but found their way home "
        "because they {guide}.",
    )


def _problem_sick() -> Problem:
    return Problem(
        "sick",
        _slots(REMEDIES, ("remedy", "remedy_place", "use_remedy")),
        setup=(
            "One {season} {time}, {friend} fell ill with a terrible cough.",
            "{Friend} was not well. {F_he} lay in bed, [pale and tired|coughing and "
            "sneezing|too weak to get up].",
            "When {hero} went to visit {friend}, {h_he} found {f_him} shivering and ill.",
        ),
        talk=(
            '"What can I do to help, {friend}?" {hero} {asked}.',
            '"Please get better soon," {hero} whispered to {friend}.',
            '"I will find something to make you well, {friend}," {hero} promised.',
        ),
        reply=(
            '"I just feel so tired," {friend} said weakly.',
            '"Thank you, {hero}. You are a good friend," {friend} whispered.',
            '{Friend} tried to smile, but {f_he} {f_was} too weak.',
        ),
        tries=(
            "{Hero} made [soup|porridge|toast], but {friend} was too ill to eat it.",
            "{Hero} tried singing {friend}'s favourite song, but {f_he} {f_was} still poorly.",
            "{Hero} piled up blankets, but {friend} still shivered.",
        ),
        help=(
            "{Elder} the {elder_kind} said, \"{Remedy} from {remedy_place} will help.\"",
            "\"I know what will help,\" said {elder} the {elder_kind}. \"Go to {remedy_place} "
            "and bring back {remedy}.\"",
            "{Hero} remembered that {remedy} from {remedy_place} was good for coughs.",
        ),
        solve=(
            "It was a long way to {remedy_place}, but {hero} went all the same and came back "
            "with {remedy}. Then {h_he} {use_remedy}.",
            "{Hero} hurried to {remedy_place} and found {remedy}. {H_he} {use_remedy}, and "
            "{friend} drank it all.",
            "The path to {remedy_place} was steep, but {hero} did not stop until {h_he} had "
            "{remedy}. Back home, {h_he} {use_remedy}.",
        ),
        end=(
            "A few days later, {friend} was well again and ready to play.",
            "Soon {friend} was better, and {f_he} never forgot how {hero} had helped.",
        ),
        morals=(
            "true friends help each other when times are hard",
            "caring for others is the greatest kindness",
        ),
        summary="When {friend} fell ill, {hero} the {hero_kind} went to {remedy_place} for "
        "{remedy}, and {friend} got better.",
    )


PROBLEMS: tuple[Problem, ...] = (
    _problem_lost(),
    _problem_repair(),
    _problem_rescue(),
    _problem_fear(),
    _problem_contest(),
    _problem_quarrel(),
    _problem_skill(),
    _problem_noise(),
    _problem_gift(),
    _problem_lost_way(),
    _problem_sick(),
)


# --- hand-written passages --------------------------------------------------------------------

# Written for this project, each used once in the corpus.
HANDWRITTEN = (
    "Hollowmere is a small village on the east bank of the river Sable. It has a bakery, a "
    "chestnut tree on the green, and a clock tower where Clementine the goose rings the bell "
    "at noon. On market days, people take Ember's little ferry across the river and walk to "
    "Brackenford to sell their apples and cheese.",
    "In winter, the river Sable runs dark and fast under Mossy Bridge. The children of "
    "Hollowmere throw sticks from one side and run to the other to see whose stick comes out "
    "first. Tobias says the water is faster near the Old Mill, and he is usually right.",
    "Moss the tortoise is one hundred and twelve years old. Moss has seen the windmill on "
    "Lantern Hill built, blown down and built again. When the young ones ask for a story, "
    "Moss closes their eyes for a long time before they begin, and the story is always worth "
    "the wait.",
    "Otto the owl does not sleep at night. He sits in the hollow elm on Lantern Hill and reads "
    "the stars as if they were a book. \"That one is the Kettle,\" he told Pip once, \"and "
    "that one is the Sleeping Hare.\" Pip could not see the hare at all, but he nodded "
    "politely.",
    "Nettle the hedgehog collects lost buttons. She keeps them in rows under the garden wall, "
    "sorted by colour: red, then yellow, then green, then the shiny ones that are no colour "
    "at all. If you lose a button in Hollowmere, ask Nettle. She will give it back, but she "
    "will look a little sad.",
    "The rain came on Tuesday and did not stop until Friday. The ducks were pleased. The "
    "hens were not. Wren stood at the bakery window and counted the drops on the glass until "
    "her mother laughed and gave her a spoon to lick.",
    "Juniper the rabbit raced the wind across Larkspur Meadow. The wind won, but only just, "
    "and only because it did not have to go round the molehills.",
    "Barnaby the badger pretends to be grumpy. He grumbles when you knock on his door, he "
    "grumbles when you ask him to mend your wheelbarrow, and he grumbles all the time he is "
    "mending it. Then he gives it back, as good as new, with a little bag of mushrooms "
    "tucked inside.",
    "In the evening, the frogs of Greyfen Marsh begin to sing. Dot stands on the biggest lily "
    "pad and waves her arms, and the choir goes high, then low, then very loud. Nobody in "
    "Hollowmere has ever asked them to stop.",
    "Granny Rosehip keeps eleven hives at Applecross Orchard. She talks to the bees every "
    "morning and tells them the news: who has had a baby, who has mended a roof, whose cow "
    "has got out again. She says bees like to know what is going on.",
    "Fennel the mouse can count to one hundred. He counts the loaves in the bakery every "
    "morning, and when there are ninety-nine he looks everywhere for the missing one. It is "
    "usually in Wren's basket.",
    "Rufus the dog guards the market in Brackenford. He barks at strangers, at carts, at "
    "pigeons and once, for a whole afternoon, at a pumpkin. Everyone likes him anyway.",
    "The first snow fell softly on Thimble Wood. Pip stepped out of his den and looked at his "
    "paw prints, neat and dark behind him. For a while he walked in circles, just to see the "
    "pattern he could make.",
    "There is a tiny island in the middle of Glimmer Lake with one willow tree on it. "
    "Clementine says she has been there, and that the willow whispers secrets if you sit "
    "very still. Nobody knows if that is true.",
)


# --- telling the story ------------------------------------------------------------------------


@dataclass
class Plot:
    hero: Character
    friend: Character
    elder: Character
    place: str
    season: str
    problem: Problem
    details: dict[str, str]
    moral: str | None


@dataclass
class Story:
    text: str
    summary: str
    plot: Plot = field(repr=False)


def _elder(rng: random.Random, taken: set[str]) -> Character:
    wise = [c for c in world.CHARACTERS if "wise" in c.traits and c.name not in taken]
    if wise and rng.random() < 0.5:
        return rng.choice(wise)
    name, kind, pronouns = rng.choice(ELDERS)
    return Character(name, kind, pronouns, ("wise",), "", "")


def make_plot(rng: random.Random) -> Plot:
    if rng.random() < 0.3:
        hero = rng.choice(world.CHARACTERS)
    else:
        hero = random_character(rng, set())
    if rng.random() < 0.35:
        friend = rng.choice([c for c in world.CHARACTERS if c.name != hero.name])
    else:
        friend = random_character(rng, {hero.name})
    elder = _elder(rng, {hero.name, friend.name})
    if hero.home_place in world.PLACE_BY_NAME and rng.random() < 0.6:
        place = hero.home_place
    else:
        place = rng.choice(world.PLACES).name
    problem = rng.choice(PROBLEMS)
    details = dict(rng.choice(problem.slots))
    moral = rng.choice(problem.morals) if rng.random() < 0.5 else None
    return Plot(hero, friend, elder, place, rng.choice(world.SEASONS), problem, details, moral)


def _context(plot: Plot, rng: random.Random) -> dict:
    ctx: dict = dict(BASE_CONTEXT)
    ctx.update(character_context(plot.hero, "h", rng))
    ctx.update(character_context(plot.friend, "f", rng))
    ctx.update(character_context(plot.elder, "e", rng))
    ctx["h_trait2"] = rng.choice([t for t in plot.hero.traits if t != ctx["h_trait"]])
    ctx["place"] = plot.place
    ctx["place_at"] = world.PLACE_BY_NAME[plot.place].at
    ctx["place_look"] = world.PLACE_BY_NAME[plot.place].looks
    ctx["season"] = plot.season
    ctx["season_look"] = SEASON_LOOKS[plot.season]
    ctx["time"] = rng.choice(TIMES)
    spots = rng.sample(SEARCH_SPOTS, 2)
    ctx["spot1"], ctx["spot2"] = spots
    ctx["hide1"], ctx["hide2"] = rng.sample(HIDING_SPOTS, 2)
    for key, value in plot.details.items():
        ctx[key] = value
    return ctx


def _sentences(rng: random.Random, ctx: dict, options: tuple[str, ...], k: int) -> str:
    """``k`` different templates, kept in their listed order ("First ..." before "Next ...")."""
    chosen = sorted(rng.sample(range(len(options)), k))
    return " ".join(fill(options[i], rng, ctx) for i in chosen)


def tell(plot: Plot, rng: random.Random) -> Story:
    ctx = _context(plot, rng)
    p = plot.problem
    paras = []
    first = [fill(rng.choice(OPENINGS), rng, ctx)]
    first += [fill(t, rng, ctx) for t in rng.sample(DETAILS, rng.randint(1, 2))]
    first.append(fill(rng.choice(FRIEND_INTROS), rng, ctx))
    paras.append(" ".join(first))
    paras.append(fill(rng.choice(SETTINGS), rng, ctx) + " " + fill(rng.choice(p.setup), rng, ctx))
    paras.append(fill(rng.choice(REACTIONS), rng, ctx) + " " + fill(rng.choice(p.talk), rng, ctx))
    paras.append(fill(rng.choice(p.reply), rng, ctx))  # a new speaker starts a new paragraph
    paras.append(_sentences(rng, ctx, p.tries, rng.randint(1, 2)))
    if rng.random() < 0.8:
        paras.append(fill(rng.choice(p.help), rng, ctx))
    paras.append(fill(rng.choice(p.solve), rng, ctx))
    last = [fill(rng.choice(p.end), rng, ctx), fill(rng.choice(GOOD_ENDINGS), rng, ctx)]
    if plot.moral:
        last.append(fill(rng.choice(MORAL_INTROS), rng, {**ctx, "moral": plot.moral}))
    paras.append(" ".join(last))
    summary = fill(p.summary, rng, ctx)
    return Story("\n".join(paras), summary, plot)


def make_story(rng: random.Random) -> Story:
    return tell(make_plot(rng), rng)


# --- the corpus -------------------------------------------------------------------------------


@dataclass
class Corpus:
    text: str
    n_stories: int
    n_handwritten: int
    problem_counts: dict[str, int]
    duplicate_fraction: float


def split_sentences(text: str) -> list[str]:
    """Split on ``. ! ?`` followed by a space, but never inside a quotation, so a line of
    dialogue and its "said Pip" stay one sentence.

    >>> split_sentences('"Hi. Look!" said Pip. It rained.')
    ['"Hi. Look!" said Pip.', 'It rained.']
    """
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line == SEPARATOR:
            continue
        start, quoted = 0, False
        for i, ch in enumerate(line):
            if ch == '"':
                quoted = not quoted
            nxt = line[i + 1 : i + 2]
            # A quote ending in "!" or "?" is usually followed by "said Pip", so only "." ends.
            closes = ch in ".!?" or (ch == '"' and line[i - 1 : i] == ".")
            if closes and not quoted and nxt == " ":
                out.append(line[start : i + 1].strip())
                start = i + 1
        if line[start:].strip():
            out.append(line[start:].strip())
    return out


def duplicate_sentence_fraction(text: str) -> float:
    """Fraction of sentences that are a repeat of an earlier sentence in ``text``."""
    seen: set[str] = set()
    sentences = split_sentences(text)
    dups = 0
    for s in sentences:
        if s in seen:
            dups += 1
        seen.add(s)
    return dups / max(1, len(sentences))


def generate_corpus(seed: int, target_bytes: int = TARGET_BYTES) -> Corpus:
    """Stories until the corpus reaches ``target_bytes``, with the hand-written passages mixed
    in; stories are separated by a blank line and a ``<|endoftext|>`` line."""
    rng = random.Random(seed)
    parts: list[str] = []
    counts: dict[str, int] = {p.name: 0 for p in PROBLEMS}
    size = 0
    while size < target_bytes:
        story = make_story(rng)
        counts[story.plot.problem.name] += 1
        parts.append(story.text)
        size += len(story.text.encode("utf-8")) + len(SEPARATOR) + 3
    n_stories = len(parts)
    for passage in HANDWRITTEN:
        parts.insert(rng.randrange(len(parts) + 1), passage)
    text = f"\n\n{SEPARATOR}\n".join(parts) + "\n"
    return Corpus(text, n_stories, len(HANDWRITTEN), counts, duplicate_sentence_fraction(text))


def summary_story(rng: random.Random) -> Story:
    """One story for the instruction set's summarisation task."""
    return make_story(rng)
