//! Generating the data set: users, tags and notes from one seed, each kind
//! of row from its own random stream. Pure and deterministic; loading is in
//! the crate root.

use std::collections::HashSet;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::vocabulary::{
    EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES, SENTENCE_TEMPLATES, TAG_SUFFIXES, TITLE_TEMPLATES, TOPICS, Topic,
};
use super::{MAX_EDIT_DELAY_MICROS, NOTES_SPAN_MICROS, SIGNUP_SPAN_MICROS, SeedOptions};

/// Independent random streams per kind of row, so that adding a draw to one
/// generator does not reshuffle the others.
pub(super) const USER_STREAM: u64 = 1;
pub(super) const NOTE_STREAM: u64 = 2;

pub(super) fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A generated user; its id is its position plus one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct User {
    pub(super) name: String,
    pub(super) email: String,
    pub(super) created_at: i64,
    /// Topics this user writes about most (indexes into [`TOPICS`]).
    pub(super) favourite_topics: [u8; 2],
}

pub(super) fn generate_users(count: u32, seed: u64, now: i64) -> Vec<User> {
    let mut rng = rng_for(seed, USER_STREAM);
    let mut emails = HashSet::with_capacity(count as usize);
    let first_note = now - NOTES_SPAN_MICROS;
    let slot = SIGNUP_SPAN_MICROS / i64::from(count.max(1));
    let mut users = Vec::with_capacity(count as usize);
    for index in 0..count {
        let first = FIRST_NAMES.choose(&mut rng).copied().unwrap_or("Alex");
        let last = LAST_NAMES.choose(&mut rng).copied().unwrap_or("Smith");
        let email = unique_email(&mut rng, &mut emails, first, last);
        // Sign-ups increase with id: one slot each, a random moment inside.
        let created_at = first_note - SIGNUP_SPAN_MICROS + i64::from(index) * slot + rng.random_range(0..slot.max(1));
        let favourite_topics = [rng_topic_index(&mut rng), rng_topic_index(&mut rng)];
        users.push(User { name: format!("{first} {last}"), email, created_at, favourite_topics });
    }
    users
}

pub(super) fn rng_topic_index(rng: &mut ChaCha8Rng) -> u8 {
    // TOPICS has far fewer than 256 entries.
    u8::try_from(rng.random_range(0..TOPICS.len())).unwrap_or(0)
}

/// A lower-case address in one of a few common shapes; a number is added
/// when the shape is taken, which cannot collide with an unnumbered one.
pub(super) fn unique_email(rng: &mut ChaCha8Rng, taken: &mut HashSet<String>, first: &str, last: &str) -> String {
    let first = email_part(first);
    let last = email_part(last);
    let initial = first.get(..1).unwrap_or("x");
    let local = match rng.random_range(0..5) {
        0 => format!("{first}.{last}"),
        1 => format!("{first}{last}"),
        2 => format!("{initial}{last}"),
        3 => format!("{first}_{last}"),
        _ => format!("{last}.{first}"),
    };
    let domain = EMAIL_DOMAINS.choose(rng).copied().unwrap_or("example.com");
    let plain = format!("{local}@{domain}");
    if taken.insert(plain.clone()) {
        return plain;
    }
    let mut number = 2_u32;
    loop {
        let numbered = format!("{local}{number}@{domain}");
        if taken.insert(numbered.clone()) {
            return numbered;
        }
        number += 1;
    }
}

/// Lower-case ASCII letters only ("O'Neil" -> "oneil").
pub(super) fn email_part(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphabetic).map(|c| c.to_ascii_lowercase()).collect()
}

/// A generated tag; its id is its position plus one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tag {
    pub(super) name: String,
    pub(super) topic: u8,
}

/// The first `count` tags: the curated names taken round-robin across topics
/// (so a small set still covers every topic), then names derived from them.
pub(super) fn generate_tags(count: u32) -> Vec<Tag> {
    let count = count as usize;
    let mut tags = Vec::with_capacity(count);
    let mut seen = HashSet::with_capacity(count);
    let deepest = TOPICS.iter().map(|t| t.tags.len()).max().unwrap_or(0);
    'curated: for depth in 0..deepest {
        for (topic, spec) in TOPICS.iter().enumerate() {
            if tags.len() == count {
                break 'curated;
            }
            if let Some(name) = spec.tags.get(depth)
                && seen.insert((*name).to_owned())
            {
                tags.push(Tag { name: (*name).to_owned(), topic: u8::try_from(topic).unwrap_or(0) });
            }
        }
    }
    // Beyond the list: "rust-basics", "postgres-basics", ..., then numbered
    // rounds ("rust-2"), skipping any name already used.
    let curated = tags.len();
    let mut round = 0_usize;
    while tags.len() < count && curated > 0 {
        let suffix =
            TAG_SUFFIXES.get(round).map_or_else(|| (round - TAG_SUFFIXES.len() + 2).to_string(), |s| (*s).to_owned());
        for base in 0..curated {
            if tags.len() == count {
                break;
            }
            let name = format!("{}-{suffix}", tags[base].name);
            if seen.insert(name.clone()) {
                let topic = tags[base].topic;
                tags.push(Tag { name, topic });
            }
        }
        round += 1;
    }
    tags
}

/// A generated note, ready to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Note {
    pub(super) id: i64,
    /// Index into the users.
    pub(super) author: u32,
    pub(super) topic: u8,
    pub(super) title: String,
    pub(super) body: String,
    pub(super) private: bool,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    /// Indexes into the tags, ascending and distinct.
    pub(super) tags: Vec<u32>,
}

/// Yields notes one by one (an iterator) so the caller can stream them.
pub(super) struct NoteGenerator {
    rng: ChaCha8Rng,
    next_id: i64,
    total: u32,
    now: i64,
    slot: i64,
    /// Users ordered by how much they write: a draw skewed towards the front
    /// makes a few prolific authors and a long tail.
    authors_by_rank: Vec<u32>,
    favourite_topics: Vec<[u8; 2]>,
    tags_by_topic: Vec<Vec<u32>>,
    tag_count: u32,
}

impl NoteGenerator {
    pub(super) fn new(opts: &SeedOptions, users: &[User], tags: &[Tag], now: i64) -> Self {
        let mut rng = rng_for(opts.seed, NOTE_STREAM);
        let mut authors_by_rank: Vec<u32> = (0..opts.users).collect();
        authors_by_rank.shuffle(&mut rng);
        // User 1 is the most prolific author: the published load mix and the
        // examples read `user(id: "1") { notes }` and expect a full page.
        if let Some(first) = authors_by_rank.iter().position(|&u| u == 0) {
            authors_by_rank.swap(0, first);
        }
        let mut tags_by_topic = vec![Vec::new(); TOPICS.len()];
        for (index, tag) in (0_u32..).zip(tags) {
            tags_by_topic[usize::from(tag.topic)].push(index);
        }
        Self {
            rng,
            next_id: 1,
            total: opts.notes,
            now,
            slot: NOTES_SPAN_MICROS / i64::from(opts.notes.max(1)),
            authors_by_rank,
            favourite_topics: users.iter().map(|u| u.favourite_topics).collect(),
            tags_by_topic,
            tag_count: u32::try_from(tags.len()).unwrap_or(u32::MAX),
        }
    }

    /// About three tags (1 to 5), the first always from the note's topic
    /// when it has any, the others from it four times in five.
    fn pick_tags(&mut self, topic: u8) -> Vec<u32> {
        if self.tag_count == 0 {
            return Vec::new();
        }
        let wanted = match self.rng.random_range(0..100) {
            0..12 => 1,
            12..37 => 2,
            37..67 => 3,
            67..87 => 4,
            _ => 5,
        }
        .min(self.tag_count as usize);
        let on_topic = &self.tags_by_topic[usize::from(topic)];
        let mut chosen: Vec<u32> = Vec::with_capacity(wanted);
        let mut attempts = 0;
        while chosen.len() < wanted {
            attempts += 1;
            let candidate = if attempts > 32 {
                // A tiny tag set can make random draws repeat for long; take
                // the first unused tag to stay bounded.
                (0..self.tag_count).find(|t| !chosen.contains(t)).unwrap_or(0)
            } else if !on_topic.is_empty() && (chosen.is_empty() || self.rng.random_bool(0.8)) {
                *on_topic.choose(&mut self.rng).unwrap_or(&0)
            } else {
                self.rng.random_range(0..self.tag_count)
            };
            if !chosen.contains(&candidate) {
                chosen.push(candidate);
            }
        }
        // Ascending, so the COPY into note_tags follows its primary key.
        chosen.sort_unstable();
        chosen
    }
}

impl Iterator for NoteGenerator {
    type Item = Note;

    fn next(&mut self) -> Option<Note> {
        if self.next_id > i64::from(self.total) || self.authors_by_rank.is_empty() {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let rng = &mut self.rng;

        // rank = n * u^2: the top 1% of users write about 10% of the notes,
        // the least active still a few.
        let u: f64 = rng.random();
        let rank = (u * u * self.authors_by_rank.len() as f64) as usize;
        let author = self.authors_by_rank[rank.min(self.authors_by_rank.len() - 1)];
        let topic = if rng.random_bool(0.75) {
            let favourites = self.favourite_topics[author as usize];
            favourites[usize::from(rng.random_bool(0.5))]
        } else {
            rng_topic_index(rng)
        };
        let spec = &TOPICS[usize::from(topic)];

        // The focus noun appears in the title and in most sentences, which is
        // what makes a note about one thing rather than a word salad.
        let focus = pick(rng, spec.nouns);
        let title_template = pick(rng, TITLE_TEMPLATES);
        let title = capitalize(&fill(rng, title_template, spec, focus));
        let sentences = rng.random_range(2..=5);
        let mut body = String::with_capacity(512);
        for template in SENTENCE_TEMPLATES.choose_multiple(rng, sentences) {
            if !body.is_empty() {
                body.push(' ');
            }
            body.push_str(&capitalize(&fill(rng, template, spec, focus)));
        }

        // Creation times increase with id: one slot per note, a random
        // moment inside it.
        let start = self.now - NOTES_SPAN_MICROS;
        let created_at = start + (id - 1) * self.slot + rng.random_range(0..self.slot.max(1));
        let updated_at = if rng.random_bool(0.35) {
            let room = (self.now - created_at).min(MAX_EDIT_DELAY_MICROS);
            created_at + rng.random_range(0..=room.max(0))
        } else {
            created_at
        };

        let tags = self.pick_tags(topic);
        // Note 1 is always public: the published load mix reads `note(id: "1")`
        // anonymously and expects a note.
        let private = self.rng.random_bool(0.1) && id != 1;
        Some(Note { id, author, topic, title, body, private, created_at, updated_at, tags })
    }
}

pub(super) fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or("")
}

/// Expands `{t}` (topic), `{n}` (the note's focus noun), `{m}` (another
/// noun), `{v}` (verb phrase) and `{a}` (adjective).
pub(super) fn fill(rng: &mut ChaCha8Rng, template: &str, topic: &Topic, focus: &str) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let slot = rest.as_bytes().get(open + 1).copied();
        rest = rest.get(open + 3..).unwrap_or("");
        match slot {
            Some(b't') => out.push_str(topic.name),
            Some(b'n') => out.push_str(focus),
            Some(b'm') => {
                let mut other = pick(rng, topic.nouns);
                if other == focus {
                    other = pick(rng, topic.nouns);
                }
                out.push_str(other);
            }
            Some(b'v') => out.push_str(pick(rng, topic.verbs)),
            Some(b'a') => out.push_str(pick(rng, topic.adjectives)),
            _ => {}
        }
    }
    out.push_str(rest);
    out
}

pub(super) fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use embed::HashEmbedder;

    const NOW: i64 = 1_790_000_000_000_000;

    fn options(users: u32, notes: u32, tags: u32, seed: u64) -> SeedOptions {
        SeedOptions { users, notes, tags, seed, ..SeedOptions::default() }
    }

    fn generate_notes(opts: &SeedOptions) -> Vec<Note> {
        let users = generate_users(opts.users, opts.seed, NOW);
        let tags = generate_tags(opts.tags);
        NoteGenerator::new(opts, &users, &tags, NOW).collect()
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let opts = options(40, 300, 25, 7);
        assert_eq!(generate_users(40, 7, NOW), generate_users(40, 7, NOW));
        assert_eq!(generate_notes(&opts), generate_notes(&opts));
        assert_ne!(generate_users(40, 8, NOW), generate_users(40, 7, NOW));
        assert_ne!(generate_notes(&options(40, 300, 25, 8)), generate_notes(&opts));
    }

    #[test]
    fn sizes_are_as_asked() {
        let opts = options(50, 500, 30, 42);
        assert_eq!(generate_users(50, 42, NOW).len(), 50);
        assert_eq!(generate_tags(30).len(), 30);
        let notes = generate_notes(&opts);
        assert_eq!(notes.len(), 500);
        assert_eq!(notes.last().map(|n| n.id), Some(500));
        assert!(generate_notes(&options(0, 0, 0, 1)).is_empty());
    }

    #[test]
    fn emails_are_unique_and_lower_case() {
        // More users than first x last name pairs forces numbered addresses.
        let users = generate_users(20_000, 42, NOW);
        let emails: HashSet<&str> = users.iter().map(|u| u.email.as_str()).collect();
        assert_eq!(emails.len(), users.len());
        for user in &users {
            assert_eq!(user.email, user.email.to_lowercase());
            assert!(user.email.is_ascii() && user.email.contains('@'), "{}", user.email);
        }
    }

    #[test]
    fn tag_names_are_unique_beyond_the_curated_list() {
        let curated: usize = TOPICS.iter().map(|t| t.tags.len()).sum();
        for count in [0, 1, 30, 200, curated as u32, 1_000, 5_000] {
            let tags = generate_tags(count);
            assert_eq!(tags.len(), count as usize);
            let names: HashSet<&str> = tags.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names.len(), tags.len(), "duplicates among {count}");
            for tag in &tags {
                assert_eq!(tag.name, tag.name.trim().to_lowercase());
            }
        }
        // A small set still has a tag for every topic.
        let topics: HashSet<u8> = generate_tags(TOPICS.len() as u32).iter().map(|t| t.topic).collect();
        assert_eq!(topics.len(), TOPICS.len());
    }

    #[test]
    fn notes_are_well_formed() {
        let opts = options(100, 2_000, 40, 3);
        let notes = generate_notes(&opts);
        let mut previous = i64::MIN;
        let mut private = 0;
        let mut links = 0;
        for note in &notes {
            assert!(note.author < opts.users);
            assert!(note.created_at > previous, "created_at must grow with id");
            assert!(note.created_at >= NOW - NOTES_SPAN_MICROS);
            assert!(note.updated_at >= note.created_at && note.updated_at <= NOW);
            assert!((1..=5).contains(&note.tags.len()));
            assert!(note.tags.windows(2).all(|w| w[0] < w[1]));
            assert!(note.tags.iter().all(|&t| t < opts.tags));
            let sentences = note.body.matches(['.', '?']).count();
            assert!((2..=5).contains(&sentences), "{}", note.body);
            assert!(!note.title.is_empty() && !note.title.contains('{'));
            assert!(!note.body.contains('{'));
            previous = note.created_at;
            private += usize::from(note.private);
            links += note.tags.len();
        }
        assert!((100..300).contains(&private), "{private} private");
        let mean = links as f64 / notes.len() as f64;
        assert!((2.6..3.4).contains(&mean), "{mean} tags per note");
    }

    #[test]
    fn some_authors_are_prolific() {
        let opts = options(1_000, 20_000, 50, 42);
        let mut per_author = vec![0_u32; 1_000];
        for note in generate_notes(&opts) {
            per_author[note.author as usize] += 1;
        }
        per_author.sort_unstable_by(|a, b| b.cmp(a));
        let top_ten: u32 = per_author[..10].iter().sum();
        // Uniform authors would give the top 1% about 1.3% of the notes.
        assert!(top_ten > 1_500, "top 10 authors wrote {top_ten}");
    }

    #[test]
    fn tags_follow_the_topic() {
        let opts = options(100, 2_000, 200, 5);
        let tags = generate_tags(200);
        let notes = generate_notes(&opts);
        let on_topic = notes.iter().filter(|n| n.tags.iter().any(|&t| tags[t as usize].topic == n.topic)).count();
        assert_eq!(on_topic, notes.len());
    }

    #[test]
    fn notes_on_one_topic_embed_closer_than_across_topics() {
        let embedder = HashEmbedder::default();
        let opts = options(50, 400, 30, 11);
        let notes = generate_notes(&opts);
        let vectors: Vec<Vec<f32>> =
            notes.iter().map(|n| embedder.embed_one(&format!("{}\n{}", n.title, n.body))).collect();
        let cosine = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let (mut same, mut same_n, mut other, mut other_n) = (0.0, 0, 0.0, 0);
        for i in 0..notes.len() {
            for j in (i + 1)..notes.len() {
                let c = cosine(&vectors[i], &vectors[j]);
                if notes[i].topic == notes[j].topic {
                    same += c;
                    same_n += 1;
                } else {
                    other += c;
                    other_n += 1;
                }
            }
        }
        let (same, other) = (same / same_n as f32, other / other_n as f32);
        assert!(same > other + 0.1, "same topic {same}, other {other}");
    }
}
