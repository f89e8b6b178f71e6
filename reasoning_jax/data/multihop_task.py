"""Multi-hop question answering over an ultra-long document (the InfMem benchmark task).

A question names a start person and a chain of 2-4 relations; the answer is a city. The
bridging facts (one per hop) are planted at random positions of a long document of distractor
sentences, in random order, so a reader that goes through the document once cannot always tell
that a fact matters when it reads it. Everything is drawn from a closed vocabulary (fixed
first names, surnames, relations, cities and filler words; `vocabulary()`), so a tiny
word-level model can read it.

Text is in pre-tokenized form: word pieces (`word_pieces`: words and single punctuation marks)
separated by single spaces, no newlines, so `" ".join(word_pieces(text)) == text`. Every fact
uses one template:

  The partner of Ada Moss is Ben Cole .
  The hometown of Cy Dunn is Lima .

and a question lists the relations outermost first, as English reads:

  What is the hometown of the mentor of the partner of Ada Moss ?

In a document, every chain pair (subject, relation) is stated exactly once and no other fact
has that pair, so the answer is unambiguous. Other pairs are stated consistently (a repeated
pair always names the same object). The parsing helpers (`parse_question`, `split_sentences`,
`parse_fact`) are what a scripted oracle reader uses to follow the chain.

InfMem: Learning System-2 Memory Control for Long-Context Agent, arXiv 2602.02704 (the method
this task is built for).
"""

from __future__ import annotations

import random
import re
from typing import Any, Optional

__all__ = [
  "ATTRIBUTES",
  "CITIES",
  "FIRST_NAMES",
  "RELATIONS",
  "SURNAMES",
  "count_tokens",
  "make_example",
  "parse_fact",
  "parse_question",
  "split_sentences",
  "vocabulary",
  "word_pieces",
]

FIRST_NAMES: tuple[str, ...] = tuple(
  """
  Ada Alan Alice Amir Anna Arlo Ava Bea Ben Boris Cara Carl Cleo Cy Dana Dara Dev Dina Dora Eli
  Ella Emil Emma Enzo Eva Ezra Fay Felix Finn Flora Gail Gene Gia Gus Hana Hal Hugo Ida Igor Ines
  Ira Iris Ivan Jade Jake Jan Joel Juno Kai Kara Kim Kurt Lana Lars Lea Leo Lila Liam Lou Luca Luz
  Mae Mara Max Mia Milo Mona Nadia Nate Nell Nico Nina Noah Nora Olga Omar Otto Owen Pam Paz Pia
  Quinn Rafa Raj Rhea Rita Rosa Roy Ruth Sam Sara Saul Tara Ted Tess Theo Tia Tom Uma Una Ugo Vera
  Vic Vida Wade Wes Xena Yara Yuri Zara Zeke Zoe Abel Bruno Celia Dario Edith Frida Goran Hilda
  Ilse Jonas Karl Lena Marco Nils Oscar Petra Rolf Selma Tomas Ulla Viggo Wanda Yusuf Zelda Agnes
  Basil Chloe Derek Elsa Fabio Greta Henri Ingrid Jorge Klaus Luisa Mateo Odile Pablo Rufus Sven
  """.split()
)

SURNAMES: tuple[str, ...] = tuple(
  """
  Moss Cole Dunn Abbott Baker Banks Barr Bell Berg Blake Bond Booth Boyd Brand Brook Burns Byrne
  Cain Carr Chase Clark Cobb Cook Cross Dale Dean Drake Duke Dyer Eaton Ellis Emery Evans Falk
  Fenn Field Finch Flint Ford Frost Fry Gale Gill Glass Gold Gray Grant Green Hale Hall Hardy
  Hart Hayes Heath Hill Holt Hood Hope Horn Hunt Ives Jett Judd Kane Keen Kemp Kerr Kidd King
  Knox Lamb Lane Lark Law Lloyd Lock Long Lowe Lund Lyle Mace Mann Marsh Mead Mills Monk Moon
  Nash Neal Noble Nunn Oakes Orr Page Paine Park Pell Penn Pike Pope Pratt Price Quill Rand Reed
  Rhodes Rich Roe Ross Rowe Rush Salt Sand Shaw Short Sloan Snow Stone Swan Tate Thorn Todd Tull
  Vance Vane Voss Wynn Wall Ward Webb West White Wood Wren Wyatt Yates York Young Zane Ash Birch
  Crane Dove Elm Fox Hawk Lyon Oak Pine Rook Wolfe
  """.split()
)

CITIES: tuple[str, ...] = tuple(
  """
  Lima Oslo Cairo Quito Rome Paris Berlin Madrid Lisbon Dublin Vienna Prague Warsaw Athens Sofia
  Riga Tallinn Vilnius Helsinki Stockholm Bergen Turin Milan Naples Seville Valencia Porto Lyons
  Geneva Zurich Basel Munich Hamburg Bremen Leipzig Dresden Krakow Gdansk Budapest Zagreb
  Belgrade Bucharest Ankara Izmir Tunis Algiers Rabat Dakar Accra Lagos Nairobi Kampala Lusaka
  Harare Durban Luanda Mumbai Delhi Pune Chennai Dhaka Kathmandu Lhasa Hanoi Manila Jakarta
  Bangkok Seoul Busan Osaka Kyoto Tokyo Sapporo Beijing Shanghai Taipei Perth Sydney Hobart
  Auckland Suva Denver Boston Austin Chicago Seattle Portland Dallas Houston Toronto Montreal
  Halifax Havana Bogota Caracas Santiago Cusco Recife Montevideo
  """.split()
)

# Person -> person relations, and the final attributes (person -> city).
RELATIONS: tuple[str, ...] = (
  "mentor",
  "partner",
  "manager",
  "neighbour",
  "sibling",
  "rival",
  "teacher",
  "friend",
)
ATTRIBUTES: tuple[str, ...] = ("hometown", "birthplace", "workplace", "residence")

_PLACES = ("harbour", "market", "library", "station", "garden", "museum", "bridge", "theatre")
_ADJECTIVES = ("quiet", "busy", "cold", "bright", "rainy", "calm", "long", "warm")
_TIMES = ("morning", "evening", "afternoon", "night")
_SEASONS = ("winter", "summer", "spring", "autumn")

# Filler templates: `P`/`Q` a person (two pieces), `C`/`D` a city, `L` a place, `A` an
# adjective, `T` a time of day, `S` a season; any other piece is a literal word. None starts
# with `The`, so none parses as a fact.
_FILLERS: tuple[tuple[str, ...], ...] = tuple(
  tuple(t.split())
  for t in (
    "P visited the L on a A T .",
    "P walked from C to D in the S .",
    "P wrote a long letter to Q .",
    "In C the L was A that T .",
    "P and Q talked about the L in C .",
    "P read a book at the L .",
    "P took the train to C one S T .",
    "It was a A T in C .",
    "P met Q near the L .",
    "P slept .",
    "P visited C .",
  )
)
_PAD_4 = tuple("P slept .".split())  # Exact padding: sentences of 4 and 5 pieces.
_PAD_5 = tuple("P visited C .".split())
_PAD_MIN = 12  # Every length >= 12 is a sum of 4s and 5s.
_ANSWER_WORDS = ("So", "the", "answer", "is")
_QUESTION_WORDS = ("What", "is", "the", "of")
_FACT_WORDS = ("The", "of", "is")

_PIECE_RE = re.compile(r"\w+|[^\w\s]")
_ALL_RELATIONS = frozenset(RELATIONS + ATTRIBUTES)


def word_pieces(text: str) -> list[str]:
  """Splits text into word pieces: runs of word characters and single punctuation marks."""
  return _PIECE_RE.findall(text)


def count_tokens(text: str) -> int:
  """The number of word pieces of `text` (its length in tokens of a word-level tokenizer)."""
  return len(word_pieces(text))


def vocabulary() -> list[str]:
  """Every word piece a generated question, answer, document or solution can contain (sorted)."""
  words = set(FIRST_NAMES) | set(SURNAMES) | set(CITIES) | set(RELATIONS) | set(ATTRIBUTES)
  words |= set(_PLACES) | set(_ADJECTIVES) | set(_TIMES) | set(_SEASONS)
  words |= set(_ANSWER_WORDS) | set(_QUESTION_WORDS) | set(_FACT_WORDS) | {".", "?"}
  for template in _FILLERS:
    words |= {w for w in template if w not in _SLOTS}
  return sorted(words)


# ------------------------------------------------------------------------------
# Sentences.
# ------------------------------------------------------------------------------


def _fact(subject: str, relation: str, obj: str) -> str:
  return f"The {relation} of {subject} is {obj} ."


def _fact_length(obj: str) -> int:
  return 8 + obj.count(" ")  # The rel of F S is <obj> . with a one- or two-word object.


class _Drawer:
  """Draws people, cities and filler sentences from one rng."""

  def __init__(self, rng: random.Random):
    self.rng = rng

  def person(self) -> str:
    r = self.rng
    return f"{FIRST_NAMES[r.randrange(len(FIRST_NAMES))]} {SURNAMES[r.randrange(len(SURNAMES))]}"

  def city(self) -> str:
    return CITIES[self.rng.randrange(len(CITIES))]

  def filler(self, template: tuple[str, ...]) -> tuple[str, int]:
    """A filler sentence from `template` and its length in pieces."""
    r = self.rng
    out = []
    n = 0
    for w in template:
      if w in ("P", "Q"):
        out.append(self.person())
        n += 2
        continue
      if w in ("C", "D"):
        out.append(self.city())
      elif w == "L":
        out.append(_PLACES[r.randrange(len(_PLACES))])
      elif w == "A":
        out.append(_ADJECTIVES[r.randrange(len(_ADJECTIVES))])
      elif w == "T":
        out.append(_TIMES[r.randrange(len(_TIMES))])
      elif w == "S":
        out.append(_SEASONS[r.randrange(len(_SEASONS))])
      else:
        out.append(w)
      n += 1
    return " ".join(out), n


_SLOTS = frozenset("PQCDLATS")
_MAX_SENTENCE = max(
  max(sum(2 if w in ("P", "Q") else 1 for w in t) for t in _FILLERS),
  9,  # A fact with a person object.
)


def question_text(start: str, relations: list[str]) -> str:
  """`What is the r_h of ... of the r_1 of <start> ?` for relations in hop order."""
  inner = " ".join(f"the {r} of" for r in reversed(relations))
  return f"What is {inner} {start} ?"


def make_example(
  rng: random.Random,
  *,
  doc_tokens: int,
  min_hops: int = 2,
  max_hops: int = 4,
  p_fact: float = 0.5,
  hard_negatives: float = 2.0,
  p_hard: Optional[float] = None,
) -> dict[str, Any]:
  """Draws one question with its long document.

  Args:
    rng: The random source (the example is a function of its state).
    doc_tokens: Length of the document in word pieces (exact).
    min_hops: Fewest hops (bridging facts), at least 2.
    max_hops: Most hops, at most 4.
    p_fact: Share of distractor sentences that are facts (the rest are filler).
    hard_negatives: Expected hard negatives per chain person in the whole document (a chain
      person with another relation, or another person with a chain relation), whatever the
      document's length: as in multi-hop QA, a bridging entity is mentioned a few times, not
      in a fixed share of a million-token document (a share drowns BM25 in near-matches).
    p_hard: Share of distractor facts that are hard negatives; overrides `hard_negatives`.

  Returns:
    A dict with str `question`, `answer` (a city), `document`, `solution` (the bridging facts
    in hop order then `So the answer is <city> .`), list `facts` (bridging sentences in hop
    order), list `fact_positions` (piece offset of each fact in the document, hop order), int
    `hops` and list `chain` (the people P0..P_{h-1}, then the answer).

  Raises:
    ValueError: On bad hop bounds or a document too short to hold the facts.
  """
  if not 2 <= min_hops <= max_hops <= 4:
    raise ValueError(f"need 2 <= min_hops <= max_hops <= 4, got {min_hops}, {max_hops}")
  if doc_tokens < 64:
    raise ValueError(f"doc_tokens must be >= 64, got {doc_tokens}")
  draw = _Drawer(rng)
  hops = rng.randint(min_hops, max_hops)
  if p_hard is None:  # Sentences average ~8 pieces; p_fact of them are distractor facts.
    p_hard = min(1.0, hard_negatives * hops / max(1.0, p_fact * doc_tokens / 8))
  people: list[str] = []
  while len(people) < hops:
    p = draw.person()
    if p not in people:
      people.append(p)
  relations = [rng.choice(RELATIONS) for _ in range(hops - 1)] + [rng.choice(ATTRIBUTES)]
  answer = draw.city()
  objects = people[1:] + [answer]
  facts = [_fact(people[k], relations[k], objects[k]) for k in range(hops)]
  fact_lengths = [_fact_length(o) for o in objects]
  chain_pairs = {(people[k], relations[k]) for k in range(hops)}
  # Pairs stated so far (distractors repeat a pair only with the same object).
  world: dict[tuple[str, str], str] = {}

  def distractor_fact(hard: bool) -> tuple[str, int]:
    while True:
      if hard and rng.random() < 0.5:
        subject = people[rng.randrange(hops)]
        relation = rng.choice(RELATIONS + ATTRIBUTES)
      elif hard:
        subject = draw.person()
        relation = relations[rng.randrange(hops)]
      else:
        subject = draw.person()
        relation = rng.choice(RELATIONS + ATTRIBUTES)
      if (subject, relation) not in chain_pairs:
        break
    obj = world.get((subject, relation))
    if obj is None:
      if relation in ATTRIBUTES:
        obj = answer if hard and rng.random() < 0.3 else draw.city()
      else:
        obj = people[rng.randrange(hops)] if hard and rng.random() < 0.3 else draw.person()
        while obj == subject:
          obj = draw.person()
      world[(subject, relation)] = obj
    return _fact(subject, relation, obj), _fact_length(obj)

  sentences: list[str] = []
  lengths: list[int] = []
  remaining = doc_tokens - sum(fact_lengths)
  n_fillers = len(_FILLERS)
  while remaining >= _PAD_MIN + _MAX_SENTENCE:
    if rng.random() < p_fact:
      s, n = distractor_fact(rng.random() < p_hard)
    else:
      s, n = draw.filler(_FILLERS[rng.randrange(n_fillers)])
    sentences.append(s)
    lengths.append(n)
    remaining -= n
  fives = remaining % 4  # remaining = 4 a + 5 b with b = remaining mod 4 (remaining >= 12).
  pads = [_PAD_5] * fives + [_PAD_4] * ((remaining - 5 * fives) // 4)
  rng.shuffle(pads)
  for template in pads:
    s, n = draw.filler(template)
    sentences.append(s)
    lengths.append(n)

  # One fact per equal stretch of the document, facts assigned to stretches in random order.
  order = list(range(hops))
  rng.shuffle(order)
  n = len(sentences)
  slots = [rng.randint(i * n // hops, (i + 1) * n // hops) for i in range(hops)]
  for slot, k in sorted(zip(slots, order), reverse=True):
    sentences.insert(slot, facts[k])
    lengths.insert(slot, -1 - k)  # Marks fact k; its length is fact_lengths[k].
  positions = [0] * hops
  offset = 0
  for length in lengths:
    if length < 0:
      positions[-1 - length] = offset
      length = fact_lengths[-1 - length]
    offset += length
  assert offset == doc_tokens, (offset, doc_tokens)
  return {
    "question": question_text(people[0], relations),
    "answer": answer,
    "document": " ".join(sentences),
    "solution": " ".join(facts) + f" So the answer is {answer} .",
    "facts": facts,
    "fact_positions": positions,
    "hops": hops,
    "chain": people + [answer],
  }


# ------------------------------------------------------------------------------
# Parsing (for scripted readers and checks).
# ------------------------------------------------------------------------------


def split_sentences(text: str) -> list[str]:
  """Splits text at full stops into normalized sentences, each ending with ` .`.

  Whitespace-tolerant: `Cole .` and `Cole.` both end a sentence. Pieces are rejoined with
  single spaces. A trailing fragment without a full stop is returned as it is (normalized).
  """
  out = []
  for part in text.split("."):
    pieces = word_pieces(part)
    if pieces:
      out.append(" ".join(pieces) + " .")
  if out and not text.rstrip().endswith("."):
    out[-1] = out[-1][:-2]
  return out


def parse_fact(sentence: str) -> Optional[tuple[str, str, str]]:
  """`(subject, relation, object)` of a fact sentence, or None if it is not a fact.

  Accepts `The <relation> of <subject> is <object> .` with or without the space before the
  full stop (and without the full stop).
  """
  pieces = word_pieces(sentence)
  if pieces and pieces[-1] == ".":
    pieces = pieces[:-1]
  if len(pieces) < 6 or pieces[0] not in ("The", "the") or pieces[2] != "of":
    return None
  relation = pieces[1]
  if relation not in _ALL_RELATIONS or "." in pieces or "is" not in pieces[4:]:
    return None
  i = pieces.index("is", 4)
  subject, obj = pieces[3:i], pieces[i + 1 :]
  if not obj:
    return None
  return " ".join(subject), relation, " ".join(obj)


def parse_question(question: str) -> tuple[str, list[str]]:
  """`(start_person, relations in hop order)` of a generated question.

  Raises:
    ValueError: If the question does not follow the template.
  """
  pieces = word_pieces(question)
  if pieces and pieces[-1] == "?":
    pieces = pieces[:-1]
  if pieces[:2] != ["What", "is"]:
    raise ValueError(f"not a multi-hop question: {question!r}")
  relations = []
  i = 2
  while i + 2 < len(pieces) and pieces[i] == "the" and pieces[i + 2] == "of":
    relations.append(pieces[i + 1])
    i += 3
  start = " ".join(pieces[i:])
  if not relations or not start or any(r not in _ALL_RELATIONS for r in relations):
    raise ValueError(f"not a multi-hop question: {question!r}")
  return start, relations[::-1]
