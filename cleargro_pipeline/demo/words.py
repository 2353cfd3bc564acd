"""Word lists for names, titles, keywords and shoppers (fixed: part of the determinism)."""

ADJECTIVES = (
    "Cozy", "Coastal", "Rustic", "Nordic", "Urban", "Classic", "Vintage", "Modern", "Alpine",
    "Sunlit", "Misty", "Harbor", "Meadow", "Prairie", "Heritage", "Everyday", "Weekend", "Quiet",
    "Bold", "Gentle", "Woven", "Tidal", "Desert", "Golden", "Midnight", "Forest", "Orchard",
    "Summit", "Canyon", "Willow", "Cedar", "Marble", "Cloud", "Breezy", "Mellow", "Ember",
    "Aurora", "Lunar", "Solstice", "Driftwood", "Juniper", "Saffron", "Indigo", "Crimson",
    "Ivory", "Copper", "Slate", "Amber", "Hazel", "Linden", "Birch", "Maple", "Fern", "Pebble",
    "Dune", "Glacier", "Autumn", "Spring", "Harvest", "Twilight",
)

# category -> (materials that suit it, nouns)
CATEGORIES = {
    "Home Textiles": (
        ("Linen", "Merino", "Cotton", "Wool", "Cashmere", "Bamboo", "Hemp", "Alpaca", "Velvet",
         "Flannel", "Mohair", "Jute"),
        ("Throw", "Blanket", "Cushion", "Duvet Cover", "Pillowcase", "Table Runner", "Napkin Set",
         "Tea Towel", "Rug", "Curtain", "Bath Towel", "Quilt"),
    ),
    "Apparel": (
        ("Merino", "Cotton", "Wool", "Cashmere", "Linen", "Alpaca", "Denim", "Corduroy", "Tweed",
         "Flannel", "Silk", "Hemp"),
        ("Scarf", "Beanie", "Sweater", "Cardigan", "Socks", "Mittens", "Robe", "Apron",
         "Slippers", "Overshirt", "Hoodie", "Shawl"),
    ),
    "Kitchen & Dining": (
        ("Ceramic", "Stoneware", "Oak", "Walnut", "Teak", "Glass", "Brass", "Porcelain",
         "Terracotta", "Marble", "Acacia", "Enamel"),
        ("Mug", "Bowl", "Plate Set", "Serving Board", "Vase", "Planter", "Pitcher", "Coaster Set",
         "Candle Holder", "Tray", "Teapot", "Salad Servers"),
    ),
    "Accessories": (
        ("Leather", "Suede", "Canvas", "Waxed Cotton", "Cork", "Felt", "Rattan", "Seagrass",
         "Nylon", "Hemp", "Denim", "Tweed"),
        ("Wallet", "Belt", "Backpack", "Journal", "Pouch", "Keyring", "Tote Bag", "Glasses Case",
         "Card Holder", "Weekender Bag", "Crossbody Bag", "Laptop Sleeve"),
    ),
}

COLOURS = ("Oat", "Charcoal", "Sage", "Rust", "Navy", "Sand", "Olive", "Blush")
SIZES = ("S", "M", "L", "XL")
VENDORS = ("Cleargro Studio", "Northwind Makers", "Fjord & Field", "Hearth Goods", "Tidewater Co.")

FIRST_NAMES = (
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Elijah", "Sophia", "James", "Isabella", "Lucas",
    "Mia", "Mason", "Amelia", "Ethan", "Harper", "Logan", "Evelyn", "Aiden", "Abigail", "Jacob",
    "Emily", "Michael", "Ella", "Daniel", "Scarlett", "Henry", "Grace", "Jackson", "Chloe",
    "Sebastian", "Nora", "Owen", "Lily", "Samuel", "Hannah", "Leo", "Zoe", "Julian", "Aria",
    "Mateo", "Layla", "Caleb", "Riley", "Isaac", "Stella", "Nathan", "Lucy", "Adrian", "Maya",
    "Theo", "Ruby", "Miles", "Ivy", "Ezra", "Alice", "Felix", "Clara", "Hugo", "Iris", "Omar",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Patel", "Kim", "Chen", "Murphy",
    "Cook", "Bailey", "Cooper", "Reed", "Ward", "Brooks",
)

# Search-term templates: applied to a keyword's text. Normal terms convert; the
# wasted ones (planted) describe intents that never buy.
TERM_TEMPLATES = ("{kw}", "{kw} sale", "best {kw}", "{kw} online", "buy {kw}", "{kw} gift")
WASTED_TERM_TEMPLATES = ("free {kw} pattern", "how to make a {kw}", "diy {kw} tutorial",
                         "{kw} meaning", "{kw} jobs")
