"""Synthetic shop data with the structure real retail data has, at any scale.

Benchmarks need a million customers; the shared retail sample has 756. Uniform random data would
make every benchmark lie: recommenders would have nothing to learn, RFM quintiles would be flat
and lifetime-value models would fit noise. So the generator reproduces the regularities the
project's models rely on:

* purchase frequency: each customer buys at a Gamma-distributed rate and drops out after a
  Beta-geometric number of purchases (the BG/NBD story), so most buy rarely, a few very often,
  and some stop;
* product popularity: Zipf over products, with each customer loyal to two favourite categories
  (drawn in proportion to each category's popularity, which keeps the overall product
  distribution exactly Zipf while giving recommenders co-purchase structure to learn);
* time: daily, weekly and yearly seasonality (Black Friday and Christmas peaks), in each
  customer's local time;
* returns and cancellations as negative lines, browsing events leading up to purchases,
  a consent ledger with double opt-in, withdrawals and the derived state, a loyalty program
  whose ledger follows its own rules (tier multipliers, redemptions, oldest points first).

Pure numpy, no Django: benchmarks and notebooks use it directly and
`customers.synthetic_loader` writes it into the database. Output is a sequence of `Table`s whose
column names are the model fields' attribute names. Everything is deterministic for a config
(seed included): customers are generated in fixed batches of `CUSTOMERS_PER_BATCH`, each from
its own seeded stream, so memory stays bounded and the rows do not depend on the machine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

US_PER_SECOND = 1_000_000
US_PER_MINUTE = 60 * US_PER_SECOND
US_PER_HOUR = 60 * US_PER_MINUTE
US_PER_DAY = 24 * US_PER_HOUR

DEFAULT_END = datetime(2026, 1, 1, tzinfo=UTC)
CUSTOMERS_PER_BATCH = 10_000
POINTS_EXPIRY_DAYS = 365

RESERVED_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
RESERVED_TOP_LEVEL_DOMAINS = ("example", "test", "invalid")

# Customers created before the history starts (imported from an older CRM); they have orders
# in the window but their first purchase is not in it, as in any real extract.
EXISTING_CUSTOMER_SHARE = 0.35
SOFT_DELETED_SHARE = 0.003

EMAIL_GRANTED_SHARE = 0.82
EMAIL_PENDING_SHARE = 0.04
EMAIL_WITHDRAWN_SHARE = 0.08  # of those granted
DOUBLE_OPT_IN_SHARE = 0.2  # outside German-speaking countries, where it is the norm
PUSH_GRANTED_SHARE = 0.22
PUSH_WITHDRAWN_SHARE = 0.15
SMS_GRANTED_SHARE = 0.07
SMS_WITHDRAWN_SHARE = 0.10
BOUNCED_SHARE = 0.004
COMPLAINT_SHARE = 0.0005
PHONE_SHARE = 0.35

REDEEM_PROBABILITY = 0.15
NON_BUYER_JOIN_RATE = 0.05

# --- vocabulary ----------------------------------------------------------------------------------
# Hand-written word lists, kept compact (fmt: off) so the data reads as a table.
# fmt: off
# (department, brands, leaves); leaf = (name, nouns, median price in pounds, materials, features).
DEPARTMENTS: tuple = (
    ("Home & Kitchen",
     ("Hearth & Oak", "Maple Row", "Copperfield", "Little Larder", "Brightwell", "Stoneleigh"),
     (("Mugs & Cups", ("mug", "cup", "tumbler", "beaker"), 7.0,
       ("ceramic", "stoneware", "porcelain", "enamel", "glass"),
       ("dishwasher safe", "microwave safe", "holds 350ml", "comfortable handle", "glazed inside")),
      ("Cookware", ("saucepan", "frying pan", "casserole dish", "wok", "griddle"), 35.0,
       ("cast iron", "stainless steel", "aluminium", "copper"),
       ("induction ready", "oven safe to 220C", "non-stick coating", "riveted handle")),
      ("Kitchen Storage", ("storage jar", "canister", "lunch box", "bread bin"), 14.0,
       ("glass", "bamboo", "enamel", "tin"),
       ("airtight seal", "stackable", "food safe", "easy to clean")),
      ("Tableware", ("dinner plate", "bowl", "serving platter", "side plate"), 12.0,
       ("stoneware", "porcelain", "melamine", "bone china"),
       ("dishwasher safe", "chip resistant", "hand decorated", "set of four")),
      ("Baking", ("cake tin", "baking tray", "mixing bowl", "rolling pin", "cookie cutter"), 11.0,
       ("silicone", "steel", "beech", "ceramic"),
       ("loose base", "non-stick", "easy release", "measures in cups and grams")))),
    ("Home Decor",
     ("Willow & Wick", "Northlight", "Fenwick Studio", "Harbour House", "Amberley", "Loft Nine"),
     (("Candles & Holders", ("candle", "tea light holder", "lantern", "candlestick"), 9.0,
       ("soy wax", "glass", "brass", "zinc"),
       ("burns for 40 hours", "scented with fig", "cotton wick", "hand poured")),
      ("Cushions & Throws", ("cushion", "throw", "blanket", "cushion cover"), 22.0,
       ("linen", "cotton", "velvet", "wool"),
       ("feather filled", "machine washable", "tasselled edge", "zip closure")),
      ("Wall Art", ("print", "photo frame", "wall clock", "mirror"), 28.0,
       ("oak", "brass", "recycled paper", "aluminium"),
       ("ready to hang", "giclee printed", "silent movement", "bevelled glass")),
      ("Vases & Planters", ("vase", "indoor planter", "plant pot", "bud vase"), 16.0,
       ("glass", "terracotta", "ceramic", "concrete"),
       ("watertight", "drainage hole", "hand thrown", "matte glaze")),
      ("Lighting", ("table lamp", "string lights", "lampshade", "night light"), 30.0,
       ("rattan", "linen", "brass", "opal glass"),
       ("warm white LED", "dimmable", "USB powered", "timer function")))),
    ("Garden",
     ("Greenhurst", "Bramble & Bloom", "Fieldmark", "Rootwell"),
     (("Outdoor Planters", ("planter", "window box", "hanging basket", "trough"), 18.0,
       ("terracotta", "zinc", "galvanised steel", "willow"),
       ("frost resistant", "drainage holes", "lined", "weatherproof")),
      ("Garden Tools", ("trowel", "pruner", "watering can", "hand fork", "kneeler"), 15.0,
       ("stainless steel", "ash", "galvanised steel", "rubber"),
       ("ergonomic grip", "rust resistant", "lifetime guarantee", "lightweight")),
      ("Outdoor Lighting", ("solar light", "garden lantern", "festoon lights", "torch"), 20.0,
       ("zinc", "glass", "rattan", "steel"),
       ("solar powered", "dusk to dawn sensor", "weatherproof", "warm glow")),
      ("Bird Care", ("bird feeder", "bird house", "bird bath", "seed mix"), 13.0,
       ("pine", "steel", "ceramic", "recycled plastic"),
       ("squirrel proof", "easy to fill", "RSPB approved", "hanging hook")))),
    ("Toys & Games",
     ("Puddle & Pip", "Tinker Lane", "Rocket Fox", "Merrygo"),
     (("Board Games", ("board game", "card game", "jigsaw puzzle", "trivia game"), 20.0,
       ("cardboard", "wooden", "recycled board", "linen finish"),
       ("for ages 8 and up", "2 to 6 players", "1000 pieces", "family favourite")),
      ("Soft Toys", ("teddy bear", "plush rabbit", "soft toy", "hand puppet"), 14.0,
       ("plush", "organic cotton", "knitted", "faux fur"),
       ("surface washable", "safe from birth", "embroidered eyes", "extra soft")),
      ("Craft Kits", ("craft kit", "paint set", "bead kit", "colouring book"), 12.0,
       ("wooden", "paper", "felt", "clay"),
       ("everything included", "non-toxic paints", "step by step guide", "for ages 5 and up")),
      ("Outdoor Play", ("kite", "skipping rope", "football", "bubble wand"), 9.0,
       ("nylon", "wooden", "rubber", "recycled plastic"),
       ("easy to fly", "for the garden", "bright colours", "comes with a bag")))),
    ("Stationery",
     ("Inkwell & Co", "Paper Moon", "Ledger Lane", "Quill House"),
     (("Notebooks", ("notebook", "journal", "planner", "sketchbook"), 8.0,
       ("linen", "recycled paper", "leather", "kraft"),
       ("lay flat binding", "dotted pages", "A5 size", "ribbon marker")),
      ("Pens & Pencils", ("pen", "pencil set", "fineliner", "marker"), 6.0,
       ("brass", "cedar", "aluminium", "resin"),
       ("refillable", "smudge proof ink", "set of twelve", "fine tip")),
      ("Cards & Wrap", ("greeting card", "gift wrap", "gift tag", "gift bag"), 3.0,
       ("recycled paper", "kraft", "foil", "card"),
       ("blank inside", "with envelope", "plastic free", "foil detail")),
      ("Desk Accessories", ("desk tidy", "bookend", "paperweight", "letter tray"), 12.0,
       ("oak", "marble", "brass", "cork"),
       ("weighted base", "felt lined", "keeps the desk tidy", "gift boxed")))),
    ("Fashion Accessories",
     ("Marlow & Finch", "Tidewater", "Ochre Lane", "Kinsale"),
     (("Bags", ("tote bag", "backpack", "shopper", "purse"), 25.0,
       ("canvas", "leather", "jute", "recycled nylon"),
       ("inner pocket", "magnetic clasp", "adjustable strap", "fits a laptop")),
      ("Scarves & Hats", ("scarf", "beanie", "sun hat", "gloves"), 18.0,
       ("wool", "cashmere blend", "cotton", "straw"),
       ("one size", "hand knitted", "lightweight", "ribbed cuff")),
      ("Jewellery", ("necklace", "bracelet", "earrings", "ring"), 22.0,
       ("sterling silver", "gold plated", "rose gold", "enamel"),
       ("nickel free", "gift boxed", "adjustable chain", "hallmarked")),
      ("Umbrellas", ("umbrella", "compact umbrella", "rain poncho"), 16.0,
       ("nylon", "polyester", "wooden handle", "steel"),
       ("windproof", "auto open", "fits in a bag", "UV protection")))),
    ("Beauty & Wellbeing",
     ("Salt & Sage", "Pure Meadow", "Lumen Botanics", "Driftwood Spa"),
     (("Bath & Body", ("bath bomb", "soap bar", "body lotion", "shower gel"), 7.0,
       ("shea butter", "olive oil", "oat milk", "sea salt"),
       ("vegan", "palm oil free", "lavender scented", "gentle on skin")),
      ("Home Fragrance", ("reed diffuser", "room spray", "scented oil", "wax melt"), 19.0,
       ("glass", "soy wax", "rattan reeds", "amber glass"),
       ("lasts 12 weeks", "notes of cedar", "fig and cassis", "fresh linen")),
      ("Skincare", ("face cream", "lip balm", "hand cream", "face mask"), 13.0,
       ("aloe", "rosehip", "vitamin C", "hyaluronic"),
       ("dermatologically tested", "for dry skin", "fragrance free", "travel size")))),
    ("Food & Drink",
     ("Kettle & Crumb", "Highfield Larder", "Bean Republic"),
     (("Tea & Coffee", ("loose leaf tea", "coffee beans", "tea caddy", "cafetiere"), 9.0,
       ("organic", "fairtrade", "single origin", "decaf"),
       ("makes 40 cups", "notes of chocolate", "freshly roasted", "Assam blend")),
      ("Sweets & Chocolate", ("chocolate bar", "fudge", "truffles", "sweet jar"), 6.0,
       ("dark chocolate", "milk chocolate", "salted caramel", "vegan"),
       ("handmade", "gift wrapped", "sharing size", "nut free")),
      ("Hampers", ("hamper", "gift box", "tasting set"), 45.0,
       ("wicker", "kraft box", "wooden crate", "tin"),
       ("ready to give", "with a personal note", "local producers", "serves four")))),
    ("Seasonal",
     ("Hollyfield", "Merry Makers", "Starlit"),
     (("Christmas Decorations", ("bauble", "tree topper", "garland", "advent calendar"), 8.0,
       ("glass", "felt", "wooden", "glitter"),
       ("hand painted", "set of six", "reusable", "hanging loop")),
      ("Party Supplies", ("bunting", "balloon set", "party plates", "napkins"), 5.0,
       ("paper", "fabric", "foil", "compostable"),
       ("pack of twenty", "recyclable", "bright colours", "for birthdays")),
      ("Easter & Spring", ("egg hunt kit", "spring wreath", "decorative egg"), 7.0,
       ("willow", "painted wood", "felt", "ceramic"),
       ("for the whole family", "pastel colours", "reusable", "with clues")))),
    ("Pets",
     ("Waggle & Co", "Purrfect Days", "Hound House"),
     (("Dog Accessories", ("dog collar", "dog lead", "dog bed", "chew toy"), 15.0,
       ("leather", "nylon", "rope", "rubber"),
       ("adjustable fit", "machine washable", "reflective stitching", "tough chew")),
      ("Cat Accessories", ("cat toy", "scratching post", "cat bowl", "cat bed"), 12.0,
       ("sisal", "ceramic", "felt", "catnip"),
       ("non-slip base", "easy to clean", "with catnip", "cosy lining")))),
)

ADJECTIVES = (
    "vintage", "classic", "rustic", "modern", "scandi", "retro", "botanical", "floral", "geometric",
    "striped", "spotted", "hand painted", "minimal", "heritage", "coastal", "woodland", "deco",
    "speckled", "ribbed", "scalloped", "bloom", "nordic", "cottage", "gingham", "terrazzo",
)
COLOURS = (
    "red", "blue", "green", "cream", "white", "black", "pink", "navy", "sage", "ochre", "grey", "teal",
    "mustard", "lilac", "rust", "charcoal",
)

# (country, weight, time zones (name, weight, standard UTC offset hours), locales (tag, weight, names)).
# Offsets ignore daylight saving time: an hour's error in a shopping curve is noise.
COUNTRIES: tuple = (
    ("United Kingdom", 0.52, (("Europe/London", 1.0, 0),), (("en-GB", 1.0, "en"),)),
    ("Germany", 0.09, (("Europe/Berlin", 1.0, 1),), (("de-DE", 1.0, "de"),)),
    ("France", 0.07, (("Europe/Paris", 1.0, 1),), (("fr-FR", 1.0, "fr"),)),
    ("Ireland", 0.04, (("Europe/Dublin", 1.0, 0),), (("en-IE", 1.0, "en"),)),
    ("Spain", 0.04, (("Europe/Madrid", 0.85, 1), ("Atlantic/Canary", 0.15, 0)), (("es-ES", 1.0, "es"),)),
    ("Netherlands", 0.04, (("Europe/Amsterdam", 1.0, 1),), (("nl-NL", 1.0, "nl"),)),
    ("Italy", 0.03, (("Europe/Rome", 1.0, 1),), (("it-IT", 1.0, "it"),)),
    ("Belgium", 0.02, (("Europe/Brussels", 1.0, 1),), (("nl-BE", 0.6, "nl"), ("fr-BE", 0.4, "fr"))),
    ("Sweden", 0.02, (("Europe/Stockholm", 1.0, 1),), (("sv-SE", 1.0, "nordic"),)),
    ("Denmark", 0.015, (("Europe/Copenhagen", 1.0, 1),), (("da-DK", 1.0, "nordic"),)),
    ("Norway", 0.015, (("Europe/Oslo", 1.0, 1),), (("nb-NO", 1.0, "nordic"),)),
    ("Switzerland", 0.02, (("Europe/Zurich", 1.0, 1),),
     (("de-CH", 0.65, "de"), ("fr-CH", 0.25, "fr"), ("it-CH", 0.1, "it"))),
    ("Portugal", 0.015, (("Europe/Lisbon", 1.0, 0),), (("pt-PT", 1.0, "pt"),)),
    ("Austria", 0.015, (("Europe/Vienna", 1.0, 1),), (("de-AT", 1.0, "de"),)),
    ("Poland", 0.02, (("Europe/Warsaw", 1.0, 1),), (("pl-PL", 1.0, "pl"),)),
    ("United States", 0.035,
     (("America/New_York", 0.45, -5), ("America/Chicago", 0.25, -6), ("America/Denver", 0.08, -7),
      ("America/Los_Angeles", 0.22, -8)),
     (("en-US", 1.0, "en"),)),
    ("Canada", 0.01, (("America/Toronto", 0.6, -5), ("America/Vancouver", 0.4, -8)),
     (("en-CA", 0.8, "en"), ("fr-CA", 0.2, "fr"))),
    ("Australia", 0.015,
     (("Australia/Sydney", 0.6, 10), ("Australia/Melbourne", 0.3, 10), ("Australia/Perth", 0.1, 8)),
     (("en-AU", 1.0, "en"),)),
)
DOUBLE_OPT_IN_LOCALES = ("de-DE", "de-AT", "de-CH")

# (first names, last names) per naming tradition, ASCII so every address is a plain local part.
NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "en": (
        ("Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Mia", "Noah", "Emily", "Charlie",
         "Grace", "Thomas", "Sophie", "James", "Lily", "William", "Ella", "Oscar", "Freya", "Henry",
         "Chloe", "Leo", "Lucy", "Alfie", "Evie", "Arthur", "Ruby", "Samuel", "Hannah"),
        ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson",
         "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson",
         "Clarke", "Patel", "Khan", "Lewis", "Hughes", "Turner", "Harris", "Cooper", "Ward", "Morris",
         "King"),
    ),
    "de": (
        ("Lukas", "Mia", "Leon", "Emma", "Finn", "Hannah", "Paul", "Sofia", "Jonas", "Lena", "Felix",
         "Marie", "Elias", "Lea", "Ben", "Anna", "Noah", "Emilia", "Luis", "Clara"),
        ("Muller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
         "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Neumann", "Schwarz", "Braun", "Zimmermann",
         "Hartmann", "Lange"),
    ),
    "fr": (
        ("Gabriel", "Louise", "Raphael", "Jade", "Leo", "Emma", "Louis", "Alice", "Arthur", "Chloe",
         "Jules", "Lina", "Adam", "Rose", "Hugo", "Lea", "Nathan", "Manon", "Paul", "Camille"),
        ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
         "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David", "Bertrand", "Roux",
         "Vincent", "Fournier"),
    ),
    "es": (
        ("Hugo", "Lucia", "Martin", "Sofia", "Mateo", "Martina", "Leo", "Julia", "Pablo", "Paula",
         "Daniel", "Valeria", "Alejandro", "Emma", "Manuel", "Daniela", "Alvaro", "Carla", "Adrian",
         "Sara"),
        ("Garcia", "Rodriguez", "Gonzalez", "Fernandez", "Lopez", "Martinez", "Sanchez", "Perez",
         "Gomez", "Martin", "Jimenez", "Ruiz", "Hernandez", "Diaz", "Moreno", "Munoz", "Alvarez",
         "Romero", "Alonso", "Gutierrez"),
    ),
    "nl": (
        ("Daan", "Emma", "Sem", "Julia", "Lucas", "Mila", "Levi", "Tess", "Finn", "Sophie", "Milan",
         "Zoe", "Jesse", "Sara", "Bram", "Nora", "Luuk", "Evi", "Thijs", "Anna"),
        ("de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen", "Visser",
         "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks",
         "van Leeuwen", "Dekker", "Brouwer"),
    ),
    "it": (
        ("Leonardo", "Sofia", "Francesco", "Aurora", "Alessandro", "Giulia", "Lorenzo", "Ginevra",
         "Mattia", "Beatrice", "Tommaso", "Alice", "Gabriele", "Vittoria", "Andrea", "Emma", "Riccardo",
         "Giorgia", "Edoardo", "Martina"),
        ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
         "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo",
         "Lombardi", "Moretti"),
    ),
    "nordic": (
        ("William", "Alice", "Oscar", "Maja", "Lucas", "Elsa", "Liam", "Astrid", "Hugo", "Alma", "Elias",
         "Freja", "Noah", "Ella", "Oliver", "Ida", "Emil", "Selma", "Axel", "Ingrid"),
        ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsen", "Hansen",
         "Jensen", "Nielsen", "Pedersen", "Berg", "Lund", "Dahl", "Holm", "Lindberg", "Strand", "Haugen",
         "Bakke", "Solberg"),
    ),
    "pt": (
        ("Joao", "Maria", "Francisco", "Leonor", "Santiago", "Matilde", "Afonso", "Beatriz", "Tomas",
         "Carolina", "Duarte", "Mariana", "Rodrigo", "Ines", "Martim", "Ana", "Lourenco", "Sofia",
         "Gustavo", "Clara"),
        ("Silva", "Santos", "Ferreira", "Pereira", "Oliveira", "Costa", "Rodrigues", "Martins", "Jesus",
         "Sousa", "Fernandes", "Goncalves", "Gomes", "Lopes", "Marques", "Alves", "Almeida", "Ribeiro",
         "Pinto", "Carvalho"),
    ),
    "pl": (
        ("Jan", "Zuzanna", "Antoni", "Julia", "Franciszek", "Zofia", "Aleksander", "Hanna", "Jakub",
         "Maja", "Szymon", "Laura", "Filip", "Alicja", "Stanislaw", "Oliwia", "Mikolaj", "Lena",
         "Wojciech", "Pola"),
        ("Nowak", "Kowalski", "Wisniewski", "Wojcik", "Kowalczyk", "Kaminski", "Lewandowski",
         "Zielinski", "Szymanski", "Wozniak", "Dabrowski", "Kozlowski", "Jankowski", "Mazur",
         "Kwiatkowski", "Krawczyk", "Piotrowski", "Grabowski", "Nowakowski", "Pawlowski"),
    ),
}

SIGNUP_CHANNELS = ("web", "app", "store")

# (name, threshold in lifetime points, earning multiplier in hundredths, benefits)
TIERS = (
    ("Bronze", 0, 100, "Members' newsletter and birthday treat"),
    ("Silver", 500, 125, "1.25 points per pound and free delivery on orders over 30 pounds"),
    ("Gold", 1500, 150, "1.5 points per pound, free delivery and early access to sales"),
    ("Platinum", 4000, 200, "Double points, free next-day delivery and a personal shopper"),
)
# (name, cost in points, minimum tier index or None, description)
REWARDS = (
    ("Gift wrap and card", 150, None, "Any order gift wrapped with a handwritten card"),
    ("Free delivery", 250, None, "Free standard delivery on your next order"),
    ("5 pounds off voucher", 500, None, "5 pounds off your next order"),
    ("VIP early access", 1000, 2, "Shop the seasonal sale a day before everyone else"),
    ("15 pounds off voucher", 1400, None, "15 pounds off your next order over 40 pounds"),
)
# fmt: on


# --- tables --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    """Rows of one model's table, as equally long numpy columns named like the model's attributes.

    Integers and ids are int64, timestamps datetime64[us] in UTC, text and JSON are UTF-8 bytes
    (`S` dtype), decimals are integers in units of 10**-scale (`scales`), and `nulls` marks NULLs.
    """

    name: str
    columns: dict[str, np.ndarray]
    nulls: dict[str, np.ndarray] = field(default_factory=dict)
    scales: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sizes = {name: len(values) for name, values in self.columns.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"{self.name}: columns differ in length: {sizes}")
        for name, mask in self.nulls.items():
            if name not in self.columns or mask.dtype != np.bool_ or len(mask) != len(self):
                raise ValueError(f"{self.name}: bad null mask for {name!r}")
        for name in self.scales:
            if name not in self.columns or not np.issubdtype(self.columns[name].dtype, np.integer):
                raise ValueError(f"{self.name}: scaled column {name!r} must hold integers")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def is_null(self, name: str) -> np.ndarray:
        mask = self.nulls.get(name)
        return mask if mask is not None else np.zeros(len(self), dtype=bool)

    @staticmethod
    def concat(tables: Sequence[Table]) -> Table:
        first = tables[0]
        columns = {name: np.concatenate([t.columns[name] for t in tables]) for name in first.columns}
        nulls = {name: np.concatenate([t.is_null(name) for t in tables]) for name in first.nulls}
        return Table(first.name, columns, nulls, dict(first.scales))


# --- configuration -------------------------------------------------------------------------------
def check_email_domain(domain: str) -> str:
    """Only domains reserved for documentation (RFC 2606/6761): synthetic mail must never be deliverable."""
    domain = domain.strip().lower().rstrip(".")
    top = domain.rsplit(".", 1)[-1]
    reserved = any(domain == d or domain.endswith("." + d) for d in RESERVED_EMAIL_DOMAINS)
    if not (reserved or (top in RESERVED_TOP_LEVEL_DOMAINS and "." in domain)):
        raise ValueError(
            f"Email domain {domain!r} is not reserved; use example.com, example.net, example.org "
            "(or a subdomain), or a name under .example, .test or .invalid"
        )
    return domain


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. Every knob has a default that gives retail-like data."""

    customers: int
    products: int
    orders: int
    seed: int = 0
    browse_events: int | None = None  # views, add-to-cart and searches; default: as many as orders
    days: int = 365
    end: datetime = DEFAULT_END
    email_domain: str = "example.com"
    currency: str = "GBP"
    zipf_exponent: float = 1.05
    category_affinity: float = 0.75
    purchase_rate_shape: float = 0.6  # Gamma shape r of the purchase rates: smaller, more skew
    dropout_a: float = 0.8  # Beta(a, b) of the probability of dropping out after each purchase
    dropout_b: float = 3.0
    extra_lines_mean: float = 1.4
    return_rate: float = 0.03
    cancellation_rate: float = 0.01
    loyalty_join_rate: float = 0.55

    def __post_init__(self) -> None:
        problems = []
        if self.customers < 1:
            problems.append("customers must be at least 1")
        if self.products < 1:
            problems.append("products must be at least 1")
        if self.orders < 0:
            problems.append("orders must not be negative")
        if self.browse_events is not None and self.browse_events < 0:
            problems.append("browse_events must not be negative")
        if self.seed < 0:
            problems.append("seed must not be negative")
        if self.days < 1:
            problems.append("days must be at least 1")
        if self.end.tzinfo is None:
            problems.append("end must be timezone-aware")
        if self.zipf_exponent <= 0:
            problems.append("zipf_exponent must be positive")
        for name in ("category_affinity", "return_rate", "cancellation_rate", "loyalty_join_rate"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be between 0 and 1")
        for name in ("purchase_rate_shape", "dropout_a", "dropout_b"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if self.extra_lines_mean < 0:
            problems.append("extra_lines_mean must not be negative")
        if len(self.currency) != 3:
            problems.append("currency must be a 3-letter code")
        try:
            object.__setattr__(self, "email_domain", check_email_domain(self.email_domain))
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def browse_event_count(self) -> int:
        return self.orders if self.browse_events is None else self.browse_events

    @property
    def end_us(self) -> int:
        return _to_us(self.end)

    @property
    def start_us(self) -> int:
        return self.end_us - self.days * US_PER_DAY

    @property
    def batches(self) -> int:
        return -(-self.customers // CUSTOMERS_PER_BATCH)


def _to_us(moment: datetime) -> int:
    moment = moment.astimezone(UTC).replace(tzinfo=None)
    return int(np.datetime64(moment, "us").astype(np.int64))


def _ts(us: np.ndarray) -> np.ndarray:
    return np.asarray(us, dtype=np.int64).view("datetime64[us]")


# --- small vectorised helpers --------------------------------------------------------------------
def _words(words: Sequence[str]) -> np.ndarray:
    return np.array([w.encode("utf-8") for w in words], dtype="S")


def _join(*parts) -> np.ndarray:
    """Concatenate byte-string arrays and scalars element-wise."""
    out = parts[0]
    for part in parts[1:]:
        out = np.strings.add(out, part)
    return np.asarray(out)


def _padded(prefix: bytes, numbers: np.ndarray, width: int) -> np.ndarray:
    """Fixed-width identifiers ("SO0000000042"): sortable, and every key of a column the same length."""
    numbers = np.asarray(numbers, dtype=np.int64)
    if not len(numbers):
        return np.zeros(0, dtype=f"S{len(prefix) + width}")
    return _join(prefix, np.strings.zfill(numbers.astype("S"), width))


def _digits(numbers: np.ndarray) -> np.ndarray:
    return np.asarray(numbers, dtype=np.int64).astype("S")


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2… within runs of equal values of an already grouped (sorted) array."""
    n = len(groups)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    lengths = np.diff(np.r_[starts, n])
    return np.arange(n, dtype=np.int64) - np.repeat(starts, lengths)


def _flatten(groups: Sequence[Sequence]) -> tuple[list, np.ndarray, np.ndarray]:
    """Ragged lists as one flat list plus offsets and counts, for vectorised picks per group."""
    flat = [item for group in groups for item in group]
    counts = np.array([len(g) for g in groups], dtype=np.int64)
    offsets = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
    return flat, offsets, counts


def _pick(rng: np.random.Generator, offsets: np.ndarray, counts: np.ndarray, group: np.ndarray):
    return offsets[group] + (rng.random(len(group)) * counts[group]).astype(np.int64)


def _random_text(rng: np.random.Generator, n: int, width: int, alphabet: bytes) -> np.ndarray:
    table = np.frombuffer(alphabet, dtype=np.uint8)
    codes = table[rng.integers(0, len(table), size=(n, width))]
    return np.ascontiguousarray(codes).view(f"S{width}").ravel()


_HEX = b"0123456789abcdef"
_BASE64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


# --- seasonality ---------------------------------------------------------------------------------
# fmt: off
_HOUR_OF_DAY = np.array([0.25, 0.15, 0.1, 0.08, 0.08, 0.12, 0.3, 0.55, 0.8, 0.95, 1.05, 1.15,
                         1.3, 1.25, 1.1, 1.05, 1.05, 1.1, 1.25, 1.45, 1.55, 1.4, 1.0, 0.55])
# fmt: on
_DAY_OF_WEEK = np.array([1.0, 0.97, 0.98, 1.0, 1.02, 0.88, 1.12])  # Monday first


def yearly_profile(day_of_year: np.ndarray) -> np.ndarray:
    """Relative demand by day of year: a winter high, a summer lull, Black Friday and Christmas peaks."""
    d = np.asarray(day_of_year, dtype=float)
    wave = 1.0 + 0.18 * np.cos(2 * np.pi * (d - 350) / 365.25)
    black_friday = 0.9 * np.exp(-0.5 * ((d - 331) / 4.0) ** 2)
    christmas = 0.6 * np.exp(-0.5 * ((d - 348) / 7.0) ** 2)
    january_sale = 0.25 * np.exp(-0.5 * ((d - 4) / 4.0) ** 2)
    return wave + black_friday + christmas + january_sale


class _Season:
    """Cumulative demand on an hourly grid, so draws in a time window follow the seasonal curve.

    A uniform draw mapped through the inverse of the cumulative intensity gives a point of the
    inhomogeneous Poisson process; every order, signup and browsing session uses it.
    """

    PAD_HOURS = 24

    def __init__(self, start_us: int, days: int) -> None:
        hours = np.arange(-self.PAD_HOURS, days * 24 + self.PAD_HOURS, dtype=np.int64)
        moments = (start_us + hours * US_PER_HOUR).view("datetime64[us]")
        day = moments.astype("datetime64[D]")
        hour_of_day = ((moments - day) // np.timedelta64(1, "h")).astype(np.int64)
        day_of_week = (day.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
        day_of_year = (day - day.astype("datetime64[Y]")).astype(np.int64)
        weight = _HOUR_OF_DAY[hour_of_day] * _DAY_OF_WEEK[day_of_week] * yearly_profile(day_of_year)
        self.edges = np.r_[hours, hours[-1] + 1].astype(float)
        self.cumulative = np.r_[0.0, np.cumsum(weight)]

    def sample(self, lo_hours: np.ndarray, hi_hours: np.ndarray, u: np.ndarray) -> np.ndarray:
        lo = np.interp(lo_hours, self.edges, self.cumulative)
        hi = np.interp(hi_hours, self.edges, self.cumulative)
        return np.interp(lo + u * (hi - lo), self.cumulative, self.edges)


# --- the shop ------------------------------------------------------------------------------------
@dataclass
class _Counters:
    order: int = 0
    line: int = 0
    event: int = 0
    browse: int = 0
    consent_record: int = 0
    consent_state: int = 0
    push: int = 0
    suppression: int = 0
    membership: int = 0
    points: int = 0
    lot: int = 0
    redemption: int = 0


class SyntheticShop:
    """A deterministic synthetic shop: the catalogue and loyalty program first, then customers in batches."""

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        self.start_us = config.start_us
        self.end_us = config.end_us
        self.season = _Season(self.start_us, config.days)
        self.program_launch_us = max(self.start_us, self.end_us - POINTS_EXPIRY_DAYS * US_PER_DAY)
        self._build_profiles()
        self._build_catalog()

    # --- static parts --------------------------------------------------------------------------
    def _build_profiles(self) -> None:
        rows = []
        for country, weight, zones, locales in COUNTRIES:
            for zone, zone_weight, offset in zones:
                for locale, locale_weight, names in locales:
                    rows.append((country, zone, offset, locale, names, weight * zone_weight * locale_weight))
        languages = list(NAMES)
        self._country = _words([r[0] for r in rows])
        self._zone = _words([r[1] for r in rows])
        self._offset_hours = np.array([r[2] for r in rows], dtype=float)
        self._locale = _words([r[3] for r in rows])
        self._double_opt_in = np.array([r[3] in DOUBLE_OPT_IN_LOCALES for r in rows])
        self._language = np.array([languages.index(r[4]) for r in rows], dtype=np.int64)
        weights = np.array([r[5] for r in rows])
        self._profile_p = weights / weights.sum()
        first, self._first_off, self._first_cnt = _flatten([NAMES[lang][0] for lang in languages])
        last, self._last_off, self._last_cnt = _flatten([NAMES[lang][1] for lang in languages])
        self._first_names, self._last_names = _words(first), _words(last)
        self._first_local = np.strings.lower(self._first_names)
        self._last_local = np.strings.replace(np.strings.lower(self._last_names), b" ", b"")

    def _build_catalog(self) -> None:
        cfg = self.config
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0]))
        departments, leaves = [], []
        for d, (dept, brands, dept_leaves) in enumerate(DEPARTMENTS):
            departments.append((dept, brands))
            for leaf in dept_leaves:
                leaves.append((d, *leaf))
        self.departments, self.leaves = departments, leaves
        n_dept, n_leaf = len(departments), len(leaves)
        self.leaf_department = np.array([leaf[0] for leaf in leaves], dtype=np.int64)
        self.category_ids = np.arange(1, n_dept + n_leaf + 1, dtype=np.int64)
        self.leaf_category_id = n_dept + 1 + np.arange(n_leaf, dtype=np.int64)

        # Products: contiguous by leaf so a category's products are one slice of the cumulative weights.
        leaf_share = rng.gamma(2.0, 1.0, n_leaf)
        leaf_share /= leaf_share.sum()
        leaf_of = np.sort(rng.choice(n_leaf, size=cfg.products, p=leaf_share))
        self.product_leaf = leaf_of
        self.leaf_lo = np.searchsorted(leaf_of, np.arange(n_leaf), side="left")
        self.leaf_hi = np.searchsorted(leaf_of, np.arange(n_leaf), side="right")
        # Zipf popularity by a random rank; category masses follow from the products they hold.
        rank = rng.permutation(cfg.products) + 1
        weight = rank.astype(float) ** -cfg.zipf_exponent
        self.product_rank = rank
        self.cumulative_weight = np.r_[0.0, np.cumsum(weight)]
        self.leaf_mass = self.cumulative_weight[self.leaf_hi] - self.cumulative_weight[self.leaf_lo]
        self.leaf_p = self.leaf_mass / self.leaf_mass.sum()

        p = cfg.products
        nouns, noun_off, noun_cnt = _flatten([leaf[2] for leaf in leaves])
        materials, mat_off, mat_cnt = _flatten([leaf[4] for leaf in leaves])
        features, feat_off, feat_cnt = _flatten([leaf[5] for leaf in leaves])
        brands, brand_off, brand_cnt = _flatten([dept[1] for dept in departments])
        self._nouns, self._noun_off, self._noun_cnt = _words(nouns), noun_off, noun_cnt
        self._brands, self._brand_off, self._brand_cnt = _words(brands), brand_off, brand_cnt
        self._leaf_names = _words([leaf[1] for leaf in leaves])
        self._colours = _words(COLOURS)
        noun = _pick(rng, noun_off, noun_cnt, leaf_of)
        material = _pick(rng, mat_off, mat_cnt, leaf_of)
        dept = self.leaf_department[leaf_of]
        # Brands are Zipf-popular within a department: a few big names, a long tail.
        brand_rank = np.minimum(rng.zipf(1.6, p) - 1, brand_cnt[dept] - 1)
        brand = brand_off[dept] + brand_rank
        adjective = rng.integers(0, len(ADJECTIVES), p)
        colour = rng.integers(0, len(COLOURS), p)
        first_feature = _pick(rng, feat_off, feat_cnt, leaf_of)
        second_feature = feat_off[leaf_of] + (
            (first_feature - feat_off[leaf_of] + 1 + (rng.random(p) * (feat_cnt[leaf_of] - 1)).astype(int))
            % feat_cnt[leaf_of]
        )

        def title(words: Sequence[str]) -> np.ndarray:
            return _words([w[:1].upper() + w[1:] for w in words])

        adjectives_t, colours_t = title(ADJECTIVES), title(COLOURS)
        materials_t, nouns_t = title(materials), title(nouns)
        self.product_noun, self.product_colour, self.product_brand = noun, colour, brand
        self.product_name = _join(
            adjectives_t[adjective], b" ", colours_t[colour], b" ", materials_t[material], b" ", nouns_t[noun]
        )
        feature_words, material_words = _words(features), _words(materials)
        leaf_lower = np.strings.lower(self._leaf_names)
        dept_lower = np.strings.lower(_words([d[0] for d in departments]))
        self.product_description = _join(
            self.product_name,
            b" by ",
            self._brands[brand],
            b". A ",
            _words(ADJECTIVES)[adjective],
            b" ",
            self._nouns[noun],
            b" in ",
            self._colours[colour],
            b" ",
            material_words[material],
            b", ",
            feature_words[first_feature],
            b" and ",
            feature_words[second_feature],
            b". Part of our ",
            leaf_lower[leaf_of],
            b" collection in ",
            dept_lower[dept],
            b".",
        )
        self.product_attributes = _join(
            b'{"colour": "', self._colours[colour], b'", "material": "', material_words[material], b'"}'
        )
        median = np.array([leaf[3] for leaf in leaves])[leaf_of]
        brand_premium = rng.lognormal(0.0, 0.2, len(brands))[brand]
        pounds = median * brand_premium * rng.lognormal(0.0, 0.45, p)
        # Shelf prices end in .49 or .99.
        self.price_cents = np.maximum(np.rint(pounds * 2) * 50 - 1, 49).astype(np.int64)

    def catalog_tables(self) -> list[Table]:
        """Categories, products and the loyalty program: everything customers refer to."""
        cfg = self.config
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 2]))
        n_dept = len(self.departments)
        dept_names = _words([d[0] for d in self.departments])
        leaf_names = self._leaf_names
        leaf_paths = _join(dept_names[self.leaf_department], b" > ", leaf_names)
        parent = np.r_[np.zeros(n_dept, dtype=np.int64), self.leaf_department + 1]
        categories = Table(
            "categories",
            {
                "id": self.category_ids,
                "path": np.r_[dept_names, leaf_paths],
                "name": np.r_[dept_names, leaf_names],
                "parent_id": parent,
                "depth": np.r_[np.zeros(n_dept, dtype=np.int64), np.ones(len(leaf_names), dtype=np.int64)],
            },
            nulls={"parent_id": parent == 0},
        )

        p = cfg.products
        ids = np.arange(1, p + 1, dtype=np.int64)
        sku = _padded(b"SKU", ids, 8)
        sku_lower = np.strings.lower(sku)
        created = self.start_us - (rng.random(p) * 3 * 365 * US_PER_DAY).astype(np.int64) - US_PER_DAY
        untracked = rng.random(p) < 0.1
        stock = np.where(rng.random(p) < 0.04, 0, np.rint(rng.lognormal(3.5, 1.0, p))).astype(np.int64)
        products = Table(
            "products",
            {
                "id": ids,
                "sku": sku,
                "name": self.product_name,
                "description": self.product_description,
                "category_id": self.leaf_category_id[self.product_leaf],
                "category_path": leaf_paths[self.product_leaf],
                "brand": self._brands[self.product_brand],
                "price": self.price_cents,
                "currency": np.full(p, cfg.currency.encode(), dtype="S3"),
                "stock": stock,
                "active": rng.random(p) >= 0.04,
                "url": _join(b"https://shop.example.com/products/", sku_lower),
                "image_url": _join(b"https://cdn.example.com/images/", sku_lower, b".jpg"),
                "attributes": self.product_attributes,
                "created_at": _ts(created),
                "updated_at": _ts(
                    np.minimum(created + (rng.random(p) * 90 * US_PER_DAY).astype(np.int64), self.start_us)
                ),
            },
            nulls={"stock": untracked},
            scales={"price": 2},
        )

        launched = self.program_launch_us - 30 * US_PER_DAY
        one = np.ones(1, dtype=np.int64)
        program = Table(
            "loyalty_programs",
            {
                "id": one,
                "name": _words(["Reachly Rewards"]),
                "slug": _words(["rewards"]),
                "currency": _words([cfg.currency]),
                "points_per_currency_unit": np.array([1000], dtype=np.int64),
                "event_points": _words(["{}"]),
                "points_expiry_days": np.array([POINTS_EXPIRY_DAYS], dtype=np.int64),
                "allow_negative_balance": np.zeros(1, dtype=bool),
                "active": np.ones(1, dtype=bool),
                "created_at": _ts(np.array([launched])),
                "updated_at": _ts(np.array([launched])),
            },
            scales={"points_per_currency_unit": 3},
        )
        n_tiers = len(TIERS)
        tiers = Table(
            "tiers",
            {
                "id": np.arange(1, n_tiers + 1, dtype=np.int64),
                "program_id": np.ones(n_tiers, dtype=np.int64),
                "name": _words([t[0] for t in TIERS]),
                "threshold": np.array([t[1] for t in TIERS], dtype=np.int64),
                "benefits": _words([t[3] for t in TIERS]),
                "multiplier": np.array([t[2] for t in TIERS], dtype=np.int64),
            },
            scales={"multiplier": 2},
        )
        n_rewards = len(REWARDS)
        minimum = np.array([-1 if r[2] is None else r[2] + 1 for r in REWARDS], dtype=np.int64)
        rewards = Table(
            "rewards",
            {
                "id": np.arange(1, n_rewards + 1, dtype=np.int64),
                "program_id": np.ones(n_rewards, dtype=np.int64),
                "name": _words([r[0] for r in REWARDS]),
                "description": _words([r[3] for r in REWARDS]),
                "cost_points": np.array([r[1] for r in REWARDS], dtype=np.int64),
                "minimum_tier_id": minimum,
                "active": np.ones(n_rewards, dtype=bool),
                "created_at": _ts(np.full(n_rewards, launched)),
                "updated_at": _ts(np.full(n_rewards, launched)),
            },
            nulls={"minimum_tier_id": minimum < 0},
        )
        return [categories, products, program, tiers, rewards]

    # --- customers, in batches -----------------------------------------------------------------
    def customer_batches(self) -> Iterator[list[Table]]:
        """One list of tables per batch of customers: profiles, consent, orders, events, loyalty."""
        cfg = self.config
        counters = _Counters()
        n_batches = cfg.batches
        for b in range(n_batches):
            lo = b * CUSTOMERS_PER_BATCH
            hi = min(cfg.customers, lo + CUSTOMERS_PER_BATCH)
            # Exact totals: each batch gets its proportional share, the rounding carried forward.
            orders = cfg.orders * hi // cfg.customers - cfg.orders * lo // cfg.customers
            browse = (
                cfg.browse_event_count * hi // cfg.customers - cfg.browse_event_count * lo // cfg.customers
            )
            yield _Batch(self, b, lo, hi, orders, browse, counters).tables()

    def tables(self) -> Iterator[list[Table]]:
        yield self.catalog_tables()
        yield from self.customer_batches()

    def sample_products(self, rng: np.random.Generator, leaf: np.ndarray) -> np.ndarray:
        """Zipf-weighted products, restricted to `leaf` where it is >= 0 (the whole catalogue elsewhere)."""
        leaf = np.asarray(leaf)
        restricted = leaf >= 0
        safe = np.where(restricted, leaf, 0)
        lo = np.where(restricted, self.cumulative_weight[self.leaf_lo[safe]], 0.0)
        hi = np.where(restricted, self.cumulative_weight[self.leaf_hi[safe]], self.cumulative_weight[-1])
        target = lo + rng.random(len(leaf)) * (hi - lo)
        product = np.searchsorted(self.cumulative_weight, target, side="right") - 1
        # Floating point at a slice edge can land one outside the slice: clamp back into it.
        upper = np.where(restricted, self.leaf_hi[safe] - 1, self.config.products - 1)
        lower = np.where(restricted, self.leaf_lo[safe], 0)
        return np.clip(product, lower, upper).astype(np.int64)


def collect(config: SyntheticConfig) -> dict[str, Table]:
    """The whole data set in memory, one table per name: for tests and notebooks at small scale."""
    parts: dict[str, list[Table]] = {}
    for batch in SyntheticShop(config).tables():
        for table in batch:
            parts.setdefault(table.name, []).append(table)
    return {name: Table.concat(tables) for name, tables in parts.items()}


class _Batch:
    """One batch of customers and everything they did. Kept as one object so each step reads the last."""

    def __init__(
        self, shop: SyntheticShop, index: int, lo: int, hi: int, orders: int, browse: int, counters: _Counters
    ) -> None:
        self.shop, self.cfg, self.counters = shop, shop.config, counters
        self.rng = np.random.default_rng(np.random.SeedSequence([shop.config.seed, 1, index]))
        self.lo, self.n = lo, hi - lo
        self.n_orders, self.n_browse = orders, browse
        self.start, self.end = shop.start_us, shop.end_us

    def tables(self) -> list[Table]:
        customers = self._customers()
        consent_records, consents, push, suppressions = self._consent()
        customers.columns["updated_at"] = _ts(
            np.maximum(customers.columns["created_at"].view(np.int64), self.last_consent_change)
        )
        orders, lines = self._orders()
        events = self._events()
        memberships, points, lots, redemptions = self._loyalty()
        return [
            customers,
            consent_records,
            consents,
            push,
            suppressions,
            orders,
            lines,
            events,
            memberships,
            points,
            lots,
            redemptions,
        ]

    def _local_hours(self, us: np.ndarray, offset: np.ndarray) -> np.ndarray:
        return (us - self.start) / US_PER_HOUR + offset

    def _from_local_hours(self, hours: np.ndarray, offset: np.ndarray) -> np.ndarray:
        return self.start + np.rint((hours - offset) * US_PER_HOUR).astype(np.int64)

    # --- profiles and lifecycles ---------------------------------------------------------------
    def _customers(self) -> Table:
        shop, rng, n = self.shop, self.rng, self.n
        ids = np.arange(self.lo + 1, self.lo + n + 1, dtype=np.int64)
        profile = rng.choice(len(shop._profile_p), size=n, p=shop._profile_p)
        language = shop._language[profile]
        first = _pick(rng, shop._first_off, shop._first_cnt, language)
        last = _pick(rng, shop._last_off, shop._last_cnt, language)
        self.offset = shop._offset_hours[profile]
        self.profile = profile

        # Lifecycle: existing customers came from an older CRM; new ones sign up over the window.
        existing = rng.random(n) < EXISTING_CUSTOMER_SHARE
        created = np.empty(n, dtype=np.int64)
        created[existing] = self.start - (rng.random(existing.sum()) * 3 * 365 * US_PER_DAY).astype(np.int64)
        new = ~existing
        window_hours = self.cfg.days * 24
        signup_local = shop.season.sample(
            self.offset[new], window_hours + self.offset[new], rng.random(new.sum())
        )
        created[new] = np.clip(
            self._from_local_hours(signup_local, self.offset[new]), self.start, self.end - 1
        )
        self.existing, self.created = existing, created
        self.window_start = np.where(existing, self.start, created)

        # BG/NBD-like purchasing: rate ~ Gamma(r), drop out after a Beta-geometric number of purchases.
        cfg = self.cfg
        horizon_days = np.maximum((self.end - self.window_start) / US_PER_DAY, 1e-3)
        rate = np.maximum(rng.gamma(cfg.purchase_rate_shape, 1.0, n), 1e-9)
        base = max(self.n_orders, 1) / n / cfg.purchase_rate_shape / horizon_days.mean()
        rate_per_day = rate * base
        dropout = np.clip(rng.beta(cfg.dropout_a, cfg.dropout_b, n), 1e-6, 1.0)
        purchases_until_dropout = rng.gamma(rng.geometric(dropout).astype(float), 1.0)
        self.alive_days = np.minimum(purchases_until_dropout / rate_per_day, horizon_days)
        expected = rate_per_day * self.alive_days
        if self.n_orders > 0:
            self.order_counts = rng.multinomial(self.n_orders, expected / expected.sum()).astype(np.int64)
        else:
            self.order_counts = np.zeros(n, dtype=np.int64)
        # Favourite categories, drawn by popularity so the product mix stays Zipf overall.
        self.favourites = rng.choice(len(shop.leaf_p), size=(n, 2), p=shop.leaf_p)

        style = rng.random(n)
        local = np.where(
            style < 0.5,
            _join(shop._first_local[first], b".", shop._last_local[last]),
            np.where(
                style < 0.8,
                _join(np.strings.slice(shop._first_local[first], 0, 1), shop._last_local[last]),
                _join(shop._first_local[first], b"_", shop._last_local[last]),
            ),
        )
        self.email = _join(local, _digits(ids), b"@", self.cfg.email_domain.encode())
        has_phone = rng.random(n) < PHONE_SHARE
        phone = np.where(
            has_phone, _join(b"+447700900", np.strings.zfill(_digits(rng.integers(0, 1000, n)), 3)), b""
        )
        channel = np.where(existing, b"crm", _words(SIGNUP_CHANNELS)[rng.choice(3, n, p=[0.62, 0.3, 0.08])])
        self.signup_channel = channel
        birth_year = rng.integers(1950, 2007, n)
        deleted = rng.random(n) < SOFT_DELETED_SHARE
        deleted_at = created + (rng.random(n) * (self.end - created)).astype(np.int64)
        return Table(
            "customers",
            {
                "id": ids,
                "external_id": _padded(b"C", ids, 9),
                "email": self.email,
                "phone": phone,
                "first_name": shop._first_names[first],
                "last_name": shop._last_names[last],
                "locale": shop._locale[profile],
                "timezone": shop._zone[profile],
                "country": shop._country[profile],
                "attributes": _join(
                    b'{"signup_channel": "', channel, b'", "birth_year": ', _digits(birth_year), b"}"
                ),
                "deleted_at": _ts(deleted_at),
                "erased_at": _ts(np.zeros(n, dtype=np.int64)),
                "created_at": _ts(created),
                "updated_at": _ts(created),
            },
            nulls={"deleted_at": ~deleted, "erased_at": np.ones(n, dtype=bool)},
        )

    # --- consent -------------------------------------------------------------------------------
    def _consent(self) -> tuple[Table, Table, Table, Table]:
        rng, n, end = self.rng, self.n, self.end
        customer_ids = np.arange(self.lo + 1, self.lo + n + 1, dtype=np.int64)
        records: list[tuple] = []  # (customer index, channel, action, source, time, ip or -1)

        def later(after: np.ndarray, mean_us: float) -> np.ndarray:
            return np.minimum(after + (rng.exponential(mean_us, len(after))).astype(np.int64) + 1, end - 1)

        def uniform_after(after: np.ndarray) -> np.ndarray:
            return np.minimum(after + (rng.random(len(after)) * (end - after)).astype(np.int64) + 1, end - 1)

        def add(idx, channel, action, source, times, ips=None):
            count = len(idx)
            records.append(
                (
                    idx,
                    np.full(count, channel, dtype="S8"),
                    np.full(count, action, dtype="S10"),
                    source if isinstance(source, np.ndarray) else np.full(count, source, dtype="S64"),
                    times,
                    np.full(count, -1, dtype=np.int64) if ips is None else ips,
                )
            )

        def test_net_ips(count):
            nets = np.array([0xC0000200, 0xC6336400, 0xCB007100], dtype=np.int64)  # RFC 5737 ranges
            return nets[rng.integers(0, 3, count)] + rng.integers(1, 255, count)

        # Email: granted at signup (double opt-in where customary), some withdrawn, some never confirmed.
        u = rng.random(n)
        granted = np.flatnonzero(u < EMAIL_GRANTED_SHARE)
        pending = np.flatnonzero((u >= EMAIL_GRANTED_SHARE) & (u < EMAIL_GRANTED_SHARE + EMAIL_PENDING_SHARE))
        given_at = np.minimum(self.created + rng.integers(1, 120, n) * US_PER_SECOND, end - 1)
        from_crm = self.existing
        source = np.where(from_crm, b"crm_import", np.where(rng.random(n) < 0.6, b"signup_form", b"checkout"))
        ips = np.where(from_crm, -1, test_net_ips(n))
        double = self.shop._double_opt_in[self.profile] | (rng.random(n) < DOUBLE_OPT_IN_SHARE)
        single = granted[~double[granted] | from_crm[granted]]
        confirmed = granted[double[granted] & ~from_crm[granted]]
        add(single, b"email", b"granted", source[single], given_at[single], ips[single])
        add(confirmed, b"email", b"requested", source[confirmed], given_at[confirmed], ips[confirmed])
        confirmed_at = later(given_at[confirmed], 2 * US_PER_HOUR)
        add(confirmed, b"email", b"confirmed", b"double_opt_in_link", confirmed_at, ips[confirmed])
        add(pending, b"email", b"requested", source[pending], given_at[pending], ips[pending])
        email_final = np.full(n, -1.0)
        email_final[single] = given_at[single]
        email_final[confirmed] = confirmed_at
        withdrawn = granted[rng.random(len(granted)) < EMAIL_WITHDRAWN_SHARE]
        withdrawn_at = uniform_after(email_final[withdrawn].astype(np.int64))
        withdraw_source = np.where(
            rng.random(len(withdrawn)) < 0.8, b"unsubscribe_link", b"preference_centre"
        )
        add(withdrawn, b"email", b"withdrawn", withdraw_source.astype("S64"), withdrawn_at)
        self.email_granted = np.zeros(n, dtype=bool)
        self.email_granted[granted] = True
        self.email_granted[withdrawn] = False

        # Push: from an app prompt, some turned off later. SMS: at checkout, some STOP replies.
        push = np.flatnonzero(rng.random(n) < PUSH_GRANTED_SHARE)
        push_at = np.minimum(
            self.created[push] + (rng.random(len(push)) * 60 * US_PER_DAY).astype(np.int64), end - 1
        )
        push_at = np.maximum(push_at, self.created[push] + 1)
        add(push, b"push", b"granted", b"app_prompt", push_at)
        push_off = rng.random(len(push)) < PUSH_WITHDRAWN_SHARE
        push_off_at = uniform_after(push_at[push_off])
        add(push[push_off], b"push", b"withdrawn", b"app_settings", push_off_at)
        sms = np.flatnonzero(rng.random(n) < SMS_GRANTED_SHARE)
        sms_at = given_at[sms]
        add(sms, b"sms", b"granted", b"checkout", sms_at)
        sms_off = rng.random(len(sms)) < SMS_WITHDRAWN_SHARE
        add(sms[sms_off], b"sms", b"withdrawn", b"sms_stop", uniform_after(sms_at[sms_off]))

        cust = np.concatenate([r[0] for r in records])
        chan = np.concatenate([r[1] for r in records])
        action = np.concatenate([r[2] for r in records])
        src = np.concatenate([r[3] for r in records]).astype("S64")
        when = np.concatenate([r[4] for r in records]).astype(np.int64)
        ip = np.concatenate([r[5] for r in records])
        channel_code = np.searchsorted(np.array([b"email", b"push", b"sms"]), chan)
        order = np.lexsort((when, channel_code, cust))
        cust, chan, action, src, when, ip, channel_code = (
            a[order] for a in (cust, chan, action, src, when, ip, channel_code)
        )
        m = len(cust)
        c = self.counters
        consent_records = Table(
            "consent_records",
            {
                "id": np.arange(c.consent_record + 1, c.consent_record + m + 1, dtype=np.int64),
                "customer_id": customer_ids[cust],
                "channel": chan,
                "action": action,
                "source": src,
                "ip": np.maximum(ip, 0),
                "occurred_at": _ts(when),
                "recorded_at": _ts(np.minimum(when + rng.integers(0, 5, m) * US_PER_SECOND, end - 1)),
                "note": np.full(m, b"", dtype="S1"),
            },
            nulls={"ip": ip < 0},
        )
        c.consent_record += m

        # Current state: the latest decision per customer and channel.
        key = cust * 3 + channel_code
        last = np.flatnonzero(np.r_[key[1:] != key[:-1], True])
        status = np.select(
            [action[last] == b"withdrawn", action[last] == b"requested"],
            [b"withdrawn", b"pending"],
            b"granted",
        )
        s = len(last)
        consents = Table(
            "consents",
            {
                "id": np.arange(c.consent_state + 1, c.consent_state + s + 1, dtype=np.int64),
                "customer_id": customer_ids[cust[last]],
                "channel": chan[last],
                "status": status,
                "source": src[last],
                "changed_at": _ts(when[last]),
            },
        )
        c.consent_state += s
        self.last_consent_change = np.full(n, np.iinfo(np.int64).min)
        np.maximum.at(self.last_consent_change, cust, when)

        # Push subscriptions for everyone who allowed push; inactive once they turned it off.
        k = len(push)
        active = ~push_off
        updated = push_at.copy()
        updated[push_off] = push_off_at
        subscriptions = Table(
            "push_subscriptions",
            {
                "id": np.arange(c.push + 1, c.push + k + 1, dtype=np.int64),
                "customer_id": customer_ids[push],
                "kind": np.full(k, b"webpush", dtype="S7"),
                "endpoint": _join(b"https://push.example.com/send/", _random_text(rng, k, 32, _HEX)),
                "p256dh": _random_text(rng, k, 87, _BASE64URL),
                "auth": _random_text(rng, k, 22, _BASE64URL),
                "token": np.full(k, b"", dtype="S1"),
                "active": active,
                "last_error": np.full(k, b"", dtype="S1"),
                "created_at": _ts(push_at),
                "updated_at": _ts(updated),
            },
        )
        c.push += k

        # A few addresses bounced or complained: on the suppression list (hashed by the loader).
        v = rng.random(n)
        bounced = v < BOUNCED_SHARE
        complained = (v >= BOUNCED_SHARE) & (v < BOUNCED_SHARE + COMPLAINT_SHARE)
        suppressed = np.flatnonzero(bounced | complained)
        q = len(suppressed)
        suppressions = Table(
            "suppressions",
            {
                "id": np.arange(c.suppression + 1, c.suppression + q + 1, dtype=np.int64),
                "channel": np.full(q, b"email", dtype="S5"),
                "address": self.email[suppressed],
                "reason": np.where(bounced[suppressed], b"bounced", b"complaint"),
                "detail": np.full(q, b"synthetic", dtype="S9"),
                "created_at": _ts(uniform_after(self.created[suppressed])),
            },
        )
        c.suppression += q
        return consent_records, consents, subscriptions, suppressions

    # --- orders --------------------------------------------------------------------------------
    def _orders(self) -> tuple[Table, Table]:
        shop, cfg, rng, end = self.shop, self.cfg, self.rng, self.end
        counts = self.order_counts
        cust = np.repeat(np.arange(self.n, dtype=np.int64), counts)
        rank = _rank_within(cust)
        k = len(cust)
        lo = self._local_hours(self.window_start[cust], self.offset[cust])
        hi = lo + self.alive_days[cust] * 24
        placed = self._from_local_hours(shop.season.sample(lo, hi, rng.random(k)), self.offset[cust])
        # A new customer's first order is the one they signed up with.
        at_signup = (rank == 0) & ~self.existing[cust]
        placed[at_signup] = self.created[cust[at_signup]] + (
            rng.exponential(20 * US_PER_MINUTE, at_signup.sum())
        ).astype(np.int64)
        placed = np.clip(placed, self.window_start[cust], end - 1)
        order = np.lexsort((placed, cust))
        cust, placed = cust[order], placed[order]
        self.order_customer, self.order_placed = cust, placed
        self.first_order = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)

        # Lines: distinct products per order, mostly from the customer's favourite categories.
        per_order = 1 + rng.poisson(cfg.extra_lines_mean, k)
        line_order = np.repeat(np.arange(k, dtype=np.int64), per_order)
        line_cust = cust[line_order]
        favourite = self.favourites[line_cust, rng.integers(0, 2, len(line_order))]
        leaf = np.where(rng.random(len(line_order)) < cfg.category_affinity, favourite, -1)
        product = shop.sample_products(rng, leaf)
        _, keep = np.unique(line_order * cfg.products + product, return_index=True)
        line_order, product = line_order[keep], product[keep]
        quantity = np.minimum(rng.geometric(0.62, len(product)), 12).astype(np.int64)
        price = shop.price_cents[product]
        position = _rank_within(line_order)
        self.sale_line_order, self.sale_line_product = line_order, product
        self.sale_first = np.searchsorted(line_order, np.arange(k), side="left")
        self.sale_count = np.searchsorted(line_order, np.arange(k), side="right") - self.sale_first

        cancelled = rng.random(k) < cfg.cancellation_rate
        cancel_line = cancelled[line_order]
        returned = (rng.random(len(product)) < cfg.return_rate) & ~cancel_line
        returned_qty = 1 + (rng.random(returned.sum()) * quantity[returned]).astype(np.int64)
        # kind: 0 sale, 1 return, 2 cancellation
        all_order = np.r_[line_order, line_order[returned], line_order[cancel_line]]
        all_kind = np.r_[
            np.zeros(len(product), dtype=np.int64),
            np.ones(returned.sum(), dtype=np.int64),
            np.full(cancel_line.sum(), 2, dtype=np.int64),
        ]
        all_product = np.r_[product, product[returned], product[cancel_line]]
        all_qty = np.r_[quantity, -returned_qty, -quantity[cancel_line]]
        all_price = np.r_[price, price[returned], price[cancel_line]]
        all_position = np.r_[position, position[returned], position[cancel_line]]
        arrange = np.lexsort((all_position, all_kind > 0, all_order))
        all_order, all_kind, all_product, all_qty, all_price = (
            a[arrange] for a in (all_order, all_kind, all_product, all_qty, all_price)
        )
        amount = (all_qty * all_price).astype(float)
        total = np.rint(np.bincount(all_order, weights=amount, minlength=k)).astype(np.int64)
        sale = all_kind == 0
        gross = np.rint(np.bincount(all_order[sale], weights=amount[sale], minlength=k)).astype(np.int64)
        units = np.bincount(all_order[sale], weights=all_qty[sale], minlength=k).astype(np.int64)
        back = -np.bincount(all_order[all_kind == 1], weights=all_qty[all_kind == 1], minlength=k).astype(
            np.int64
        )
        age = end - placed
        status = np.select(
            [cancelled, back == units, age < 6 * US_PER_HOUR, age < 3 * US_PER_DAY],
            [b"cancelled", b"returned", b"placed", b"paid"],
            b"fulfilled",
        )
        self.order_cancelled, self.order_total, self.order_gross, self.order_units = (
            cancelled,
            total,
            gross,
            units,
        )

        c = self.counters
        order_ids = np.arange(c.order + 1, c.order + k + 1, dtype=np.int64)
        self.order_ids = order_ids
        self.order_external = _padded(b"SO", order_ids, 10)
        customer_ids = self.lo + 1 + cust
        updated = np.where(status == b"fulfilled", np.minimum(placed + 3 * US_PER_DAY, end - 1), placed)
        updated = np.where(status == b"returned", np.minimum(placed + 14 * US_PER_DAY, end - 1), updated)
        orders = Table(
            "orders",
            {
                "id": order_ids,
                "external_id": self.order_external,
                "customer_id": customer_ids,
                "status": status,
                "placed_at": _ts(placed),
                "currency": np.full(k, cfg.currency.encode(), dtype="S3"),
                "total": total,
                "attributes": np.full(k, b"{}", dtype="S2"),
                "payload_hash": np.full(k, b"", dtype="S1"),
                "created_at": _ts(placed),
                "updated_at": _ts(updated),
            },
            scales={"total": 2},
        )
        c.order += k
        m = len(all_order)
        kinds = np.array([b"sale", b"return", b"cancellation"])
        lines = Table(
            "order_lines",
            {
                "id": np.arange(c.line + 1, c.line + m + 1, dtype=np.int64),
                "order_id": order_ids[all_order],
                "line_no": _rank_within(all_order) + 1,
                "product_id": all_product + 1,
                "sku": _padded(b"SKU", all_product + 1, 8),
                "kind": kinds[all_kind],
                "quantity": all_qty,
                "unit_price": all_price,
            },
            scales={"unit_price": 2},
        )
        c.line += m
        return orders, lines

    # --- events --------------------------------------------------------------------------------
    def _events(self) -> Table:
        shop, rng, end, n = self.shop, self.rng, self.end, self.n
        counts = self.order_counts
        # One purchase event per order that was not cancelled.
        bought = np.flatnonzero(~self.order_cancelled)
        p_cust = self.order_customer[bought]
        p_time = self.order_placed[bought]
        p_key = _join(b"syn-purchase-", self.order_external[bought])
        p_props = _join(b'{"order_id": "', self.order_external[bought], b'"}')

        # Browsing: views, add-to-cart and searches, weighted towards active customers, many of
        # them in the hours before an order and about its products.
        e = self.n_browse
        weight = counts + 0.5
        cust = rng.choice(n, size=e, p=weight / weight.sum()) if e else np.zeros(0, dtype=np.int64)
        kind = rng.choice(3, size=e, p=[0.78, 0.10, 0.12])  # 0 view, 1 add_to_cart, 2 search
        cart = kind == 1
        anchored = (counts[cust] > 0) & (rng.random(e) < np.where(cart, 0.85, 0.6))
        which = self.first_order[cust] + (rng.random(e) * counts[cust]).astype(np.int64)
        which = np.where(anchored, which, 0)
        lead = rng.exponential(np.where(cart, 40 * US_PER_MINUTE, 3 * US_PER_HOUR), e).astype(np.int64)
        anchored_time = self.order_placed[which] - lead if len(self.order_placed) else np.zeros(e, np.int64)
        lo = self._local_hours(self.window_start[cust], self.offset[cust])
        hi = lo + np.minimum(self.alive_days[cust] + 30, (end - self.window_start[cust]) / US_PER_DAY) * 24
        free_time = self._from_local_hours(shop.season.sample(lo, hi, rng.random(e)), self.offset[cust])
        # Browsing before a customer's first known moment (an anonymous visitor then) is moved
        # into the gap before the order, rather than piled up on the signup instant.
        early = anchored & (anchored_time < self.window_start[cust])
        gap = (
            np.maximum(self.order_placed[which] - self.window_start[cust], 0) if len(self.order_placed) else 0
        )
        anchored_time = np.where(
            early, self.window_start[cust] + (rng.random(e) * gap).astype(np.int64), anchored_time
        )
        when = np.clip(np.where(anchored, anchored_time, free_time), self.window_start[cust], end - 1)

        favourite = self.favourites[cust, rng.integers(0, 2, e)]
        leaf = np.where(rng.random(e) < self.cfg.category_affinity, favourite, -1)
        product = shop.sample_products(rng, leaf)
        from_order = anchored & (rng.random(e) < np.where(cart, 0.8, 0.5)) & (kind != 2)
        if from_order.any():
            o = which[from_order]
            line = self.sale_first[o] + (rng.random(len(o)) * self.sale_count[o]).astype(np.int64)
            product[from_order] = self.sale_line_product[line]
        quantity = np.where(cart, 1 + (rng.random(e) < 0.2), 1).astype(np.int64)
        # Search queries name what the customer is after: a product noun, with a colour, or a category.
        query_leaf = np.where(rng.random(e) < 0.7, favourite, rng.choice(len(shop.leaf_p), e, p=shop.leaf_p))
        noun = _pick(rng, shop._noun_off, shop._noun_cnt, query_leaf)
        style = rng.random(e)
        query = np.where(
            style < 0.6,
            shop._nouns[noun],
            np.where(
                style < 0.85,
                _join(shop._colours[rng.integers(0, len(COLOURS), e)], b" ", shop._nouns[noun]),
                np.strings.lower(shop._leaf_names[query_leaf]),
            ),
        )
        search = kind == 2
        b_props = np.where(search, _join(b'{"query": "', query, b'"}'), b"{}")
        b_value = np.where(cart, shop.price_cents[product] * quantity, 0)
        c = self.counters
        b_key = _padded(b"syn-event-", np.arange(c.browse + 1, c.browse + e + 1), 12)
        c.browse += e

        types = np.array([b"view", b"add_to_cart", b"search", b"purchase"])
        all_cust = np.r_[cust, p_cust]
        all_time = np.r_[when, p_time]
        all_type = np.r_[kind, np.full(len(bought), 3)]
        all_product = np.r_[product, np.zeros(len(bought), dtype=np.int64)]
        product_null = np.r_[search, np.ones(len(bought), dtype=bool)]
        all_qty = np.r_[quantity, self.order_units[bought]]
        all_value = np.r_[b_value, self.order_gross[bought]]
        value_null = np.r_[~cart, np.zeros(len(bought), dtype=bool)]
        all_props = np.r_[b_props, p_props]
        all_key = np.r_[b_key, p_key]
        order = np.lexsort((all_key, all_time, all_cust))
        m = len(order)
        received = np.minimum(
            all_time[order] + rng.exponential(2 * US_PER_SECOND, m).astype(np.int64), end - 1
        )
        events = Table(
            "events",
            {
                "id": np.arange(c.event + 1, c.event + m + 1, dtype=np.int64),
                "customer_id": self.lo + 1 + all_cust[order],
                "type": types[all_type[order]],
                "name": np.full(m, b"", dtype="S1"),
                "product_id": all_product[order] + 1,
                "quantity": all_qty[order],
                "value": all_value[order],
                "properties": all_props[order],
                "occurred_at": _ts(all_time[order]),
                "received_at": _ts(np.maximum(received, all_time[order])),
                "idempotency_key": all_key[order],
                "payload_hash": np.full(m, b"", dtype="S1"),
            },
            nulls={"product_id": product_null[order], "value": value_null[order]},
            scales={"value": 2},
        )
        c.event += m
        return events

    # --- loyalty -------------------------------------------------------------------------------
    def _loyalty(self) -> tuple[Table, Table, Table, Table]:
        """Replay the program's rules over each member's orders, in order.

        Points depend on the tier reached so far and redemptions on the balance at the time, so
        the ledger is built step by step: step k handles every member's k-th order at once.
        The program launched `POINTS_EXPIRY_DAYS` before the end of the history, so no points
        earned in the window have expired yet and the ledger needs no expiry entries.
        """
        rng, end, launch, n = self.rng, self.end, self.shop.program_launch_us, self.n
        cfg = self.cfg
        eligible = ~self.order_cancelled & (self.order_placed >= launch)
        o_cust = self.order_customer[eligible]
        has_eligible = np.bincount(o_cust, minlength=n) > 0
        joins = has_eligible & (rng.random(n) < cfg.loyalty_join_rate)
        browsers = ~has_eligible & (rng.random(n) < NON_BUYER_JOIN_RATE)
        member_of = np.full(n, -1, dtype=np.int64)
        members = np.flatnonzero(joins | browsers)
        member_of[members] = np.arange(len(members))
        n_members = len(members)

        first_eligible = np.full(n, end, dtype=np.int64)
        np.minimum.at(first_eligible, o_cust, self.order_placed[eligible])
        joined = np.where(
            joins[members],
            np.maximum(first_eligible[members] - US_PER_MINUTE, self.created[members]),
            np.minimum(
                np.maximum(self.created[members], launch)
                + (rng.random(n_members) * 30 * US_PER_DAY).astype(np.int64),
                end - 1,
            ),
        )

        take = eligible & (member_of[self.order_customer] >= 0)
        m_of = member_of[self.order_customer[take]]
        t_of = self.order_placed[take]
        v_of = self.order_total[take]
        ext_of = self.order_external[take]
        next_t = np.r_[t_of[1:], end]
        next_t = np.where(np.r_[m_of[1:] == m_of[:-1], False], next_t, end)
        step = _rank_within(m_of)

        thresholds = np.array([t[1] for t in TIERS], dtype=np.int64)
        multipliers = np.array([t[2] for t in TIERS], dtype=np.int64)
        costs = np.array([r[1] for r in REWARDS], dtype=np.int64)
        minimum_tier = np.array([-1 if r[2] is None else r[2] for r in REWARDS], dtype=np.int64)
        reward_names = _words([r[0] for r in REWARDS])

        balance = np.zeros(n_members, dtype=np.int64)
        lifetime = np.zeros(n_members, dtype=np.int64)
        tier = np.zeros(n_members, dtype=np.int64)
        tier_changed = joined.copy()
        earn_parts, redeem_parts = [], []
        by_step = np.argsort(step, kind="stable")
        bounds = np.searchsorted(step[by_step], np.arange((step.max() + 2) if len(step) else 1))
        for k in range(len(bounds) - 1):
            rows = by_step[bounds[k] : bounds[k + 1]]
            mem = m_of[rows]
            points = v_of[rows] * multipliers[tier[mem]] // 10_000  # pounds x multiplier, rounded down
            earn = points > 0
            rows, mem, points = rows[earn], mem[earn], points[earn]
            balance[mem] += points
            lifetime[mem] += points
            earn_parts.append((mem, points, balance[mem].copy(), t_of[rows], rows, np.full(len(mem), k)))
            reached = np.searchsorted(thresholds, lifetime[mem], side="right") - 1
            up = reached > tier[mem]
            tier_changed[mem[up]] = t_of[rows[up]]
            tier[mem[up]] = reached[up]
            # Sometimes a member spends points soon after, before their next order.
            allowed = (costs[None, :] <= balance[mem][:, None]) & (
                minimum_tier[None, :] <= tier[mem][:, None]
            )
            wants = (rng.random(len(mem)) < REDEEM_PROBABILITY) & allowed.any(axis=1)
            if wants.any():
                choice = np.argmax(
                    np.where(allowed[wants], rng.random((wants.sum(), len(costs))), -1), axis=1
                )
                who, when_rows = mem[wants], rows[wants]
                gap = next_t[when_rows] - t_of[when_rows]
                delay = np.minimum(rng.uniform(US_PER_HOUR, 10 * US_PER_DAY, len(who)), gap / 2).astype(
                    np.int64
                )
                balance[who] -= costs[choice]
                redeem_parts.append(
                    (
                        who,
                        -costs[choice],
                        balance[who].copy(),
                        t_of[when_rows] + np.maximum(delay, 1),
                        choice,
                        np.full(len(who), k),
                    )
                )

        def stack(parts, i, dtype=np.int64):
            return np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, dtype=dtype)

        e_mem, e_pts, e_bal, e_time, e_rows, e_step = (stack(earn_parts, i) for i in range(6))
        r_mem, r_pts, r_bal, r_time, r_choice, r_step = (stack(redeem_parts, i) for i in range(6))
        c = self.counters
        r_no = np.arange(c.redemption + 1, c.redemption + len(r_mem) + 1, dtype=np.int64)
        c.redemption += len(r_mem)
        e_ext = ext_of[e_rows]

        membership_ids = np.arange(c.membership + 1, c.membership + n_members + 1, dtype=np.int64)
        c.membership += n_members
        kind = np.r_[np.zeros(len(e_mem), dtype=np.int64), np.ones(len(r_mem), dtype=np.int64)]
        mem = np.r_[e_mem, r_mem]
        when = np.r_[e_time, r_time]
        # Ledger order is the order the rules were applied in: each order's earning, then any redemption.
        order = np.lexsort((kind, np.r_[e_step, r_step], mem))
        t = len(order)
        txn_ids = np.arange(c.points + 1, c.points + t + 1, dtype=np.int64)
        c.points += t
        idem = np.r_[_join(b"order-", e_ext), _padded(b"redeem-", r_no, 10)] if t else np.zeros(0, dtype="S1")
        reason = np.r_[_join(b"Order ", e_ext), _join(b"Reward: ", reward_names[r_choice])] if t else idem
        source_type = np.r_[
            np.full(len(e_mem), b"order", dtype="S6"), np.full(len(r_mem), b"reward", dtype="S6")
        ]
        source_id = np.r_[e_ext, _digits(r_choice + 1)] if t else idem
        expires = when + POINTS_EXPIRY_DAYS * US_PER_DAY
        transactions = Table(
            "points_transactions",
            {
                "id": txn_ids,
                "membership_id": membership_ids[mem[order]],
                "kind": np.array([b"earn", b"redeem"])[kind[order]],
                "points": np.r_[e_pts, r_pts][order],
                "balance_after": np.r_[e_bal, r_bal][order],
                "idempotency_key": idem[order],
                "payload_hash": np.full(t, b"", dtype="S1"),
                "reason": reason[order],
                "source_type": source_type[order],
                "source_id": source_id[order],
                "occurred_at": _ts(when[order]),
                "expires_at": _ts(expires[order]),
                "created_at": _ts(when[order]),
            },
            nulls={"expires_at": kind[order] == 1},
        )
        position = np.empty(t, dtype=np.int64)
        position[order] = np.arange(t)
        earn_txn = txn_ids[position[: len(e_mem)]] if t else np.zeros(0, dtype=np.int64)
        redeem_txn = txn_ids[position[len(e_mem) :]] if t else np.zeros(0, dtype=np.int64)

        # Lots: what is left of each earning once redemptions consumed the oldest points first.
        lot_order = np.lexsort((e_step, e_mem))
        lot_mem, lot_pts = e_mem[lot_order], e_pts[lot_order]
        spent = np.zeros(n_members, dtype=np.int64)
        np.add.at(spent, r_mem, -r_pts)
        running = np.cumsum(lot_pts)
        group_start = (
            np.r_[0, np.flatnonzero(lot_mem[1:] != lot_mem[:-1]) + 1] if len(lot_mem) else np.zeros(0, int)
        )
        group_base = np.repeat(np.r_[0, running][group_start], np.diff(np.r_[group_start, len(lot_mem)]))
        before = running - lot_pts - group_base
        remaining = lot_pts - np.clip(spent[lot_mem] - before, 0, lot_pts)
        n_lots = len(lot_mem)
        lots = Table(
            "points_lots",
            {
                "id": np.arange(c.lot + 1, c.lot + n_lots + 1, dtype=np.int64),
                "membership_id": membership_ids[lot_mem],
                "earned_by_id": earn_txn[lot_order],
                "remaining": remaining,
                "expires_at": _ts(e_time[lot_order] + POINTS_EXPIRY_DAYS * US_PER_DAY),
            },
        )
        c.lot += n_lots

        last_activity = joined.copy()
        np.maximum.at(last_activity, mem, when)
        memberships = Table(
            "memberships",
            {
                "id": membership_ids,
                "program_id": np.ones(n_members, dtype=np.int64),
                "customer_id": self.lo + 1 + members,
                "tier_id": tier + 1,
                "balance": balance,
                "lifetime_points": lifetime,
                "joined_at": _ts(joined),
                "tier_changed_at": _ts(tier_changed),
                "created_at": _ts(joined),
                "updated_at": _ts(last_activity),
            },
        )
        redemptions = Table(
            "redemptions",
            {
                "id": r_no,
                "membership_id": membership_ids[r_mem],
                "reward_id": r_choice + 1,
                "transaction_id": redeem_txn,
                "created_at": _ts(r_time),
            },
        )
        return memberships, transactions, lots, redemptions
