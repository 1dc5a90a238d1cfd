//! The words the seeder writes with: topics (each with its tags, nouns,
//! verbs and adjectives), title and sentence templates, and names. Data only.

/// A subject people keep notes about, with the words such notes use.
pub(super) struct Topic {
    /// How sentences name the topic ("Most guides on {t} ...").
    pub(super) name: &'static str,
    /// Curated tag names, most general first.
    pub(super) tags: &'static [&'static str],
    pub(super) nouns: &'static [&'static str],
    /// Base-form verb phrases ("to {v}", "I will {v}").
    pub(super) verbs: &'static [&'static str],
    pub(super) adjectives: &'static [&'static str],
}

/// Title shapes; placeholders as in [`fill`].
pub(super) const TITLE_TEMPLATES: &[&str] = &[
    "Notes on {n}",
    "How to {v}",
    "{n} vs {m}",
    "Why I care about {n}",
    "A {a} guide to {n}",
    "What I learned about {n}",
    "{t}: notes on {n}",
    "Checklist: {n}",
    "Quick tip: {v}",
    "Understanding {n}",
    "Setting up {n}",
    "Lessons from {n}",
    "{t} log: {n}",
    "Getting started with {n}",
    "Common mistakes with {n}",
    "When to {v}",
    "Questions about {n}",
    "Revisiting {n}",
];

/// Body sentences, each about one focus noun so a note stays on its subject.
pub(super) const SENTENCE_TEMPLATES: &[&str] = &[
    "I spent the weekend looking into {n} and it turned out simpler than expected.",
    "The trick with {n} is to keep it {a} and to {v} early.",
    "Most guides on {t} skip {n}, but it matters more than {m}.",
    "Next time I will {v} before touching {m}.",
    "A {a} approach to {n} beats a clever one every time.",
    "It helps to {v} first, then compare {n} with {m}.",
    "I keep a short list of {t} notes so that {n} never surprises me again.",
    "The biggest win this month came from {n}: I learned to {v}.",
    "{n} and {m} are easy to confuse, so I wrote down the difference.",
    "If something about {n} feels off, try to {v} and look again.",
    "My current rule of thumb for {t}: {v}, and leave {m} for later.",
    "A friend told me to {v}, which made {n} much more {a}.",
    "There is no {a} answer for {n}; it depends on {m}.",
    "Looking back, {n} turned out to be the part of {t} I underestimated.",
    "Before I {v}, I check {m} and write the result down.",
    "The docs on {n} are thin, but the examples around {m} help.",
    "Open question: what changes about {n} when you {v}?",
    "I tried three approaches to {n} and the {a} one won.",
    "Someone asked me about {m}, so here is what I know about {n} in {t}.",
    "Doing this weekly keeps {n} {a} and {m} under control.",
    "Remember to {v}; skipping it cost me an afternoon with {m}.",
    "The best resource on {t} I found explains {n} with {m} as the example.",
    "Small steps: {v}, review {n}, repeat.",
    "Worth revisiting: {n}, {m} and how they fit into {t}.",
];

/// Suffixes for tags beyond the curated list.
pub(super) const TAG_SUFFIXES: &[&str] =
    &["basics", "advanced", "tips", "tools", "ideas", "reference", "questions", "projects", "history", "resources"];

/// Reserved example domains (RFC 2606), so no generated address is real.
pub(super) const EMAIL_DOMAINS: &[&str] =
    &["example.com", "example.org", "example.net", "mail.example.com", "inbox.example.org"];

// The name and vocabulary tables are kept dense (rustfmt would put every
// entry on a line of its own and triple their length).
#[rustfmt::skip]
pub(super) const FIRST_NAMES: &[&str] = &[
    "Aaliyah", "Aaron", "Abigail", "Adam", "Aisha", "Alejandro", "Alex", "Alice", "Amara",
    "Amelia", "Ana", "Andrei", "Anna", "Arjun", "Ava", "Benjamin", "Bianca", "Carlos", "Caroline",
    "Chen", "Chloe", "Daniel", "David", "Diego", "Dmitri", "Elena", "Elif", "Elijah", "Emma",
    "Ethan", "Fatima", "Felix", "Freya", "Gabriel", "Grace", "Hana", "Hannah", "Hiroshi", "Ibrahim",
    "Ines", "Isaac", "Isabella", "Ivan", "Jack", "Jakob", "James", "Jana", "Javier", "Jia",
    "Jonas", "Julia", "Kai", "Karan", "Kenji", "Laila", "Lars", "Laura", "Leila", "Leo", "Liam",
    "Lina", "Lucas", "Lucia", "Mai", "Marco", "Maria", "Mateo", "Maya", "Mei", "Mia", "Mohammed",
    "Nadia", "Naomi", "Nina", "Noah", "Nora", "Olga", "Oliver", "Omar", "Pablo", "Priya",
    "Rafael", "Ravi", "Rosa", "Ruth", "Sakura", "Samuel", "Sara", "Sebastian", "Sofia", "Sven",
    "Tariq", "Theo", "Tomas", "Valentina", "Victor", "Wei", "Yara", "Yusuf", "Zara", "Zoe",
];

#[rustfmt::skip]
pub(super) const LAST_NAMES: &[&str] = &[
    "Abe", "Adams", "Ahmed", "Ali", "Alvarez", "Andersen", "Bauer", "Becker", "Bianchi", "Brown",
    "Campbell", "Castro", "Chen", "Clark", "Costa", "Cruz", "Davies", "Dubois", "Eriksson",
    "Evans", "Fernandez", "Fischer", "Garcia", "Gomez", "Gonzalez", "Gupta", "Hansen", "Hoffmann",
    "Hughes", "Ibrahim", "Ito", "Jansen", "Johnson", "Jones", "Kaur", "Khan", "Kim", "Kowalski",
    "Kumar", "Larsen", "Lee", "Lopez", "Martin", "Martinez", "Meyer", "Moreau", "Morris", "Muller",
    "Nakamura", "Nguyen", "Nielsen", "Novak", "O'Brien", "Okafor", "Olsen", "Ortiz", "Park",
    "Patel", "Perez", "Petrov", "Popescu", "Quinn", "Ramirez", "Reyes", "Rossi", "Russo", "Sato",
    "Schmidt", "Schneider", "Shah", "Silva", "Singh", "Smith", "Sousa", "Suzuki", "Tanaka",
    "Taylor", "Thomas", "Torres", "Tran", "Wagner", "Walker", "Wang", "Weber", "White", "Williams",
    "Wilson", "Wong", "Yamamoto", "Yilmaz", "Young", "Zhang",
];

#[rustfmt::skip]
pub(super) const TOPICS: &[Topic] = &[
    Topic {
        name: "Rust",
        tags: &[
            "rust", "cargo", "async", "tokio", "borrow-checker", "traits", "macros", "webassembly",
            "embedded", "clippy",
        ],
        nouns: &[
            "the borrow checker", "lifetimes", "trait objects", "async runtimes", "error handling",
            "cargo workspaces", "procedural macros", "iterators", "unsafe code",
            "the tokio scheduler", "generic bounds", "compile times",
        ],
        verbs: &[
            "profile the build", "split the crate", "run clippy", "write a property test",
            "pin the toolchain", "read the compiler error twice", "benchmark the hot loop",
            "replace the clone with a borrow",
        ],
        adjectives: &["explicit", "idiomatic", "zero-cost", "predictable", "strict", "ergonomic"],
    },
    Topic {
        name: "Postgres",
        tags: &[
            "postgres", "sql", "indexing", "query-planning", "migrations", "replication", "sqlite",
            "vacuum", "transactions", "pgvector",
        ],
        nouns: &[
            "query plans", "btree indexes", "autovacuum", "connection pooling", "row locks",
            "the write-ahead log", "partial indexes", "transaction isolation", "foreign keys",
            "common table expressions", "replication slots", "table bloat",
        ],
        verbs: &[
            "run explain analyze", "add a covering index", "tune work_mem", "vacuum the table",
            "batch the inserts", "check pg_stat_statements", "rewrite the subquery as a join",
            "test the migration on a copy",
        ],
        adjectives: &["consistent", "durable", "indexed", "normalized", "slow", "transactional"],
    },
    Topic {
        name: "GraphQL",
        tags: &[
            "graphql", "rest", "api-design", "schema-design", "dataloader", "pagination", "http",
            "grpc", "openapi", "caching",
        ],
        nouns: &[
            "resolvers", "the N+1 problem", "cursor pagination", "schema stitching",
            "input validation", "field deprecation", "dataloader batching",
            "query complexity limits", "error extensions", "persisted queries", "subscriptions",
            "nullable fields",
        ],
        verbs: &[
            "batch the resolver calls", "version the schema", "add a complexity limit",
            "cache the response", "document every field", "deprecate the old field",
            "trace each resolver", "paginate with cursors",
        ],
        adjectives: &["typed", "versioned", "paginated", "backwards-compatible", "cacheable", "chatty"],
    },
    Topic {
        name: "web development",
        tags: &[
            "javascript", "typescript", "react", "css", "html", "accessibility",
            "web-performance", "svelte", "bundlers", "design-systems",
        ],
        nouns: &[
            "component state", "CSS grid", "bundle size", "hydration", "form validation",
            "keyboard navigation", "the virtual DOM", "type definitions", "responsive layouts",
            "web fonts", "service workers", "color contrast",
        ],
        verbs: &[
            "split the bundle", "add alt text", "memoize the component", "lazy-load the images",
            "audit the page with Lighthouse", "type the props", "test with a screen reader",
            "remove the unused CSS",
        ],
        adjectives: &["accessible", "responsive", "lightweight", "reactive", "semantic", "fast"],
    },
    Topic {
        name: "DevOps",
        tags: &[
            "docker", "kubernetes", "ci-cd", "terraform", "observability", "monitoring", "linux",
            "nginx", "incident-response", "cloud",
        ],
        nouns: &[
            "container images", "deployment pipelines", "health checks", "log aggregation",
            "alert fatigue", "rolling updates", "infrastructure as code", "resource limits",
            "on-call rotations", "reverse proxies", "secrets management", "postmortems",
        ],
        verbs: &[
            "shrink the image", "add a readiness probe", "pin the base image", "write a runbook",
            "roll back the deploy", "set resource limits", "rotate the secrets",
            "page the right person",
        ],
        adjectives: &["reproducible", "observable", "automated", "resilient", "immutable", "noisy"],
    },
    Topic {
        name: "machine learning",
        tags: &[
            "machine-learning", "deep-learning", "embeddings", "nlp", "pytorch", "data-science",
            "llm", "statistics", "computer-vision", "vector-search",
        ],
        nouns: &[
            "training data", "embeddings", "overfitting", "learning rates", "evaluation metrics",
            "feature engineering", "transformers", "fine-tuning", "tokenizers",
            "gradient descent", "cross-validation", "vector similarity",
        ],
        verbs: &[
            "normalize the features", "hold out a test set", "lower the learning rate",
            "plot the loss curve", "label more examples", "compare against a baseline",
            "fine-tune the model", "check for data leakage",
        ],
        adjectives: &["noisy", "overfit", "robust", "labeled", "sparse", "calibrated"],
    },
    Topic {
        name: "Python",
        tags: &[
            "python", "pandas", "numpy", "jupyter", "django", "fastapi", "packaging", "pytest",
            "type-hints", "scripting",
        ],
        nouns: &[
            "virtual environments", "dataframes", "list comprehensions", "type hints",
            "decorators", "pytest fixtures", "dependency pinning", "notebooks", "generators",
            "the standard library", "async views", "import cycles",
        ],
        verbs: &[
            "pin the dependencies", "add type hints", "write a fixture", "vectorize the loop",
            "profile the script", "freeze the environment", "split the notebook into modules",
            "run the linter",
        ],
        adjectives: &["pythonic", "readable", "dynamic", "typed", "reproducible", "quick"],
    },
    Topic {
        name: "cooking",
        tags: &[
            "cooking", "recipes", "baking", "bread", "vegetarian", "meal-prep", "fermentation",
            "coffee", "spices", "desserts",
        ],
        nouns: &[
            "sourdough starter", "knife skills", "cast iron pans", "weeknight dinners",
            "roasted vegetables", "homemade stock", "spice blends", "pizza dough", "kimchi",
            "pour-over coffee", "chocolate cake", "lentil soup",
        ],
        verbs: &[
            "salt the pasta water", "proof the dough overnight", "toast the spices",
            "sharpen the knife", "prep vegetables on Sunday", "taste before serving",
            "brown the butter", "rest the meat",
        ],
        adjectives: &["crispy", "fragrant", "savory", "seasonal", "hearty", "tangy"],
    },
    Topic {
        name: "travel",
        tags: &[
            "travel", "hiking", "backpacking", "japan", "italy", "road-trips", "packing-lists",
            "budget-travel", "camping", "city-guides",
        ],
        nouns: &[
            "train passes", "carry-on luggage", "trail maps", "night markets", "travel insurance",
            "hostels", "mountain huts", "jet lag", "local buses", "old towns", "ferry schedules",
            "street food",
        ],
        verbs: &[
            "book the train early", "pack a rain jacket", "learn a few phrases",
            "walk the old town", "check the trail conditions", "carry some cash",
            "download offline maps", "travel in the shoulder season",
        ],
        adjectives: &["scenic", "affordable", "crowded", "remote", "walkable", "unforgettable"],
    },
    Topic {
        name: "fitness",
        tags: &[
            "fitness", "running", "strength-training", "yoga", "nutrition", "sleep", "cycling",
            "mobility", "marathon", "mental-health",
        ],
        nouns: &[
            "interval training", "recovery days", "protein intake", "running shoes", "deadlifts",
            "morning stretches", "heart rate zones", "progressive overload", "long runs",
            "sleep quality", "hydration", "training plans",
        ],
        verbs: &[
            "warm up properly", "track the heart rate", "add one rest day",
            "increase the load slowly", "stretch after running", "sleep eight hours",
            "log every workout", "run the easy days easy",
        ],
        adjectives: &["sustainable", "intense", "consistent", "sore", "energizing", "steady"],
    },
    Topic {
        name: "productivity",
        tags: &[
            "productivity", "time-management", "note-taking", "habits", "focus", "journaling",
            "gtd", "zettelkasten", "planning", "remote-work",
        ],
        nouns: &[
            "daily reviews", "inbox zero", "deep work", "to-do lists", "calendar blocking",
            "linked notes", "weekly planning", "meeting notes", "habit streaks", "distractions",
            "morning routines", "project templates",
        ],
        verbs: &[
            "block focus time", "review the week on Friday", "capture everything in one inbox",
            "link the new note", "turn off notifications", "write tomorrow's plan tonight",
            "batch the small tasks", "say no to one meeting",
        ],
        adjectives: &["focused", "calm", "organized", "deliberate", "sustainable", "cluttered"],
    },
    Topic {
        name: "reading",
        tags: &[
            "books", "reading-list", "fiction", "science-fiction", "history", "philosophy",
            "poetry", "book-review", "biographies", "essays",
        ],
        nouns: &[
            "reading lists", "science fiction", "historical novels", "margin notes",
            "book clubs", "short stories", "the library", "audiobooks", "classic essays",
            "unreliable narrators", "world-building", "ancient philosophy",
        ],
        verbs: &[
            "read before bed", "take margin notes", "finish one book before starting another",
            "join a book club", "reread the last chapter", "summarize each chapter",
            "borrow from the library", "write a short review",
        ],
        adjectives: &["gripping", "thoughtful", "dense", "moving", "slow-burning", "timeless"],
    },
    Topic {
        name: "music",
        tags: &[
            "music", "guitar", "piano", "music-theory", "jazz", "songwriting", "home-recording",
            "vinyl", "synthesizers", "concerts",
        ],
        nouns: &[
            "chord progressions", "scales", "practice routines", "home recording",
            "vinyl records", "ear training", "drum patterns", "song structure", "analog synths",
            "live concerts", "sight reading", "jazz standards",
        ],
        verbs: &[
            "practice with a metronome", "learn one new chord", "record every session",
            "transcribe a solo", "slow the tempo down", "tune before playing",
            "write the chorus first", "play along with records",
        ],
        adjectives: &["melodic", "rhythmic", "warm", "improvised", "catchy", "soulful"],
    },
    Topic {
        name: "gardening",
        tags: &[
            "gardening", "houseplants", "composting", "vegetables", "permaculture", "herbs",
            "seeds", "pruning", "balcony-garden", "soil",
        ],
        nouns: &[
            "raised beds", "compost piles", "tomato plants", "seed starting",
            "companion planting", "houseplant watering", "mulch", "fruit trees", "soil health",
            "slug control", "herb pots", "crop rotation",
        ],
        verbs: &[
            "water in the morning", "turn the compost", "prune after flowering",
            "sow the seeds indoors", "test the soil", "mulch the beds", "rotate the crops",
            "repot the plant in spring",
        ],
        adjectives: &["organic", "shady", "fertile", "drought-tolerant", "lush", "perennial"],
    },
    Topic {
        name: "personal finance",
        tags: &[
            "personal-finance", "budgeting", "investing", "taxes", "savings", "retirement",
            "index-funds", "frugality", "mortgages", "side-income",
        ],
        nouns: &[
            "emergency funds", "index funds", "monthly budgets", "tax returns",
            "retirement accounts", "credit cards", "compound interest", "subscriptions",
            "mortgage rates", "savings goals", "expense tracking", "asset allocation",
        ],
        verbs: &[
            "automate the savings", "rebalance once a year", "cancel unused subscriptions",
            "track every expense", "pay off the card in full", "compare the fees",
            "file the taxes early", "max out the retirement account",
        ],
        adjectives: &["frugal", "diversified", "long-term", "predictable", "risky", "cheap"],
    },
    Topic {
        name: "photography",
        tags: &[
            "photography", "cameras", "lenses", "photo-editing", "film-photography", "portraits",
            "street-photography", "landscape-photography", "composition", "lighting",
        ],
        nouns: &[
            "prime lenses", "golden hour", "exposure settings", "the rule of thirds",
            "raw files", "film stock", "portrait lighting", "street scenes", "white balance",
            "tripods", "depth of field", "color grading",
        ],
        verbs: &[
            "shoot in raw", "wait for the golden hour", "underexpose slightly", "use a tripod",
            "edit in small steps", "walk with one lens", "back up the photos",
            "check the histogram",
        ],
        adjectives: &["sharp", "moody", "grainy", "balanced", "candid", "bright"],
    },
    Topic {
        name: "DIY projects",
        tags: &[
            "diy", "woodworking", "home-repair", "tools", "electronics", "3d-printing",
            "renovation", "arduino", "raspberry-pi", "soldering",
        ],
        nouns: &[
            "wood joints", "power tools", "the workbench", "wall anchors", "soldering irons",
            "3D printed parts", "wiring diagrams", "paint finishes", "microcontrollers",
            "sanding grits", "shelf brackets", "sensor boards",
        ],
        verbs: &[
            "measure twice and cut once", "pre-drill the holes", "sand with a finer grit",
            "label the wires", "clamp the joint overnight", "calibrate the printer",
            "check the voltage", "wear safety glasses",
        ],
        adjectives: &["sturdy", "handmade", "precise", "cheap", "wobbly", "reusable"],
    },
    Topic {
        name: "security",
        tags: &[
            "security", "cryptography", "authentication", "oauth", "jwt", "passwords",
            "threat-modeling", "tls", "privacy", "vulnerabilities",
        ],
        nouns: &[
            "password managers", "two-factor authentication", "access tokens", "threat models",
            "TLS certificates", "session cookies", "dependency audits", "phishing emails",
            "key rotation", "input sanitization", "audit logs", "least privilege",
        ],
        verbs: &[
            "rotate the keys", "enable two-factor authentication", "audit the dependencies",
            "hash the passwords", "expire the tokens", "log every login",
            "review the permissions", "patch the server",
        ],
        adjectives: &["encrypted", "least-privileged", "auditable", "hardened", "leaky", "trusted"],
    },
    Topic {
        name: "language learning",
        tags: &[
            "language-learning", "japanese", "spanish", "french", "german", "grammar",
            "vocabulary", "flashcards", "pronunciation", "immersion",
        ],
        nouns: &[
            "spaced repetition", "verb conjugations", "kanji", "listening practice",
            "language exchanges", "flashcard decks", "pronunciation drills", "grammar tables",
            "graded readers", "podcasts for learners", "false friends", "sentence mining",
        ],
        verbs: &[
            "review the flashcards daily", "shadow a native speaker", "read a graded reader",
            "speak from day one", "mine sentences from shows", "write a short diary entry",
            "label things around the house", "repeat the tricky sounds",
        ],
        adjectives: &["fluent", "native", "tricky", "irregular", "conversational", "immersive"],
    },
    Topic {
        name: "career growth",
        tags: &[
            "career", "interviewing", "management", "mentoring", "hiring", "leadership",
            "meetings", "feedback", "onboarding", "technical-writing",
        ],
        nouns: &[
            "one-on-ones", "performance reviews", "job interviews", "onboarding plans",
            "design docs", "team meetings", "feedback conversations", "career ladders",
            "mentoring sessions", "hiring loops", "decision logs", "status updates",
        ],
        verbs: &[
            "write the agenda first", "give feedback early", "ask open questions",
            "document the decision", "shadow a senior colleague", "prepare three stories",
            "set clear goals", "cancel the recurring meeting",
        ],
        adjectives: &["candid", "supportive", "clear", "asynchronous", "structured", "honest"],
    },
    Topic {
        name: "systems design",
        tags: &[
            "algorithms", "data-structures", "distributed-systems", "concurrency", "compilers",
            "networking", "operating-systems", "performance", "testing", "software-architecture",
        ],
        nouns: &[
            "hash tables", "consensus protocols", "cache invalidation", "lock contention",
            "binary trees", "message queues", "tail latency", "garbage collection",
            "load balancers", "property-based tests", "parsers", "memory layouts",
        ],
        verbs: &[
            "measure before optimizing", "add a cache", "shard the data", "write a benchmark",
            "remove the lock", "retry with backoff", "draw the sequence diagram",
            "test the failure mode",
        ],
        adjectives: &[
            "distributed", "concurrent", "eventually consistent", "lock-free", "scalable",
            "deterministic",
        ],
    },
];
