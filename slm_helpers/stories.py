"""A built-in generator of TinyStories-style children's stories.

TinyStories (Eldan & Li, 2023) is a set of short stories in the words a three-year-old
knows, written by GPT-3.5/4. Its download needs the internet; this module writes stories
of the same kind locally, so the series runs offline (CI, a plane, a locked-down lab).

Each story is drawn from a handful of small plots (a lost toy, learning to share, being
brave, helping an animal, trying again, telling the truth, a rainy day) filled with
characters, places, objects, feelings and dialogue. A story depends only on
``(seed, index)``, so the same call always returns the same stories. A story belongs to the
validation split when a hash of its text says so, so identical texts can never land in both
splits: train and validation are disjoint by construction.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

from slm_helpers.errors import SlmError

VALIDATION_SHARE = 20  # one story in 20 belongs to the validation split

GIRLS = ["Lily", "Mia", "Sue", "Anna", "Lucy", "Zoe", "Emma", "Sara", "Amy", "Kitty", "Rose", "Jane", "Molly", "Daisy", "Ella"]
BOYS = ["Tom", "Ben", "Sam", "Max", "Tim", "Jack", "Leo", "Joe", "Finn", "Bob", "Jake", "Ted", "Noah", "Alex", "Dan"]
ANIMALS = [
    ("cat", "meow"), ("dog", "woof"), ("bunny", "squeak"), ("bird", "tweet"), ("frog", "ribbit"),
    ("duck", "quack"), ("puppy", "yip"), ("mouse", "squeak"), ("owl", "hoot"), ("lamb", "baa"),
]
ANIMAL_NAMES = ["Spot", "Fluffy", "Pip", "Coco", "Buddy", "Bella", "Sunny", "Nibbles", "Patch", "Dot"]
ADJECTIVES = ["little", "happy", "curious", "kind", "brave", "shy", "silly", "clever", "gentle", "busy"]
PLACES = [
    ("the park", "under a big tree"), ("the forest", "behind a tall bush"), ("the garden", "near the flowers"),
    ("the beach", "in the soft sand"), ("the farm", "next to the red barn"), ("the school yard", "by the swings"),
    ("the big hill", "beside a round rock"), ("the river", "on the green grass"), ("the backyard", "under the old bench"),
    ("the zoo", "close to the gate"), ("the meadow", "among the tall grass"), ("the playground", "under the slide"),
]
OBJECTS = [
    "red ball", "toy car", "shiny rock", "teddy bear", "blue kite", "doll", "yellow hat", "picture book",
    "toy boat", "green bucket", "little drum", "paper crown", "wooden train", "pink balloon", "soft blanket",
]
FOODS = ["cookies", "apples", "a big cake", "sandwiches", "berries", "a warm pie", "carrots", "bananas"]
WEATHER = ["sunny", "windy", "warm", "bright", "cool", "cloudy"]
PARENTS = [("Mom", "she"), ("Dad", "he"), ("Grandma", "she"), ("Grandpa", "he")]
FEARS = ["the dark", "the loud thunder", "the big dog next door", "the deep water", "the tall slide", "the noisy truck"]
SKILLS = [
    ("ride a bike", "fell down", "rode all the way around the yard"),
    ("swim", "got water in the nose", "swam across the little pool"),
    ("climb the tree", "slipped off the first branch", "sat on a high branch and waved"),
    ("fly the kite", "watched it crash into the grass", "saw it dance high in the sky"),
    ("tie the shoes", "made a big knot", "made two perfect loops"),
    ("build a tall tower", "saw the blocks fall over", "built a tower taller than the chair"),
]
BREAKABLES = ["vase", "cup", "lamp", "plate", "jar", "clock"]


@dataclass(frozen=True)
class Character:
    """Someone a story is about: a child or a named animal."""

    name: str
    pronoun: str  # "he" / "she"
    description: str  # "a little girl", "a curious cat"

    @property
    def possessive(self) -> str:
        return "his" if self.pronoun == "he" else "her"

    @property
    def object_pronoun(self) -> str:
        return "him" if self.pronoun == "he" else "her"


def _character(rng: random.Random, allow_animal: bool = True) -> Character:
    if allow_animal and rng.random() < 0.25:
        kind, _ = rng.choice(ANIMALS)
        pronoun = rng.choice(["he", "she"])
        return Character(rng.choice(ANIMAL_NAMES), pronoun, f"a {rng.choice(ADJECTIVES)} {kind}")
    if rng.random() < 0.5:
        return Character(rng.choice(GIRLS), "she", f"a {rng.choice(ADJECTIVES)} girl")
    return Character(rng.choice(BOYS), "he", f"a {rng.choice(ADJECTIVES)} boy")


def _friend(rng: random.Random, hero: Character) -> Character:
    while True:
        friend = _character(rng)
        if friend.name != hero.name:
            return friend


def _opening(rng: random.Random, hero: Character) -> str:
    return rng.choice([
        f"Once upon a time, there was {hero.description} named {hero.name}.",
        f"One day, {hero.description} named {hero.name} woke up early.",
        f"There once was {hero.description} called {hero.name}.",
        f"Once upon a time, in a small town, lived {hero.description} named {hero.name}.",
    ])


def _lost_toy(rng: random.Random, hero: Character) -> list[str]:
    thing, friend = rng.choice(OBJECTS), _friend(rng, hero)
    (place, spot), (place2, spot2) = rng.sample(PLACES, 2)
    return [
        f"{hero.name} had a {thing}. {hero.pronoun.capitalize()} loved it very much and took it everywhere.",
        f"One {rng.choice(WEATHER)} day, {hero.name} went to {place} to play.",
        f"When it was time to go home, {hero.name} could not find {hero.possessive} {thing}. {hero.pronoun.capitalize()} felt very sad.",
        f'"Where is my {thing}?" {hero.name} cried.',
        f"{friend.name}, {friend.description}, saw {hero.object_pronoun} and asked, \"Why are you sad?\"",
        f'"I lost my {thing}," said {hero.name}. "Can you help me look?"',
        f'"Yes, I will help you!" said {friend.name}.',
        f"They looked {spot2} at {place2}, but the {thing} was not there.",
        f"Then {friend.name} looked {spot}. \"I found it!\" {friend.pronoun} shouted.",
        f"{hero.name} was so happy. {hero.pronoun.capitalize()} gave {friend.name} a big hug and said, \"Thank you!\"",
        rng.choice([
            "From that day on, they were best friends.",
            "They played together until the sun went down.",
            f"{hero.name} learned that friends help each other.",
        ]),
    ]


def _sharing(rng: random.Random, hero: Character) -> list[str]:
    thing, friend, (place, _) = rng.choice(OBJECTS), _friend(rng, hero), rng.choice(PLACES)
    return [
        f"{hero.name} got a new {thing} for {hero.possessive} birthday. It was the best {thing} in the world.",
        f"{hero.pronoun.capitalize()} took it to {place}. There {hero.pronoun} met {friend.name}, {friend.description}.",
        f'"Can I play with your {thing}?" asked {friend.name}.',
        f'"No, it is mine!" said {hero.name}, and {hero.pronoun} held it tight.',
        f"{friend.name} looked down and walked away. {friend.pronoun.capitalize()} was sad.",
        f"Soon {hero.name} felt {rng.choice(['lonely', 'sad', 'bad inside'])}. Playing alone was not fun at all.",
        f'{hero.pronoun.capitalize()} ran after {friend.name} and said, "I am sorry. Do you want to play with my {thing}?"',
        f"{friend.name} smiled a big smile. \"Yes, please!\"",
        f"They took turns with the {thing} and laughed all day.",
        rng.choice([
            f"{hero.name} learned that sharing makes everyone happy.",
            "Sharing made the game twice as fun.",
            f"That night, {hero.name} told {hero.possessive} mom, \"Sharing is the best.\"",
        ]),
    ]


def _brave(rng: random.Random, hero: Character) -> list[str]:
    fear = rng.choice(FEARS)
    parent, p_pronoun = rng.choice(PARENTS)
    return [
        f"{hero.name} was scared of {fear}.",
        f"Every time {hero.pronoun} thought about {fear}, {hero.possessive} tummy felt funny.",
        f"One night, {hero.name} told {parent}, \"I am scared of {fear}.\"",
        f"{parent} gave {hero.object_pronoun} a warm hug. \"It is okay to be scared,\" {p_pronoun} said. \"Being brave means you try, even when you are scared.\"",
        f"The next day, {hero.name} took a deep breath. {hero.pronoun.capitalize()} held {parent}'s hand and faced {fear}.",
        rng.choice([
            "It was not so bad after all.",
            f"{hero.pronoun.capitalize()} was still a little scared, but {hero.pronoun} did it.",
            "Nothing bad happened, and the scary feeling went away.",
        ]),
        f'"I did it!" {hero.name} said. {parent} smiled. "I am so proud of you."',
        f"{hero.name} felt brave and proud. {hero.pronoun.capitalize()} was not scared of {fear} anymore.",
    ]


def _help_animal(rng: random.Random, hero: Character) -> list[str]:
    kind, sound = rng.choice(ANIMALS)
    place, spot = rng.choice(PLACES)
    trouble, fix = rng.choice([
        ("was stuck in a bush", f"{hero.pronoun} gently moved the branches"),
        ("had hurt its leg", f"{hero.pronoun} wrapped the leg in a soft leaf"),
        ("was lost and could not find its mom", f"{hero.pronoun} walked with it until they found its mom"),
        ("was very hungry", f"{hero.pronoun} shared some of {hero.possessive} {rng.choice(FOODS)}"),
        ("was cold and wet from the rain", f"{hero.pronoun} dried it with {hero.possessive} scarf"),
    ])
    return [
        f"One {rng.choice(WEATHER)} morning, {hero.name} went for a walk to {place}.",
        f"{spot.capitalize()}, {hero.pronoun} heard a small sound: \"{sound.capitalize()}, {sound}!\"",
        f"It was a tiny {kind}. The {kind} {trouble}.",
        f'"Do not worry, little {kind}. I will help you," said {hero.name}.',
        f"Slowly and carefully, {fix}.",
        f"The {kind} was happy. It said \"{sound}\" and jumped around {hero.name}.",
        rng.choice([
            f"After that, the {kind} came to visit {hero.name} every day.",
            f"{hero.name} felt warm inside. Helping others felt good.",
            f"{hero.name} waved goodbye, and the {kind} waved back with its little paw.",
        ]),
    ]


def _try_again(rng: random.Random, hero: Character) -> list[str]:
    skill, failure, success = rng.choice(SKILLS)
    parent, p_pronoun = rng.choice(PARENTS)
    return [
        f"{hero.name} wanted to {skill}. {hero.pronoun.capitalize()} watched the big kids do it every day.",
        f"The first time {hero.name} tried, {hero.pronoun} {failure}.",
        f'"I can\'t do it," {hero.name} said, and {hero.pronoun} was {rng.choice(["sad", "angry", "upset"])}.',
        f'{parent} sat next to {hero.object_pronoun}. "Everybody falls at first," {p_pronoun} said. "Try again, one step at a time."',
        f"So {hero.name} tried again. And again. {hero.pronoun.capitalize()} did not give up.",
        f"At last, {hero.name} {success}!",
        f'"Look at me!" {hero.pronoun} shouted. {parent} clapped and cheered.',
        rng.choice([
            f"{hero.name} learned that if you keep trying, you can do hard things.",
            "That day, practice made a big difference.",
            f"{hero.name} could not wait to try something new tomorrow.",
        ]),
    ]


def _truth(rng: random.Random, hero: Character) -> list[str]:
    thing, thing2 = rng.choice(BREAKABLES), rng.choice(OBJECTS)
    parent, p_pronoun = rng.choice(PARENTS)
    return [
        f"{hero.name} was playing with {hero.possessive} {thing2} in the house.",
        f"{parent} had said, \"No playing inside,\" but {hero.name} did not listen.",
        f"Crash! The {thing2} hit the {thing}, and the {thing} broke into pieces.",
        f"{hero.name} was scared. {hero.pronoun.capitalize()} wanted to hide.",
        f"But then {hero.pronoun} thought, \"Telling the truth is the right thing to do.\"",
        f'{hero.pronoun.capitalize()} went to {parent} and said, "I broke the {thing}. I am sorry."',
        f"{parent} was a little sad about the {thing}, but {p_pronoun} hugged {hero.name}.",
        f'"Thank you for telling me the truth," {p_pronoun} said. "Next time, we play outside."',
        f"Together they cleaned up the pieces. {hero.name} felt much better.",
    ]


def _rainy_day(rng: random.Random, hero: Character) -> list[str]:
    friend, food = _friend(rng, hero), rng.choice(FOODS)
    game = rng.choice(["a fort with pillows", "a castle of blocks", "a puppet show", "a treasure hunt", "a big painting"])
    return [
        f"It was raining, and {hero.name} could not go outside. {hero.pronoun.capitalize()} looked out the window and sighed.",
        f"Then there was a knock at the door. It was {friend.name}, {friend.description}!",
        f'"Let\'s make {game}!" said {friend.name}.',
        f"They worked together. {hero.name} {rng.choice(['found the pieces', 'had a great idea', 'drew the plan'])}, and {friend.name} {rng.choice(['helped carry things', 'added the last piece', 'made it look pretty'])}.",
        f"When they were done, {hero.possessive} mom brought {food}. They ate and giggled.",
        rng.choice([
            f"{hero.name} said, \"Rainy days can be fun too!\"",
            "Soon the rain stopped, and a rainbow came out.",
            f"{hero.name} learned that a good friend can make any day bright.",
        ]),
    ]


PLOTS = [_lost_toy, _sharing, _brave, _help_animal, _try_again, _truth, _rainy_day]


def make_story(seed: int, index: int) -> str:
    """The story with this ``index`` in the stream of stories for ``seed`` (deterministic)."""
    rng = random.Random(f"{seed}:{index}")
    hero = _character(rng)
    sentences = [_opening(rng, hero)] + rng.choice(PLOTS)(rng, hero)
    paragraphs, current = [], []
    for sentence in sentences:
        current.append(sentence)
        if len(current) >= 3 and rng.random() < 0.4:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs)


def is_validation_story(text: str) -> bool:
    """Whether ``text`` belongs to the validation split: decided by a hash of the text itself,
    so the same story can never be in both splits."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % VALIDATION_SHARE == 0


def generate_stories(n_stories: int, split: str = "train", seed: int = 0) -> Iterator[str]:
    """Yield ``n_stories`` stories of ``split`` ("train" or "validation") for ``seed``."""
    if split not in ("train", "validation"):
        raise SlmError(f"split must be 'train' or 'validation', not {split!r}")
    if n_stories < 0:
        raise SlmError(f"n_stories must be >= 0, not {n_stories}")
    want_validation = split == "validation"
    produced, index = 0, 0
    while produced < n_stories:
        story = make_story(seed, index)
        index += 1
        if is_validation_story(story) == want_validation:
            produced += 1
            yield story
