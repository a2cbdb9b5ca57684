"""SMS-style messages, ham and spam, in the SMS Spam Collection layout (``label<TAB>text``).

Nothing here comes from a real message corpus. Ham is built from everyday templates (plans,
family, work, school, jokes, short replies) and then "texted": lower-cased, abbreviated
(u, ur, 2moro, gr8), typo'd and decorated with emoji at random. Spam comes from templates for
the usual scams (prizes, loans, phishing links, premium numbers, parcel fees, locked accounts,
crypto, chat lines, subscriptions), with invented domains, codes, amounts and opt-out footers.
Both sides include hard cases: ham with links, numbers and prizes; spam that sounds casual.
"""

from __future__ import annotations

import random
import re
import string

from datagen.templates import fill

N_MESSAGES = 3600
SPAM_FRACTION = 0.135
SPLITS = (("train", 0.7), ("val", 0.1), ("test", 0.2))

# --- ham --------------------------------------------------------------------------------------

PEOPLE = (
    "mum", "dad", "nan", "grandad", "Jess", "Tom", "Priya", "Dan", "Sophie", "Ali", "Kate",
    "Ben", "Mo", "Chloe", "Liam", "Aisha", "Josh", "Ellie", "Sam", "Zoe", "your brother",
    "your sister", "auntie Pat", "uncle Dev", "the twins", "Nia", "Marcus", "Hannah", "Ravi",
)
PLACES = (
    "the station", "the cafe", "the pub", "the park", "the library", "the gym", "the cinema",
    "the bus stop", "work", "uni", "school", "the shops", "town", "the chippy", "nan's",
    "the corner shop", "the car park", "the big roundabout", "the market", "the leisure centre",
    "the usual place", "the front entrance", "platform 2", "the church hall", "the chemist",
)
TIMES = (
    "7", "half 6", "7.30", "8pm", "noon", "1", "quarter past 5", "10ish", "3", "about 9",
    "6.15", "half 12", "4", "11", "5 o'clock", "2.45", "9.30", "midday", "half 8",
)
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
        "tomorrow", "tonight", "the weekend", "next week")
FOODS = ("pizza", "a curry", "chips", "tacos", "pasta", "a roast", "burgers", "noodles",
         "soup", "a takeaway", "pancakes", "cake", "a sandwich", "fish fingers")
THINGS = ("charger", "keys", "umbrella", "jacket", "wallet", "book", "headphones", "water bottle",
          "glasses", "lunchbox", "bank card", "hoodie", "notes", "lip balm")
ACTIVITIES = ("footie", "the film", "bowling", "the gig", "revision", "the quiz", "swimming",
              "the match", "karaoke", "band practice", "netball", "dinner", "the party")
FEELINGS = ("knackered", "so tired", "bored", "starving", "well happy", "stressed", "ill",
            "soaked", "freezing", "buzzing", "fed up", "fine", "shattered")
SUBJECTS = ("maths", "history", "biology", "french", "chemistry", "english", "geography", "art")

HAM = (
    # plans and meeting up
    "Are you coming to {activity} on {day}?",
    "Meet at {place} at {time}?",
    "I'll be at {place} around {time}",
    "On my way, be there in [5|10|15|20] mins",
    "Running late sorry! Be there by {time}",
    "What time are we meeting {day}?",
    "Where are you? I'm at {place}",
    "Can you pick me up from {place} at {time}?",
    "Still on for {activity} {day}?",
    "Let's do {activity} {day} instead, {day2} is bad for me",
    "I'm outside {place}, where are you?",
    "Bus is late again, gonna be about [10|20|half an hour] late",
    "Shall we get {food} after {activity}?",
    "Fancy {food} tonight? My treat",
    "Just got to {place}, grabbing a table",
    "Leaving now, see you at {time}",
    "Can we make it {time} instead of {time2}?",
    "Is {person} coming {day}?",
    "Do you want to come round {day}? {person} is coming too",
    "Train's cancelled, I'll get the next one",
    "Doors open at {time}, don't be late!",
    # family and home
    "Can you get milk on your way home?",
    "Dinner's ready, come down",
    "Have you fed the cat?",
    "Tell {person} I said happy birthday!",
    "Did you remember to call {person}?",
    "{Person} says hi and wants to know if you're coming for {food} on {day}",
    "Can you put the bins out tonight please",
    "I left my {thing} at yours, can you keep it safe?",
    "Have you seen my {thing} anywhere?",
    "Found your {thing} under the sofa lol",
    "Love you, see you {day} xx",
    "Hope you feel better soon, call me if you need anything",
    "Nan's home from the hospital, she's doing well",
    "Don't forget it's {person}'s birthday {day}!",
    "Picking the kids up at {time}, can you do dinner?",
    "What do you want for tea?",
    "Washing machine's broken again, can you ring the landlord?",
    "Just landed, will call when I get to the hotel",
    "Got home safe, thanks for tonight",
    "Call me on my mobile when you're free, the landline's not working",
    "My new number is this one, save it x",
    "The dog ate my {thing} again",
    # work and school
    "Meeting moved to {time}, same room",
    "Can you send me the notes from {subject}?",
    "Did you finish the {subject} homework?",
    "Exam's on {day}, I haven't revised at all",
    "Boss wants us in early {day}, about {time}",
    "Can you cover my shift on {day}? I'll owe you one",
    "Just finished work, so {feeling}",
    "Got the job!!! Start on {day}",
    "Interview went ok I think, they'll ring me {day}",
    "I'm working late, don't wait up",
    "Teacher says the {subject} test is on {day}",
    "Lecture's cancelled, want to get {food}?",
    "Library closes at {time} so I'll meet you after",
    "Can you print my {subject} essay? Printer's out of ink",
    "Just handed in my {subject} coursework finally",
    # chat, feelings and jokes
    "I'm {feeling}, what a day",
    "Haha that's so funny",
    "Did you see the match last night?",
    "That film was so good, you have to watch it",
    "Omg guess who I just saw at {place}",
    "I can't stop laughing at what {person} said",
    "Why is it always raining when I wash the car",
    "Sorry I missed your call, I was in the shower",
    "Are you ok? You seemed quiet earlier",
    "Good luck {day}! You'll be great",
    "Happy birthday!!! Have an amazing day",
    "Thanks for the present, I love it",
    "Congrats on passing your test!",
    "I'm so proud of you",
    "Miss you loads, come visit soon",
    "Night night, sleep well",
    "Morning! Sleep ok?",
    "Just woke up lol",
    "I think I left the oven on. Nope, it's fine",
    "My phone's about to die, ring you later",
    "What are you up to {day}?",
    "Can't believe it's already {day}",
    "Knock knock. Who's there? Not you, you're always late",
    "I tried to be healthy and bought a salad. Then I ate chips",
    "Is it just me or is it freezing today",
    "Don't tell {person} but I got them a puppy for their birthday",
    # innocent money, prizes, links and numbers (hard cases)
    "I won the pub quiz lol, {amount_small} between the six of us",
    "Can you lend me {amount_small} till {day}?",
    "I owe you {amount_small} for the tickets, will transfer tonight",
    "Won a raffle prize at school, it's a giant teddy haha",
    "We came second in the quiz! Won a box of chocolates",
    "Tickets are {amount_small} each, want me to get you one?",
    "Pay me back whenever, no rush",
    "Got a free coffee because it was my tenth one lol",
    "Mum won the bingo again, she's unstoppable",
    "The car needs a new tyre, {amount_mid} apparently",
    "Here's the link to the photos from {day}: {ham_link}",
    "Can you send me the link for the {subject} lecture?",
    "My code for the gym door is {digits4} if you get there first",
    "Table's booked for {time}, under my name",
    "Call me on my cell, the other phone's broken",
    "Ring the doctor's on Monday, they open at 8",
    "Flat number is {digits2}, buzz when you get here",
    "The plumber says it'll be {amount_mid}, is that ok?",
    "Your parcel came, I put it in the shed",
    "I've sent you {amount_small} for the pizza",
    "Free tonight? Urgent, need help moving the sofa haha",
    # longer, chattier messages
    "Hey, hope work was ok. I'm making {food} later if you want some, just let me know by {time}",
    "So {person} just told me they're moving away next month. I'm gutted, we need a leaving do",
    "Sorry about earlier, I was in a mood. Can we talk {day}? I'll buy the coffee",
    "Right, plan for {day}: meet at {place} at {time}, then {activity}, then {food}. Sound ok?",
    "Just a reminder that the dentist is at {time} {day}. Don't forget your card this time!",
    "Thanks so much for helping with the move, couldn't have done it without you. Pizza on me",
    "The heating's broken again so I'm sitting here in two jumpers and a hat",
    "Did you get home ok? It was pouring when you left",
    "I'm at {place} and they've run out of everything. Do you need anything else?",
    "Can you ask {person} if they still have my {thing}? I think I left it in their car",
    "{Person} is driving me mad today, tell you later",
    "Ugh my train is stuck outside the station. Start without me",
    "Parents evening is at {time} {day}, can you come?",
    "Keys are under the plant pot, let yourself in",
    "Hi it's {person2}, this is my new number. Lost my old phone at {place}",
    "Remember to bring your {thing}, it's going to rain all day",
    "Baby's finally asleep. Don't ring the doorbell when you get here!",
    "Doctor says it's just a cold, I'll be back at work {day}",
    "Who won in the end? I had to leave before the last round",
    "Can you believe {person} has never seen the sea",
    "Got us two tickets for {activity} on {day}!! Seats are rubbish but who cares",
    "Do we need anything from the shop? I'm passing it now",
    "Do you know what the wifi password is? It's not on the router",
    "Our flight got moved to {time}, so we'll be back later than we said",
    "Football's off, the pitch is flooded",
)

SHORT = (
    "ok", "k", "Ok thanks", "Where r u?", "On my way", "Yes", "No", "Sure", "lol", "haha",
    "Thank you!", "Sounds good", "See you soon", "Can't talk now", "Call me", "Love you",
    "Miss you", "Good night", "Morning", "Yeah go on then", "Nah", "Maybe later", "Omw",
    "Done", "Cool", "Fine", "Same", "Ha no way", "What?", "Who is this?", "Ok see u there",
    "Running late", "Ring me when ur free", "Here", "Nearly there", "Yep", "Nope", "Brilliant",
    "Ta", "Nice one", "In a meeting", "Driving", "Home now", "Love that", "Aww", "Good luck!",
    "Happy birthday!", "Congrats!!", "Whatever u want", "Up to u", "Sorry!", "No worries",
)

SLANG = (
    (r"\byou\b", "u"), (r"\byour\b", "ur"), (r"\byou're\b", "ur"), (r"\bare\b", "r"),
    (r"\btomorrow\b", "2moro"), (r"\btonight\b", "2nite"), (r"\bgreat\b", "gr8"),
    (r"\blater\b", "l8r"), (r"\bplease\b", "pls"), (r"\bthanks\b", "thx"), (r"\bokay\b", "k"),
    (r"\bbefore\b", "b4"), (r"\bbecause\b", "cos"), (r"\bsee\b", "c"), (r"\bwhat\b", "wat"),
    (r"\blove\b", "luv"), (r"\bgoing to\b", "gonna"), (r"\bwant to\b", "wanna"),
    (r"\bdon't know\b", "dunno"), (r"\btext\b", "txt"), (r"\bmessage\b", "msg"),
    (r"\bpeople\b", "ppl"), (r"\breally\b", "rly"), (r"\bto\b", "2"), (r"\bfor\b", "4"),
    (r"\bon my way\b", "omw"), (r"\bwith\b", "w"), (r"\btomorrow's\b", "2moros"),
    (r"\bminutes\b", "mins"), (r"\bbirthday\b", "bday"), (r"\btoday\b", "2day"),
    (r"\bI'm\b", "im"), (r"\bdon't\b", "dont"), (r"\bcan't\b", "cant"), (r"\bI'll\b", "ill"),
    (r"\bsomething\b", "sth"), (r"\bthough\b", "tho"), (r"\bbe\b", "b"),
)
EMOJI = ("😂", "😊", "❤️", "👍", "🙈", "😭", "🎉", "😴", "🙄", "😘", ":)", ":(", ";)", ":D", "xx",
         "x", "lol", "haha", "!!", "??")


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:  # swap two letters
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:  # drop one
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]  # double one


def textify(text: str, rng: random.Random) -> str:
    """Make a tidy sentence look typed on a phone, to a random degree."""
    style = rng.random()
    if style < 0.25:
        return text  # some people text neatly
    if style < 0.8:
        intensity = rng.uniform(0.2, 0.9)
        for pattern, short in SLANG:
            if rng.random() < intensity:
                text = re.sub(pattern, short, text, flags=re.IGNORECASE)
    if rng.random() < 0.6:
        text = text.lower()
    if rng.random() < 0.4:
        text = text.rstrip(".!?")
    if rng.random() < 0.2:
        text = text.replace("'", "")
    if rng.random() < 0.25:
        words = text.split(" ")
        j = rng.randrange(len(words))
        words[j] = _typo(words[j], rng)
        text = " ".join(words)
    if rng.random() < 0.3:
        text = f"{text} {rng.choice(EMOJI)}"
    if rng.random() < 0.05:
        text = text.upper()
    return text


def _money(rng: random.Random, lo: int, hi: int) -> str:
    cur = rng.choices(("£", "$", "€"), weights=(6, 2, 2))[0]
    return f"{cur}{rng.randint(lo, hi)}"


def _ham_context() -> dict:
    return {
        "person": PEOPLE,
        "person2": ("Jess", "Tom", "Priya", "Dan", "Ali", "Kate", "Ben", "Chloe", "Marcus"),
        "place": PLACES,
        "time": TIMES,
        "time2": TIMES,
        "day": DAYS,
        "day2": DAYS,
        "food": FOODS,
        "thing": THINGS,
        "activity": ACTIVITIES,
        "feeling": FEELINGS,
        "subject": SUBJECTS,
        "amount_small": lambda r: _money(r, 2, 40),
        "amount_mid": lambda r: _money(r, 45, 300),
        "digits4": lambda r: f"{r.randint(1000, 9999)}",
        "digits2": lambda r: f"{r.randint(1, 99)}",
        "ham_link": lambda r: f"https://photos.{r.choice(HAM_DOMAINS)}/{_code(r, 6).lower()}",
    }


HAM_DOMAINS = ("ourfamilyalbum.net", "snapshare.example", "pixbox.example", "fotoshelf.net")


def make_ham(rng: random.Random) -> str:
    if rng.random() < 0.18:
        text = rng.choice(SHORT)
    else:
        text = fill(rng.choice(HAM), rng, _ham_context())
        if rng.random() < 0.1:  # two thoughts in one message
            text = f"{text}. {fill(rng.choice(HAM), rng, _ham_context())}"
            text = text.replace("?.", "?").replace("!.", "!")
    return textify(text, rng)


# --- spam -------------------------------------------------------------------------------------

SPAM_TLDS = ("xyz", "top", "click", "win", "loan", "bid", "icu", "buzz")
SPAM_WORDS = ("claim", "prize", "win", "reward", "bonus", "secure", "verify", "parcel", "track",
              "redeliver", "account", "update", "cash", "gift", "lucky", "vip", "offer")
SHORTENERS = ("bt-lnk.top", "qk.ly.xyz", "go2.buzz", "lnk-to.click", "tny.icu", "shrt.win")
BANKS = ("your bank", "YourBank", "Oakvale Bank", "Sterling Trust", "FirstCoin Bank",
         "Unity Savings", "your card provider")
PARCELS = ("Crown Parcels", "ParcelGo", "DPX Delivery", "ParcelNest", "SwiftShip", "UK Post Desk")
PRIZES = ("a brand new phone", "a 2-week holiday", "a £500 shopping voucher", "a new tablet",
          "a luxury cruise", "a new car", "£1000 cash", "a games console", "a £250 gift card",
          "a 55 inch TV", "concert tickets", "a weekend in Paris")
FOOTERS = (
    "Txt STOP to {short} to opt out", "To opt out reply STOP", "T&Cs apply 18+",
    "{ppm}/msg", "{ppm} per msg, 18+ only", "Stop? txt STOP", "Std rates apply",
    "Msg&data rates may apply", "Reply STOP to end", "{ppm}/min from landlines",
    "T&C's at {url}", "Unsub: txt STOP {short}", "16+ only. {ppm}/msg rcvd",
)

SPAM = (
    # prizes and lotteries
    "CONGRATULATIONS! You have been selected to receive {prize}. Call {premium} now to claim.",
    "You have WON {money_big} in our monthly draw! To claim call {premium} before {deadline}.",
    "WINNER!! Your number was picked for {prize}. Text WIN to {short} to claim. {footer}",
    "Urgent! Your mobile number has won {money_big}. Claim code {code}. Call {premium}.",
    "FREE entry into our {money_big} prize draw. Text ENTER to {short}. {footer}",
    "You are today's lucky winner of {prize}! Claim at {url} within 24hrs.",
    "Final notice: your prize of {money_big} is still unclaimed. Ref {code}. Call {premium}.",
    "Dear customer, you have been chosen for {prize}. Reply YES to {short} to accept.",
    "Your entry was drawn! Claim {prize} now: {url} {footer}",
    "As a valued customer you've been awarded {money_mid} bonus credit. Visit {url}",
    # cash and loans
    "Need cash fast? Get up to {money_big} today, no credit checks! Reply LOAN to {short}.",
    "Pre-approved loan of {money_big} waiting for you. Apply in 2 mins at {url}",
    "Debt got you down? Write off up to 80% of your debt. Call free {premium} now.",
    "You may be owed {money_mid} in mis-sold insurance refunds. Reply CLAIM to {short}.",
    "Cash in your account in 10 minutes! {money_big} loans, bad credit OK. {url}",
    "You are entitled to a tax refund of {money_mid}. Submit your details at {url}",
    # phishing: bank, account, parcel
    "{Bank}: unusual activity on your account. Verify now at {url} or it will be locked.",
    "{Bank} ALERT: your card has been suspended. Confirm your details: {url}",
    "Your account has been locked due to a security issue. Unlock here: {url}",
    "We could not process your payment. Update your billing details at {url} to avoid "
    "suspension.",
    "{parcel}: your parcel is on hold due to an unpaid fee of {fee}. Pay now at {url}",
    "{parcel}: we missed you today. Reschedule your delivery here: {url}",
    "Your package could not be delivered. A {fee} redelivery charge is due: {url}",
    "{parcel} notice: parcel {code} awaiting customs fee of {fee}. {url}",
    "A new device signed in to your account. Not you? Secure it now: {url}",
    "Your mailbox is full. Verify your account within 24 hours at {url}",
    "Tax Office notice: you have an outstanding fine of {money_mid}. Pay by {deadline}: {url}",
    # crypto and investment
    "Turn {money_small} into {money_big} in a week with our crypto bot! Join: {url}",
    "Bitcoin is about to explode. Get in early, 500% returns guaranteed. {url}",
    "Invest {money_small} today and earn {money_mid} DAILY. Limited spots! {url}",
    "Exclusive crypto signal group, members made {money_big} last month. Text JOIN to {short}",
    # dating, chat, ringtones, subscriptions
    "Hey sexy, I'm new in your area and looking for fun. Chat now on {premium} {footer}",
    "Someone has a crush on you! Find out who: text CRUSH to {short}. {footer}",
    "Lonely tonight? Hot singles want to chat. Call {premium} {footer}",
    "Get the hottest ringtones FREE! Text TONE to {short}. {footer}",
    "Your weekly subscription has been renewed at {ppm}. To cancel reply STOP.",
    "You have 1 new voicemail. Call {premium} to listen. {footer}",
    "Claim your FREE trial of our premium app. Just {ppm} after. Reply GO to {short}",
    "Txt GAME to {short} to play & win {prize} every week! {footer}",
    # casual-sounding spam (hard cases)
    "Hi it's me, lost my phone so this is my new number. Can you text me back on {premium}?",
    "hey did u get my msg about the {money_mid} refund? check {url}",
    "Hi mum, my phone broke. Can you send {money_mid} to my new account? Will explain later",
    "Hey! Long time no see. Look at this pic of you lol {url}",
    "Is this you in this video?? {url}",
    "your order has shipped, track it here {url}",
    "hi, I've been trying to reach you about your car's extended warranty. call {premium}",
    "Thank u for your order of {money_mid}. If this wasn't you call {premium} to cancel",
    "Your {bank} online banking will expire today. Reactivate at {url}",
    "Good news! Your phone contract qualifies for a FREE upgrade. Call {premium} to choose",
    "Work from home and earn {money_mid} a day! No experience needed. Text JOB to {short}",
    "You have an unclaimed gift waiting. Use code {code} at {url} before {deadline}",
    "Last chance! {prize} for just {ppm}. Reply BUY to {short}. {footer}",
    "Your number has been chosen for a free {money_mid} shopping spree. Visit {url}",
    "Important: your parking fine of {fee} is overdue. Pay now to avoid court: {url}",
    "Hello dear, I have a business offer worth {money_big} for you. Reply for details",
    "Your vehicle tax payment failed. Update card at {url} to avoid a {money_mid} penalty",
    "Get paid {money_small} for every survey you complete! Start now: {url}",
)


def _code(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(n))


def _url(rng: random.Random) -> str:
    if rng.random() < 0.35:
        return f"http://{rng.choice(SHORTENERS)}/{_code(rng, rng.randint(4, 7))}"
    words = rng.sample(SPAM_WORDS, rng.randint(1, 3))
    host = rng.choice(("-", "")).join(words) + str(rng.choice(("", rng.randint(1, 99))))
    path = rng.choice(("", "/login", "/claim", "/pay", f"/{_code(rng, 5).lower()}", "/verify"))
    scheme = rng.choice(("http://", "https://", "", "www."))
    return f"{scheme}{host}.{rng.choice(SPAM_TLDS)}{path}"


def _premium(r: random.Random) -> str:
    return "09" + "".join(str(r.randint(0, 9)) for _ in range(9))


def _money_big(r: random.Random) -> str:
    cur = r.choices(("£", "$", "€"), weights=(6, 2, 2))[0]
    return f"{cur}{r.choice((500, 750, 1000, 1500, 2000, 2500, 5000, 10000, 250000)):,}"


def _spam_context() -> dict:
    ctx: dict = {}
    ctx.update({
        "prize": PRIZES,
        "bank": BANKS,
        "parcel": PARCELS,
        "footer": lambda r: fill(r.choice(FOOTERS), r, ctx),
        "premium": _premium,
        "short": lambda r: f"8{r.randint(1000, 9999)}",
        "code": lambda r: _code(r, r.randint(4, 8)),
        "url": _url,
        "money_small": lambda r: _money(r, 10, 100),
        "money_mid": lambda r: _money(r, 100, 900),
        "money_big": _money_big,
        "fee": lambda r: f"£{r.randint(1, 3)}.{r.choice(('99', '49', '50', '95'))}",
        "ppm": lambda r: r.choice(("£1.50", "150p", "£2", "£3", "£4.50", "$2.99", "€1.99")),
        "deadline": ("midnight", "today", "5pm tomorrow", "Friday", "the end of the week",
                     "12/06", "30/11"),
    })
    return ctx


_SPAM_CONTEXT = _spam_context()
_HAS_FOOTER = re.compile(r"STOP|T&C|/msg|per msg|rates|18\+|16\+")


def make_spam(rng: random.Random) -> str:
    text = fill(rng.choice(SPAM), rng, _SPAM_CONTEXT)
    if not _HAS_FOOTER.search(text) and rng.random() < 0.3:
        text = f"{text} {fill(rng.choice(FOOTERS), rng, _SPAM_CONTEXT)}"
    style = rng.random()
    if style < 0.15:
        text = text.upper()
    elif style < 0.25:
        text = text.lower()
    elif style < 0.32:
        text = text.replace("!", "!!")
    if rng.random() < 0.1:
        text = rng.choice(("FreeMsg: ", "URGENT! ", "ALERT: ", "Re: ", "", "Dear Customer, ")) + text
    return text


# --- the data set -----------------------------------------------------------------------------


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def generate_messages(
    seed: int, n: int = N_MESSAGES, spam_fraction: float = SPAM_FRACTION
) -> list[tuple[str, str]]:
    """``n`` distinct ``(label, text)`` pairs; no two texts equal ignoring case."""
    rng = random.Random(seed)
    n_spam = round(n * spam_fraction)
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for label, count, make in (("spam", n_spam, make_spam), ("ham", n - n_spam, make_ham)):
        made = 0
        while made < count:
            text = _clean(make(rng))
            key = text.lower()
            if not text or key in seen:
                continue
            seen.add(key)
            out.append((label, text))
            made += 1
    rng.shuffle(out)
    return out


def split(
    rows: list[tuple[str, str]], seed: int, splits=SPLITS
) -> dict[str, list[tuple[str, str]]]:
    """Stratified split: each label is cut by the same fractions, then each split shuffled."""
    rng = random.Random(seed)
    out: dict[str, list[tuple[str, str]]] = {name: [] for name, _ in splits}
    for label in ("ham", "spam"):
        group = [r for r in rows if r[0] == label]
        start = 0
        for i, (name, frac) in enumerate(splits):
            end = len(group) if i == len(splits) - 1 else start + round(len(group) * frac)
            out[name] += group[start:end]
            start = end
    for name in out:
        rng.shuffle(out[name])
    return out


def generate_splits(seed: int, n: int = N_MESSAGES) -> dict[str, list[tuple[str, str]]]:
    return split(generate_messages(seed, n), seed)


def to_tsv(rows: list[tuple[str, str]]) -> str:
    return "".join(f"{label}\t{text}\n" for label, text in rows)
