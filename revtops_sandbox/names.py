"""Small built-in word lists the synthetic company is drawn from.

Kept short on purpose: a record stores an index into these tuples instead of its own string,
which keeps a scale-10 company (≈850k records) well under a gigabyte.
"""

from __future__ import annotations

# fmt: off
SELLER_NAME = "Northwind Sales Cloud"
SELLER_DOMAIN = "northwind-sales.example"

FIRST_NAMES = (
    "Aaliyah", "Aarav", "Abigail", "Adrian", "Aisha", "Alejandro", "Alice", "Amara", "Amelia",
    "Andre", "Anika", "Arjun", "Ava", "Benjamin", "Bianca", "Carlos", "Caroline", "Chen",
    "Chloe", "Daniel", "Daniela", "David", "Diego", "Elena", "Elijah", "Emily", "Emma", "Ethan",
    "Fatima", "Felix", "Gabriel", "Grace", "Hannah", "Hiroshi", "Ibrahim", "Isabella", "Ivan",
    "Jack", "James", "Jasmine", "Javier", "Julia", "Kai", "Kenji", "Laila", "Leo", "Liam",
    "Lucas", "Lucia", "Maria", "Mateo", "Maya", "Mei", "Mohammed", "Nadia", "Naomi", "Nathan",
    "Noah", "Olivia", "Omar", "Priya", "Rafael", "Ravi", "Rosa", "Samuel", "Sara", "Sebastian",
    "Sofia", "Sophie", "Tariq", "Thomas", "Valentina", "Victor", "William", "Yara", "Yusuf",
    "Zara", "Zoe", "Ingrid", "Lars", "Siobhan", "Declan", "Renée", "José", "Zoë", "Björn",
)

LAST_NAMES = (
    "Adams", "Ahmed", "Alvarez", "Anderson", "Bauer", "Becker", "Brown", "Campbell", "Chen",
    "Clarke", "Costa", "Davis", "Dubois", "Evans", "Fischer", "Garcia", "Gonzalez", "Gupta",
    "Hall", "Hansen", "Hernandez", "Hughes", "Ibrahim", "Ito", "Jackson", "Johansson",
    "Johnson", "Kim", "Kowalski", "Kumar", "Lee", "Lopez", "Martin", "Martinez", "Meyer",
    "Miller", "Moore", "Morales", "Müller", "Nakamura", "Nguyen", "Novak", "O'Brien", "Okafor",
    "Olsen", "Patel", "Perez", "Petrov", "Ramirez", "Reyes", "Roberts", "Rossi", "Russo",
    "Sato", "Schmidt", "Silva", "Singh", "Smith", "Suzuki", "Tanaka", "Taylor", "Thomas",
    "Thompson", "Torres", "Walker", "Wang", "Weber", "White", "Williams", "Wilson", "Wong",
    "Yamamoto", "Young", "Zhang", "Zimmermann", "van der Berg", "de Souza", "MacLeod",
)

ACCOUNT_ADJECTIVES = (
    "Acme", "Alpine", "Amber", "Apex", "Arcadia", "Atlas", "Aurora", "Beacon", "Birch", "Blue",
    "Bold", "Bright", "Canyon", "Cedar", "Cobalt", "Coastal", "Copper", "Crimson", "Crystal",
    "Delta", "Eagle", "Echo", "Emerald", "Evergreen", "Falcon", "Fjord", "Frontier", "Golden",
    "Granite", "Harbor", "Highland", "Horizon", "Indigo", "Iron", "Juniper", "Keystone",
    "Lakeside", "Liberty", "Lunar", "Maple", "Meridian", "Midwest", "Nimbus", "Noble", "North",
    "Nova", "Oak", "Ocean", "Orchid", "Pacific", "Peak", "Pine", "Pioneer", "Polar", "Prairie",
    "Quantum", "Quartz", "Radiant", "Redwood", "Ridge", "River", "Sage", "Sapphire", "Silver",
    "Sierra", "Solar", "Spruce", "Stellar", "Summit", "Sunrise", "Terra", "Tidal", "Titan",
    "Trident", "Twin", "Union", "Valley", "Vertex", "Vista", "West", "Willow", "Zenith",
)

ACCOUNT_NOUNS = (
    "Analytics", "Bio", "Bridge", "Capital", "Cloud", "Code", "Data", "Dynamics", "Energy",
    "Foods", "Freight", "Games", "Health", "Insights", "Labs", "Learning", "Legal", "Logic",
    "Logistics", "Machines", "Markets", "Media", "Medical", "Metrics", "Mobility", "Networks",
    "Optics", "Outdoor", "Packaging", "Pay", "Pharma", "Power", "Realty", "Retail", "Robotics",
    "Security", "Signal", "Software", "Solar", "Sports", "Steel", "Studios", "Supply", "Telecom",
    "Textiles", "Therapeutics", "Trading", "Transit", "Travel", "Vision", "Water", "Wealth",
    "Wireless", "Works", "Grid", "Forge", "Stack", "Path", "Point", "Gate", "Wave", "Leaf",
)

ACCOUNT_SUFFIXES = (
    "Inc.", "LLC", "Ltd", "GmbH", "Group", "Holdings", "Co.", "Corp", "Partners", "Systems",
    "Technologies", "Industries", "Solutions", "International", "S.A.", "AG", "BV", "Pty Ltd",
)

# (HubSpot enumeration value, Salesforce picklist label)
INDUSTRIES = (
    ("COMPUTER_SOFTWARE", "Technology"),
    ("INFORMATION_TECHNOLOGY_AND_SERVICES", "Technology"),
    ("FINANCIAL_SERVICES", "Finance"),
    ("BANKING", "Banking"),
    ("INSURANCE", "Insurance"),
    ("HOSPITAL_HEALTH_CARE", "Healthcare"),
    ("PHARMACEUTICALS", "Biotechnology"),
    ("RETAIL", "Retail"),
    ("LOGISTICS_AND_SUPPLY_CHAIN", "Transportation"),
    ("MACHINERY", "Machinery"),
    ("AUTOMOTIVE", "Manufacturing"),
    ("TELECOMMUNICATIONS", "Telecommunications"),
    ("EDUCATION_MANAGEMENT", "Education"),
    ("MEDIA_PRODUCTION", "Media"),
    ("UTILITIES", "Utilities"),
    ("CONSTRUCTION", "Construction"),
    ("FOOD_BEVERAGES", "Food & Beverage"),
    ("HOSPITALITY", "Hospitality"),
)

# (internal kind, HubSpot `type`, HubSpot `lifecyclestage`, Salesforce `Type`)
ACCOUNT_KINDS = (
    ("prospect", "PROSPECT", "opportunity", "Prospect"),
    ("customer", "CUSTOMER", "customer", "Customer - Direct"),
    ("partner", "PARTNER", "other", "Technology Partner"),
    ("reseller", "RESELLER", "customer", "Channel Partner / Reseller"),
)

CITIES = (
    ("New York", "United States"), ("San Francisco", "United States"),
    ("Austin", "United States"), ("Chicago", "United States"), ("Boston", "United States"),
    ("Seattle", "United States"), ("Denver", "United States"), ("Atlanta", "United States"),
    ("Toronto", "Canada"), ("Vancouver", "Canada"), ("London", "United Kingdom"),
    ("Manchester", "United Kingdom"), ("Dublin", "Ireland"), ("Paris", "France"),
    ("Lyon", "France"), ("Berlin", "Germany"), ("Munich", "Germany"), ("Amsterdam", "Netherlands"),
    ("Stockholm", "Sweden"), ("Madrid", "Spain"), ("Milan", "Italy"), ("Zürich", "Switzerland"),
    ("São Paulo", "Brazil"), ("Mexico City", "Mexico"), ("Sydney", "Australia"),
    ("Singapore", "Singapore"), ("Tokyo", "Japan"), ("Bangalore", "India"),
)

CONTACT_TITLES = (
    "CEO", "CFO", "CTO", "COO", "VP of Sales", "VP of Engineering", "VP of Marketing",
    "Head of Revenue Operations", "Director of IT", "Director of Procurement", "Head of Data",
    "Sales Operations Manager", "Engineering Manager", "Product Manager", "IT Manager",
    "Procurement Specialist", "Data Analyst", "Solutions Architect", "Office Manager",
    "Finance Manager", "Chief of Staff", "Marketing Manager", "Security Lead", "Controller",
)

OWNER_TEAMS = ("AE - East", "AE - West", "AE - EMEA", "Enterprise", "Renewals", "SDR")

PRODUCTS = (
    "Platform", "Analytics Add-on", "Enterprise Suite", "Starter Plan", "Data Connector Pack",
    "Premium Support", "Expansion", "Pilot", "Security Module", "Forecasting Seats",
)

LEAD_SOURCES = ("Web", "Outbound", "Partner Referral", "Event", "Inbound Call", "Advertisement")

MEETING_TITLES = (
    "Discovery call", "Product demo", "Technical deep dive", "Pricing review",
    "Executive alignment", "Security review", "Kickoff", "QBR", "Renewal planning",
    "Procurement sync",
)
CALL_TITLES = (
    "Intro call", "Follow-up call", "Check-in", "Pricing call", "Reference call",
    "Voicemail follow-up", "Champion sync",
)
EMAIL_SUBJECTS = (
    "Following up on our conversation", "Proposal attached", "Next steps",
    "Re: pricing question", "Security questionnaire", "Contract redlines", "Meeting recap",
    "Quick question about your rollout",
)
TASK_SUBJECTS = (
    "Send proposal", "Follow up on demo", "Prepare QBR deck", "Update close plan",
    "Confirm budget owner", "Book technical review", "Chase signed order form",
)

# Bodies are templates filled at render time; {account}, {contact}, {product} and {n} vary.
# A few carry markup and quotes on purpose: synced text is data and must be escaped downstream.
BODIES = (
    "Talked with {contact} about {product}. Budget confirmed for next quarter.",
    "{contact} asked for a revised quote on {product} ({n} seats).",
    "Good meeting with the {account} team. Blockers: legal review, SSO requirements.",
    "Left a voicemail for {contact}; will try again Thursday.",
    "{account} is evaluating two competitors. Our edge: reporting & forecasting.",
    "Sent the security questionnaire back to {contact} — awaiting sign-off.",
    "Renewal risk: usage dropped {n}% since last quarter at {account}.",
    "<p>Recap: {contact} wants a pilot of {product} with {n} users.</p>",
    "Note from {contact}: \"please loop in procurement before sending paper\".",
    "Champion at {account} moved teams; need a new exec sponsor.",
    "Agreed on a {n}-day pilot. Success criteria shared with {contact}.",
    "<b>Action items</b>: pricing, MSA redlines, onboarding plan for {account}.",
)
# fmt: on
